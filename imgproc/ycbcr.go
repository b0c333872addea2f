package imgproc

import "image"

// JPEG colour conversion as libjpeg(-turbo) does it, which is what Pillow
// (and so torchvision's ImageFolder loader) uses: chroma planes are
// upsampled with libjpeg's "fancy" triangular filter (its default) and
// YCbCr becomes RGB through its fixed-point tables (jdcolor.c, 16 fraction
// bits, rounded). Go's image/jpeg repeats chroma samples (nearest) and rounds
// differently, which moves edges by several levels; matching libjpeg here
// leaves only the IDCT as a difference (±1 level on some pixels; see the
// golden tests).

// libjpeg's tables, indexed by the Cb or Cr byte.
var crR, cbB, crG, cbG = yccTables()

func yccTables() (crR, cbB, crG, cbG [256]int32) {
	const (
		scaleBits = 16
		oneHalf   = 1 << (scaleBits - 1)
	)
	fix := func(x float64) int32 { return int32(x*(1<<scaleBits) + 0.5) }
	for i := 0; i < 256; i++ {
		x := int32(i - 128)
		crR[i] = (fix(1.40200)*x + oneHalf) >> scaleBits
		cbB[i] = (fix(1.77200)*x + oneHalf) >> scaleBits
		crG[i] = -fix(0.71414) * x
		cbG[i] = -fix(0.34414)*x + oneHalf
	}
	return
}

func clamp8(v int32) uint8 {
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}

// FromYCbCr converts a decoded JPEG (or lossy WebP) to planar RGB like
// libjpeg with its defaults: fancy upsampling of 4:2:0, 4:2:2 and 4:4:0
// chroma, nearest for other subsamplings, libjpeg's rounding.
func FromYCbCr(src *image.YCbCr) *Image { return FromYCbCrInto(nil, src) }

// FromYCbCrInto is FromYCbCr reusing dst's buffer when large enough.
func FromYCbCrInto(dst *Image, src *image.YCbCr) *Image {
	b := src.Rect
	w, h := b.Dx(), b.Dy()
	dst = ensure(dst, w, h)
	if w == 0 || h == 0 {
		return dst
	}
	n := w * h
	R, G, B := dst.Pix[:n], dst.Pix[n:2*n], dst.Pix[2*n:]
	// Upsampled Cb goes into the G plane and Cr into the B plane; the
	// conversion below reads both before writing a pixel.
	if b.Min != (image.Point{}) || !upsampleFancy(G, src.Cb, src, w, h) || !upsampleFancy(B, src.Cr, src, w, h) {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				ci := src.COffset(b.Min.X+x, b.Min.Y+y)
				G[y*w+x], B[y*w+x] = src.Cb[ci], src.Cr[ci]
			}
		}
	}
	for y := 0; y < h; y++ {
		yrow := src.Y[src.YOffset(b.Min.X, b.Min.Y+y):]
		o := y * w
		r, g, bb := R[o:o+w], G[o:o+w], B[o:o+w]
		for x := range r {
			yy := int32(yrow[x])
			cb, cr := g[x], bb[x]
			r[x] = clamp8(yy + crR[cr])
			g[x] = clamp8(yy + (cbG[cb]+crG[cr])>>16)
			bb[x] = clamp8(yy + cbB[cb])
		}
	}
	return dst
}

// upsampleFancy writes the w×h upsampled chroma plane c of src into out,
// as libjpeg-turbo's h2v2_fancy_upsample, h2v1_fancy_upsample,
// h1v2_fancy_upsample and the plain replicating upsamplers do (edge rows
// and columns replicated). It reports false for subsamplings it leaves to
// the caller's nearest-neighbour path.
func upsampleFancy(out, c []uint8, src *image.YCbCr, w, h int) bool {
	cs := src.CStride
	cw, ch := w, h
	switch src.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
		for y := 0; y < h; y++ {
			copy(out[y*w:y*w+w], c[y*cs:])
		}
		return true
	case image.YCbCrSubsampleRatio420:
		cw, ch = (w+1)/2, (h+1)/2
		if cw <= 2 { // libjpeg replicates when the chroma is this narrow
			return false
		}
		for y := 0; y < h; y++ {
			cy := y >> 1
			ny := cy - 1
			if y&1 == 1 {
				ny = cy + 1
			}
			ny = min(max(ny, 0), ch-1)
			near, far := c[cy*cs:cy*cs+cw], c[ny*cs:ny*cs+cw]
			o := out[y*w : y*w+w]
			sum := func(i int) int32 { return 3*int32(near[i]) + int32(far[i]) }
			for x := range o {
				cx := x >> 1
				if x&1 == 0 {
					o[x] = uint8((3*sum(cx) + sum(max(cx-1, 0)) + 8) >> 4)
				} else {
					o[x] = uint8((3*sum(cx) + sum(min(cx+1, cw-1)) + 7) >> 4)
				}
			}
		}
		return true
	case image.YCbCrSubsampleRatio422:
		cw = (w + 1) / 2
		if cw <= 2 {
			return false
		}
		for y := 0; y < h; y++ {
			row := c[y*cs : y*cs+cw]
			o := out[y*w : y*w+w]
			for x := range o {
				cx := x >> 1
				if x&1 == 0 {
					o[x] = uint8((3*int32(row[cx]) + int32(row[max(cx-1, 0)]) + 1) >> 2)
				} else {
					o[x] = uint8((3*int32(row[cx]) + int32(row[min(cx+1, cw-1)]) + 2) >> 2)
				}
			}
		}
		return true
	case image.YCbCrSubsampleRatio440:
		ch = (h + 1) / 2
		for y := 0; y < h; y++ {
			cy := y >> 1
			ny, bias := cy-1, int32(1)
			if y&1 == 1 {
				ny, bias = cy+1, 2
			}
			ny = min(max(ny, 0), ch-1)
			near, far := c[cy*cs:cy*cs+w], c[ny*cs:ny*cs+w]
			o := out[y*w : y*w+w]
			for x := range o {
				o[x] = uint8((3*int32(near[x]) + int32(far[x]) + bias) >> 2)
			}
		}
		return true
	}
	return false
}
