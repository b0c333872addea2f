package infer

import (
	"fmt"
	"math"
	"slices"

	"github.com/resnetctl/resnetctl/internal/kernels"
)

// The quantized ops: QuantizeLinear and DequantizeLinear (the QDQ form
// quantizers write), DynamicQuantizeLinear, and the integer operators
// ConvInteger, MatMulInteger, QLinearConv and QLinearMatMul (the operator
// form). uint8 and int8 values are held as int32 inside a run (see
// DType); integer products accumulate in int32 as ONNX Runtime's do.
//
// These are the reference implementations, exact by construction; fuse
// replaces the QDQ pattern around a convolution by the float kernels
// where that computes the same thing.

// qRange is the range of the integer type dt (uint8 when not int8).
func qRange(dt DType) (lo, hi int32) {
	if dt == Int8 {
		return -128, 127
	}
	return 0, 255
}

// scaleMsg describes the first scale that is not a positive finite
// number, or returns "".
func scaleMsg(what string, s []float32) string {
	for i, v := range s {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			if len(s) == 1 {
				return fmt.Sprintf("%s is %g: a scale must be positive and finite", what, v)
			}
			return fmt.Sprintf("%s[%d] is %g: a scale must be positive and finite", what, i, v)
		}
	}
	return ""
}

// checkScales returns an ErrInput error naming the first scale that is
// not a positive finite number.
func checkScales(what string, s []float32) error {
	if msg := scaleMsg(what, s); msg != "" {
		return fmt.Errorf("%w: %s", ErrInput, msg)
	}
	return nil
}

// checkConstScale refuses, at load, a constant scale input that is not
// positive and finite.
func checkConstScale(b *nodeBuilder, i int, what string) {
	if t := b.constIn(i); t != nil && t.Type() == Float32 {
		if msg := scaleMsg(what, t.Float32); msg != "" {
			b.invalid("%s", msg)
		}
	}
}

// qParam is where a scale and zero point are found at run time, and how
// they apply to the elements of a tensor: one pair for the whole tensor
// (n 1), or one per index of an axis whose steps are inner elements apart.
type qParam struct {
	scale, zp int // value ids; zp < 0 when absent (zero)
	n, inner  int
}

// planQParam checks a scale and optional zero point against the shape of
// the tensor they apply to: scalars (or one-element vectors) apply to all
// of it, a 1-D tensor to the given axis.
func planQParam(what string, shape []int, axis int, scale, zp *pval) (qParam, error) {
	p := qParam{scale: scale.id, zp: -1, n: 1, inner: max(prod(shape), 1)}
	if zp != nil {
		p.zp = zp.id
	}
	switch {
	case len(scale.shape) == 0 || len(scale.shape) == 1 && scale.shape[0] == 1:
	case len(scale.shape) == 1:
		ax, err := normAxis(axis, len(shape))
		if err != nil {
			return p, errShape("%s: axis %d for an input of rank %d", what, axis, len(shape))
		}
		if shape[ax] != scale.shape[0] {
			return p, errShape("%s has %d values, but the input's axis %d has %d", what, scale.shape[0], ax, shape[ax])
		}
		p.n, p.inner = scale.shape[0], prod(shape[ax+1:])
	default:
		return p, errShape("%s has shape %v; want a scalar or a 1-D tensor", what, scale.shape)
	}
	if zp != nil && !slices.Equal(zp.shape, scale.shape) && !(zp.size == 1 && scale.size == 1) {
		return p, errShape("zero point shape %v does not match %s shape %v", zp.shape, what, scale.shape)
	}
	if scale.data != nil {
		if err := checkScales(what, scale.data.Float32); err != nil {
			return p, err
		}
	}
	return p, nil
}

