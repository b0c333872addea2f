package infer

import (
	"math"
	"slices"
)

// expandOp is Expand: the input broadcast (numpy rules, both ways) with a
// shape given as an input.
type expandOp struct{}

// newExpand implements Expand, versions 8 and 13, for every stored type;
// the shape must be computable when planning:
// https://onnx.ai/onnx/operators/onnx__Expand.html
func newExpand(b *nodeBuilder) op {
	b.arity(2, 2, 1, 1)
	b.want(1, "shape", Int64)
	b.needValue(1)
	b.out(0, b.in(0))
	return &expandOp{}
}

func (o *expandOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	dims, err := valueInts(n.in[1], "shape")
	if err != nil {
		return err
	}
	want := make([]int, len(dims))
	for i, d := range dims {
		if d < 0 || d > int64(pc.maxElems) {
			return errShape("shape %v: dimension %d is out of range", dims, d)
		}
		want[i] = int(d)
	}
	out, err := broadcastShapes(x.shape, want)
	if err != nil {
		return err
	}
	if err := n.setShape(pc, 0, out); err != nil {
		return err
	}
	if slices.Equal(out, x.shape) {
		n.aliasOf = 0
		return nil
	}
	prm := stridedParams{size: prod(out), x: x.id, y: n.out[0].id}
	if len(out) > 0 {
		cs, cst := coalesce(out, broadcastStrides(x.shape, out))
		prm.outShape, prm.steps = cs, cst[0]
	}
	n.kernel = byType(x.dtype, prm, stridedK[float32], stridedK[float64], stridedK[int64], stridedK[int32], stridedK[bool])
	return nil
}

// argMaxOp is ArgMax along one axis.
type argMaxOp struct {
	axis     int
	keepDims bool
	last     bool // select_last_index
}

// newArgMax implements ArgMax, versions 1, 11 (negative axes), 12
// (select_last_index) and 13, on float32, float64, int64 and int32:
// https://onnx.ai/onnx/operators/onnx__ArgMax.html
func newArgMax(b *nodeBuilder) op {
	b.arity(1, 1, 1, 1)
	b.want(0, "data", Float32, Float64, Int64, Int32)
	b.out(0, Int64)
	o := &argMaxOp{axis: int(b.int("axis", 0)), keepDims: b.boolAttr("keepdims", true)}
	if b.since >= 12 {
		o.last = b.boolAttr("select_last_index", false)
	}
	return o
}

type argMaxParams struct {
	outer, mid, inner int
	last              bool
	x, y              int
}

func (o *argMaxOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	ax, err := normAxis(o.axis, len(x.shape))
	if err != nil {
		return err
	}
	if x.shape[ax] == 0 {
		return errShape("ArgMax over an empty axis %d of shape %v", ax, x.shape)
	}
	var out []int
	for d, s := range x.shape {
		switch {
		case d != ax:
			out = append(out, s)
		case o.keepDims:
			out = append(out, 1)
		}
	}
	if err := n.setShape(pc, 0, nonNil(out)); err != nil {
		return err
	}
	p := argMaxParams{outer: prod(x.shape[:ax]), mid: x.shape[ax], inner: prod(x.shape[ax+1:]), last: o.last, x: x.id, y: n.out[0].id}
	n.kernel = byNumType(x.dtype, p, argMaxK[float32], argMaxK[float64], argMaxK[int64], argMaxK[int32])
	return nil
}

func argMaxK[T num](p argMaxParams) kfactory {
	return func(rc *runCtx) func() error {
		v, y := viewsOf[T](rc), rc.i64
		body := func(lo, hi int) {
			x, out := v[p.x], y[p.y]
			for r := lo; r < hi; r++ {
				o, i := r/p.inner, r%p.inner
				base := o*p.mid*p.inner + i
				best, at := x[base], 0
				for k := 1; k < p.mid; k++ {
					e := x[base+k*p.inner]
					if e > best || (p.last && e == best) {
						best, at = e, k
					}
				}
				out[r] = int64(at)
			}
		}
		return func() error {
			rc.parallel(p.outer*p.inner, p.mid, body)
			return nil
		}
	}
}

// instanceNormOp is InstanceNormalization: every (sample, channel) plane
// normalised by its own mean and (biased) variance, then scaled and
// shifted per channel.
type instanceNormOp struct{ eps float32 }

// newInstanceNorm implements InstanceNormalization, versions 1 and 6, on
// float32 (statistics accumulated in float64):
// https://onnx.ai/onnx/operators/onnx__InstanceNormalization.html
func newInstanceNorm(b *nodeBuilder) op {
	b.arity(3, 3, 1, 1)
	b.want(0, "input", Float32)
	b.want(1, "scale", Float32)
	b.want(2, "B", Float32)
	b.out(0, Float32)
	if b.since < 6 {
		b.ints("consumed_inputs") // legacy optimisation hint
	}
	return &instanceNormOp{eps: b.float("epsilon", 1e-5)}
}

func (o *instanceNormOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	if len(x.shape) < 3 {
		return errShape("input shape %v: InstanceNormalization needs [N, C, D1, …] (rank 3 or more, as ONNX Runtime)", x.shape)
	}
	c := x.shape[1]
	for i := 1; i < 3; i++ {
		if p := n.in[i]; len(p.shape) != 1 || p.shape[0] != c {
			return errShape("input %d has shape %v, want [%d]", i, p.shape, c)
		}
	}
	if err := n.setShape(pc, 0, x.shape); err != nil {
		return err
	}
	n.inplace = 0
	planes, hw := x.shape[0]*c, prod(x.shape[2:])
	xi, si, bi, yi, eps := x.id, n.in[1].id, n.in[2].id, n.out[0].id, float64(o.eps)
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		body := func(lo, hi int) {
			x, s, b, y := v[xi], v[si], v[bi], v[yi]
			for pl := lo; pl < hi; pl++ {
				src, dst := x[pl*hw:(pl+1)*hw], y[pl*hw:(pl+1)*hw]
				mean, vr := planeStats(src)
				k := float64(s[pl%c]) / math.Sqrt(vr+eps)
				sc, sh := float32(k), float32(float64(b[pl%c])-mean*k)
				for i, e := range src {
					dst[i] = e*sc + sh
				}
			}
		}
		return func() error {
			rc.parallel(planes, hw, body)
			return nil
		}
	}
	return nil
}

