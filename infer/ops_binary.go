package infer

import (
	"errors"
	"slices"

	"github.com/resnetctl/resnetctl/internal/kernels"
)

// binKind is an element-wise binary operation.
type binKind uint8

const (
	binAdd binKind = iota
	binSub
	binMul
	binDiv
	binPRelu // a < 0 ? a*b : a
)

// binaryOp is Add, Sub, Mul or Div with numpy (multidirectional)
// broadcasting, on float32, or on int64/int32 for shape arithmetic.
type binaryOp struct{ kind binKind }

// newAdd implements Add, versions 7, 13 and 14:
// https://onnx.ai/onnx/operators/onnx__Add.html
func newAdd(b *nodeBuilder) op { return newBinary(b, binAdd) }

// newSub implements Sub, versions 7, 13 and 14:
// https://onnx.ai/onnx/operators/onnx__Sub.html
func newSub(b *nodeBuilder) op { return newBinary(b, binSub) }

// newMul implements Mul, versions 7, 13 and 14:
// https://onnx.ai/onnx/operators/onnx__Mul.html
func newMul(b *nodeBuilder) op { return newBinary(b, binMul) }

// newDiv implements Div, versions 7, 13 and 14 (integer division
// truncates; dividing an integer by zero is a run-time error):
// https://onnx.ai/onnx/operators/onnx__Div.html
func newDiv(b *nodeBuilder) op { return newBinary(b, binDiv) }

// newPRelu implements PRelu, versions 6, 7 (slope broadcast to X), 9 and
// 16, on float32: y = x < 0 ? slope·x : x, the slope unidirectionally
// broadcast to X's shape:
// https://onnx.ai/onnx/operators/onnx__PRelu.html
func newPRelu(b *nodeBuilder) op {
	b.arity(2, 2, 1, 1)
	b.want(0, "X", Float32)
	b.want(1, "slope", Float32)
	b.out(0, Float32)
	return &binaryOp{kind: binPRelu}
}

func newBinary(b *nodeBuilder, kind binKind) op {
	b.arity(2, 2, 1, 1)
	dt := b.want(0, "A", Float32, Int64, Int32)
	b.want(1, "B", Float32, Int64, Int32)
	b.sameType(0, 1)
	b.out(0, dt)
	return &binaryOp{kind: kind}
}

func (o *binaryOp) plan(pc *planCtx, n *pnode) error {
	a, b, y := n.in[0], n.in[1], n.out[0]
	shape, err := broadcastShapes(a.shape, b.shape)
	if err != nil {
		return err
	}
	if o.kind == binPRelu && !slices.Equal(shape, a.shape) {
		return errShape("slope of shape %v does not broadcast to X's shape %v", b.shape, a.shape)
	}
	if err := n.setShape(pc, 0, shape); err != nil {
		return err
	}
	// y[i] depends on a and b at index i only, so y may overwrite an
	// operand of its own shape.
	switch {
	case slices.Equal(a.shape, shape):
		n.inplace = 0
	case slices.Equal(b.shape, shape):
		n.inplace = 1
	}
	if o.kind == binAdd && y.dtype == Float32 && slices.Equal(a.shape, b.shape) {
		ai, bi, yi := a.id, b.id, y.id
		n.kernel = func(rc *runCtx) func() error {
			v := rc.f32
			return func() error {
				kernels.Add(rc.pool, v[ai], v[bi], false, v[yi])
				return nil
			}
		}
		return nil
	}
	prm := binParams{kind: o.kind, bc: newBcast(a.shape, b.shape, shape), a: a.id, b: b.id, y: y.id}
	n.kernel = byNumType(y.dtype, prm, binaryK[float32], binaryK[float64], binaryK[int64], binaryK[int32])
	return nil
}

// bcast is a broadcast loop over coalesced dimensions: rows of inner
// elements, operand offsets stepping by their strides.
type bcast struct {
	shape  []int // coalesced output shape
	sa, sb []int // operand strides along it
	size   int
}

func newBcast(a, b, out []int) *bcast {
	shape, st := coalesce(out, broadcastStrides(a, out), broadcastStrides(b, out))
	return &bcast{shape: shape, sa: st[0], sb: st[1], size: prod(out)}
}

type binParams struct {
	kind    binKind
	bc      *bcast
	a, b, y int
}

var errIntDivZero = errors.New("integer division by zero")

func binaryK[T num](p binParams) kfactory {
	return func(rc *runCtx) func() error {
		v := viewsOf[T](rc)
		bc := p.bc
		last := len(bc.shape) - 1
		inner := bc.shape[last]
		rows := bc.size / max(inner, 1)
		var body func(lo, hi int)
		if rows == 1 {
			// One long row: split it.
			body = func(lo, hi int) {
				binRun(p.kind, v[p.y][lo:hi], v[p.a], v[p.b], lo*bc.sa[last], lo*bc.sb[last], bc.sa[last], bc.sb[last])
			}
		} else {
			body = func(lo, hi int) {
				a, b, y := v[p.a], v[p.b], v[p.y]
				for r := lo; r < hi; r++ {
					oa, ob := 0, 0
					q := r
					for d := last - 1; d >= 0; d-- {
						i := q % bc.shape[d]
						q /= bc.shape[d]
						oa += i * bc.sa[d]
						ob += i * bc.sb[d]
					}
					binRun(p.kind, y[r*inner:(r+1)*inner], a, b, oa, ob, bc.sa[last], bc.sb[last])
				}
			}
		}
		return func() error {
			if p.kind == binDiv && dtypeOf[T]() != Float32 && dtypeOf[T]() != Float64 {
				var zero T
				if slices.Contains(v[p.b], zero) {
					return errIntDivZero
				}
			}
			if rows == 1 {
				rc.parallel(inner, 1, body)
			} else {
				rc.parallel(rows, inner, body)
			}
			return nil
		}
	}
}

