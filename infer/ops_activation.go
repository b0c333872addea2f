package infer

import (
	"math"

	"github.com/resnetctl/resnetctl/internal/kernels"
)

// unaryOp applies a float32 function element-wise; fn writes dst from
// src (which may be the same slice). kern, when set, is a kernel-library
// function doing the same over the whole tensor with its own threading.
type unaryOp struct {
	fn   func(dst, src []float32)
	kern func(p *kernels.Pool, x, out []float32)
}

func (u *unaryOp) plan(pc *planCtx, n *pnode) error {
	x, y := n.in[0], n.out[0]
	if err := n.setShape(pc, 0, x.shape); err != nil {
		return err
	}
	n.inplace = 0
	xi, yi, size, fn := x.id, y.id, x.size, u.fn
	if k := u.kern; k != nil {
		n.kernel = func(rc *runCtx) func() error {
			v := rc.f32
			return func() error {
				k(rc.pool, v[xi], v[yi])
				return nil
			}
		}
		return nil
	}
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		body := func(lo, hi int) { fn(v[yi][lo:hi], v[xi][lo:hi]) }
		return func() error {
			rc.parallel(size, 1, body)
			return nil
		}
	}
	return nil
}

func unaryBuilder(b *nodeBuilder) {
	b.arity(1, 1, 1, 1)
	b.want(0, "X", Float32)
	b.out(0, Float32)
}

// newRelu implements Relu, versions 6, 13 and 14:
// https://onnx.ai/onnx/operators/onnx__Relu.html
func newRelu(b *nodeBuilder) op {
	unaryBuilder(b)
	return &unaryOp{fn: reluSlice, kern: kernels.ReLU}
}

func reluSlice(dst, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = max(x, 0)
	}
}

// newLeakyRelu implements LeakyRelu, versions 6 and 16:
// https://onnx.ai/onnx/operators/onnx__LeakyRelu.html
func newLeakyRelu(b *nodeBuilder) op {
	unaryBuilder(b)
	alpha := b.float("alpha", 0.01)
	return &unaryOp{fn: func(dst, src []float32) {
		dst = dst[:len(src)]
		for i, x := range src {
			if x < 0 {
				x *= alpha
			}
			dst[i] = x
		}
	}}
}

// newSigmoid implements Sigmoid, versions 6 and 13:
// https://onnx.ai/onnx/operators/onnx__Sigmoid.html
func newSigmoid(b *nodeBuilder) op {
	unaryBuilder(b)
	return &unaryOp{fn: func(dst, src []float32) {
		dst = dst[:len(src)]
		for i, x := range src {
			dst[i] = float32(1 / (1 + math.Exp(-float64(x))))
		}
	}}
}

// clipOp is Clip with bounds from attributes (before version 11) or from
// optional scalar inputs (read at run time).
type clipOp struct {
	lo, hi     float32
	loIn, hiIn bool
}

// newClip implements Clip, versions 6 (min and max attributes), 11, 12
// and 13 (min and max as optional inputs):
// https://onnx.ai/onnx/operators/onnx__Clip.html
func newClip(b *nodeBuilder) op {
	o := &clipOp{lo: float32(math.Inf(-1)), hi: float32(math.Inf(1))}
	if b.since < 11 {
		b.arity(1, 1, 1, 1)
		o.lo = b.float("min", o.lo)
		o.hi = b.float("max", o.hi)
	} else {
		b.arity(1, 3, 1, 1)
		b.want(1, "min", Float32)
		b.want(2, "max", Float32)
		o.loIn, o.hiIn = b.has(1), b.has(2)
	}
	b.want(0, "input", Float32)
	b.out(0, Float32)
	return o
}

func (o *clipOp) plan(pc *planCtx, n *pnode) error {
	x, y := n.in[0], n.out[0]
	for i := 1; i < len(n.in); i++ {
		if n.in[i] != nil && n.in[i].size != 1 {
			return errShape("bound input %d has shape %v, want a scalar", i, n.in[i].shape)
		}
	}
	if err := n.setShape(pc, 0, x.shape); err != nil {
		return err
	}
	n.inplace = 0
	loID, hiID := -1, -1
	if o.loIn {
		loID = n.in[1].id
	}
	if o.hiIn {
		hiID = n.in[2].id
	}
	xi, yi, size := x.id, y.id, x.size
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		var lo, hi float32
		body := func(a, b int) {
			dst, src := v[yi][a:b], v[xi][a:b]
			for i, x := range src {
				dst[i] = min(max(x, lo), hi)
			}
		}
		return func() error {
			lo, hi = o.lo, o.hi
			if loID >= 0 {
				lo = v[loID][0]
			}
			if hiID >= 0 {
				hi = v[hiID][0]
			}
			rc.parallel(size, 1, body)
			return nil
		}
	}
	return nil
}
