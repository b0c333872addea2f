package classify

import (
	"math"

	"github.com/resnetctl/resnetctl/infer"
)

// Edge types of image models from other tools: fp16 deployment exports
// take and give float16, and graphs with their preprocessing inside take
// uint8 pixels. Samples are prepared in float32 and converted when the
// input tensor is made; float16 scores are widened to float32.

// Tensor makes the input tensor of n samples x (in the model's layout,
// prepared by Sample or Write) in the input's element type.
func (s *Setup) Tensor(n int, x []float32) *infer.Tensor { return s.inputTensor(s.Shape(n), x) }

// inputTensor makes the model's input of the given shape from float32
// samples, in the input's element type.
func (s *Setup) inputTensor(shape []int, x []float32) *infer.Tensor {
	switch s.InputType {
	case infer.Float16:
		h := make([]uint16, len(x))
		for i, v := range x {
			h[i] = halfFromFloat32(v)
		}
		return &infer.Tensor{Shape: shape, DType: infer.Float16, Float16: h}
	case infer.Uint8:
		// Samples are raw pixels 0…255 here (Resolve chose ModeRaw).
		b := make([]uint8, len(x))
		for i, v := range x {
			b[i] = uint8(v)
		}
		return &infer.Tensor{Shape: shape, DType: infer.Uint8, Uint8: b}
	}
	return infer.NewFloat32(shape, x)
}

// widenScores returns float16 scores as float32, others as they are.
func widenScores(t *infer.Tensor) *infer.Tensor {
	if t == nil || t.Type() != infer.Float16 {
		return t
	}
	f := make([]float32, len(t.Float16))
	for i, h := range t.Float16 {
		f[i] = halfToFloat32(h)
	}
	return infer.NewFloat32(t.Shape, f)
}

// halfToFloat32 widens an IEEE 754 half (exactly).
func halfToFloat32(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, man := int(h>>10&0x1f), int(h&0x3ff)
	switch exp {
	case 0: // zero and subnormals: man × 2^-24
		return sign * float32(math.Ldexp(float64(man), -24))
	case 31:
		if man != 0 {
			return float32(math.NaN())
		}
		return sign * float32(math.Inf(1))
	}
	return sign * float32(math.Ldexp(float64(man|0x400), exp-25))
}

// halfFromFloat32 rounds v to the nearest half, ties to even, as a
// float32→float16 cast does (overflow gives infinity).
func halfFromFloat32(v float32) uint16 {
	b := math.Float32bits(v)
	sign := uint16(b>>16) & 0x8000
	e, man := int(b>>23&0xff), b&0x7fffff
	if e == 0xff { // Inf, NaN
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	exp := e - 127 + 15
	if exp >= 31 {
		return sign | 0x7c00
	}
	shift := uint(13)
	if exp <= 0 { // a half subnormal (or zero)
		if exp < -10 {
			return sign
		}
		man |= 0x800000
		shift = uint(14 - exp)
		exp = 0
	}
	h := uint32(exp)<<10 | man>>shift
	rem, half := man&(1<<shift-1), uint32(1)<<(shift-1)
	if rem > half || rem == half && h&1 == 1 {
		h++ // may carry into the exponent: still the right half
	}
	return sign | uint16(h)
}
