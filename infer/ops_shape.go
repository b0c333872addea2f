package infer

import (
	"fmt"
	"slices"

	"github.com/resnetctl/resnetctl/internal/checked"
)

// reshapeLike ops give their input a new shape without moving data: the
// planner makes the output a view of the input (or a copy when the output
// is a graph output).

// flattenOp is Flatten.
type flattenOp struct{ axis int }

// newFlatten implements Flatten, versions 1, 9, 11 (negative axis), 13
// and 21:
// https://onnx.ai/onnx/operators/onnx__Flatten.html
func newFlatten(b *nodeBuilder) op {
	b.arity(1, 1, 1, 1)
	b.out(0, b.in(0))
	o := &flattenOp{axis: int(b.int("axis", 1))}
	if o.axis < 0 && b.since < 11 {
		b.invalid("negative axis %d needs Flatten-11", o.axis)
	}
	return o
}

func (o *flattenOp) plan(pc *planCtx, n *pnode) error {
	s := n.in[0].shape
	axis := o.axis
	if axis < 0 {
		axis += len(s)
	}
	if axis < 0 || axis > len(s) {
		return errShape("axis %d is out of range for shape %v", o.axis, s)
	}
	n.aliasOf = 0
	return n.setShape(pc, 0, []int{prod(s[:axis]), prod(s[axis:])})
}

// reshapeOp is Reshape.
type reshapeOp struct{ allowZero bool }

// newReshape implements Reshape, versions 5, 13, 14 (allowzero), 19 and
// 21; the shape input must be computable when planning (from constants
// and input shapes, or a graph input whose value keys the plan):
// https://onnx.ai/onnx/operators/onnx__Reshape.html
func newReshape(b *nodeBuilder) op {
	b.arity(2, 2, 1, 1)
	b.want(1, "shape", Int64)
	b.out(0, b.in(0))
	b.needValue(1)
	o := &reshapeOp{}
	if b.since >= 14 {
		o.allowZero = b.boolAttr("allowzero", false)
	}
	return o
}

func (o *reshapeOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	spec, err := valueInts(n.in[1], "shape")
	if err != nil {
		return err
	}
	out := make([]int, len(spec))
	unknown := -1
	known := 1
	for i, d := range spec {
		switch {
		case d == 0 && !o.allowZero:
			if i >= len(x.shape) {
				return errShape("shape %v copies dimension %d of input shape %v, which has none", spec, i, x.shape)
			}
			out[i] = x.shape[i]
		case d == -1:
			if unknown >= 0 {
				return errShape("shape %v has more than one -1", spec)
			}
			unknown = i
			continue
		case d < -1:
			return errShape("shape %v has a negative dimension", spec)
		case d > int64(pc.maxElems):
			return errShape("shape %v is too large", spec)
		default:
			out[i] = int(d)
		}
		var ok bool
		if known, ok = checked.Mul(known, max(out[i], 1)); !ok {
			return errShape("shape %v is too large", spec)
		}
		if out[i] == 0 {
			known = 0
		}
	}
	if unknown >= 0 {
		if o.allowZero && slices.Contains(spec, 0) {
			return errShape("shape %v has both 0 (with allowzero) and -1", spec)
		}
		if known == 0 || x.size%known != 0 {
			return errShape("cannot reshape %v (%d elements) to %v", x.shape, x.size, spec)
		}
		out[unknown] = x.size / known
	}
	if p, err := numel(out); err != nil || p != x.size {
		return errShape("cannot reshape %v (%d elements) to %v", x.shape, x.size, out)
	}
	n.aliasOf = 0
	return n.setShape(pc, 0, out)
}

// valueInts returns the integer contents of a planning-time value.
func valueInts(v *pval, role string) ([]int64, error) {
	if v == nil {
		return nil, nil
	}
	if v.data == nil {
		return nil, errShape("%s must be known when planning, but it depends on run-time data", role)
	}
	ints, ok := v.data.ints()
	if !ok {
		return nil, errShape("%s is %s, want integers", role, v.dtype)
	}
	return ints, nil
}

