package train

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/resnetctl/resnetctl/internal/kernels"
)

// denseOp is y = x·Wᵀ + b, inputs (x [N, in], W [out, in], b [out]).
type denseOp struct {
	base
	n, in, outF int
	out         *tensor.Dense
}

func (o *denseOp) Do(vs ...G.Value) (G.Value, error) {
	x, w, b := f32(vs[0]), f32(vs[1]), f32(vs[2])
	y := o.out.Float32s()
	for i := 0; i < o.n; i++ {
		copy(y[i*o.outF:(i+1)*o.outF], b)
	}
	kernels.Gemm(o.env.pool, false, true, o.n, o.outF, o.in, 1, x, o.in, w, o.in, 1, y, o.outF)
	return o.out, nil
}

func (o *denseOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	ret := make(G.Nodes, 3)
	if o.wantsGrad(0) {
		op := &denseGradOp{base: base{kind: "DenseGradInput", name: o.name + ".grad_input", inDims: []int{2, 2},
			shape: tensor.Shape{o.n, o.in}, env: o.env}, d: o, which: 0, out: newDense(tensor.Shape{o.n, o.in})}
		g, err := apply(op, op.name, grad, inputs[1])
		if err != nil {
			return nil, err
		}
		if ret[0], err = o.gradTo(inputs, 0, g); err != nil {
			return nil, err
		}
	}
	op := &denseGradOp{base: base{kind: "DenseGradWeight", name: o.name + ".grad_weight", inDims: []int{2, 2},
		shape: tensor.Shape{o.outF, o.in}, env: o.env}, d: o, which: 1, out: newDense(tensor.Shape{o.outF, o.in})}
	var err error
	if ret[1], err = apply(op, op.name, grad, inputs[0]); err != nil {
		return nil, err
	}
	bop := &denseGradOp{base: base{kind: "DenseGradBias", name: o.name + ".grad_bias", inDims: []int{2},
		shape: tensor.Shape{o.outF}, env: o.env}, d: o, which: 2, out: newDense(tensor.Shape{o.outF})}
	if ret[2], err = apply(bop, bop.name, grad); err != nil {
		return nil, err
	}
	return ret, nil
}

// denseGradOp computes one gradient of a denseOp from dy: which 0 is
// dx = dy·W (inputs dy, W), 1 is dW = dyᵀ·x (inputs dy, x), 2 is
// db = the column sums of dy (input dy, summed in float64).
type denseGradOp struct {
	base
	d     *denseOp
	which int
	out   *tensor.Dense
}

func (o *denseGradOp) Do(vs ...G.Value) (G.Value, error) {
	d := o.d
	dy, out := f32(vs[0]), o.out.Float32s()
	switch o.which {
	case 0:
		kernels.Gemm(o.env.pool, false, false, d.n, d.in, d.outF, 1, dy, d.outF, f32(vs[1]), d.in, 0, out, d.in)
	case 1:
		kernels.Gemm(o.env.pool, true, false, d.outF, d.in, d.n, 1, dy, d.outF, f32(vs[1]), d.in, 0, out, d.in)
	case 2:
		for j := range out {
			var s float64
			for i := 0; i < d.n; i++ {
				s += float64(dy[i*d.outF+j])
			}
			out[j] = float32(s)
		}
	}
	return o.out, nil
}
