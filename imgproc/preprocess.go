package imgproc

import "fmt"

// Preprocessor is the whole path from a decoded image to one item of an
// NCHW float32 batch, keeping its buffers so that a stream of images of one
// size allocates nothing. It is not safe for concurrent use: give each
// worker its own (they are cheap).
//
// With Resize > 0 it is torchvision's evaluation transform
//
//	Resize(Resize), CenterCrop((H, W)), ToTensor(), Normalize(...)
//
// and with Resize == 0 the image is resized straight to W×H (both passes
// of the same antialiased bilinear filter), what a 32×32 CIFAR model wants;
// an image already W×H is used as it is.
type Preprocessor struct {
	Resize int         // shorter side before the center crop; 0: resize straight to W×H
	W, H   int         // model input width and height
	Norm   *Normalizer // nil: ImageNet torch mode

	resizer         Resizer
	scaled, cropped *Image
}

// Prepare returns img resized and cropped to W×H. The result may be img
// itself or a buffer the next call overwrites. With Resize > 0 an image
// whose shorter-side resize would exceed DefaultMaxPixels (an extreme
// aspect ratio) is refused with an error wrapping ErrTooLarge.
func (p *Preprocessor) Prepare(img *Image) (*Image, error) {
	if p.W <= 0 || p.H <= 0 || p.Resize < 0 {
		return nil, fmt.Errorf("imgproc: preprocessor needs a positive size (W %d, H %d, Resize %d)", p.W, p.H, p.Resize)
	}
	if img.W <= 0 || img.H <= 0 {
		return nil, fmt.Errorf("imgproc: empty %dx%d image", img.W, img.H)
	}
	if p.Resize == 0 {
		if img.W == p.W && img.H == p.H {
			return img, nil
		}
		p.scaled = p.resizer.Resize(p.scaled, img, p.W, p.H)
		return p.scaled, nil
	}
	w, h := ShorterSide(img.W, img.H, p.Resize)
	// An extreme aspect ratio (a 1×65535 GIF is a few hundred bytes)
	// would make the intermediate image enormous: refuse it.
	if px := int64(w) * int64(h); w <= 0 || h <= 0 || px > DefaultMaxPixels {
		return nil, fmt.Errorf("imgproc: %w: a %dx%d image resized to shorter side %d would be %dx%d, over the limit of %d pixels", ErrTooLarge, img.W, img.H, p.Resize, w, h, DefaultMaxPixels)
	}
	src := img
	if w != img.W || h != img.H {
		p.scaled = p.resizer.Resize(p.scaled, img, w, h)
		src = p.scaled
	}
	if src.W == p.W && src.H == p.H {
		return src, nil
	}
	p.cropped = CenterCropInto(p.cropped, src, p.W, p.H)
	return p.cropped, nil
}

// Write prepares img and writes it as item i of the NCHW batch dst, which
// holds at least (i+1)×3×H×W values.
func (p *Preprocessor) Write(dst []float32, i int, img *Image) error {
	m, err := p.Prepare(img)
	if err != nil {
		return err
	}
	z := p.Norm
	if z == nil {
		z = imageNet
	}
	return z.Write(dst, i, m)
}

var imageNet = ImageNet()
