package infer

import (
	"fmt"
	"slices"

	"github.com/resnetctl/resnetctl/internal/checked"
)

// transposeOp is Transpose.
type transposeOp struct{ perm []int64 }

// newTranspose implements Transpose, versions 1, 13 and 21:
// https://onnx.ai/onnx/operators/onnx__Transpose.html
func newTranspose(b *nodeBuilder) op {
	b.arity(1, 1, 1, 1)
	b.out(0, b.in(0))
	perm, _ := b.ints("perm")
	return &transposeOp{perm: perm}
}

type transposeParams struct {
	shape   []int // coalesced output shape
	strides []int // input strides along it
	size    int
	x, y    int
}

func (o *transposeOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	r := len(x.shape)
	perm := make([]int, r)
	if o.perm == nil {
		for i := range perm {
			perm[i] = r - 1 - i
		}
	} else {
		if len(o.perm) != r {
			return errShape("perm %s does not fit rank %d", listText(o.perm), r)
		}
		seen := make([]bool, r) // linear, however long perm is
		for i, p := range o.perm {
			if p < 0 || p >= int64(r) || seen[p] {
				return errShape("perm %s is not a permutation of 0..%d", listText(o.perm), r-1)
			}
			perm[i], seen[p] = int(p), true
		}
	}
	out := make([]int, r)
	inSt := stridesOf(x.shape)
	st := make([]int, r)
	for i, p := range perm {
		out[i] = x.shape[p]
		st[i] = inSt[p]
	}
	if err := n.setShape(pc, 0, out); err != nil {
		return err
	}
	cs, cst := coalesce(out, st, stridesOf(out))
	prm := transposeParams{shape: cs, strides: cst[0], size: x.size, x: x.id, y: n.out[0].id}
	n.kernel = byType(x.dtype, prm, transposeK[float32], transposeK[float64], transposeK[int64], transposeK[int32], transposeK[bool])
	return nil
}

func transposeK[T elem](p transposeParams) kfactory {
	return func(rc *runCtx) func() error {
		v := viewsOf[T](rc)
		last := len(p.shape) - 1
		inner := p.shape[last]
		rows := p.size / max(inner, 1)
		if p.size == 0 {
			rows = 0
		}
		body := func(lo, hi int) {
			x, y := v[p.x], v[p.y]
			var od odometer
			od.start(p.shape[:last], p.strides[:last], lo)
			for r := lo; r < hi; r++ {
				row, s, off := y[r*inner:(r+1)*inner], p.strides[last], od.off
				for i := range row {
					row[i] = x[off+i*s]
				}
				od.next()
			}
		}
		return func() error {
			rc.parallel(rows, inner, body)
			return nil
		}
	}
}

// concatOp is Concat.
type concatOp struct{ axis int }

// newConcat implements Concat, versions 4, 11 (negative axis) and 13:
// https://onnx.ai/onnx/operators/onnx__Concat.html
func newConcat(b *nodeBuilder) op {
	b.arity(1, -1, 1, 1)
	for i := range b.inPresent {
		if !b.has(i) {
			b.invalid("input %d is empty", i)
		} else if i > 0 {
			b.sameType(0, i)
		}
	}
	b.out(0, b.in(0))
	if !b.isSet("axis") {
		b.invalid("attribute axis is required")
	}
	return &concatOp{axis: int(b.int("axis", 0))}
}

type concatParams struct {
	ins    []int
	chunks []int // per input: elements per outer row
	outer  int
	y      int
}

func (o *concatOp) plan(pc *planCtx, n *pnode) error {
	first := n.in[0].shape
	axis, err := normAxis(o.axis, len(first))
	if err != nil {
		return err
	}
	out := slices.Clone(first)
	out[axis] = 0
	prm := concatParams{outer: prod(first[:axis]), y: n.out[0].id}
	inner := prod(first[axis+1:])
	for _, in := range n.in {
		if len(in.shape) != len(first) {
			return errShape("inputs of ranks %d and %d", len(first), len(in.shape))
		}
		for d := range first {
			if d != axis && in.shape[d] != first[d] {
				return errShape("input shapes %v and %v differ outside axis %d", first, in.shape, axis)
			}
		}
		out[axis] += in.shape[axis]
		prm.ins = append(prm.ins, in.id)
		prm.chunks = append(prm.chunks, in.shape[axis]*inner)
	}
	if err := n.setShape(pc, 0, out); err != nil {
		return err
	}
	n.kernel = byType(n.out[0].dtype, prm, concatK[float32], concatK[float64], concatK[int64], concatK[int32], concatK[bool])
	return nil
}