// planElementwiseQ plans what QuantizeLinear, DequantizeLinear and their
// fused pair share: the scale (named what) and optional zero point of
// inputs 1 and 2 against input 0 along axis, and an output shaped like
// input 0.
func planElementwiseQ(pc *planCtx, n *pnode, what string, axis int) (qParam, error) {
	x := n.in[0]
	var zp *pval
	if len(n.in) > 2 {
		zp = n.in[2]
	}
	p, err := planQParam(what, x.shape, axis, n.in[1], zp)
	if err != nil {
		return p, err
	}
	return p, n.setShape(pc, 0, x.shape)
}

// each checks the scales, then calls fn, in parallel, on each run of
// elements [i0, i1) that shares a scale s and zero point z.
func (p qParam) each(rc *runCtx, what string, size int, fn func(i0, i1 int, s float32, z int32)) error {
	sc := rc.f32[p.scale]
	if err := checkScales(what, sc); err != nil {
		return err
	}
	var zs []int32
	if p.zp >= 0 {
		zs = rc.i32[p.zp]
	}
	if p.n == 1 {
		s, z := sc[0], at(zs, 0, 0)
		rc.parallel(size, 4, func(i0, i1 int) { fn(i0, i1, s, z) })
		return nil
	}
	rc.parallel(size/p.inner, p.inner*4, func(b0, b1 int) {
		for blk := b0; blk < b1; blk++ {
			c := blk % p.n
			fn(blk*p.inner, (blk+1)*p.inner, sc[min(c, len(sc)-1)], at(zs, c, 0))
		}
	})
	return nil
}

// vectorParam checks a scale or zero point that is a scalar or a vector
// of n values (one per row or column of a matrix product, one per output
// channel of a convolution).
func vectorParam(what string, v *pval, n int) error {
	if v == nil || v.size == 1 && len(v.shape) <= 1 {
		return nil
	}
	if len(v.shape) != 1 || v.shape[0] != n {
		return errShape("%s has shape %v; want a scalar or [%d]", what, v.shape, n)
	}
	return nil
}

// at returns s[i], or s[0] for a single value, or def for none.
func at[T any](s []T, i int, def T) T {
	switch len(s) {
	case 0:
		return def
	case 1:
		return s[0]
	}
	return s[i]
}

// quantize rounds v/s half to even, adds z and saturates to [lo, hi], as
// QuantizeLinear defines; NaN (which ONNX leaves undefined) quantizes to
// lo, as kernels.FakeQuant does.
func quantize(v, s float32, z, lo, hi int32) int32 {
	q := math.RoundToEven(float64(v/s)) + float64(z)
	if q != q {
		return lo
	}
	return int32(min(max(q, float64(lo)), float64(hi)))
}

// requantize brings an int32 accumulator to the output type with the
// combined multiplier m = x_scale*w_scale/y_scale (float32, as ONNX
// Runtime computes it).
func requantize(acc int32, m float32, z, lo, hi int32) int32 {
	q := math.RoundToEven(float64(float32(acc)*m)) + float64(z)
	return int32(min(max(q, float64(lo)), float64(hi)))
}

// ---- QuantizeLinear / DequantizeLinear ----

type quantizeOp struct {
	axis int
	to   DType
}

// readQDQAttrs reads what QuantizeLinear and DequantizeLinear share:
// axis (13+), saturate (19+, for float8 only), block_size (21, refused).
func readQDQAttrs(b *nodeBuilder) int {
	axis := 1
	if b.since >= 13 {
		axis = int(b.int("axis", 1))
	}
	if b.since >= 19 && b.opType == "QuantizeLinear" {
		b.int("saturate", 1)
	}
	if b.since >= 21 {
		if bs := b.int("block_size", 0); bs != 0 {
			b.fail("block_size %d: blocked quantization is not supported", bs)
		}
	}
	return axis
}

