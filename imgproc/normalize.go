package imgproc

import (
	"fmt"
	"math"
	"strings"
)

// Mode names a preprocessing convention (the modes of Keras'
// preprocess_input, plus raw and custom).
type Mode string

// The modes. Each maps an 8-bit sample p of channel c to a float32, computed
// step by step in float32 in the order the reference does it, so results
// are bit-identical to PyTorch's ToTensor+Normalize and to Keras on float32
// input:
//
//	torch   RGB, (p/255 - mean[c]) / std[c]     (mean, std given; ImageNet by default)
//	caffe   BGR, p - mean[c], mean = CaffeMean  (B, G, R order, 0-255 scale)
//	tf      RGB, p/127.5 - 1
//	raw     RGB, p
//	custom  RGB or BGR, (p*scale - mean[c]) / std[c]  (models.Preprocess's formula;
//	        a scale of 1/255 is computed as p/255, as PyTorch does)
const (
	ModeTorch  Mode = "torch"
	ModeCaffe  Mode = "caffe"
	ModeTF     Mode = "tf"
	ModeRaw    Mode = "raw"
	ModeCustom Mode = "custom"
)

// Modes returns the modes NewNormalizer accepts.
func Modes() []Mode { return []Mode{ModeTorch, ModeCaffe, ModeTF, ModeRaw, ModeCustom} }

// Reference statistics.
var (
	// ImageNetMean and ImageNetStd are torchvision's ImageNet statistics
	// (RGB, 0-1 scale), also Keras' "torch" mode defaults.
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
	// CaffeMean is Keras' "caffe" mode mean, in B, G, R order, 0-255 scale.
	CaffeMean = [3]float32{103.939, 116.779, 123.68}
)

// Normalizer turns planar 8-bit RGB into float32 planes through one
// 256-entry table per output channel. It is immutable once made and safe
// for concurrent use.
type Normalizer struct {
	mode Mode
	bgr  bool
	lut  [3][256]float32 // by output channel
	desc string
}

// Norm describes a normalisation for NewNormalizer. A models.Preprocess p
// is Norm{Mode: ModeCustom, Scale: p.Scale, Mean: p.Mean, Std: p.Std}.
type Norm struct {
	Mode Mode
	// Mean and Std, one per channel in output channel order. torch: on the
	// 0-1 scale, ImageNet's when both are nil. custom: on the scale after
	// Scale; Std nil means 1. Other modes refuse them.
	Mean, Std []float32
	// Scale multiplies samples first (custom only; 0 means 1).
	Scale float32
	// BGR makes channel 0 blue (custom only; caffe is always BGR).
	BGR bool
}

// NewNormalizer checks n and builds its tables.
func NewNormalizer(n Norm) (*Normalizer, error) {
	z := &Normalizer{mode: n.Mode}
	fixed := func() error {
		if n.Mean != nil || n.Std != nil || n.Scale != 0 || n.BGR {
			return fmt.Errorf("imgproc: %s mode takes no mean, std, scale or channel order", n.Mode)
		}
		return nil
	}
	var mean, std [3]float32
	var err error
	switch n.Mode {
	case ModeTorch:
		if n.Scale != 0 || n.BGR {
			return nil, fmt.Errorf("imgproc: torch mode takes no scale or channel order (use custom)")
		}
		if n.Mean == nil && n.Std == nil {
			mean, std = ImageNetMean, ImageNetStd
		} else if mean, std, err = meanStd(n.Mean, n.Std, false); err != nil {
			return nil, err
		}
		for c := 0; c < 3; c++ {
			m, s := mean[c], std[c]
			z.fill(c, func(p float32) float32 { return (p/255 - m) / s })
		}
		z.desc = fmt.Sprintf("torch: RGB, (x/255 - %v) / %v", mean, std)
	case ModeCaffe:
		if err := fixed(); err != nil {
			return nil, err
		}
		z.bgr = true
		for c := 0; c < 3; c++ {
			m := CaffeMean[c]
			z.fill(c, func(p float32) float32 { return p - m })
		}
		z.desc = fmt.Sprintf("caffe: BGR, x - %v", CaffeMean)
	case ModeTF:
		if err := fixed(); err != nil {
			return nil, err
		}
		for c := 0; c < 3; c++ {
			z.fill(c, func(p float32) float32 { return p/127.5 - 1 })
		}
		z.desc = "tf: RGB, x/127.5 - 1"
	case ModeRaw:
		if err := fixed(); err != nil {
			return nil, err
		}
		for c := 0; c < 3; c++ {
			z.fill(c, func(p float32) float32 { return p })
		}
		z.desc = "raw: RGB, x"
	case ModeCustom:
		scale := n.Scale
		if scale == 0 {
			scale = 1
		}
		if math.IsNaN(float64(scale)) || math.IsInf(float64(scale), 0) {
			return nil, fmt.Errorf("imgproc: scale %v is not finite", scale)
		}
		if mean, std, err = meanStd(n.Mean, n.Std, true); err != nil {
			return nil, err
		}
		z.bgr = n.BGR
		for c := 0; c < 3; c++ {
			m, s := mean[c], std[c]
			if scale == 1.0/255 {
				// PyTorch divides by 255; p*float32(1/255) can differ in the last bit.
				z.fill(c, func(p float32) float32 { return (p/255 - m) / s })
			} else {
				z.fill(c, func(p float32) float32 { return (float32(p*scale) - m) / s }) // float32(): no FMA
			}
		}
		order := "RGB"
		if n.BGR {
			order = "BGR"
		}
		z.desc = fmt.Sprintf("custom: %s, (x*%v - %v) / %v", order, scale, mean, std)
	default:
		return nil, fmt.Errorf("imgproc: unknown preprocessing mode %q (want one of %s)", n.Mode, modeList())
	}
	return z, nil
}