func concatK[T elem](p concatParams) kfactory {
	return func(rc *runCtx) func() error {
		v := viewsOf[T](rc)
		total := 0
		for _, c := range p.chunks {
			total += c
		}
		return func() error {
			y := v[p.y]
			off := 0
			for i, id := range p.ins {
				x, c := v[id], p.chunks[i]
				for o := range p.outer {
					copy(y[o*total+off:o*total+off+c], x[o*c:(o+1)*c])
				}
				off += c
			}
			return nil
		}
	}
}

// sliceOp is Slice.
type sliceOp struct {
	starts, ends, axes []int64 // attribute form (before version 10)
	inputs             bool
}

// newSlice implements Slice, versions 1 (starts, ends, axes attributes),
// 10 (as inputs, with steps), 11 (negative axes) and 13. The bounds must be
// computable when planning:
// https://onnx.ai/onnx/operators/onnx__Slice.html
func newSlice(b *nodeBuilder) op {
	o := &sliceOp{}
	if b.since < 10 {
		b.arity(1, 1, 1, 1)
		var ok1, ok2 bool
		o.starts, ok1 = b.ints("starts")
		o.ends, ok2 = b.ints("ends")
		o.axes, _ = b.ints("axes")
		if !ok1 || !ok2 {
			b.invalid("attributes starts and ends are required")
		}
	} else {
		b.arity(3, 5, 1, 1)
		o.inputs = true
		for i, role := range []string{"starts", "ends", "axes", "steps"} {
			b.want(i+1, role, Int64, Int32)
			b.needValue(i + 1)
		}
	}
	b.out(0, b.in(0))
	return o
}

// stridedParams copies a strided box of the input: output index i along
// dimension d reads input index start[d] + i*step[d].
type stridedParams struct {
	outShape []int
	base     int   // input offset of the first element
	steps    []int // input stride per output step, per dimension
	size     int
	x, y     int
}

func (o *sliceOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	r := len(x.shape)
	starts, ends, axes := o.starts, o.ends, o.axes
	var steps []int64
	if o.inputs {
		var err error
		if starts, err = valueInts(n.in[1], "starts"); err != nil {
			return err
		}
		if ends, err = valueInts(n.in[2], "ends"); err != nil {
			return err
		}
		if len(n.in) > 3 {
			if axes, err = valueInts(n.in[3], "axes"); err != nil {
				return err
			}
		}
		if len(n.in) > 4 {
			if steps, err = valueInts(n.in[4], "steps"); err != nil {
				return err
			}
		}
	}
	if len(starts) != len(ends) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return errShape("starts %v, ends %v, axes %v, steps %v differ in length", starts, ends, axes, steps)
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	ax, err := normAxes(axes, r)
	if err != nil {
		return err
	}
	out := slices.Clone(x.shape)
	start := make([]int, r)
	step := make([]int, r)
	for i := range step {
		step[i] = 1
	}
	for i, a := range ax {
		st := int64(1)
		if steps != nil {
			st = steps[i]
		}
		if st == 0 {
			return errShape("step 0 on axis %d", a)
		}
		first, count, st := sliceRange(starts[i], ends[i], st, int64(x.shape[a]))
		start[a], step[a], out[a] = int(first), int(st), int(count)
	}
	if err := n.setShape(pc, 0, out); err != nil {
		return err
	}
	inSt := stridesOf(x.shape)
	prm := stridedParams{size: prod(out), x: x.id, y: n.out[0].id}
	var walk []int
	for d := range r {
		prm.base += start[d] * inSt[d]
		walk = append(walk, step[d]*inSt[d])
	}
	if r > 0 {
		cs, cst := coalesce(out, walk)
		prm.outShape, prm.steps = cs, cst[0]
	}
	n.kernel = byType(x.dtype, prm, stridedK[float32], stridedK[float64], stridedK[int64], stridedK[int32], stridedK[bool])
	return nil
}