// newQuantizeLinear implements QuantizeLinear, versions 10, 13, 19 and 21
// to uint8 and int8: https://onnx.ai/onnx/operators/onnx__QuantizeLinear.html
func newQuantizeLinear(b *nodeBuilder) op {
	b.arity(2, 3, 1, 1)
	b.want(0, "x", Float32)
	b.want(1, "y_scale", Float32)
	o := &quantizeOp{axis: readQDQAttrs(b), to: Uint8}
	if b.has(2) {
		if t := b.want(2, "y_zero_point", Uint8, Int8); t != 0 {
			o.to = t
		}
	}
	if b.since >= 21 && b.isSet("output_dtype") {
		od := DType(b.int("output_dtype", 0))
		switch {
		case od != Uint8 && od != Int8:
			b.fail("output_dtype %s (this runtime quantizes to uint8 and int8)", od)
		case b.has(2) && b.in(2) != 0 && od != b.in(2):
			b.invalid("output_dtype %s differs from y_zero_point's type %s", od, b.in(2))
		default:
			o.to = od
		}
	}
	checkConstScale(b, 1, "y_scale")
	b.out(0, o.to)
	return o
}

func (o *quantizeOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	p, err := planElementwiseQ(pc, n, "y_scale", o.axis)
	if err != nil {
		return err
	}
	lo, hi := qRange(o.to)
	xi, yi, size := x.id, n.out[0].id, x.size
	n.kernel = func(rc *runCtx) func() error {
		return func() error {
			X, Y := rc.f32[xi], rc.i32[yi]
			return p.each(rc, "y_scale", size, func(i0, i1 int, s float32, z int32) {
				for i := i0; i < i1; i++ {
					Y[i] = quantize(X[i], s, z, lo, hi)
				}
			})
		}
	}
	return nil
}

// fakeQuantOp is QuantizeLinear followed by DequantizeLinear with the
// same parameters (fused at load): y = (saturate(round(x/s)+z) - z)·s,
// float in and out.
type fakeQuantOp struct{ q quantizeOp }

func (o *fakeQuantOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	p, err := planElementwiseQ(pc, n, "y_scale", o.q.axis)
	if err != nil {
		return err
	}
	n.inplace = 0
	lo, hi := qRange(o.q.to)
	xi, yi, size := x.id, n.out[0].id, x.size
	n.kernel = func(rc *runCtx) func() error {
		return func() error {
			X, Y := rc.f32[xi], rc.f32[yi]
			return p.each(rc, "y_scale", size, func(i0, i1 int, s float32, z int32) {
				kernels.FakeQuant(Y[i0:i1], X[i0:i1], s, float32(lo-z), float32(hi-z))
			})
		}
	}
	return nil
}

type dequantizeOp struct{ axis int }

// newDequantizeLinear implements DequantizeLinear, versions 10, 13, 19
// and 21, from uint8, int8 and int32:
// https://onnx.ai/onnx/operators/onnx__DequantizeLinear.html
func newDequantizeLinear(b *nodeBuilder) op {
	b.arity(2, 3, 1, 1)
	xt := b.want(0, "x", Uint8, Int8, Int32)
	b.want(1, "x_scale", Float32)
	o := &dequantizeOp{axis: readQDQAttrs(b)}
	if b.has(2) {
		b.want(2, "x_zero_point", Uint8, Int8, Int32)
		b.sameType(0, 2)
		if z := b.constIn(2); z != nil && xt == Int32 && z.Type() == Int32 && slices.ContainsFunc(z.Int32, func(v int32) bool { return v != 0 }) {
			b.invalid("x_zero_point of an int32 input must be 0")
		}
	}
	checkConstScale(b, 1, "x_scale")
	b.out(0, Float32)
	return o
}

func (o *dequantizeOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	p, err := planElementwiseQ(pc, n, "x_scale", o.axis)
	if err != nil {
		return err
	}
	xi, yi, size := x.id, n.out[0].id, x.size
	n.kernel = func(rc *runCtx) func() error {
		return func() error {
			X, Y := rc.i32[xi], rc.f32[yi]
			return p.each(rc, "x_scale", size, func(i0, i1 int, s float32, z int32) {
				for i := i0; i < i1; i++ {
					Y[i] = float32(X[i]-z) * s
				}
			})
		}
	}
	return nil
}

// ---- DynamicQuantizeLinear ----