// squeezeOp is Squeeze.
type squeezeOp struct {
	axes     []int64
	axesFrom bool // axes come from input 1
}

// newSqueeze implements Squeeze, versions 1, 11 (negative axes), 13 (axes
// as an input) and 21:
// https://onnx.ai/onnx/operators/onnx__Squeeze.html
func newSqueeze(b *nodeBuilder) op {
	o := &squeezeOp{}
	if b.since < 13 {
		b.arity(1, 1, 1, 1)
		o.axes, _ = b.ints("axes")
	} else {
		b.arity(1, 2, 1, 1)
		b.want(1, "axes", Int64)
		b.needValue(1)
		o.axesFrom = b.has(1)
	}
	b.out(0, b.in(0))
	return o
}

func (o *squeezeOp) plan(pc *planCtx, n *pnode) error {
	s := n.in[0].shape
	axes := o.axes
	if o.axesFrom {
		var err error
		if axes, err = valueInts(n.in[1], "axes"); err != nil {
			return err
		}
	}
	var out []int
	if axes == nil {
		for _, d := range s {
			if d != 1 {
				out = append(out, d)
			}
		}
	} else {
		ax, err := normAxes(axes, len(s))
		if err != nil {
			return err
		}
		squeeze := axisSet(ax, len(s))
		for i, d := range s {
			if squeeze[i] {
				if d != 1 {
					return errShape("cannot squeeze dimension %d of shape %v (size %d)", i, s, d)
				}
				continue
			}
			out = append(out, d)
		}
	}
	n.aliasOf = 0
	return n.setShape(pc, 0, nonNil(out))
}