// sliceRange clamps a Slice's start and end on a dimension of size dim as
// ONNX defines and returns the first index, the element count and the
// step, itself clamped to at most dim in size (any larger step takes one
// element, and the kernel multiplies the step by the input's strides).
// Nothing here overflows, whatever int64s the file holds.
func sliceRange(start, end, step, dim int64) (first, count, st int64) {
	if start < 0 {
		start = max(start, -dim) + dim // start+dim would overflow for MinInt64
	}
	if end < 0 {
		end = max(end, -dim-1) + dim
	}
	step = min(max(step, -dim-1), dim+1)
	if step > 0 {
		start = min(max(start, 0), dim)
		end = min(max(end, 0), dim)
		if end <= start {
			return 0, 0, step
		}
		return start, (end-start-1)/step + 1, step
	}
	start = min(max(start, 0), dim-1)
	end = min(max(end, -1), dim-1)
	if start <= end {
		return 0, 0, step
	}
	return start, (start-end-1)/-step + 1, step
}

func stridedK[T elem](p stridedParams) kfactory {
	return func(rc *runCtx) func() error {
		v := viewsOf[T](rc)
		r := len(p.outShape)
		inner, rows := 1, p.size
		if r > 0 {
			inner = p.outShape[r-1]
			rows = p.size / max(inner, 1)
		}
		if p.size == 0 {
			rows = 0
		}
		body := func(lo, hi int) {
			x, y := v[p.x], v[p.y]
			if r == 0 {
				y[0] = x[p.base]
				return
			}
			s := p.steps[r-1]
			var od odometer
			od.start(p.outShape[:r-1], p.steps[:r-1], lo)
			for row := lo; row < hi; row++ {
				off := p.base + od.off
				dst := y[row*inner : (row+1)*inner]
				if s == 1 {
					copy(dst, x[off:off+inner])
				} else {
					for i := range dst {
						dst[i] = x[off+i*s]
					}
				}
				od.next()
			}
		}
		return func() error {
			rc.parallel(rows, inner, body)
			return nil
		}
	}
}

// odometer walks the rows of a tensor (every index of its outer
// dimensions, in row-major order), keeping an operand's offset. It lives
// on the stack; ranks beyond its arrays fall back to division per row.
type odometer struct {
	shape, steps []int
	idx          [8]int
	row, off     int
}

func (o *odometer) start(shape, steps []int, row int) {
	o.shape, o.steps, o.row = shape, steps, row
	o.seek()
}

// seek computes idx and off for o.row.
func (o *odometer) seek() {
	o.off = 0
	q := o.row
	for d := len(o.shape) - 1; d >= 0; d-- {
		i := q % o.shape[d]
		q /= o.shape[d]
		if d < len(o.idx) {
			o.idx[d] = i
		}
		o.off += i * o.steps[d]
	}
}

func (o *odometer) next() {
	o.row++
	if len(o.shape) > len(o.idx) {
		o.seek()
		return
	}
	for d := len(o.shape) - 1; d >= 0; d-- {
		o.idx[d]++
		o.off += o.steps[d]
		if o.idx[d] < o.shape[d] {
			return
		}
		o.off -= o.idx[d] * o.steps[d]
		o.idx[d] = 0
	}
}

// padOp is Pad.
type padOp struct {
	mode   string
	pads   []int64 // attribute form (before version 11)
	value  float32
	inputs bool // pads (and value, axes) are inputs (version 11 on)
}

// newPad implements Pad, versions 2 (pads and value attributes), 11 (pads
// and constant_value inputs), 13, 18 (axes input), 19 and 21, in modes
// constant, reflect and edge (negative pads crop). Its pads, value and
// axes must be computable when planning:
// https://onnx.ai/onnx/operators/onnx__Pad.html
func newPad(b *nodeBuilder) op {
	// The form follows the version, not whether pads is nil: an empty
	// pads attribute reads as nil too.
	o := &padOp{mode: b.str("mode", "constant"), inputs: b.since >= 11}
	switch o.mode {
	case "constant", "reflect", "edge":
	case "wrap":
		b.fail("mode %q is not supported", o.mode)
	default:
		b.invalid("mode %q is not constant, reflect, edge or wrap", o.mode)
	}
	if b.since < 11 {
		b.arity(1, 1, 1, 1)
		var ok bool
		if o.pads, ok = b.ints("pads"); !ok {
			b.invalid("attribute pads is required")
		}
		o.value = b.float("value", 0)
	} else {
		maxIn := 3
		if b.since >= 18 {
			maxIn = 4
		}
		b.arity(2, maxIn, 1, 1)
		b.want(1, "pads", Int64)
		b.sameType(0, 2)
		b.want(3, "axes", Int64, Int32)
		for i := 1; i < 4; i++ {
			b.needValue(i)
		}
	}
	b.out(0, b.in(0))
	return o
}

type padParams struct {
	mode       string
	in, out    []int
	begin      []int
	fill       *Tensor // constant mode's value, as a 1-element tensor
	x, y, size int
}

