package infer

import (
	"fmt"
	"math"
	"slices"

	"github.com/resnetctl/resnetctl/internal/checked"
	"github.com/resnetctl/resnetctl/internal/kernels"
)

// poolOp is MaxPool or AveragePool over 1 to 3 spatial dimensions.
type poolOp struct {
	max             bool
	autoPad         string
	kernel          []int64
	strides         []int64
	pads            []int64
	dilations       []int64
	ceil            bool
	countIncludePad bool
}

// newMaxPool implements MaxPool, versions 1, 8 (storage_order; the Indices
// output is not supported, so storage_order must be 0), 10 (ceil_mode,
// dilations), 11 and 12:
// https://onnx.ai/onnx/operators/onnx__MaxPool.html
func newMaxPool(b *nodeBuilder) op {
	b.arity(1, 1, 1, 2)
	if b.hasOut(1) {
		b.fail("the Indices output is not supported")
	}
	o := &poolOp{max: true}
	if b.since >= 8 {
		if s := b.int("storage_order", 0); s != 0 {
			b.fail("storage_order=%d (it only matters for Indices; only 0 is supported)", s)
		}
	}
	if b.since >= 10 {
		o.ceil = b.boolAttr("ceil_mode", false)
		o.dilations, _ = b.ints("dilations")
	}
	readPool(b, o)
	return o
}

// newAveragePool implements AveragePool, versions 7 (count_include_pad),
// 10 (ceil_mode), 11 and 19 (dilations):
// https://onnx.ai/onnx/operators/onnx__AveragePool.html
func newAveragePool(b *nodeBuilder) op {
	b.arity(1, 1, 1, 1)
	o := &poolOp{}
	o.countIncludePad = b.boolAttr("count_include_pad", false)
	if b.since >= 10 {
		o.ceil = b.boolAttr("ceil_mode", false)
	}
	if b.since >= 19 {
		o.dilations, _ = b.ints("dilations")
	}
	readPool(b, o)
	return o
}

func readPool(b *nodeBuilder, o *poolOp) {
	b.want(0, "X", Float32)
	b.out(0, Float32)
	o.autoPad = readAutoPad(b)
	var ok bool
	if o.kernel, ok = b.ints("kernel_shape"); !ok {
		b.invalid("kernel_shape is required")
	}
	for _, k := range o.kernel {
		if k < 1 {
			b.invalid("kernel_shape %v: values must be at least 1", o.kernel)
			break
		}
	}
	o.strides, _ = b.ints("strides")
	o.pads, _ = b.ints("pads")
	if len(o.kernel) > 3 || (ok && len(o.kernel) == 0) {
		b.fail("%d-D pooling (this runtime pools 1-D to 3-D)", len(o.kernel))
	}
	checkWindowAttrs(b, o.autoPad, len(o.kernel), o.kernel, o.strides, o.dilations, o.pads)
	// A window entirely in the padding has nothing to pool (-Inf for
	// MaxPool); ONNX Runtime refuses such pads ("Pad should be smaller
	// than kernel"), and so do we.
	if len(o.pads) == 2*len(o.kernel) {
		for i, k := range o.kernel {
			if o.pads[i] >= k || o.pads[i+len(o.kernel)] >= k {
				b.invalid("pads %v: pads must be smaller than the kernel (kernel_shape %v), as in ONNX Runtime", o.pads, o.kernel)
				break
			}
		}
	}
}

func (o *poolOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	s := len(o.kernel)
	if len(x.shape) != s+2 {
		return errShape("input shape %v does not have %d spatial dimensions", x.shape, s)
	}
	ws, err := windows(x.shape[2:], intsOf(o.kernel), o.strides, o.dilations, o.pads, o.autoPad, o.ceil)
	if err != nil {
		return err
	}
	outShape := slices.Clone(x.shape[:2])
	for _, w := range ws {
		outShape = append(outShape, w.out)
	}
	if err := n.setShape(pc, 0, outShape); err != nil {
		return err
	}
	if s == 2 {
		prm := kernels.Pool2DParams{
			KH: ws[0].k, KW: ws[1].k, StrideH: ws[0].stride, StrideW: ws[1].stride,
			PadTop: ws[0].padBegin, PadLeft: ws[1].padBegin, PadBottom: ws[0].padEnd, PadRight: ws[1].padEnd,
			DilationH: ws[0].dil, DilationW: ws[1].dil,
			CeilMode:        o.ceil && (o.autoPad == "NOTSET" || o.autoPad == "VALID"),
			CountIncludePad: o.countIncludePad,
		}
		h, w := ws[0].in, ws[1].in
		if oh, ow := prm.OutSize(h, w); prm.Validate(h, w) == nil && oh == ws[0].out && ow == ws[1].out {
			nn, c, xi, yi, isMax := x.shape[0], x.shape[1], x.id, n.out[0].id, o.max
			n.kernel = func(rc *runCtx) func() error {
				v := rc.f32
				return func() error {
					if isMax {
						kernels.MaxPool2D(rc.pool, prm, nn, c, h, w, v[xi], v[yi])
					} else {
						kernels.AvgPool2D(rc.pool, prm, nn, c, h, w, v[xi], v[yi])
					}
					return nil
				}
			}
			return nil
		}
	}
	// 1-D and 3-D pooling (and 2-D geometry the kernel library does not
	// take) run here.
	for len(ws) < 3 {
		ws = append([]window{{in: 1, k: 1, stride: 1, dil: 1, out: 1}}, ws...)
	}
	geo := [3]window(ws)
	rows := x.shape[0] * x.shape[1]
	inPlane, outPlane := geo[0].in*geo[1].in*geo[2].in, geo[0].out*geo[1].out*geo[2].out
	taps := inPlane // the cost per output: the window's taps, at most the plane
	if k, ok := checked.Product(intsOf(o.kernel)...); ok {
		taps = min(k, inPlane)
	}
	xi, yi := x.id, n.out[0].id
	isMax, incl := o.max, o.countIncludePad
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		body := func(lo, hi int) {
			for r := lo; r < hi; r++ {
				poolPlane(v[yi][r*outPlane:(r+1)*outPlane], v[xi][r*inPlane:(r+1)*inPlane], &geo, isMax, incl)
			}
		}
		return func() error {
			rc.parallel(rows, outPlane*taps, body)
			return nil
		}
	}
	return nil
}

