package imgproc

import (
	"fmt"
	"math"
)

// Resizing follows Pillow's Image.resize(size, Image.BILINEAR), which is what
// torchvision.transforms.Resize does to PIL images (ImageFolder loads PIL
// images, so this is the standard ImageNet evaluation pipeline). The filter
// is the triangle (tent) kernel with support 1, widened by the scale factor
// when shrinking, so shrinking averages every source pixel under the output
// pixel (antialiasing) instead of sampling two. The implementation is
// Pillow's libImaging/Resample.c step for step: float64 weights normalised to
// sum 1 per output pixel, converted to 22-bit fixed point, a horizontal pass
// then a vertical pass, each rounding and clamping to 8 bits. For 8-bit RGB
// the result is bit-exact with Pillow (the golden tests compare).
//
// torchvision's tensor path (F.resize on a tensor with antialias=True) uses
// the same kernel in floating point without the 8-bit rounding between the
// passes; it differs from this by less than one level.

const precisionBits = 32 - 8 - 2

// coeffs holds, per output pixel, the first input index, the tap count, and
// ksize fixed-point weights.
type coeffs struct {
	inSize, outSize int
	ksize           int
	bounds          []int // 2 per output: xmin, count
	k               []int32
	// The same weights over a window of exactly ksize inputs per output
	// (zeros where Pillow's taps end), starting at start[xx]; nil when the
	// input is shorter than ksize. Zero weights add nothing, so sums are
	// unchanged; the fixed window lets the horizontal pass unroll.
	start  []int
	padded []int32
}