func modeList() string {
	s := make([]string, len(Modes()))
	for i, m := range Modes() {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

func meanStd(mean, std []float32, stdOptional bool) (m, s [3]float32, err error) {
	if len(mean) != 3 {
		return m, s, fmt.Errorf("imgproc: need 3 means (one per channel), got %d", len(mean))
	}
	if std == nil && stdOptional {
		std = []float32{1, 1, 1}
	}
	if len(std) != 3 {
		return m, s, fmt.Errorf("imgproc: need 3 standard deviations (one per channel), got %d", len(std))
	}
	for c := 0; c < 3; c++ {
		if !(std[c] > 0) || math.IsInf(float64(std[c]), 0) {
			return m, s, fmt.Errorf("imgproc: standard deviation %v of channel %d must be positive and finite", std[c], c)
		}
		if math.IsNaN(float64(mean[c])) || math.IsInf(float64(mean[c]), 0) {
			return m, s, fmt.Errorf("imgproc: mean %v of channel %d is not finite", mean[c], c)
		}
		m[c], s[c] = mean[c], std[c]
	}
	return m, s, nil
}

// fill sets channel c's table. f gets float32 operands, and Go rounds every
// float32 operation (the one product that could fuse into an FMA is
// converted explicitly, which forbids fusing), so the
// table holds exactly what the step-by-step float32 reference computes.
func (z *Normalizer) fill(c int, f func(p float32) float32) {
	for p := 0; p < 256; p++ {
		z.lut[c][p] = f(float32(p))
	}
}

// ImageNet returns the torch-mode normaliser with ImageNet statistics.
func ImageNet() *Normalizer {
	z, err := NewNormalizer(Norm{Mode: ModeTorch})
	if err != nil {
		panic(err) // constant arguments
	}
	return z
}

// Mode reports the normaliser's mode.
func (z *Normalizer) Mode() Mode { return z.mode }

// BGR reports whether channel 0 of the output is blue.
func (z *Normalizer) BGR() bool { return z.bgr }

// String describes the formula.
func (z *Normalizer) String() string { return z.desc }

// Value is the output for sample p in output channel c.
func (z *Normalizer) Value(c int, p uint8) float32 { return z.lut[c][p] }

// srcPlane is the input plane feeding output channel c.
func (z *Normalizer) srcPlane(c int) int {
	if z.bgr {
		return 2 - c
	}
	return c
}

// WritePlanar writes planar RGB bytes (3×H×W: R plane, G plane, B plane) as
// 3×H×W float32 values into dst, which must hold len(pix) values.
func (z *Normalizer) WritePlanar(dst []float32, pix []uint8) error {
	if len(pix)%3 != 0 || len(dst) < len(pix) {
		return fmt.Errorf("imgproc: %d planar bytes into %d floats", len(pix), len(dst))
	}
	n := len(pix) / 3
	for c := 0; c < 3; c++ {
		lut := &z.lut[c]
		in := pix[z.srcPlane(c)*n : (z.srcPlane(c)+1)*n]
		out := dst[c*n : (c+1)*n]
		for i, p := range in {
			out[i] = lut[p]
		}
	}
	return nil
}

// Write writes img as item i of the NCHW batch dst, that is into
// dst[i*3*H*W : (i+1)*3*H*W]. It allocates nothing.
func (z *Normalizer) Write(dst []float32, i int, img *Image) error {
	size := 3 * img.W * img.H
	if i < 0 || (i+1)*size > len(dst) {
		return fmt.Errorf("imgproc: batch buffer of %d floats has no item %d of 3x%dx%d", len(dst), i, img.H, img.W)
	}
	return z.WritePlanar(dst[i*size:(i+1)*size], img.Pix)
}
