package imgproc

import "image"

// Lossy WebP (VP8) stores BT.601 "studio range" YUV 4:2:0, not JPEG's full
// range: x/image/webp hands it over as an image.YCbCr, and converting that
// with JPEG's formulas shifts colours by several levels. FromWebPYUV converts
// as libwebp (and so Pillow) does by default: its "fancy" upsampler
// (UpsampleRgbaLinePair in src/dsp/upsampling.c, a 9-3-3-1 filter computed
// in two rounded steps) and its 14-bit fixed-point VP8YUVToR/G/B
// (src/dsp/yuv.h). VP8 decoding itself is specified bit-exactly, so the
// result matches Pillow's.

func webpClip(v int32) uint8 {
	const fix2, mask = 6, (256 << 6) - 1
	if v&^mask == 0 {
		return uint8(v >> fix2)
	}
	if v < 0 {
		return 0
	}
	return 255
}

func multHi(v, coeff int32) int32 { return (v * coeff) >> 8 }

// FromWebPYUV converts a decoded lossy WebP (4:2:0, origin at 0,0) to planar
// RGB as libwebp does. Other subsamplings fall back to FromYCbCr.
func FromWebPYUV(src *image.YCbCr) *Image {
	b := src.Rect
	if src.SubsampleRatio != image.YCbCrSubsampleRatio420 || b.Min != (image.Point{}) {
		return FromYCbCr(src)
	}
	w, h := b.Dx(), b.Dy()
	dst := NewImage(w, h)
	if w == 0 || h == 0 {
		return dst
	}
	n := w * h
	R, G, B := dst.Pix[:n], dst.Pix[n:2*n], dst.Pix[2*n:]
	cw := (w + 1) / 2
	u := make([]uint8, w)
	v := make([]uint8, w)
	for y := 0; y < h; y++ {
		// Output row y pairs chroma row near (the closer one) with far:
		// row 0 with itself, rows 2k-1 (near k-1) and 2k (near k) with
		// rows k-1 and k, the last row of an even height with itself.
		var near, far int
		switch {
		case y == 0:
			near, far = 0, 0
		case y&1 == 1:
			near, far = y>>1, y>>1+1
		default:
			near, far = y>>1, y>>1-1
		}
		far = min(far, (h+1)/2-1)
		if y == h-1 && h&1 == 0 {
			far = near
		}
		webpUpsampleRow(u, src.Cb[near*src.CStride:near*src.CStride+cw], src.Cb[far*src.CStride:far*src.CStride+cw])
		webpUpsampleRow(v, src.Cr[near*src.CStride:near*src.CStride+cw], src.Cr[far*src.CStride:far*src.CStride+cw])
		yrow := src.Y[y*src.YStride : y*src.YStride+w]
		o := y * w
		for x, yy := range yrow {
			yv, uv, vv := int32(yy), int32(u[x]), int32(v[x])
			R[o+x] = webpClip(multHi(yv, 19077) + multHi(vv, 26149) - 14234)
			G[o+x] = webpClip(multHi(yv, 19077) - multHi(uv, 6419) - multHi(vv, 13320) + 8708)
			B[o+x] = webpClip(multHi(yv, 19077) + multHi(uv, 33050) - 17685)
		}
	}
	return dst
}

// webpUpsampleRow fills out (the output width) from the chroma row near and
// the other row far, as one half of libwebp's line-pair upsampler.
func webpUpsampleRow(out, near, far []uint8) {
	w := len(out)
	n0, f0 := int32(near[0]), int32(far[0])
	out[0] = uint8((3*n0 + f0 + 2) >> 2)
	for x := 1; x <= (w-1)>>1; x++ {
		tl, t := int32(near[x-1]), int32(near[x]) // the near row, left and right
		l, c := int32(far[x-1]), int32(far[x])    // the far row
		avg := tl + t + l + c + 8
		diag12 := (avg + 2*(t+l)) >> 3
		diag03 := (avg + 2*(tl+c)) >> 3
		out[2*x-1] = uint8((diag12 + tl) >> 1)
		out[2*x] = uint8((diag03 + t) >> 1)
	}
	if w&1 == 0 {
		last := (w - 1) >> 1
		out[w-1] = uint8((3*int32(near[last]) + int32(far[last]) + 2) >> 2)
	}
}
