package infer

import (
	"math"
	"slices"
)

// resizeOp is Resize in the modes PyTorch and TensorFlow exports use.
type resizeOp struct {
	linear      bool // mode linear (else nearest)
	cubic       bool // mode cubic (with cubicA, excludeOutside)
	cubicA      float32
	exclude     bool
	coord       string    // coordinate_transformation_mode
	nearestMode string    // or "simple": Upsample and Resize-10
	scalesPort  int       // the input holding the scales: 2 (1 for Upsample-9 and Resize-10)
	attrScales  []float32 // Upsample-7's scales attribute
	upsample    bool      // Upsample: scales of at least 1
}

// newResize implements Resize, versions 11, 13, 18 and 19, on float32:
// https://onnx.ai/onnx/operators/onnx__Resize.html
//
// Modes nearest (nearest_mode round_prefer_floor, round_prefer_ceil,
// floor, ceil) on any number of dimensions, linear and cubic (with
// cubic_coeff_a and exclude_outside) on the last two (the others must keep
// their size: bilinear and bicubic, what image models use);
// coordinate transformations half_pixel, pytorch_half_pixel,
// align_corners, asymmetric, tf_half_pixel_for_nn (and half_pixel_symmetric
// from version 19); the output size from scales (floor(size·scale)) or
// sizes, which must be known when planning. Coordinates are computed in
// float32 as ONNX Runtime computes them, so that nearest picks the same
// pixels. Resize-10 is Upsample's semantics (see newUpsample). Not
// supported (refused at load): tf_crop_and_resize, antialias, axes,
// keep_aspect_ratio_policy other than stretch.
func newResize(b *nodeBuilder) op {
	if b.since < 11 {
		return newUpsample(b)
	}
	b.arity(1, 4, 1, 1)
	if b.since < 13 {
		b.arity(3, 4, 1, 1)
	}
	b.want(0, "X", Float32)
	b.want(2, "scales", Float32)
	b.want(3, "sizes", Int64)
	b.needValue(2)
	b.needValue(3)
	b.out(0, b.in(0))
	o := &resizeOp{
		coord:       b.str("coordinate_transformation_mode", "half_pixel"),
		nearestMode: b.str("nearest_mode", "round_prefer_floor"),
		scalesPort:  2,
	}
	switch mode := b.str("mode", "nearest"); mode {
	case "nearest":
	case "linear":
		o.linear = true
	case "cubic":
		o.cubic = true
	default:
		b.invalid("mode %q is not nearest, linear or cubic", mode)
	}
	coords := []string{"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"}
	if b.since >= 19 {
		coords = append(coords, "half_pixel_symmetric")
	}
	switch {
	case o.coord == "tf_crop_and_resize":
		b.fail("coordinate_transformation_mode tf_crop_and_resize is not supported")
	case !slices.Contains(coords, o.coord):
		b.invalid("coordinate_transformation_mode %q is unknown to Resize-%d", o.coord, b.since)
	}
	if !o.linear && !o.cubic && !slices.Contains([]string{"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}, o.nearestMode) {
		b.invalid("nearest_mode %q is unknown", o.nearestMode)
	}
	o.cubicA = b.float("cubic_coeff_a", -0.75)
	o.exclude = b.boolAttr("exclude_outside", false)
	b.float("extrapolation_value", 0) // tf_crop_and_resize only
	if b.since >= 18 {
		if b.boolAttr("antialias", false) {
			b.fail("antialias=1 is not supported")
		}
		if _, ok := b.ints("axes"); ok {
			b.fail("attribute axes is not supported")
		}
		if p := b.str("keep_aspect_ratio_policy", "stretch"); p != "stretch" {
			b.fail("keep_aspect_ratio_policy %q is not supported (stretch is)", p)
		}
	}
	return o
}

// newUpsample implements Upsample, versions 7 (scales attribute), 9
// (scales input) and Resize-10 (the same op), on float32, as ONNX Runtime
// runs them: asymmetric coordinates (x/scale); nearest takes the floor
// (the ceiling when the scale is below 1, ONNX Runtime's rule; ONNX's
// reference always floors, which differs only when downsampling by a
// scale whose reciprocal is not an integer); linear is bilinear on the
// last two dimensions; the output size is floor(size·scale). Upsample's
// scales must be at least 1 (ONNX Runtime refuses others; Resize-10 takes
// them):
// https://onnx.ai/onnx/operators/onnx__Upsample.html
func newUpsample(b *nodeBuilder) op {
	o := &resizeOp{coord: "asymmetric", nearestMode: "simple", scalesPort: 1, upsample: b.opType == "Upsample"}
	if b.opType == "Upsample" && b.since >= 10 {
		b.fail("Upsample is deprecated from opset 10 (Resize replaces it)")
	}
	if b.since < 9 {
		b.arity(1, 1, 1, 1)
		var ok bool
		if o.attrScales, ok = b.floats("scales"); !ok {
			b.invalid("attribute scales is required")
		}
	} else {
		b.arity(2, 2, 1, 1)
		b.want(1, "scales", Float32)
		b.needValue(1)
	}
	b.want(0, "X", Float32)
	b.out(0, b.in(0))
	switch mode := b.str("mode", "nearest"); mode {
	case "nearest":
	case "linear", "bilinear": // bilinear: Upsample-7's old name
		o.linear = true
	default:
		b.invalid("mode %q is not nearest or linear", mode)
	}
	return o
}

func (o *resizeOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	r := len(x.shape)
	scales := o.attrScales
	var sizes []int64
	if p := o.scalesPort; len(n.in) > p && n.in[p] != nil {
		v := n.in[p]
		if v.data == nil {
			return errShape("scales must be known when planning, but it depends on run-time data")
		}
		scales = v.data.Float32
	}
	if len(n.in) > 3 && n.in[3] != nil {
		var err error
		if sizes, err = valueInts(n.in[3], "sizes"); err != nil {
			return err
		}
	}
	switch {
	case len(scales) > 0 && len(sizes) > 0:
		return errShape("scales and sizes are both given")
	case len(scales) == 0 && len(sizes) == 0:
		return errShape("neither scales nor sizes is given")
	case len(scales) > 0 && len(scales) != r, len(sizes) > 0 && len(sizes) != r:
		return errShape("scales %v / sizes %v do not match the input's rank %d", scales, sizes, r)
	}
	out := make([]int, r)
	sc := make([]float32, r)
	for d := range r {
		if len(sizes) > 0 {
			if sizes[d] < 0 || sizes[d] > int64(pc.maxElems) {
				return errShape("sizes %v: %d is out of range", sizes, sizes[d])
			}
			out[d] = int(sizes[d])
			sc[d] = float32(out[d]) / float32(x.shape[d])
			continue
		}
		s := scales[d]
		if !(s > 0) || float64(s)*float64(x.shape[d]) > float64(pc.maxElems) {
			return errShape("scales %v: %g is not a positive scale within the size limit", scales, s)
		}
		if o.upsample && s < 1 {
			return errShape("scales %v: Upsample scales must be at least 1, as ONNX Runtime requires (Resize downsamples)", scales)
		}
		sc[d] = s
		// In float32, as ONNX Runtime computes it (a float64 product can
		// fall below an integer the float32 one rounds to).
		out[d] = int(float32(math.Floor(float64(s * float32(x.shape[d])))))
	}
	if err := n.setShape(pc, 0, out); err != nil {
		return err
	}
	if prod(out) == 0 {
		n.kernel = func(rc *runCtx) func() error { return func() error { return nil } }
		return nil
	}
	if prod(x.shape) == 0 {
		return errShape("cannot resize the empty input of shape %v to %v", x.shape, out)
	}
	xi, yi := x.id, n.out[0].id
	if o.linear || o.cubic {
		for d := 0; d < r-2; d++ {
			if out[d] != x.shape[d] {
				return errShape("linear or cubic Resize of shape %v to %v: only the last two dimensions can change (bilinear, bicubic)", x.shape, out)
			}
		}
		if r < 2 {
			return errShape("linear or cubic Resize needs at least 2 dimensions, the input has shape %v", x.shape)
		}
	}
	if o.cubic {
		inH, inW, outH, outW := x.shape[r-2], x.shape[r-1], out[r-2], out[r-1]
		ys := o.cubicTaps(inH, outH, sc[r-2])
		xs := o.cubicTaps(inW, outW, sc[r-1])
		planes := prod(out[:r-2])
		n.kernel = func(rc *runCtx) func() error {
			v := rc.f32
			body := func(lo, hi int) {
				src, dst := v[xi], v[yi]
				for p := lo; p < hi; p++ {
					in, o := src[p*inH*inW:(p+1)*inH*inW], dst[p*outH*outW:(p+1)*outH*outW]
					for i, ty := range ys {
						row := o[i*outW : (i+1)*outW]
						for j, tx := range xs {
							var sum float32
							for a := range 4 {
								r := in[ty.i[a]*inW : (ty.i[a]+1)*inW]
								sum += ty.w[a] * (tx.w[0]*r[tx.i[0]] + tx.w[1]*r[tx.i[1]] + tx.w[2]*r[tx.i[2]] + tx.w[3]*r[tx.i[3]])
							}
							row[j] = sum
						}
					}
				}
			}
			return func() error {
				rc.parallel(planes, 16*outH*outW, body)
				return nil
			}
		}
		return nil
	}
	if o.linear {
		inH, inW, outH, outW := x.shape[r-2], x.shape[r-1], out[r-2], out[r-1]
		ys := o.linearTaps(inH, outH, sc[r-2])
		xs := o.linearTaps(inW, outW, sc[r-1])
		planes := prod(out[:r-2])
		n.kernel = func(rc *runCtx) func() error {
			v := rc.f32
			body := func(lo, hi int) {
				src, dst := v[xi], v[yi]
				for p := lo; p < hi; p++ {
					in, o := src[p*inH*inW:(p+1)*inH*inW], dst[p*outH*outW:(p+1)*outH*outW]
					for i, ty := range ys {
						r1, r2 := in[ty.i1*inW:(ty.i1+1)*inW], in[ty.i2*inW:(ty.i2+1)*inW]
						row := o[i*outW : (i+1)*outW]
						for j, tx := range xs {
							row[j] = ty.w1*(tx.w1*r1[tx.i1]+tx.w2*r1[tx.i2]) + ty.w2*(tx.w1*r2[tx.i1]+tx.w2*r2[tx.i2])
						}
					}
				}
			}
			return func() error {
				rc.parallel(planes, outH*outW, body)
				return nil
			}
		}
		return nil
	}
	// Nearest: an input index per output index and dimension.
	idx := make([][]int, r)
	for d := range r {
		idx[d] = make([]int, out[d])
		for i := range out[d] {
			idx[d][i] = o.nearest(o.original(i, x.shape[d], out[d], sc[d]), x.shape[d], sc[d])
		}
	}
	inSt := stridesOf(x.shape)
	inner := out[r-1]
	rows := prod(out[:r-1])
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		body := func(lo, hi int) {
			src, dst := v[xi], v[yi]
			for row := lo; row < hi; row++ {
				base, q := 0, row
				for d := r - 2; d >= 0; d-- {
					base += idx[d][q%out[d]] * inSt[d]
					q /= out[d]
				}
				y := dst[row*inner : (row+1)*inner]
				for j, k := range idx[r-1] {
					y[j] = src[base+k]
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

// original maps output coordinate i of a dimension resized from in to
// out elements (scale s) to an input coordinate, in float32 as ONNX
// Runtime does.
func (o *resizeOp) original(i, in, out int, s float32) float32 {
	x := float32(i)
	switch o.coord {
	case "asymmetric":
		return x / s
	case "pytorch_half_pixel":
		if out > 1 {
			return (x+0.5)/s - 0.5
		}
		return 0
	case "align_corners":
		if out == 1 {
			return 0
		}
		return x * float32(in-1) / float32(out-1)
	case "tf_half_pixel_for_nn":
		return (x + 0.5) / s
	case "half_pixel_symmetric":
		adj := float32(out) / (s * float32(in))
		c := float32(in) / 2 * (1 - adj)
		return c + (x+0.5)/s - 0.5
	}
	return (x+0.5)/s - 0.5 // half_pixel
}

// nearest rounds an input coordinate by nearest_mode and clamps it to the
// dimension (scale s).
func (o *resizeOp) nearest(x float32, in int, s float32) int {
	f := float32(math.Floor(float64(x)))
	var k float32
	switch o.nearestMode {
	case "simple": // ONNX Runtime's Upsample: ceil when downsampling
		k = f
		if s < 1 {
			k = float32(math.Ceil(float64(x)))
		}
	case "floor":
		k = f
	case "ceil":
		k = float32(math.Ceil(float64(x)))
	case "round_prefer_ceil":
		k = float32(math.Round(float64(x))) // halves away from zero
		if x == f+0.5 {
			k = f + 1
		}
	default: // round_prefer_floor
		k = float32(math.Round(float64(x)))
		if x == f+0.5 {
			k = f
		}
	}
	return int(min(max(k, 0), float32(in-1)))
}

// tap is one output coordinate of linear interpolation: two input
// indices and their weights.
type tap struct {
	i1, i2 int
	w1, w2 float32
}

func (o *resizeOp) linearTaps(in, out int, s float32) []tap {
	taps := make([]tap, out)
	for i := range taps {
		x := min(max(o.original(i, in, out, s), 0), float32(in-1))
		i1 := int(x)
		i2 := min(i1+1, in-1)
		d := x - float32(i1)
		t := tap{i1: i1, i2: i2, w1: 1 - d, w2: d}
		if i1 == i2 {
			t.w1, t.w2 = 0.5, 0.5
		}
		taps[i] = t
	}
	return taps
}

// tap4 is one output coordinate of cubic interpolation: four input
// indices (clamped to the edges) and their weights.
type tap4 struct {
	i [4]int
	w [4]float32
}

// cubicTaps computes the cubic convolution taps (Keys' kernel with
// coefficient cubic_coeff_a) as ONNX Runtime does: the coordinate is not
// clamped, out-of-range neighbours read the edge, or with exclude_outside
// get no weight (the others renormalised).
func (o *resizeOp) cubicTaps(in, out int, s float32) []tap4 {
	a := o.cubicA
	taps := make([]tap4, out)
	for k := range taps {
		x := o.original(k, in, out, s)
		f := float32(math.Floor(float64(x)))
		t := x - f
		c := [4]float32{
			((a*(t+1)-5*a)*(t+1)+8*a)*(t+1) - 4*a,
			((a+2)*t-(a+3))*t*t + 1,
			((a+2)*(1-t)-(a+3))*(1-t)*(1-t) + 1,
			((a*(2-t)-5*a)*(2-t)+8*a)*(2-t) - 4*a,
		}
		var sum float32
		for m := range 4 {
			idx := int(f) + m - 1
			if o.exclude && (idx < 0 || idx >= in) {
				c[m] = 0
			}
			sum += c[m]
			taps[k].i[m] = min(max(idx, 0), in-1)
		}
		if o.exclude && sum != 0 {
			for m := range c {
				c[m] /= sum
			}
		}
		taps[k].w = c
	}
	return taps
}