// bilinear is Pillow's bilinear_filter.
func bilinear(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

// precompute is Pillow's precompute_coeffs + normalize_coeffs_8bpc for the
// whole input range (box 0..inSize).
func precompute(inSize, outSize int) coeffs {
	const support0 = 1.0 // bilinear
	scale := float64(inSize) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := support0 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := coeffs{inSize: inSize, outSize: outSize, ksize: ksize, bounds: make([]int, 2*outSize), k: make([]int32, outSize*ksize)}
	w := make([]float64, ksize)
	for xx := 0; xx < outSize; xx++ {
		center := (float64(xx) + 0.5) * scale
		ss := 1 / filterscale
		xmin := int(center - support + 0.5) // C's (int) truncates toward zero
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		ww := 0.0
		for x := 0; x < xmax; x++ {
			w[x] = bilinear((float64(x+xmin) - center + 0.5) * ss)
			ww += w[x]
		}
		k := c.k[xx*ksize : (xx+1)*ksize]
		for x := 0; x < xmax; x++ {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				k[x] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		c.bounds[2*xx], c.bounds[2*xx+1] = xmin, xmax
	}
	if inSize >= ksize {
		c.start = make([]int, outSize)
		c.padded = make([]int32, outSize*ksize)
		for xx := 0; xx < outSize; xx++ {
			xmin, n := c.bounds[2*xx], c.bounds[2*xx+1]
			st := min(xmin, inSize-ksize)
			c.start[xx] = st
			copy(c.padded[xx*ksize+xmin-st:], c.k[xx*ksize:xx*ksize+n])
		}
	}
	return c
}

func clipFixed(v int32) uint8 {
	if v >= 1<<precisionBits<<8 {
		return 255
	}
	if v <= 0 {
		return 0
	}
	return uint8(v >> precisionBits)
}

// Resizer resizes images, keeping its weight tables and intermediate buffer
// between calls so a steady stream of same-sized images allocates nothing.
// The zero value is ready to use; a Resizer is not safe for concurrent use.
type Resizer struct {
	h, v coeffs
	tmp  []uint8
	acc  []int32
}

func (r *Resizer) tables(sw, sh, dw, dh int) {
	if r.h.inSize != sw || r.h.outSize != dw || r.h.k == nil {
		r.h = precompute(sw, dw)
	}
	if r.v.inSize != sh || r.v.outSize != dh || r.v.k == nil {
		r.v = precompute(sh, dh)
	}
}

// Resize scales src to w×h into dst (reused when its buffer is large
// enough; may be nil) and returns it. dst must not be src.
func (r *Resizer) Resize(dst, src *Image, w, h int) *Image {
	if w <= 0 || h <= 0 || src.W <= 0 || src.H <= 0 {
		panic(fmt.Sprintf("imgproc: resize %dx%d to %dx%d", src.W, src.H, w, h))
	}
	dst = ensure(dst, w, h)
	if w == src.W && h == src.H {
		copy(dst.Pix, src.Pix)
		return dst
	}
	r.tables(src.W, src.H, w, h)
	needH, needV := w != src.W, h != src.H
	if cap(r.acc) < w {
		r.acc = make([]int32, w)
	}
	acc := r.acc[:w]
	sn, dn := src.W*src.H, w*h
	for c := 0; c < 3; c++ {
		in := src.Pix[c*sn : (c+1)*sn]
		out := dst.Pix[c*dn : (c+1)*dn]
		switch {
		case needH && needV:
			if cap(r.tmp) < w*src.H {
				r.tmp = make([]uint8, w*src.H)
			}
			tmp := r.tmp[:w*src.H]
			horizontal(tmp, in, src.W, src.H, &r.h)
			vertical(out, tmp, acc, &r.v)
		case needH:
			horizontal(out, in, src.W, src.H, &r.h)
		default:
			vertical(out, in, acc, &r.v)
		}
	}
	return dst
}

// horizontal resamples each of the rows of in (width sw) to c.outSize.
func horizontal(out, in []uint8, sw, rows int, c *coeffs) {
	dw := c.outSize
	const half = int32(1 << (precisionBits - 1))
	for y := 0; y < rows; y++ {
		src := in[y*sw : (y+1)*sw]
		dst := out[y*dw : (y+1)*dw]
		switch {
		case c.padded != nil && c.ksize == 3:
			for xx := range dst {
				s, k := src[c.start[xx]:], c.padded[xx*3:xx*3+3]
				s = s[:3]
				dst[xx] = clipFixed(half + int32(s[0])*k[0] + int32(s[1])*k[1] + int32(s[2])*k[2])
			}
		case c.padded != nil && c.ksize == 5:
			for xx := range dst {
				s, k := src[c.start[xx]:], c.padded[xx*5:xx*5+5]
				s = s[:5]
				dst[xx] = clipFixed(half + int32(s[0])*k[0] + int32(s[1])*k[1] + int32(s[2])*k[2] + int32(s[3])*k[3] + int32(s[4])*k[4])
			}
		case c.padded != nil && c.ksize == 7:
			for xx := range dst {
				s, k := src[c.start[xx]:], c.padded[xx*7:xx*7+7]
				s = s[:7]
				dst[xx] = clipFixed(half + int32(s[0])*k[0] + int32(s[1])*k[1] + int32(s[2])*k[2] + int32(s[3])*k[3] +
					int32(s[4])*k[4] + int32(s[5])*k[5] + int32(s[6])*k[6])
			}
		default:
			for xx := range dst {
				xmin, n := c.bounds[2*xx], c.bounds[2*xx+1]
				k := c.k[xx*c.ksize : xx*c.ksize+n]
				s := src[xmin : xmin+n]
				s = s[:len(k)]
				ss := half
				for i, kv := range k {
					ss += int32(s[i]) * kv
				}
				dst[xx] = clipFixed(ss)
			}
		}
	}
}

// vertical resamples the columns of in (width len(acc)) to c.outSize rows.
func vertical(out, in []uint8, acc []int32, c *coeffs) {
	w := len(acc)
	for yy := 0; yy < c.outSize; yy++ {
		ymin, n := c.bounds[2*yy], c.bounds[2*yy+1]
		k := c.k[yy*c.ksize : yy*c.ksize+n]
		for x := range acc {
			acc[x] = 1 << (precisionBits - 1)
		}
		i := 0
		for ; i+2 <= len(k); i += 2 {
			r0 := in[(ymin+i)*w : (ymin+i+1)*w]
			r1 := in[(ymin+i+1)*w : (ymin+i+2)*w]
			k0, k1 := k[i], k[i+1]
			r0, r1 = r0[:len(acc)], r1[:len(acc)]
			for x := range acc {
				acc[x] += int32(r0[x])*k0 + int32(r1[x])*k1
			}
		}
		if i < len(k) {
			r0 := in[(ymin+i)*w : (ymin+i+1)*w]
			r0 = r0[:len(acc)]
			k0 := k[i]
			for x := range acc {
				acc[x] += int32(r0[x]) * k0
			}
		}
		dst := out[yy*w : (yy+1)*w]
		dst = dst[:len(acc)]
		for x, v := range acc {
			dst[x] = clipFixed(v)
		}
	}
}

// Resize returns src scaled to w×h with Pillow's antialiased bilinear
// filter: torchvision's Resize((h, w)) on a PIL image.
func Resize(src *Image, w, h int) *Image {
	var r Resizer
	return r.Resize(nil, src, w, h)
}

// ShorterSide returns the size torchvision's Resize(s) gives a w×h image:
// the shorter side becomes s and the longer int(s*long/short) (truncated,
// as Python's int() of the float quotient does).
func ShorterSide(w, h, s int) (int, int) {
	if w <= h {
		return s, int(float64(s*h) / float64(w))
	}
	return int(float64(s*w) / float64(h)), s
}

// ResizeShorter scales src so that its shorter side is s, keeping the
// aspect ratio: torchvision.transforms.Resize(s) on a PIL image.
func ResizeShorter(src *Image, s int) *Image {
	w, h := ShorterSide(src.W, src.H, s)
	return Resize(src, w, h)
}

// CenterCrop returns the w×h center of src as torchvision's CenterCrop does:
// the top-left corner is at round((H-h)/2), round((W-w)/2) with Python's
// round-half-to-even, and a side shorter than the crop is first padded with
// zeros ((d)//2 before, (d+1)//2 after).
func CenterCrop(src *Image, w, h int) *Image {
	return CenterCropInto(nil, src, w, h)
}

// CenterCropInto is CenterCrop reusing dst's buffer when large enough.
func CenterCropInto(dst, src *Image, w, h int) *Image {
	dst = ensure(dst, w, h)
	// Offsets of the crop in src coordinates; negative when padding.
	x0, y0 := cropOffset(src.W, w), cropOffset(src.H, h)
	sn, dn := src.W*src.H, w*h
	for c := 0; c < 3; c++ {
		in, out := src.Pix[c*sn:(c+1)*sn], dst.Pix[c*dn:(c+1)*dn]
		for y := 0; y < h; y++ {
			row := out[y*w : (y+1)*w]
			sy := y0 + y
			if sy < 0 || sy >= src.H {
				clear(row)
				continue
			}
			for x := range row {
				sx := x0 + x
				if sx < 0 || sx >= src.W {
					row[x] = 0
				} else {
					row[x] = in[sy*src.W+sx]
				}
			}
		}
	}
	return dst
}

// cropOffset is where a crop of size c starts in a side of size n.
func cropOffset(n, c int) int {
	if c > n {
		// Pad (c-n)//2 before; the padded side is exactly c, offset 0.
		return -((c - n) / 2)
	}
	return int(math.RoundToEven(float64(n-c) / 2))
}