type dynQuantOp struct{}

// newDynamicQuantizeLinear implements DynamicQuantizeLinear, version 11:
// https://onnx.ai/onnx/operators/onnx__DynamicQuantizeLinear.html
func newDynamicQuantizeLinear(b *nodeBuilder) op {
	b.arity(1, 1, 3, 3)
	b.want(0, "x", Float32)
	b.out(0, Uint8)
	b.out(1, Float32)
	b.out(2, Uint8)
	return dynQuantOp{}
}

func (dynQuantOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	if err := n.setShape(pc, 0, x.shape); err != nil {
		return err
	}
	for i := 1; i < 3; i++ {
		if err := n.setShape(pc, i, []int{}); err != nil {
			return err
		}
	}
	xi, yi, si, zi := x.id, n.out[0].id, -1, -1
	if n.out[1] != nil {
		si = n.out[1].id
	}
	if n.out[2] != nil {
		zi = n.out[2].id
	}
	n.kernel = func(rc *runCtx) func() error {
		return func() error {
			X := rc.f32[xi]
			lo, hi := float32(0), float32(0)
			for _, v := range X {
				if v != v {
					return fmt.Errorf("%w: input holds NaN", ErrInput)
				}
				lo, hi = min(lo, v), max(hi, v)
			}
			if math.IsInf(float64(lo), 0) || math.IsInf(float64(hi), 0) {
				return fmt.Errorf("%w: input holds an infinity", ErrInput)
			}
			s := (hi - lo) / 255
			z := int32(0)
			if s > 0 {
				z = int32(min(max(math.RoundToEven(float64(0-lo/s)), 0), 255))
			}
			Y := rc.i32[yi]
			for i, v := range X {
				if s > 0 {
					Y[i] = quantize(v, s, z, 0, 255)
				} else {
					Y[i] = 0
				}
			}
			if si >= 0 {
				rc.f32[si][0] = s
			}
			if zi >= 0 {
				rc.i32[zi][0] = z
			}
			return nil
		}
	}
	return nil
}

// ---- integer convolutions ----

// intConvOp is ConvInteger (int32 out) or QLinearConv (requantized).
type intConvOp struct {
	conv *convOp
	q    bool  // QLinearConv
	to   DType // QLinearConv's output type
}

// newConvInteger implements ConvInteger, version 10:
// https://onnx.ai/onnx/operators/onnx__ConvInteger.html
func newConvInteger(b *nodeBuilder) op {
	b.arity(2, 4, 1, 1)
	b.want(0, "x", Uint8, Int8)
	b.want(1, "w", Uint8, Int8)
	if b.has(2) {
		b.want(2, "x_zero_point", Uint8, Int8)
		b.sameType(0, 2)
	}
	if b.has(3) {
		b.want(3, "w_zero_point", Uint8, Int8)
		b.sameType(1, 3)
	}
	b.out(0, Int32)
	return &intConvOp{conv: convAttrs(b, 1)}
}

// newQLinearConv implements QLinearConv, version 10:
// https://onnx.ai/onnx/operators/onnx__QLinearConv.html
func newQLinearConv(b *nodeBuilder) op {
	b.arity(8, 9, 1, 1)
	b.want(0, "x", Uint8, Int8)
	b.want(1, "x_scale", Float32)
	b.want(2, "x_zero_point", Uint8, Int8)
	b.sameType(0, 2)
	b.want(3, "w", Uint8, Int8)
	b.want(4, "w_scale", Float32)
	b.want(5, "w_zero_point", Uint8, Int8)
	b.sameType(3, 5)
	b.want(6, "y_scale", Float32)
	to := b.want(7, "y_zero_point", Uint8, Int8)
	b.want(8, "B", Int32)
	for i, s := range map[int]string{1: "x_scale", 4: "w_scale", 6: "y_scale"} {
		checkConstScale(b, i, s)
	}
	if to == 0 {
		to = Uint8
	}
	b.out(0, to)
	return &intConvOp{conv: convAttrs(b, 3), q: true, to: to}
}