func intsOf(s []int64) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[i] = int(v)
	}
	return out
}

// kRange returns the window positions k in [0, w.k) whose input index
// start + k*dil lies in [lo, hi), as [k0, k1).
func kRange(start, lo, hi int, w window) (int, int) {
	k0 := max(ceilDiv(lo-start, w.dil), 0)
	k1 := min(ceilDiv(hi-start, w.dil), w.k)
	return k0, max(k1, k0)
}

func ceilDiv(a, b int) int {
	q := a / b
	if a%b != 0 && a > 0 {
		q++
	}
	return q
}

// poolPlane pools one (depth, height, width) plane, visiting only the
// window positions inside the input.
func poolPlane(dst, src []float32, g *[3]window, isMax, countPad bool) {
	d0, d1, d2 := g[0], g[1], g[2]
	i := 0
	for od := range d0.out {
		sd := od*d0.stride - d0.padBegin
		kd0, kd1 := kRange(sd, 0, d0.in, d0)
		for oh := range d1.out {
			sh := oh*d1.stride - d1.padBegin
			kh0, kh1 := kRange(sh, 0, d1.in, d1)
			for ow := range d2.out {
				sw := ow*d2.stride - d2.padBegin
				kw0, kw1 := kRange(sw, 0, d2.in, d2)
				acc := float32(0)
				if isMax {
					acc = float32(math.Inf(-1))
				}
				for kd := kd0; kd < kd1; kd++ {
					z := sd + kd*d0.dil
					for kh := kh0; kh < kh1; kh++ {
						row := src[(z*d1.in+sh+kh*d1.dil)*d2.in:]
						x := sw + kw0*d2.dil
						if isMax {
							for kw := kw0; kw < kw1; kw++ {
								acc = max(acc, row[x])
								x += d2.dil
							}
						} else {
							for kw := kw0; kw < kw1; kw++ {
								acc += row[x]
								x += d2.dil
							}
						}
					}
				}
				if !isMax {
					count := (kd1 - kd0) * (kh1 - kh0) * (kw1 - kw0)
					if countPad {
						count = padCount(sd, d0) * padCount(sh, d1) * padCount(sw, d2)
					}
					if count > 0 {
						acc /= float32(count)
					}
				}
				dst[i] = acc
				i++
			}
		}
	}
}

// padCount counts the window positions from start inside the padded
// extent [-padBegin, in+padEnd).
func padCount(start int, w window) int {
	k0, k1 := kRange(start, -w.padBegin, w.in+w.padEnd, w)
	return k1 - k0
}

// globalPoolOp is GlobalAveragePool or GlobalMaxPool.
type globalPoolOp struct{ max bool }

// newGlobalAveragePool implements GlobalAveragePool, version 1:
// https://onnx.ai/onnx/operators/onnx__GlobalAveragePool.html
func newGlobalAveragePool(b *nodeBuilder) op { return newGlobalPool(b, false) }

// newGlobalMaxPool implements GlobalMaxPool, version 1:
// https://onnx.ai/onnx/operators/onnx__GlobalMaxPool.html
func newGlobalMaxPool(b *nodeBuilder) op { return newGlobalPool(b, true) }

func newGlobalPool(b *nodeBuilder, isMax bool) op {
	b.arity(1, 1, 1, 1)
	b.want(0, "X", Float32)
	b.out(0, Float32)
	return &globalPoolOp{max: isMax}
}

func (o *globalPoolOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	if len(x.shape) < 3 {
		return errShape("input shape %v has no spatial dimensions", x.shape)
	}
	out := slices.Clone(x.shape)
	for i := 2; i < len(out); i++ {
		out[i] = 1
	}
	if err := n.setShape(pc, 0, out); err != nil {
		return err
	}
	rows, inner := x.shape[0]*x.shape[1], prod(x.shape[2:])
	if inner == 0 {
		return fmt.Errorf("%w: empty spatial extent", ErrInput)
	}
	xi, yi, isMax := x.id, n.out[0].id, o.max
	if !isMax {
		nn, c := x.shape[0], x.shape[1]
		n.kernel = func(rc *runCtx) func() error {
			v := rc.f32
			return func() error {
				kernels.GlobalAvgPool(rc.pool, nn, c, inner, v[xi], v[yi])
				return nil
			}
		}
		return nil
	}
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		body := func(lo, hi int) {
			x, y := v[xi], v[yi]
			for r := lo; r < hi; r++ {
				src := x[r*inner : (r+1)*inner]
				if isMax {
					m := src[0]
					for _, s := range src[1:] {
						m = max(m, s)
					}
					y[r] = m
				} else {
					var s float32
					for _, e := range src {
						s += e
					}
					y[r] = s / float32(inner)
				}
			}
		}
		return func() error {
			rc.parallel(rows, inner, body)
			return nil
		}
	}
	return nil
}
