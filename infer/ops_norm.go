package infer

import (
	"math"
	"slices"

	"github.com/resnetctl/resnetctl/internal/kernels"
)

// bnOp is BatchNormalization in inference mode, optionally followed by a
// fused ReLU: y = (x - mean) / sqrt(var + epsilon) * scale + B per channel
// (per element of [C, D1, …] with spatial=0).
type bnOp struct {
	eps        float32
	relu       bool // fused Relu
	nonSpatial bool // spatial=0 (versions 7 and 8)
}

// newBatchNorm implements BatchNormalization, versions 7, 9, 14 and 15:
// https://onnx.ai/onnx/operators/onnx__BatchNormalization.html
//
// spatial=0 (versions 7 and 8) is computed as ONNX Runtime does: the
// parameters have X's shape without the batch, [C, D1, …], one statistic
// per element; with a rank-2 X that is the per-channel case. The [C]
// parameters old MXNet exports stamp with spatial=0 on images are
// refused, as ONNX Runtime refuses them ("Invalid input scale:
// NumDimensions() != 3").
//
// Training mode (training_mode=1 from version 14; before it, more than
// one output, as ONNX Runtime decides) normalises with the batch's
// statistics (mean and biased variance per channel) and can output the
// updated running statistics, input·momentum + batch·(1-momentum); the
// version 7 and 9 outputs saved_mean and saved_var are the batch mean and,
// as ONNX Runtime writes them, the inverse standard deviation
// 1/sqrt(var+epsilon).
func newBatchNorm(b *nodeBuilder) op {
	b.arity(5, 5, 1, 5)
	b.want(0, "X", Float32)
	for i, role := range []string{"scale", "B", "input_mean", "input_var"} {
		b.want(i+1, role, Float32)
	}
	for i := range b.outPresent {
		b.out(i, Float32)
	}
	eps := b.float("epsilon", 1e-5)
	momentum := b.float("momentum", 0.9)
	spatial := true
	if b.since < 9 {
		s := b.int("spatial", 1)
		if s != 0 && s != 1 {
			b.invalid("spatial=%d, want 0 or 1", s)
		}
		spatial = s != 0
	}
	training := len(b.outPresent) > 1
	if b.since >= 14 {
		training = b.boolAttr("training_mode", false)
		if !training && len(b.outPresent) > 1 {
			b.invalid("has %d outputs; BatchNormalization-%d has one when training_mode=0", len(b.outPresent), b.since)
		}
		if training && len(b.outPresent) > 3 {
			b.invalid("has %d outputs; BatchNormalization-%d has at most 3", len(b.outPresent), b.since)
		}
	}
	if training {
		if !spatial {
			b.fail("spatial=0 in training mode (ONNX Runtime refuses it too)")
		}
		return &bnTrainOp{eps: eps, momentum: momentum}
	}
	return &bnOp{eps: eps, nonSpatial: !spatial}
}

func (o *bnOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	if len(x.shape) < 2 {
		return errShape("input shape %v has no channel dimension", x.shape)
	}
	c := x.shape[1]
	batch, hw := x.shape[0], prod(x.shape[2:])
	pshape := []int{c}
	if o.nonSpatial {
		// One statistic per element of [C, D1, …]: channels of size 1.
		pshape = x.shape[1:]
		c, hw = prod(pshape), 1
	}
	for i := 1; i < 5; i++ {
		if p := n.in[i]; !slices.Equal(p.shape, pshape) {
			if o.nonSpatial {
				return errShape("input %d has shape %v; with spatial=0 it must be X's shape without the batch, %v (ONNX Runtime refuses this file too)", i, p.shape, pshape)
			}
			return errShape("input %d has shape %v, want %v", i, p.shape, pshape)
		}
	}
	if err := n.setShape(pc, 0, x.shape); err != nil {
		return err
	}
	n.inplace = 0
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

// bnTrainOp is BatchNormalization in training mode: normalised with the
// batch's own statistics per channel.
type bnTrainOp struct{ eps, momentum float32 }

func (o *bnTrainOp) plan(pc *planCtx, n *pnode) error {
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
	outs := [5]int{-1, -1, -1, -1, -1}
	for i, v := range n.out {
		if v == nil {
			continue
		}
		if i > 0 {
			if err := n.setShape(pc, i, []int{c}); err != nil {
				return err
			}
		}
		outs[i] = v.id
	}
	ins := [5]int{}
	for i := range ins {
		ins[i] = n.in[i].id
	}
	batch, hw := x.shape[0], prod(x.shape[2:])
	eps, mom := float64(o.eps), float64(o.momentum)
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		body := func(lo, hi int) {
			x, y := v[ins[0]], v[outs[0]]
			sc, bi, rm, rv := v[ins[1]], v[ins[2]], v[ins[3]], v[ins[4]]
			count := float64(batch * hw)
			for ch := lo; ch < hi; ch++ {
				var sum float64
				for b := range batch {
					for _, e := range x[(b*c+ch)*hw : (b*c+ch+1)*hw] {
						sum += float64(e)
					}
				}
				mean := sum / max(count, 1)
				var q float64
				for b := range batch {
					for _, e := range x[(b*c+ch)*hw : (b*c+ch+1)*hw] {
						d := float64(e) - mean
						q += d * d
					}
				}
				variance := q / max(count, 1)
				var s, t [1]float32 // the batch's scale and shift, by the folding rule
				kernels.FoldBatchNorm(sc[ch:ch+1], bi[ch:ch+1], []float32{float32(mean)}, []float32{float32(variance)}, o.eps, s[:], t[:])
				for b := range batch {
					off := (b*c + ch) * hw
					for i, e := range x[off : off+hw] {
						y[off+i] = e*s[0] + t[0]
					}
				}
				if outs[1] >= 0 {
					v[outs[1]][ch] = float32(float64(rm[ch])*mom + mean*(1-mom))
				}
				if outs[2] >= 0 {
					v[outs[2]][ch] = float32(float64(rv[ch])*mom + variance*(1-mom))
				}
				if outs[3] >= 0 {
					v[outs[3]][ch] = float32(mean)
				}
				if outs[4] >= 0 {
					v[outs[4]][ch] = float32(1 / math.Sqrt(variance+eps))
				}
			}
		}
		return func() error {
			rc.parallel(c, batch*hw, body)
			return nil
		}
	}
	return nil
}