func (o *intConvOp) plan(pc *planCtx, n *pnode) error {
	// Inputs by role.
	xv, wv := n.in[0], n.in[1]
	var xz, wz, xs, ws, ys, yz, bias *pval
	get := func(i int) *pval {
		if i < len(n.in) {
			return n.in[i]
		}
		return nil
	}
	if o.q {
		xv, xs, xz, wv, ws, wz, ys, yz, bias = n.in[0], n.in[1], n.in[2], n.in[3], n.in[4], n.in[5], n.in[6], n.in[7], get(8)
	} else {
		xz, wz = get(2), get(3)
	}
	prm, err := o.conv.geometry(xv, wv)
	if err != nil {
		return err
	}
	batch, m := xv.shape[0], wv.shape[0]
	if xz != nil && xz.size != 1 {
		return errShape("x_zero_point has shape %v; want a scalar", xz.shape)
	}
	if err := vectorParam("w_zero_point", wz, m); err != nil {
		return err
	}
	if o.q {
		for _, p := range []struct {
			name string
			v    *pval
		}{{"x_scale", xs}, {"y_scale", ys}, {"y_zero_point", yz}} {
			if p.v.size != 1 {
				return errShape("%s has shape %v; want a scalar", p.name, p.v.shape)
			}
		}
		if err := vectorParam("w_scale", ws, m); err != nil {
			return err
		}
		if bias != nil && (len(bias.shape) != 1 || bias.shape[0] != m) {
			return errShape("B has shape %v; want [%d]", bias.shape, m)
		}
	}
	outShape := []int{batch, m, prm.OutH(), prm.OutW()}
	if len(xv.shape) == 3 {
		outShape = []int{batch, m, prm.OutW()}
	}
	if err := n.setShape(pc, 0, outShape); err != nil {
		return err
	}
	g := prm.Group
	kk := prm.InC / g * prm.KH * prm.KW
	pp := prm.OutH() * prm.OutW()
	colBytes := int64(kk) * int64(pp) * 4
	accBytes := int64(0)
	if o.q {
		accBytes = int64(m) * int64(pp) * 4
	}
	if err := pc.reserve(colBytes+accBytes, "the integer convolution's workspace"); err != nil {
		return err
	}
	n.extra = colBytes + accBytes
	ids := func(v *pval) int {
		if v == nil {
			return -1
		}
		return v.id
	}
	xi, wi, yi := xv.id, wv.id, n.out[0].id
	xzi, wzi, xsi, wsi, ysi, yzi, bi := ids(xz), ids(wz), ids(xs), ids(ws), ids(ys), ids(yz), ids(bias)
	lo, hi := qRange(o.to)
	n.kernel = func(rc *runCtx) func() error {
		col := make([]int32, kk*pp)
		multBuf := make([]float32, m) // QLinearConv's multipliers, refilled each run
		var acc []int32
		if o.q {
			acc = make([]int32, m*pp)
		}
		return func() error {
			var xzv int32
			if xzi >= 0 {
				xzv = rc.i32[xzi][0]
			}
			var wzs []int32
			if wzi >= 0 {
				wzs = rc.i32[wzi]
			}
			mult := multBuf
			var yzv int32
			var bs []int32
			if o.q {
				xsc, wsc, ysc := rc.f32[xsi], rc.f32[wsi], rc.f32[ysi]
				for _, s := range []struct {
					n string
					v []float32
				}{{"x_scale", xsc}, {"w_scale", wsc}, {"y_scale", ysc}} {
					if err := checkScales(s.n, s.v); err != nil {
						return err
					}
				}
				for c := range mult {
					mult[c] = xsc[0] * at(wsc, c, 0) / ysc[0]
				}
				yzv = rc.i32[yzi][0]
				if bi >= 0 {
					bs = rc.i32[bi]
				}
			}
			X, W, Y := rc.i32[xi], rc.i32[wi], rc.i32[yi]
			mg := m / g
			for img := range batch {
				for gi := range g {
					intIm2col(prm, X[(img*prm.InC+gi*prm.InC/g)*prm.InH*prm.InW:], prm.InC/g, xzv, col)
					out := Y[(img*m+gi*mg)*pp:]
					if o.q {
						out = acc[gi*mg*pp:]
					}
					rc.parallel(mg, kk*pp, func(m0, m1 int) {
						wrow := make([]int32, kk)
						for mi := m0; mi < m1; mi++ {
							oc := gi*mg + mi
							z := at(wzs, oc, 0)
							for k := range wrow {
								wrow[k] = W[oc*kk+k] - z
							}
							intDotRows(out[mi*pp:(mi+1)*pp], wrow, col, pp)
						}
					})
				}
				if o.q {
					dst := Y[img*m*pp:]
					for oc := range m {
						bv := at(bs, oc, 0)
						for p := range pp {
							dst[oc*pp+p] = requantize(acc[oc*pp+p]+bv, mult[oc], yzv, lo, hi)
						}
					}
				}
			}
			return nil
		}
	}
	return nil
}