func (o *padOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	r := len(x.shape)
	pads := o.pads
	fill := newTensor(x.dtype, []int{1})
	if !o.inputsForm() {
		setFromFloat(fill, float64(o.value))
	} else {
		var err error
		if pads, err = valueInts(n.in[1], "pads"); err != nil {
			return err
		}
		if len(n.in) > 2 && n.in[2] != nil {
			c := n.in[2]
			if c.data == nil {
				return errShape("constant_value must be known when planning")
			}
			if c.size != 1 {
				return errShape("constant_value has shape %v, want a scalar", c.shape)
			}
			fill = c.data
		}
		if len(n.in) > 3 && n.in[3] != nil {
			axes, err := valueInts(n.in[3], "axes")
			if err != nil {
				return err
			}
			ax, err := normAxes(axes, r)
			if err != nil {
				return err
			}
			if len(pads) != 2*len(ax) {
				return errShape("pads %v do not fit axes %v", pads, axes)
			}
			full := make([]int64, 2*r)
			for i, a := range ax {
				full[a], full[a+r] = pads[i], pads[i+len(ax)]
			}
			pads = full
		}
	}
	if len(pads) != 2*r {
		return errShape("pads %v do not fit rank %d", pads, r)
	}
	out := make([]int, r)
	begin := make([]int, r)
	for d := range r {
		b, e := pads[d], pads[d+r]
		if b > int64(pc.maxElems) || e > int64(pc.maxElems) {
			return errShape("pads %v are too large", pads)
		}
		sz, ok := checked.Sum(x.shape[d], int(b), int(e)) // negative pads crop
		if !ok || sz < 0 {
			return errShape("pads %v crop more than shape %v", pads, x.shape)
		}
		if o.mode != "constant" && sz > 0 && x.shape[d] == 0 {
			return errShape("%s padding of an empty dimension", o.mode)
		}
		out[d], begin[d] = sz, int(b)
	}
	if err := n.setShape(pc, 0, out); err != nil {
		return err
	}
	prm := padParams{mode: o.mode, in: x.shape, out: out, begin: begin, fill: fill, x: x.id, y: n.out[0].id, size: prod(out)}
	if o.mode == "constant" && r > 0 {
		// An unpadded dimension merges into the one before it: rows get
		// longer and fewer (a channel pad of NCHW becomes rows of C·H·W).
		in, out, begin := []int{x.shape[0]}, []int{out[0]}, []int{begin[0]}
		for d := 1; d < r; d++ {
			if pads[d] == 0 && pads[d+r] == 0 {
				k := len(in) - 1
				in[k] *= x.shape[d]
				out[k] *= x.shape[d]
				begin[k] *= x.shape[d]
				continue
			}
			in, out, begin = append(in, x.shape[d]), append(out, prm.out[d]), append(begin, prm.begin[d])
		}
		prm.in, prm.out, prm.begin = in, out, begin
	}
	n.kernel = byType(x.dtype, prm, padK[float32], padK[float64], padK[int64], padK[int32], padK[bool])
	return nil
}

func (o *padOp) inputsForm() bool { return o.inputs }

// setFromFloat sets element 0 of a 1-element tensor.
func setFromFloat(t *Tensor, f float64) {
	switch t.Type() {
	case Float32:
		t.Float32[0] = float32(f)
	case Float64:
		t.Float64[0] = f
	case Int64:
		t.Int64[0] = int64(f)
	case Int32:
		t.Int32[0] = int32(f)
	case Bool:
		t.Bool[0] = f != 0
	}
}

// Pad modes.
const (
	padConstant = iota
	padEdge
	padReflect
)

// padIndex maps output index i of a dimension to the input index, or -1
// for constant padding.
func padIndex(mode, i, begin, n int) int {
	j := i - begin
	if j >= 0 && j < n {
		return j
	}
	switch mode {
	case padEdge:
		return min(max(j, 0), n-1)
	case padReflect:
		if n == 1 {
			return 0
		}
		period := 2 * (n - 1)
		j %= period
		if j < 0 {
			j += period
		}
		if j >= n {
			j = period - j
		}
		return j
	}
	return -1
}