// planeStats returns the mean and the biased variance of x, in float64
// (two passes).
func planeStats(x []float32) (mean, variance float64) {
	if len(x) == 0 {
		return 0, 0
	}
	var s float64
	for _, e := range x {
		s += float64(e)
	}
	mean = s / float64(len(x))
	var q float64
	for _, e := range x {
		d := float64(e) - mean
		q += d * d
	}
	return mean, q / float64(len(x))
}

// naryWalk visits every element of a broadcast output in row-major order
// with each operand's offset (operands read with broadcast strides).
type naryWalk struct {
	shape []int   // coalesced output shape
	st    [][]int // per operand, its strides along shape
	size  int
}

func newNaryWalk(out []int, ins ...[]int) naryWalk {
	sts := make([][]int, len(ins))
	for i, s := range ins {
		sts[i] = broadcastStrides(s, out)
	}
	shape, st := coalesce(out, sts...)
	return naryWalk{shape: shape, st: st, size: prod(out)}
}

// each calls f(i, offs) for output element i; offs is reused.
func (w naryWalk) each(f func(i int, offs []int)) {
	if w.size == 0 {
		return
	}
	r := len(w.shape)
	idx := make([]int, r)
	offs := make([]int, len(w.st))
	for i := range w.size {
		f(i, offs)
		for d := r - 1; d >= 0; d-- {
			idx[d]++
			for k := range offs {
				offs[k] += w.st[k][d]
			}
			if idx[d] < w.shape[d] {
				break
			}
			for k := range offs {
				offs[k] -= idx[d] * w.st[k][d]
			}
			idx[d] = 0
		}
	}
}

// equalOp is Equal with numpy broadcasting.
type equalOp struct{}

// newEqual implements Equal, versions 7, 11, 13 and 19, on float32,
// float64, int64, int32 and bool (PyTorch writes it into the shape
// arithmetic of x.expand(…, -1, …)):
// https://onnx.ai/onnx/operators/onnx__Equal.html
func newEqual(b *nodeBuilder) op {
	b.arity(2, 2, 1, 1)
	b.want(0, "A", Float32, Float64, Int64, Int32, Bool)
	b.want(1, "B", Float32, Float64, Int64, Int32, Bool)
	b.sameType(0, 1)
	b.out(0, Bool)
	return &equalOp{}
}

type naryParams struct {
	w   naryWalk
	ins []int
	y   int
}

func (o *equalOp) plan(pc *planCtx, n *pnode) error {
	a, b := n.in[0], n.in[1]
	shape, err := broadcastShapes(a.shape, b.shape)
	if err != nil {
		return err
	}
	if err := n.setShape(pc, 0, shape); err != nil {
		return err
	}
	p := naryParams{w: newNaryWalk(shape, a.shape, b.shape), ins: []int{a.id, b.id}, y: n.out[0].id}
	n.kernel = byType(a.dtype, p, equalK[float32], equalK[float64], equalK[int64], equalK[int32], equalK[bool])
	return nil
}

func equalK[T elem](p naryParams) kfactory {
	return func(rc *runCtx) func() error {
		v := viewsOf[T](rc)
		return func() error {
			a, b, y := v[p.ins[0]], v[p.ins[1]], rc.b[p.y]
			p.w.each(func(i int, offs []int) { y[i] = a[offs[0]] == b[offs[1]] })
			return nil
		}
	}
}

// whereOp is Where: condition ? X : Y, all three broadcast together.
type whereOp struct{}

// newWhere implements Where, versions 9 and 16, for every stored type:
// https://onnx.ai/onnx/operators/onnx__Where.html
func newWhere(b *nodeBuilder) op {
	b.arity(3, 3, 1, 1)
	b.want(0, "condition", Bool)
	b.sameType(1, 2)
	b.out(0, b.in(1))
	return &whereOp{}
}

func (o *whereOp) plan(pc *planCtx, n *pnode) error {
	c, x, y := n.in[0], n.in[1], n.in[2]
	shape, err := broadcastShapes(c.shape, x.shape, y.shape)
	if err != nil {
		return err
	}
	if err := n.setShape(pc, 0, shape); err != nil {
		return err
	}
	p := naryParams{w: newNaryWalk(shape, c.shape, x.shape, y.shape), ins: []int{c.id, x.id, y.id}, y: n.out[0].id}
	n.kernel = byType(x.dtype, p, whereK[float32], whereK[float64], whereK[int64], whereK[int32], whereK[bool])
	return nil
}

func whereK[T elem](p naryParams) kfactory {
	return func(rc *runCtx) func() error {
		v := viewsOf[T](rc)
		return func() error {
			c, a, b, y := rc.b[p.ins[0]], v[p.ins[1]], v[p.ins[2]], v[p.y]
			p.w.each(func(i int, offs []int) {
				if c[offs[0]] {
					y[i] = a[offs[1]]
				} else {
					y[i] = b[offs[2]]
				}
			})
			return nil
		}
	}
}