// intIm2col lays out one image's (one group's) c channels as the
// [c*KH*KW, OutH*OutW] matrix of a convolution's inputs, each minus the
// zero point z; padding is 0 (the zero point itself).
func intIm2col(prm kernels.ConvParams, x []int32, c int, z int32, col []int32) {
	oh, ow := prm.OutH(), prm.OutW()
	i := 0
	for ci := range c {
		plane := x[ci*prm.InH*prm.InW:]
		for kh := range prm.KH {
			for kw := range prm.KW {
				for y := range oh {
					iy := y*prm.StrideH - prm.PadTop + kh*prm.DilationH
					for xx := range ow {
						ix := xx*prm.StrideW - prm.PadLeft + kw*prm.DilationW
						if iy < 0 || iy >= prm.InH || ix < 0 || ix >= prm.InW {
							col[i] = 0
						} else {
							col[i] = plane[iy*prm.InW+ix] - z
						}
						i++
					}
				}
			}
		}
	}
}

// intDotRows sets out[p] = Σ_k w[k]*col[k*pp+p].
func intDotRows(out, w, col []int32, pp int) {
	clear(out)
	for k, wv := range w {
		if wv == 0 {
			continue
		}
		row := col[k*pp : (k+1)*pp]
		for p, c := range row {
			out[p] += wv * c
		}
	}
}

// ---- integer matrix products ----

// intMatMulOp is MatMulInteger (int32 out) or QLinearMatMul.
type intMatMulOp struct {
	q  bool
	to DType
}

// newMatMulInteger implements MatMulInteger, version 10:
// https://onnx.ai/onnx/operators/onnx__MatMulInteger.html
func newMatMulInteger(b *nodeBuilder) op {
	b.arity(2, 4, 1, 1)
	b.want(0, "A", Uint8, Int8)
	b.want(1, "B", Uint8, Int8)
	if b.has(2) {
		b.want(2, "a_zero_point", Uint8, Int8)
		b.sameType(0, 2)
	}
	if b.has(3) {
		b.want(3, "b_zero_point", Uint8, Int8)
		b.sameType(1, 3)
	}
	b.out(0, Int32)
	return &intMatMulOp{}
}

// newQLinearMatMul implements QLinearMatMul, versions 10 and 21:
// https://onnx.ai/onnx/operators/onnx__QLinearMatMul.html
func newQLinearMatMul(b *nodeBuilder) op {
	b.arity(8, 8, 1, 1)
	b.want(0, "a", Uint8, Int8)
	b.want(1, "a_scale", Float32)
	b.want(2, "a_zero_point", Uint8, Int8)
	b.sameType(0, 2)
	b.want(3, "b", Uint8, Int8)
	b.want(4, "b_scale", Float32)
	b.want(5, "b_zero_point", Uint8, Int8)
	b.sameType(3, 5)
	b.want(6, "y_scale", Float32)
	to := b.want(7, "y_zero_point", Uint8, Int8)
	for i, s := range map[int]string{1: "a_scale", 4: "b_scale", 6: "y_scale"} {
		checkConstScale(b, i, s)
	}
	if to == 0 {
		to = Uint8
	}
	b.out(0, to)
	return &intMatMulOp{q: true, to: to}
}

