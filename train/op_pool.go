package train

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/resnetctl/resnetctl/internal/kernels"
)

// poolOp is MaxPool, AvgPool (padding not counted) or GlobalAvgPool, all
// with gradients.
type poolOp struct {
	base
	global  bool
	max     bool
	prm     kernels.Pool2DParams
	inShape tensor.Shape
	idx     []int32 // MaxPool: where each maximum came from
	out     *tensor.Dense
}

func (o *poolOp) Do(vs ...G.Value) (G.Value, error) {
	s := o.inShape
	x, out := f32(vs[0]), o.out.Float32s()
	switch {
	case o.global:
		kernels.GlobalAvgPool(o.env.pool, s[0], s[1], s[2]*s[3], x, out)
	case o.max:
		kernels.MaxPool2DArgmax(o.env.pool, o.prm, s[0], s[1], s[2], s[3], x, out, o.idx)
	default:
		kernels.AvgPool2D(o.env.pool, o.prm, s[0], s[1], s[2], s[3], x, out)
	}
	return o.out, nil
}

func (o *poolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	op := &poolGradOp{base: base{kind: o.kind + "Grad", name: o.name + ".grad_input", inDims: []int{4, 4},
		shape: o.inShape.Clone(), env: o.env}, pool: o, out: o.env.newGrad(o.inShape)}
	g, err := apply(op, op.name, grad, output)
	if err != nil {
		return nil, err
	}
	r, err := o.gradTo(inputs, 0, g)
	return G.Nodes{r}, err
}

// poolGradOp is a pooling gradient, inputs (dy, forward output
// [ordering]).
type poolGradOp struct {
	base
	pool *poolOp
	out  *gbuf
}

func (o *poolGradOp) gradBufs() ([]*gbuf, *gbuf) { return []*gbuf{o.out}, o.out }

func (o *poolGradOp) Do(vs ...G.Value) (G.Value, error) {
	p := o.pool
	s := p.inShape
	t := o.out.get()
	dy, dx := f32(vs[0]), t.Float32s()
	switch {
	case p.global:
		kernels.GlobalAvgPoolBackward(o.env.pool, s[0], s[1], s[2]*s[3], dy, dx)
	case p.max:
		kernels.MaxPool2DBackward(o.env.pool, p.prm, s[0], s[1], s[2], s[3], p.idx, dy, dx)
	default:
		kernels.AvgPool2DBackward(o.env.pool, p.prm, s[0], s[1], s[2], s[3], dy, dx)
	}
	return t, nil
}