// binRun computes y[i] = a[oa+i*sa] op b[ob+i*sb] for every i of y.
func binRun[T num](k binKind, y, a, b []T, oa, ob, sa, sb int) {
	n := len(y)
	if n == 0 {
		return
	}
	switch {
	case sa == 1 && sb == 1:
		a, b = a[oa:oa+n], b[ob:ob+n]
		switch k {
		case binAdd:
			for i := range y {
				y[i] = a[i] + b[i]
			}
		case binSub:
			for i := range y {
				y[i] = a[i] - b[i]
			}
		case binMul:
			for i := range y {
				y[i] = a[i] * b[i]
			}
		case binDiv:
			for i := range y {
				y[i] = a[i] / b[i]
			}
		case binPRelu:
			for i, x := range a {
				if x < 0 {
					x *= b[i]
				}
				y[i] = x
			}
		}
	case sa == 1 && sb == 0:
		a, s := a[oa:oa+n], b[ob]
		switch k {
		case binAdd:
			for i := range y {
				y[i] = a[i] + s
			}
		case binSub:
			for i := range y {
				y[i] = a[i] - s
			}
		case binMul:
			for i := range y {
				y[i] = a[i] * s
			}
		case binDiv:
			for i := range y {
				y[i] = a[i] / s
			}
		case binPRelu:
			for i, x := range a {
				if x < 0 {
					x *= s
				}
				y[i] = x
			}
		}
	case sa == 0 && sb == 1:
		s, b := a[oa], b[ob:ob+n]
		switch k {
		case binAdd:
			for i := range y {
				y[i] = s + b[i]
			}
		case binSub:
			for i := range y {
				y[i] = s - b[i]
			}
		case binMul:
			for i := range y {
				y[i] = s * b[i]
			}
		case binDiv:
			for i := range y {
				y[i] = s / b[i]
			}
		case binPRelu:
			for i := range y {
				y[i] = s
				if s < 0 {
					y[i] = s * b[i]
				}
			}
		}
	default:
		for i := range y {
			x, z := a[oa+i*sa], b[ob+i*sb]
			switch k {
			case binAdd:
				y[i] = x + z
			case binSub:
				y[i] = x - z
			case binMul:
				y[i] = x * z
			case binDiv:
				y[i] = x / z
			case binPRelu:
				y[i] = x
				if x < 0 {
					y[i] = x * z
				}
			}
		}
	}
}

// variadicOp is Sum or Mean of any number of broadcast float32 inputs.
type variadicOp struct{ mean bool }

// newSum implements Sum, versions 6, 8 and 13 (version 6 has no
// broadcasting; broadcasting is a superset of it):
// https://onnx.ai/onnx/operators/onnx__Sum.html
func newSum(b *nodeBuilder) op { return newVariadic(b, false) }

// newMean implements Mean, versions 6, 8 and 13:
// https://onnx.ai/onnx/operators/onnx__Mean.html
func newMean(b *nodeBuilder) op { return newVariadic(b, true) }

func newVariadic(b *nodeBuilder, mean bool) op {
	b.arity(1, -1, 1, 1)
	for i := range b.inPresent {
		if !b.has(i) {
			b.invalid("input %d is empty", i)
		}
		b.want(i, "data", Float32)
	}
	b.out(0, Float32)
	return &variadicOp{mean: mean}
}

func (o *variadicOp) plan(pc *planCtx, n *pnode) error {
	var shapes [][]int
	for _, in := range n.in {
		if in == nil {
			return errShape("empty input")
		}
		shapes = append(shapes, in.shape)
	}
	shape, err := broadcastShapes(shapes...)
	if err != nil {
		return err
	}
	if err := n.setShape(pc, 0, shape); err != nil {
		return err
	}
	y := n.out[0].id
	ins := make([]int, len(n.in))
	bcs := make([]*bcast, len(n.in))
	for i, in := range n.in {
		ins[i] = in.id
		switch i {
		case 0:
		case 1:
			bcs[i] = newBcast(n.in[0].shape, in.shape, shape)
		default:
			bcs[i] = newBcast(shape, in.shape, shape)
		}
	}
	scale := float32(1) / float32(len(n.in))
	mean := o.mean
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		return func() error {
			out := v[y]
			if len(ins) == 1 {
				copy(out, v[ins[0]])
			} else {
				bcastRun(binAdd, bcs[1], v[ins[0]], v[ins[1]], out)
				for i := 2; i < len(ins); i++ {
					bcastRun(binAdd, bcs[i], out, v[ins[i]], out)
				}
			}
			if mean {
				for i := range out {
					out[i] *= scale
				}
			}
			return nil
		}
	}
	return nil
}

// bcastRun computes y = a op b over bc, serially.
func bcastRun[T num](k binKind, bc *bcast, a, b, y []T) {
	last := len(bc.shape) - 1
	inner := bc.shape[last]
	rows := bc.size / max(inner, 1)
	for r := range rows {
		oa, ob := 0, 0
		q := r
		for d := last - 1; d >= 0; d-- {
			i := q % bc.shape[d]
			q /= bc.shape[d]
			oa += i * bc.sa[d]
			ob += i * bc.sb[d]
		}
		binRun(k, y[r*inner:(r+1)*inner], a, b, oa, ob, bc.sa[last], bc.sb[last])
	}
}