func (o *intMatMulOp) plan(pc *planCtx, n *pnode) error {
	get := func(i int) *pval {
		if i < len(n.in) {
			return n.in[i]
		}
		return nil
	}
	a, bm := n.in[0], n.in[1]
	var az, bz, as, bs, ys, yz *pval
	if o.q {
		a, as, az, bm, bs, bz, ys, yz = n.in[0], n.in[1], n.in[2], n.in[3], n.in[4], n.in[5], n.in[6], n.in[7]
	} else {
		az, bz = get(2), get(3)
	}
	g, err := matmulGeometry(pc, n, a, bm)
	if err != nil {
		return err
	}
	m, k, nn := g.m, g.k, g.nn
	for _, p := range []struct {
		name string
		v    *pval
		n    int
	}{{"a_zero_point", az, m}, {"b_zero_point", bz, nn}, {"a_scale", as, m}, {"b_scale", bs, nn}, {"y_scale", ys, 1}, {"y_zero_point", yz, 1}} {
		if err := vectorParam(p.name, p.v, p.n); err != nil {
			return err
		}
	}
	ids := func(v *pval) int {
		if v == nil {
			return -1
		}
		return v.id
	}
	ai, bi, yi := a.id, bm.id, n.out[0].id
	azi, bzi, asi, bsi, ysi, yzi := ids(az), ids(bz), ids(as), ids(bs), ids(ys), ids(yz)
	if err := pc.reserve(int64(k)*int64(nn)*4+int64(nn)*4, "the integer product's workspace"); err != nil {
		return err
	}
	n.extra = int64(k)*int64(nn)*4 + int64(nn)*4
	lo, hi := qRange(o.to)
	n.kernel = func(rc *runCtx) func() error {
		bw := make([]int32, k*nn)
		accRow := make([]int32, nn)
		return func() error {
			var azs, bzs []int32
			if azi >= 0 {
				azs = rc.i32[azi]
			}
			if bzi >= 0 {
				bzs = rc.i32[bzi]
			}
			var asc, bsc []float32
			var ysv float32
			var yzv int32
			if o.q {
				asc, bsc, ysv, yzv = rc.f32[asi], rc.f32[bsi], rc.f32[ysi][0], rc.i32[yzi][0]
				for _, s := range []struct {
					n string
					v []float32
				}{{"a_scale", asc}, {"b_scale", bsc}, {"y_scale", []float32{ysv}}} {
					if err := checkScales(s.n, s.v); err != nil {
						return err
					}
				}
			}
			A, B, Y := rc.i32[ai], rc.i32[bi], rc.i32[yi]
			for bi := range g.nb {
				Bm := B[g.offB[bi]:]
				for kk := range k {
					for j := range nn {
						bw[kk*nn+j] = Bm[kk*nn+j] - at(bzs, j, 0)
					}
				}
				Am := A[g.offA[bi]:]
				Ym := Y[bi*m*nn:]
				for r := range m {
					z := at(azs, r, 0)
					out := Ym[r*nn : (r+1)*nn]
					if o.q {
						out = accRow
					}
					clear(out)
					for kk := range k {
						av := Am[r*k+kk] - z
						if av == 0 {
							continue
						}
						row := bw[kk*nn : (kk+1)*nn]
						for j, bv := range row {
							out[j] += av * bv
						}
					}
					if o.q {
						sa := at(asc, r, 0)
						for j, acc := range out {
							Ym[r*nn+j] = requantize(acc, sa*at(bsc, j, 0)/ysv, yzv, lo, hi)
						}
					}
				}
			}
			return nil
		}
	}
	return nil
}
