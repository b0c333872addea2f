package train

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/resnetctl/resnetctl/internal/kernels"
)

// bnOp is BatchNorm with an optional fused residual (a post-activation
// block's shortcut, optionally the option-A channel pad) and ReLU:
// out = act(BN(x) + shortcut), inputs (x, gamma, beta[, shortcut]).
//
// In training mode it normalises with the batch statistics and updates the
// running statistics the way PyTorch does: running = (1-m)·running +
// m·batch, with the unbiased batch variance (×M/(M-1), M = N·H·W) in
// running_var. In eval mode it normalises with the running statistics.
// Gradients are defined for training mode only.
//
// A frozen bnOp (its weight and bias held fixed, see FrozenParams) always
// runs in inference mode: it normalises with the running statistics and
// leaves them unchanged, as a frozen backbone's BatchNorm does in
// fine-tuning (PyTorch's module.eval() on the backbone).
type bnOp struct {
	base
	k        *kernels.BatchNormTrain
	relu     bool
	sc       kernels.Shortcut // shape of the shortcut; X set per call
	scShape  tensor.Shape
	hasSC    bool
	runMean  []float32
	runVar   []float32
	momentum float64
	frozen   bool
	out      *tensor.Dense
	scale    []float32
	shift    []float32
}

func (o *bnOp) shortcut(vs []G.Value) kernels.Shortcut {
	if !o.hasSC {
		return kernels.Shortcut{}
	}
	sc := o.sc
	sc.X = f32(vs[3])
	return sc
}

func (o *bnOp) Do(vs ...G.Value) (G.Value, error) {
	x, gamma, beta := f32(vs[0]), f32(vs[1]), f32(vs[2])
	out := o.out.Float32s()
	if !o.env.training || o.frozen {
		// y = (x - mean)/sqrt(var + eps)·gamma + beta, from the running
		// statistics, in float64 like kernels.FoldBatchNorm.
		for c := range o.scale {
			s := float64(gamma[c]) / math.Sqrt(float64(o.runVar[c])+float64(o.k.Eps))
			o.scale[c] = float32(s)
			o.shift[c] = float32(float64(beta[c]) - float64(o.runMean[c])*s)
		}
		o.k.Apply(o.env.pool, x, o.scale, o.shift, o.shortcut(vs), o.relu, out)
		return o.out, nil
	}
	o.k.Forward(o.env.pool, x, gamma, beta, o.shortcut(vs), o.relu, out)
	m := o.momentum
	count := float64(o.k.N * o.k.H * o.k.W)
	for c := range o.runMean {
		unbiased := float64(o.k.Var[c]) * count / (count - 1)
		o.runMean[c] = float32((1-m)*float64(o.runMean[c]) + m*float64(o.k.Mean[c]))
		o.runVar[c] = float32((1-m)*float64(o.runVar[c]) + m*unbiased)
	}
	return o.out, nil
}

func (o *bnOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if !o.env.training || o.frozen {
		return nil, fmt.Errorf("train: %s: BatchNorm gradients need training mode (a frozen BatchNorm runs in inference mode; freeze everything before it too)", o.name)
	}
	c := o.k.C
	extras := o.extrasFor(inputs, 0)
	op := &bnGradOp{base: base{kind: "BatchNormGrad", name: o.name + ".grad_input",
		inDims: append([]int{4, 1, 4, 4}, dimsOf(len(extras), 4)...), shape: inputs[0].Shape().Clone(), env: o.env},
		bn: o, dx: o.env.newGrad(inputs[0].Shape()), dgamma: fixed(tensor.Shape{c}), dbeta: fixed(tensor.Shape{c})}
	if o.hasSC && o.wantsGrad(3) {
		op.dsc = o.env.newGrad(o.scShape)
	}
	dx, err := apply(op, op.name, append([]*G.Node{inputs[0], inputs[1], output, grad}, extras...)...)
	if err != nil {
		return nil, err
	}
	ret := make(G.Nodes, len(inputs))
	ret[0] = o.dataGrad(inputs, 0, dx)
	if ret[1], err = o.view(".grad_weight", op.dgamma, dx); err != nil {
		return nil, err
	}
	if ret[2], err = o.view(".grad_bias", op.dbeta, dx); err != nil {
		return nil, err
	}
	if op.dsc != nil {
		dsc, err := o.view(".grad_shortcut", op.dsc, dx)
		if err != nil {
			return nil, err
		}
		if ret[3], err = o.gradTo(inputs, 3, dsc); err != nil {
			return nil, err
		}
	}
	return ret, nil
}

// bnGradOp computes all BatchNorm gradients, inputs (x, gamma, forward
// output, dy, extra gradients of x...); it returns dx and keeps dgamma,
// dbeta and the shortcut gradient for view nodes.
type bnGradOp struct {
	base
	bn                *bnOp
	dx, dgamma, dbeta *gbuf
	dsc               *gbuf // nil if the shortcut needs no gradient
}

func (o *bnGradOp) gradBufs() ([]*gbuf, *gbuf) {
	if o.dsc != nil {
		return []*gbuf{o.dx, o.dsc}, o.dx
	}
	return []*gbuf{o.dx}, o.dx
}

func (o *bnGradOp) Do(vs ...G.Value) (G.Value, error) {
	b := o.bn
	dxT := o.dx.get()
	dx := dxT.Float32s()
	acc := gradAccum(b.env.pool, dx, vs[4:])
	var dsc kernels.Shortcut
	if o.dsc != nil {
		dsc = b.sc
		dsc.X = o.dsc.get().Float32s()
	}
	b.k.Backward(b.env.pool, f32(vs[0]), f32(vs[1]), f32(vs[2]), f32(vs[3]), b.relu,
		o.dgamma.get().Float32s(), o.dbeta.get().Float32s(), acc, dx, dsc)
	return dxT, nil
}