func nonNil(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

// unsqueezeOp is Unsqueeze.
type unsqueezeOp struct {
	axes []int64
}

// newUnsqueeze implements Unsqueeze, versions 1, 11 (negative axes), 13
// (axes as an input) and 21:
// https://onnx.ai/onnx/operators/onnx__Unsqueeze.html
func newUnsqueeze(b *nodeBuilder) op {
	o := &unsqueezeOp{}
	if b.since < 13 {
		b.arity(1, 1, 1, 1)
		var ok bool
		if o.axes, ok = b.ints("axes"); !ok {
			b.invalid("attribute axes is required")
		}
	} else {
		b.arity(2, 2, 1, 1)
		b.want(1, "axes", Int64)
		b.needValue(1)
	}
	b.out(0, b.in(0))
	return o
}

func (o *unsqueezeOp) plan(pc *planCtx, n *pnode) error {
	s := n.in[0].shape
	axes := o.axes
	if len(n.in) > 1 {
		var err error
		if axes, err = valueInts(n.in[1], "axes"); err != nil {
			return err
		}
	}
	rank := len(s) + len(axes)
	ax, err := normAxes(axes, rank)
	if err != nil {
		return err
	}
	ones := axisSet(ax, rank)
	out := make([]int, 0, rank)
	j := 0
	for i := range rank {
		if ones[i] {
			out = append(out, 1)
		} else {
			out = append(out, s[j])
			j++
		}
	}
	n.aliasOf = 0
	return n.setShape(pc, 0, out)
}

// shapeOp is Shape: an int64 tensor known whenever the input shape is.
type shapeOp struct {
	start, end int
	hasEnd     bool
}

// newShape implements Shape, versions 1, 13, 15 (start and end), 19 and
// 21:
// https://onnx.ai/onnx/operators/onnx__Shape.html
func newShape(b *nodeBuilder) op {
	b.arity(1, 1, 1, 1)
	b.out(0, Int64)
	o := &shapeOp{}
	if b.since >= 15 {
		o.start = int(b.int("start", 0))
		o.hasEnd = b.isSet("end")
		o.end = int(b.int("end", 0))
	}
	return o
}

func (o *shapeOp) plan(pc *planCtx, n *pnode) error {
	s := n.in[0].shape
	r := len(s)
	clamp := func(i int) int {
		if i < 0 {
			i += r
		}
		return min(max(i, 0), r)
	}
	start, end := clamp(o.start), r
	if o.hasEnd {
		end = clamp(o.end)
	}
	vals := []int64{}
	for i := start; i < end; i++ {
		vals = append(vals, int64(s[i]))
	}
	return n.setConst(pc, 0, NewInt64([]int{len(vals)}, vals))
}

// identityOp is Identity (and inference-mode Dropout): output 0 is input 0.
type identityOp struct {
	mask       bool // Dropout's mask output is requested
	maskType   DType
	ratioIn    bool // Dropout-12+: ratio and training_mode inputs
	trainingIn bool
}

// newIdentity implements Identity, versions 1, 13, 14, 16, 19 and 21, on
// tensors:
// https://onnx.ai/onnx/operators/onnx__Identity.html
func newIdentity(b *nodeBuilder) op {
	b.arity(1, 1, 1, 1)
	b.out(0, b.in(0))
	return &identityOp{}
}

// newDropout implements Dropout, versions 7, 10, 12 and 13, for
// inference: the output is the input and the optional mask is all true.
// training_mode=true is refused unless the ratio is 0:
// https://onnx.ai/onnx/operators/onnx__Dropout.html
func newDropout(b *nodeBuilder) op {
	o := &identityOp{mask: b.hasOut(1), maskType: Bool}
	if b.since < 12 {
		b.arity(1, 1, 1, 2)
		b.float("ratio", 0.5)
		if b.since < 10 {
			o.maskType = b.in(0)
		}
	} else {
		b.arity(1, 3, 1, 2)
		b.want(2, "training_mode", Bool)
		b.int("seed", 0)
		o.ratioIn, o.trainingIn = b.has(1), b.has(2)
		if o.trainingIn {
			b.needValue(2)
			b.needValue(1)
			if t := b.constIn(2); t != nil && t.dataLen() > 0 && t.Bool[0] {
				if r := b.constIn(1); r == nil || r.dataLen() == 0 || func() bool { f, _ := r.scalarFloat(); return f != 0 }() {
					b.fail("training_mode=true (random dropout) is not supported; this runtime does inference")
				}
			}
		}
	}
	b.out(0, b.in(0))
	b.out(1, o.maskType)
	return o
}

func (o *identityOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	if o.trainingIn {
		t := n.in[2].data
		if t == nil || t.dataLen() != 1 {
			return errShape("training_mode must be a known scalar")
		}
		if t.Bool[0] {
			ratio := 0.5
			if o.ratioIn && n.in[1].data != nil {
				ratio, _ = n.in[1].data.scalarFloat()
			}
			if ratio != 0 {
				return fmt.Errorf("%w: training_mode=true with ratio %g: random dropout (this runtime does inference)", ErrUnsupported, ratio)
			}
		}
	}
	if err := n.setShape(pc, 0, x.shape); err != nil {
		return err
	}
	n.aliasOf = 0
	if o.mask && n.out[1] != nil {
		m, err := pc.tryConst(o.maskType, x.shape)
		if err != nil {
			return err
		}
		if m == nil { // too large to compute now: the output is a copy and the mask filled, every run
			if err := n.setShape(pc, 1, x.shape); err != nil {
				return err
			}
			one := newTensor(o.maskType, []int{1})
			fillOnes(one)
			cp, ones := copyKernel(x.dtype, x.id, n.out[0].id), fillKernel(one, n.out[1].id)
			n.aliasOf = -1
			n.kernel = func(rc *runCtx) func() error {
				a, b := cp(rc), ones(rc)
				return func() error {
					a()
					return b()
				}
			}
			return nil
		}
		fillOnes(m)
		if err := n.setConst(pc, 1, m); err != nil {
			return err
		}
	}
	return nil
}

// fillOnes sets every element of t to 1 (true).
func fillOnes(t *Tensor) {
	switch t.Type() {
	case Float32:
		for i := range t.Float32 {
			t.Float32[i] = 1
		}
	case Float64:
		for i := range t.Float64 {
			t.Float64[i] = 1
		}
	case Int64:
		for i := range t.Int64 {
			t.Int64[i] = 1
		}
	case Int32:
		for i := range t.Int32 {
			t.Int32[i] = 1
		}
	case Bool:
		for i := range t.Bool {
			t.Bool[i] = true
		}
	}
}