func padK[T elem](p padParams) kfactory {
	return func(rc *runCtx) func() error {
		v := viewsOf[T](rc)
		fill := dataOf[T](p.fill)[0]
		mode := map[string]int{"constant": padConstant, "edge": padEdge, "reflect": padReflect}[p.mode]
		r := len(p.out)
		inSt := stridesOf(p.in)
		inner, rows := 1, p.size
		if r > 0 {
			inner = p.out[r-1]
			rows = p.size / max(inner, 1)
		}
		if p.size == 0 {
			rows = 0
		}
		body := func(lo, hi int) {
			x, y := v[p.x], v[p.y]
			for row := lo; row < hi; row++ {
				dst := y[row*inner : (row+1)*inner]
				if r == 0 {
					dst[0] = x[0]
					continue
				}
				off, q, inside := 0, row, true
				for d := r - 2; d >= 0; d-- {
					j := padIndex(mode, q%p.out[d], p.begin[d], p.in[d])
					q /= p.out[d]
					if j < 0 {
						inside = false
						break
					}
					off += j * inSt[d]
				}
				n, b := p.in[r-1], p.begin[r-1]
				if !inside {
					for i := range dst {
						dst[i] = fill
					}
					continue
				}
				// The input's part of the row, then the padding either side.
				d0 := min(max(b, 0), inner)
				s0 := max(-b, 0)
				cnt := max(min(n-s0, inner-d0), 0)
				copy(dst[d0:d0+cnt], x[off+s0:off+s0+cnt])
				if mode == padConstant {
					for i := range dst[:d0] {
						dst[i] = fill
					}
					for i := d0 + cnt; i < inner; i++ {
						dst[i] = fill
					}
					continue
				}
				for i := range dst[:d0] {
					dst[i] = x[off+padIndex(mode, i, b, n)]
				}
				for i := d0 + cnt; i < inner; i++ {
					dst[i] = x[off+padIndex(mode, i, b, n)]
				}
			}
		}
		return func() error {
			rc.parallel(rows, inner, body)
			return nil
		}
	}
}

// dataOf returns t's data as []T (t must have type T).
func dataOf[T elem](t *Tensor) []T {
	var z T
	switch any(z).(type) {
	case float32:
		return any(t.Float32).([]T)
	case float64:
		return any(t.Float64).([]T)
	case int64:
		return any(t.Int64).([]T)
	case int32:
		return any(t.Int32).([]T)
	default:
		return any(t.Bool).([]T)
	}
}

// gatherOp is Gather.
type gatherOp struct{ axis int }

// newGather implements Gather, versions 1, 11 (negative indices) and 13:
// https://onnx.ai/onnx/operators/onnx__Gather.html
func newGather(b *nodeBuilder) op {
	b.arity(2, 2, 1, 1)
	b.want(1, "indices", Int64, Int32)
	b.out(0, b.in(0))
	return &gatherOp{axis: int(b.int("axis", 0))}
}

type gatherParams struct {
	outer, k, inner int
	x, idx, y       int
	idx32           bool
	count           int
}

func (o *gatherOp) plan(pc *planCtx, n *pnode) error {
	x, ind := n.in[0], n.in[1]
	axis, err := normAxis(o.axis, len(x.shape))
	if err != nil {
		return err
	}
	out := slices.Concat(x.shape[:axis], ind.shape, x.shape[axis+1:])
	if err := n.setShape(pc, 0, out); err != nil {
		return err
	}
	prm := gatherParams{outer: prod(x.shape[:axis]), k: x.shape[axis], inner: prod(x.shape[axis+1:]),
		x: x.id, idx: ind.id, y: n.out[0].id, idx32: ind.dtype == Int32, count: ind.size}
	n.kernel = byType(x.dtype, prm, gatherK[float32], gatherK[float64], gatherK[int64], gatherK[int32], gatherK[bool])
	return nil
}

func gatherK[T elem](p gatherParams) kfactory {
	return func(rc *runCtx) func() error {
		v := viewsOf[T](rc)
		return func() error {
			x, y := v[p.x], v[p.y]
			for j := range p.count {
				var ix int64
				if p.idx32 {
					ix = int64(rc.i32[p.idx][j])
				} else {
					ix = rc.i64[p.idx][j]
				}
				orig := ix
				if ix < 0 {
					ix += int64(p.k)
				}
				if ix < 0 || ix >= int64(p.k) {
					return fmt.Errorf("%w: index %d is out of range for a dimension of size %d", ErrInput, orig, p.k)
				}
				for o := range p.outer {
					src := x[(o*p.k+int(ix))*p.inner : (o*p.k+int(ix)+1)*p.inner]
					copy(y[(o*p.count+j)*p.inner:], src)
				}
			}
			return nil
		}
	}
}
