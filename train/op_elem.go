package train

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/internal/kernels"
)

// reluOp is a standalone ReLU (most ReLUs are fused into BatchNorm or Add).
type reluOp struct {
	base
	out *tensor.Dense
}

func (o *reluOp) Do(vs ...G.Value) (G.Value, error) {
	kernels.ReLU(o.env.pool, f32(vs[0]), o.out.Float32s())
	return o.out, nil
}

func (o *reluOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	op := &maskGradOp{base: base{kind: "ReluGrad", name: o.name + ".grad_input", inDims: []int{4, 4},
		shape: o.shape.Clone(), env: o.env}, out: o.env.newGrad(o.shape)}
	g, err := apply(op, op.name, output, grad)
	if err != nil {
		return nil, err
	}
	r, err := o.gradTo(inputs, 0, g)
	return G.Nodes{r}, err
}

// maskGradOp computes dy masked by y > 0, inputs (y, dy).
type maskGradOp struct {
	base
	out *gbuf
}

func (o *maskGradOp) gradBufs() ([]*gbuf, *gbuf) { return []*gbuf{o.out}, o.out }

func (o *maskGradOp) Do(vs ...G.Value) (G.Value, error) {
	t := o.out.get()
	kernels.ReLUBackward(o.env.pool, f32(vs[0]), f32(vs[1]), nil, t.Float32s())
	return t, nil
}

// addOp is a residual add not fused into a BatchNorm: out = act(a +
// pad(b)), where pad is the option-A channel pad (or the identity),
// inputs (a, b).
type addOp struct {
	base
	relu    bool
	pad     *build.PadAttrs
	n       int
	bShape  tensor.Shape
	out     *tensor.Dense
	scratch []float32
}

func (o *addOp) Do(vs ...G.Value) (G.Value, error) {
	a, b := f32(vs[0]), f32(vs[1])
	out := o.out.Float32s()
	if o.pad != nil {
		s := o.bShape
		kernels.ChannelPad(o.env.pool, o.n, s[1], s[2], s[3], o.pad.Stride, o.pad.Before, o.pad.After, b, out)
		b = out
	}
	kernels.Add(o.env.pool, a, b, o.relu, out)
	return o.out, nil
}

func (o *addOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g := grad
	if o.relu {
		op := &maskGradOp{base: base{kind: "AddReluGrad", name: o.name + ".grad_masked", inDims: []int{4, 4},
			shape: o.shape.Clone(), env: o.env}, out: o.env.newGrad(o.shape)}
		var err error
		if g, err = apply(op, op.name, output, grad); err != nil {
			return nil, err
		}
	}
	ret := make(G.Nodes, len(inputs))
	var err error
	if ret[0], err = o.gradTo(inputs, 0, g); err != nil {
		return nil, err
	}
	gb := g
	if o.pad != nil && o.wantsGrad(1) {
		op := &padGradOp{base: base{kind: "ChannelPadGrad", name: o.name + ".grad_shortcut", inDims: []int{4},
			shape: o.bShape.Clone(), env: o.env}, n: o.n, pad: o.pad, out: o.env.newGrad(o.bShape)}
		if gb, err = apply(op, op.name, g); err != nil {
			return nil, err
		}
	}
	if ret[1], err = o.gradTo(inputs, 1, gb); err != nil {
		return nil, err
	}
	return ret, nil
}

// padOp is a standalone option-A channel pad.
type padOp struct {
	base
	n      int
	pad    *build.PadAttrs
	xShape tensor.Shape
	out    *tensor.Dense
}

func (o *padOp) Do(vs ...G.Value) (G.Value, error) {
	s := o.xShape
	kernels.ChannelPad(o.env.pool, o.n, s[1], s[2], s[3], o.pad.Stride, o.pad.Before, o.pad.After, f32(vs[0]), o.out.Float32s())
	return o.out, nil
}

func (o *padOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	op := &padGradOp{base: base{kind: "ChannelPadGrad", name: o.name + ".grad_input", inDims: []int{4},
		shape: o.xShape.Clone(), env: o.env}, n: o.n, pad: o.pad, out: o.env.newGrad(o.xShape)}
	g, err := apply(op, op.name, grad)
	if err != nil {
		return nil, err
	}
	r, err := o.gradTo(inputs, 0, g)
	return G.Nodes{r}, err
}

// padGradOp is the gradient of the channel pad, input (dy).
type padGradOp struct {
	base
	n   int
	pad *build.PadAttrs
	out *gbuf
}

func (o *padGradOp) gradBufs() ([]*gbuf, *gbuf) { return []*gbuf{o.out}, o.out }

func (o *padGradOp) Do(vs ...G.Value) (G.Value, error) {
	s := o.shape
	t := o.out.get()
	kernels.ChannelPadBackward(o.env.pool, o.n, s[1], s[2], s[3], o.pad.Stride, o.pad.Before, o.pad.After, f32(vs[0]), t.Float32s())
	return t, nil
}

// reshapeOp is Flatten: a view of its input with another shape.
type reshapeOp struct {
	base
	inShape tensor.Shape
	view    *tensor.Dense
}

// reshaped returns a tensor of the given shape over v's data, reusing
// cache when it already is one.
func reshaped(v G.Value, shape tensor.Shape, cache **tensor.Dense) *tensor.Dense {
	data := f32(v)
	if c := *cache; c != nil && &c.Float32s()[0] == &data[0] {
		return c
	}
	*cache = tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(data))
	return *cache
}

func (o *reshapeOp) Do(vs ...G.Value) (G.Value, error) {
	return reshaped(vs[0], o.shape, &o.view), nil
}

func (o *reshapeOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	op := &reshapeGradOp{base: base{kind: "ReshapeGrad", name: o.name + ".grad_input", inDims: []int{len(o.shape)},
		shape: o.inShape.Clone(), env: o.env}}
	g, err := apply(op, op.name, grad)
	if err != nil {
		return nil, err
	}
	r, err := o.gradTo(inputs, 0, g)
	return G.Nodes{r}, err
}

// reshapeGradOp views the output gradient with the input's shape.
type reshapeGradOp struct {
	base
	view *tensor.Dense
}

func (o *reshapeGradOp) Do(vs ...G.Value) (G.Value, error) {
	return reshaped(vs[0], o.shape, &o.view), nil
}
