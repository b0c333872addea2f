package infer

import (
	"github.com/resnetctl/resnetctl/internal/kernels"
)

// bnOp is BatchNormalization in inference mode, optionally followed by a
// fused ReLU: y = (x - mean) / sqrt(var + epsilon) * scale + B per channel.
type bnOp struct {
	eps  float32
	relu bool // fused Relu
}

// newBatchNorm implements BatchNormalization, versions 7, 9, 14 and 15,
// in inference mode (one output; spatial=1; training_mode=0):
// https://onnx.ai/onnx/operators/onnx__BatchNormalization.html
func newBatchNorm(b *nodeBuilder) op {
	b.arity(5, 5, 1, -1)
	b.want(0, "X", Float32)
	for i, role := range []string{"scale", "B", "input_mean", "input_var"} {
		b.want(i+1, role, Float32)
	}
	b.out(0, Float32)
	o := &bnOp{eps: b.float("epsilon", 1e-5)}
	b.float("momentum", 0.9) // running-statistics update rate: training only
	if b.since < 9 {
		if s := b.int("spatial", 1); s != 1 {
			b.fail("spatial=%d (only spatial=1, per-channel statistics, is supported)", s)
		}
	}
	if b.since >= 14 {
		if b.boolAttr("training_mode", false) {
			b.fail("training_mode=1 (this runtime does inference only)")
		}
	}
	for i := 1; i < len(b.outPresent); i++ {
		if b.hasOut(i) {
			b.fail("output %d (running or saved statistics) exists in training mode only", i)
		}
	}
	return o
}

func (o *bnOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	if len(x.shape) < 2 {
		return errShape("input shape %v has no channel dimension", x.shape)
	}
	c := x.shape[1]
	for i := 1; i < 5; i++ {
		if p := n.in[i]; len(p.shape) != 1 || p.shape[0] != c {
			return errShape("input %d has shape %v, want [%d]", i, p.shape, c)
		}
	}
	if err := n.setShape(pc, 0, x.shape); err != nil {
		return err
	}
	n.inplace = 0
	batch, hw := x.shape[0], prod(x.shape[2:])
	// Scale and shift per channel: computed now when the parameters are
	// constants, else on every run (in the workspace).
	var scale, shift []float32
	constant := true
	for i := 1; i < 5; i++ {
		constant = constant && n.in[i].data != nil
	}
	if constant {
		scale, shift = make([]float32, c), make([]float32, c)
		kernels.FoldBatchNorm(n.in[1].data.Float32, n.in[2].data.Float32, n.in[3].data.Float32, n.in[4].data.Float32, o.eps, scale, shift)
	} else {
		n.ws = 2 * c
	}
	ids := [5]int{}
	for i := range ids {
		ids[i] = n.in[i].id
	}
	yi, relu, eps := n.out[0].id, o.relu, o.eps
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		return func() error {
			sc, sh := scale, shift
			if !constant {
				sc, sh = rc.ws[:c], rc.ws[c:2*c]
				kernels.FoldBatchNorm(v[ids[1]], v[ids[2]], v[ids[3]], v[ids[4]], eps, sc, sh)
			}
			kernels.BatchNorm(rc.pool, batch, c, hw, v[ids[0]], sc, sh, relu, v[yi])
			return nil
		}
	}
	return nil
}
