// Package imgproc turns image files into model input: decoding (JPEG, PNG,
// GIF, BMP, WebP) with a size limit, resizing as torchvision does with PIL
// images (antialiased bilinear, bit-exact with Pillow for 8-bit RGB), center
// cropping, and conversion to normalised NCHW float32 in a caller-provided
// batch buffer.
//
// Everything works on [Image], 8-bit RGB stored as three planes (R, G, B),
// each H×W row-major: the layout of a CIFAR binary record and the channel
// layout of an NCHW tensor, so the last step is a per-plane table lookup.
//
// The evaluation pipeline of a torchvision ImageNet model,
//
//	Resize(256), CenterCrop(224), ToTensor(), Normalize(mean, std)
//
// is
//
//	img, err := imgproc.DecodeFile(path)
//	p := imgproc.Preprocessor{Resize: 256, W: 224, H: 224, Norm: imgproc.ImageNet()}
//	err = p.Write(batch, i, img) // batch holds N×3×224×224 float32; item i
//
// and a 32×32 CIFAR model takes any image resized directly to 32×32, with
// its own statistics:
//
//	norm, err := imgproc.NewNormalizer(imgproc.Norm{Mode: imgproc.ModeTorch,
//		Mean: []float32{0.4914, 0.4822, 0.4465}, Std: []float32{0.2470, 0.2435, 0.2616}})
//	p := imgproc.Preprocessor{W: 32, H: 32, Norm: norm}
//
// Where the outputs come from: decoding matches Pillow (JPEG chroma
// upsampling and colour conversion as libjpeg, lossy WebP as libwebp),
// resizing and cropping match torchvision on PIL images bit for bit, and
// normalisation matches torchvision and Keras' preprocess_input modes to
// the last float32 bit; golden_test.go compares with files made by
// torchvision 0.14 and Pillow 9.4, with the tolerances it explains (only
// JPEG differs, by Go's IDCT: 0.04 levels on average).
package imgproc

import (
	"fmt"
	"image"
	"image/color"
)

// Image is an 8-bit RGB image stored as planes: Pix holds W×H red values,
// then W×H green values, then W×H blue values, each plane row-major. It
// implements image.Image (for encoding and debugging; At is slow).
type Image struct {
	W, H int
	Pix  []uint8 // len 3*W*H
}

// NewImage returns a black w×h image.
func NewImage(w, h int) *Image {
	if w < 0 || h < 0 {
		panic(fmt.Sprintf("imgproc: negative image size %dx%d", w, h))
	}
	return &Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
}

// FromPlanar wraps planar RGB bytes (len 3*w*h, R plane, G plane, B plane)
// without copying them, e.g. one CIFAR record's 3,072 pixel bytes.
func FromPlanar(w, h int, pix []uint8) (*Image, error) {
	if w <= 0 || h <= 0 || len(pix) != 3*w*h {
		return nil, fmt.Errorf("imgproc: %d bytes are not a %dx%d planar RGB image (%d bytes)", len(pix), w, h, 3*w*h)
	}
	return &Image{W: w, H: h, Pix: pix}, nil
}

// Plane returns channel c (0 red, 1 green, 2 blue), sharing Pix.
func (m *Image) Plane(c int) []uint8 {
	n := m.W * m.H
	return m.Pix[c*n : (c+1)*n : (c+1)*n]
}

// RGB returns the pixel at (x, y).
func (m *Image) RGB(x, y int) (r, g, b uint8) {
	n, i := m.W*m.H, y*m.W+x
	return m.Pix[i], m.Pix[n+i], m.Pix[2*n+i]
}

// Clone returns a deep copy.
func (m *Image) Clone() *Image {
	return &Image{W: m.W, H: m.H, Pix: append([]uint8(nil), m.Pix...)}
}

// ColorModel implements image.Image.
func (m *Image) ColorModel() color.Model { return color.RGBAModel }

// Bounds implements image.Image.
func (m *Image) Bounds() image.Rectangle { return image.Rect(0, 0, m.W, m.H) }

// At implements image.Image.
func (m *Image) At(x, y int) color.Color {
	if x < 0 || y < 0 || x >= m.W || y >= m.H {
		return color.RGBA{}
	}
	r, g, b := m.RGB(x, y)
	return color.RGBA{r, g, b, 0xff}
}

// ensure returns m resized to w×h when it has room, or a new image.
func ensure(m *Image, w, h int) *Image {
	if m == nil {
		return NewImage(w, h)
	}
	if cap(m.Pix) < 3*w*h {
		m.Pix = make([]uint8, 3*w*h)
	}
	m.W, m.H, m.Pix = w, h, m.Pix[:3*w*h]
	return m
}

// FromImage converts any image.Image to planar RGB the way Pillow's
// convert("RGB") does: alpha is dropped (colours are un-premultiplied, not
// composited on a background), gray is replicated, 16-bit samples keep their
// high byte, palettes are looked up. JPEG's YCbCr is converted as libjpeg
// does (see [FromYCbCr]).
func FromImage(src image.Image) *Image {
	return FromImageInto(nil, src)
}

// FromImageInto is FromImage reusing dst's pixel buffer when it is large
// enough; dst may be nil.
func FromImageInto(dst *Image, src image.Image) *Image {
	bnd := src.Bounds()
	w, h := bnd.Dx(), bnd.Dy()
	switch s := src.(type) {
	case *Image:
		dst = ensure(dst, w, h)
		copy(dst.Pix, s.Pix)
		return dst
	case *image.YCbCr:
		return FromYCbCrInto(dst, s)
	}
	dst = ensure(dst, w, h)
	n := w * h
	R, G, B := dst.Pix[:n], dst.Pix[n:2*n], dst.Pix[2*n:]
	switch s := src.(type) {
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := s.Pix[s.PixOffset(bnd.Min.X, bnd.Min.Y+y):]
			for x := 0; x < w; x++ {
				i := y*w + x
				R[i], G[i], B[i] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := s.Pix[s.PixOffset(bnd.Min.X, bnd.Min.Y+y):]
			for x := 0; x < w; x++ {
				i := y*w + x
				r, g, b, a := row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]
				if a != 0xff {
					c := color.NRGBAModel.Convert(color.RGBA{r, g, b, a}).(color.NRGBA)
					r, g, b = c.R, c.G, c.B
				}
				R[i], G[i], B[i] = r, g, b
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			o := s.PixOffset(bnd.Min.X, bnd.Min.Y+y)
			row := s.Pix[o : o+w]
			copy(R[y*w:], row)
			copy(G[y*w:], row)
			copy(B[y*w:], row)
		}
	case *image.Paletted:
		var lut [256][3]uint8
		for k, c := range s.Palette {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[k] = [3]uint8{n.R, n.G, n.B}
		}
		for y := 0; y < h; y++ {
			o := s.PixOffset(bnd.Min.X, bnd.Min.Y+y)
			row := s.Pix[o : o+w]
			for x, k := range row {
				i := y*w + x
				R[i], G[i], B[i] = lut[k][0], lut[k][1], lut[k][2]
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := color.NRGBA64Model.Convert(src.At(bnd.Min.X+x, bnd.Min.Y+y)).(color.NRGBA64)
				i := y*w + x
				R[i], G[i], B[i] = uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8)
			}
		}
	}
	return dst
}
