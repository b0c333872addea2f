package infer

import "math"

// softmaxOp is Softmax or LogSoftmax. Before version 13 the input is
// coerced to 2-D at axis (rows of all the dimensions from axis on); from
// 13 the normalisation runs along the one axis.
type softmaxOp struct {
	axis   int
	log    bool
	coerce bool
}

// newSoftmax implements Softmax, versions 1 and 11 (2-D coercion, axis
// default 1) and 13 (one axis, default -1):
// https://onnx.ai/onnx/operators/onnx__Softmax.html
func newSoftmax(b *nodeBuilder) op { return newSoftmaxOp(b, false) }

// newLogSoftmax implements LogSoftmax, versions 1, 11 and 13, like Softmax:
// https://onnx.ai/onnx/operators/onnx__LogSoftmax.html
func newLogSoftmax(b *nodeBuilder) op { return newSoftmaxOp(b, true) }

func newSoftmaxOp(b *nodeBuilder, log bool) op {
	b.arity(1, 1, 1, 1)
	b.want(0, "input", Float32)
	b.out(0, Float32)
	def := int64(-1)
	if b.since < 13 {
		def = 1
	}
	return &softmaxOp{axis: int(b.int("axis", def)), log: log, coerce: b.since < 13}
}

func (o *softmaxOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	r := len(x.shape)
	axis := o.axis
	if o.coerce && axis == r && r > 0 {
		axis = r // allowed by the 2-D coercion: one column per row
	} else {
		var err error
		if axis, err = normAxis(o.axis, max(r, 1)); err != nil {
			return err
		}
	}
	if err := n.setShape(pc, 0, x.shape); err != nil {
		return err
	}
	n.inplace = 0
	var outer, mid, inner int
	if o.coerce {
		outer, mid, inner = prod(x.shape[:min(axis, r)]), prod(x.shape[min(axis, r):]), 1
	} else if r == 0 {
		outer, mid, inner = 1, 1, 1
	} else {
		outer, mid, inner = prod(x.shape[:axis]), x.shape[axis], prod(x.shape[axis+1:])
	}
	xi, yi, log := x.id, n.out[0].id, o.log
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		body := func(lo, hi int) {
			for r := lo; r < hi; r++ {
				o, in := r/inner, r%inner
				softmaxLine(v[yi], v[xi], o*mid*inner+in, mid, inner, log)
			}
		}
		return func() error {
			if mid > 0 {
				rc.parallel(outer*inner, mid, body)
			}
			return nil
		}
	}
	return nil
}

// softmaxLine normalises the mid elements of x from off with the given
// stride into y, accumulating in float64.
func softmaxLine(y, x []float32, off, mid, stride int, log bool) {
	m := x[off]
	for i := 1; i < mid; i++ {
		m = max(m, x[off+i*stride])
	}
	sum := 0.0
	for i := range mid {
		sum += math.Exp(float64(x[off+i*stride] - m))
	}
	if log {
		ls := math.Log(sum)
		for i := range mid {
			j := off + i*stride
			y[j] = float32(float64(x[j]-m) - ls)
		}
		return
	}
	for i := range mid {
		j := off + i*stride
		y[j] = float32(math.Exp(float64(x[j]-m)) / sum)
	}
}

// reduceMeanOp is ReduceMean.
type reduceMeanOp struct {
	axes       []int64
	axesIn     bool
	keepDims   bool
	noopIfNone bool
}

// newReduceMean implements ReduceMean, versions 1, 11 (negative axes), 13
// and 18 (axes as an input, noop_with_empty_axes); the axes must be
// computable when planning:
// https://onnx.ai/onnx/operators/onnx__ReduceMean.html
func newReduceMean(b *nodeBuilder) op {
	o := &reduceMeanOp{}
	if b.since < 18 {
		b.arity(1, 1, 1, 1)
		o.axes, _ = b.ints("axes")
	} else {
		b.arity(1, 2, 1, 1)
		b.want(1, "axes", Int64)
		b.needValue(1)
		o.axesIn = b.has(1)
		o.noopIfNone = b.boolAttr("noop_with_empty_axes", false)
	}
	o.keepDims = b.boolAttr("keepdims", true)
	b.want(0, "data", Float32)
	b.out(0, Float32)
	return o
}

func (o *reduceMeanOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	r := len(x.shape)
	axes := o.axes
	if o.axesIn {
		var err error
		if axes, err = valueInts(n.in[1], "axes"); err != nil {
			return err
		}
	}
	reduce := make([]bool, r)
	if len(axes) == 0 {
		if o.noopIfNone {
			n.aliasOf = 0
			return n.setShape(pc, 0, x.shape)
		}
		for i := range reduce {
			reduce[i] = true
		}
	} else {
		ax, err := normAxes(axes, r)
		if err != nil {
			return err
		}
		for _, a := range ax {
			reduce[a] = true
		}
	}
	var out, kept []int
	count := 1
	for d := range r {
		switch {
		case !reduce[d]:
			out = append(out, x.shape[d])
			kept = append(kept, x.shape[d])
		case o.keepDims:
			out = append(out, 1)
			kept = append(kept, 1)
			count *= x.shape[d]
		default:
			kept = append(kept, 1)
			count *= x.shape[d]
		}
	}
	if err := n.setShape(pc, 0, nonNil(out)); err != nil {
		return err
	}
	// Walk the input, accumulating into the output element each input
	// element maps to (strides 0 along reduced dimensions).
	ostr := broadcastStrides(kept, x.shape)
	shape, st := coalesce(x.shape, stridesOf(x.shape), ostr)
	ys := st[1]
	xi, yi, size, outSize := x.id, n.out[0].id, x.size, prod(out)
	scale := float32(1)
	if count > 0 {
		scale = 1 / float32(count)
	}
	n.extra = tensorBytes(Float64, outSize) // acc, per run context
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		acc := make([]float64, outSize)
		return func() error {
			x, y := v[xi], v[yi]
			clear(acc)
			last := len(shape) - 1
			inner := shape[last]
			rows := size / max(inner, 1)
			if size == 0 {
				rows = 0
			}
			for row := range rows {
				off, q := 0, row
				for d := last - 1; d >= 0; d-- {
					off += (q % shape[d]) * ys[d]
					q /= shape[d]
				}
				src, s := x[row*inner:(row+1)*inner], ys[last]
				for i, e := range src {
					acc[off+i*s] += float64(e)
				}
			}
			for i := range y {
				y[i] = float32(acc[i]) * scale
			}
			if count == 0 {
				for i := range y {
					y[i] = float32(math.NaN())
				}
			}
			return nil
		}
	}
	return nil
}
