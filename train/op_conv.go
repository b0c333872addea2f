package train

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/resnetctl/resnetctl/internal/kernels"
)

// convOp is a 2-D convolution, inputs (x, weight[, bias]). Do repacks the
// weights (they change every step) and runs the forward kernel.
type convOp struct {
	base
	k       *kernels.ConvTrain
	n       int
	inShape tensor.Shape
	bias    bool
	w       []float32 // the weights packed by the last Do
	out     *tensor.Dense

	// Net.Step packs all convolutions' weights up front, in parallel
	// (packed set); Do packs them itself otherwise.
	wData, bData []float32
	packed       bool
	packErr      error
}

// pack packs the parameters' current weights.
func (o *convOp) pack() {
	o.packErr = o.k.SetWeights(o.wData, o.bData)
	o.w = o.wData
	o.packed = true
}

func newConvOp(e *env, name string, n int, in, out tensor.Shape, prm kernels.ConvParams, bias bool, roles []role) (*convOp, error) {
	k, err := kernels.NewConvTrain(prm, kernels.AlgoAuto)
	if err != nil {
		return nil, err
	}
	if e.convScratch != nil {
		k.ShareScratch(e.convScratch)
	}
	dims := []int{4, 4}
	if bias {
		dims = append(dims, 1)
	}
	o := &convOp{base: base{kind: "Conv", name: name, inDims: dims, shape: out, roles: roles, env: e},
		k: k, n: n, inShape: in, bias: bias, out: newDense(out)}
	return o, nil
}

func (o *convOp) Do(vs ...G.Value) (G.Value, error) {
	x, w := f32(vs[0]), f32(vs[1])
	var b []float32
	if o.bias {
		b = f32(vs[2])
	}
	if o.packed && &w[0] == &o.wData[0] {
		o.packed = false
		if o.packErr != nil {
			return nil, o.packErr
		}
	} else {
		if err := o.k.SetWeights(w, b); err != nil {
			return nil, err
		}
		o.w = w
	}
	o.k.Forward(o.env.pool, o.n, x, o.out.Float32s())
	return o.out, nil
}

func (o *convOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	ret := make(G.Nodes, len(inputs))
	if o.wantsGrad(0) {
		extras := o.extrasFor(inputs, 0)
		op := &convDataGradOp{base: base{kind: "ConvGradInput", name: o.name + ".grad_input",
			inDims: dimsOf(2+len(extras), 4), shape: o.inShape.Clone(), env: o.env}, conv: o, out: o.env.newGrad(o.inShape)}
		dx, err := apply(op, op.name, append([]*G.Node{grad, output}, extras...)...)
		if err != nil {
			return nil, err
		}
		ret[0] = o.dataGrad(inputs, 0, dx)
	}
	wshape := inputs[1].Shape()
	op := &convFilterGradOp{base: base{kind: "ConvGradWeight", name: o.name + ".grad_weight",
		inDims: []int{4, 4}, shape: wshape.Clone(), env: o.env}, conv: o, dw: newDense(wshape)}
	if o.bias {
		op.db = fixed(inputs[2].Shape())
	}
	dw, err := apply(op, op.name, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	ret[1] = dw
	if o.bias {
		if ret[2], err = o.view(".grad_bias", op.db, dw); err != nil {
			return nil, err
		}
	}
	return ret, nil
}

// convDataGradOp computes the input gradient, inputs (dy, forward output
// [ordering], extra gradients...): dx = conv_transpose(dy) + extras, the
// first extra fused into the kernel.
type convDataGradOp struct {
	base
	conv *convOp
	out  *gbuf
}

func (o *convDataGradOp) gradBufs() ([]*gbuf, *gbuf) { return []*gbuf{o.out}, o.out }

func (o *convDataGradOp) Do(vs ...G.Value) (G.Value, error) {
	c := o.conv
	t := o.out.get()
	dx := t.Float32s()
	acc := gradAccum(c.env.pool, dx, vs[2:])
	c.k.BackwardData(c.env.pool, c.n, c.w, f32(vs[0]), acc, dx)
	return t, nil
}

// convFilterGradOp computes the weight (and bias) gradient, inputs (x, dy).
type convFilterGradOp struct {
	base
	conv *convOp
	dw   *tensor.Dense
	db   *gbuf
}

func (o *convFilterGradOp) Do(vs ...G.Value) (G.Value, error) {
	var db []float32
	if o.db != nil {
		db = o.db.get().Float32s()
	}
	o.conv.k.BackwardFilter(o.conv.env.pool, o.conv.n, f32(vs[0]), f32(vs[1]), o.dw.Float32s(), db)
	return o.dw, nil
}
