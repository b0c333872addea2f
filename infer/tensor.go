package infer

import (
	"fmt"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
)

// DType is a tensor element type. Its values are ONNX's
// TensorProto.DataType numbers.
type DType int32

// The element types the runtime stores. Compute ops (convolution, pooling,
// normalisation, activations, matrix products, softmax, reductions) take
// Float32 only; Int64 and Int32 also serve shape arithmetic (Add, Sub, Mul,
// Div) and indices; every type can be moved (Reshape, Concat, Gather, Slice,
// Transpose, Pad …) and converted by Cast.
//
// Uint8, Int8 and Float16 are edge types: graph inputs, outputs,
// initializers and Cast results may have them, and inside a run they are
// held widened (Uint8 and Int8 as int32, Float16 as float32), as ONNX
// Runtime's CPU provider computes fp16 models' ops in float32. Float16
// values go wherever Float32 ones do, computed in float32 and rounded to
// float16 where a graph output or a Cast to FLOAT16 is written; Uint8 and
// Int8 values can be moved and converted by Cast (image bytes fed to a
// graph that casts and scales them), not computed on.
const (
	Float32 DType = 1
	Uint8   DType = 2
	Int8    DType = 3
	Int32   DType = 6
	Int64   DType = 7
	Bool    DType = 9
	Float16 DType = 10
	Float64 DType = 11
)

// String returns the Go name of a supported type, or ONNX's name of any
// other (UINT16, BFLOAT16 …): internal/onnxmodel.TypeName.
func (d DType) String() string { return onnxmodel.TypeName(onnxmodel.DataType(d)) }

// supported reports whether the runtime can hold tensors of type d.
func (d DType) supported() bool {
	switch d {
	case Float32, Int32, Int64, Bool, Float64, Uint8, Int8, Float16:
		return true
	}
	return false
}

// storage is the type values of type d are held as inside a run: d itself,
// or the wider type an edge type is held as.
func (d DType) storage() DType {
	switch d {
	case Uint8, Int8:
		return Int32
	case Float16:
		return Float32
	}
	return d
}

// narrow reports whether d is an edge type held widened.
func (d DType) narrow() bool { return d.storage() != d }

// Tensor is a dense row-major tensor. Exactly one data field is used, the
// one of DType; a zero DType means Float32, so
// &Tensor{Shape: s, Float32: x} is a valid float tensor.
type Tensor struct {
	Shape []int
	DType DType

	Float32 []float32
	Float64 []float64
	Int64   []int64
	Int32   []int32
	Bool    []bool
	Uint8   []uint8
	Int8    []int8
	// Float16 holds IEEE 754 half-precision numbers as their bit patterns.
	Float16 []uint16
}

// NewFloat32 returns a float32 tensor over data (not copied).
func NewFloat32(shape []int, data []float32) *Tensor {
	return &Tensor{Shape: shape, DType: Float32, Float32: data}
}

// NewInt64 returns an int64 tensor over data (not copied).
func NewInt64(shape []int, data []int64) *Tensor {
	return &Tensor{Shape: shape, DType: Int64, Int64: data}
}

// Type returns the tensor's element type (Float32 for a zero DType).
func (t *Tensor) Type() DType {
	if t.DType == 0 {
		return Float32
	}
	return t.DType
}

// Len returns the number of elements the shape describes.
func (t *Tensor) Len() int {
	n, _ := numel(t.Shape)
	return n
}

// dataLen is the length of the data field of the tensor's type.
func (t *Tensor) dataLen() int {
	switch t.Type() {
	case Float32:
		return len(t.Float32)
	case Float64:
		return len(t.Float64)
	case Int64:
		return len(t.Int64)
	case Int32:
		return len(t.Int32)
	case Bool:
		return len(t.Bool)
	case Uint8:
		return len(t.Uint8)
	case Int8:
		return len(t.Int8)
	case Float16:
		return len(t.Float16)
	}
	return -1
}

// check verifies that the data field matches the shape.
func (t *Tensor) check() error {
	if !t.Type().supported() {
		return fmt.Errorf("element type %s is not supported", t.Type())
	}
	n, err := numel(t.Shape)
	if err != nil {
		return err
	}
	if got := t.dataLen(); got != n {
		return fmt.Errorf("shape %v needs %d %s values, the tensor has %d", t.Shape, n, t.Type(), got)
	}
	return nil
}

// ints returns the values of an integer tensor as int64s.
func (t *Tensor) ints() ([]int64, bool) {
	switch t.Type() {
	case Int64:
		return t.Int64, true
	case Int32:
		out := make([]int64, len(t.Int32))
		for i, v := range t.Int32 {
			out[i] = int64(v)
		}
		return out, true
	}
	return nil, false
}

// scalarFloat returns element 0 of a numeric tensor as float64.
func (t *Tensor) scalarFloat() (float64, bool) {
	if t.dataLen() < 1 {
		return 0, false
	}
	switch t.Type() {
	case Float32:
		return float64(t.Float32[0]), true
	case Float64:
		return t.Float64[0], true
	case Int64:
		return float64(t.Int64[0]), true
	case Int32:
		return float64(t.Int32[0]), true
	case Bool:
		if t.Bool[0] {
			return 1, true
		}
		return 0, true
	case Uint8:
		return float64(t.Uint8[0]), true
	case Int8:
		return float64(t.Int8[0]), true
	case Float16:
		return float64(halfToFloat32(t.Float16[0])), true
	}
	return 0, false
}

// Clone returns a deep copy of t.
func (t *Tensor) Clone() *Tensor {
	c := &Tensor{Shape: append([]int(nil), t.Shape...), DType: t.Type()}
	switch t.Type() {
	case Float32:
		c.Float32 = append([]float32(nil), t.Float32...)
	case Float64:
		c.Float64 = append([]float64(nil), t.Float64...)
	case Int64:
		c.Int64 = append([]int64(nil), t.Int64...)
	case Int32:
		c.Int32 = append([]int32(nil), t.Int32...)
	case Bool:
		c.Bool = append([]bool(nil), t.Bool...)
	case Uint8:
		c.Uint8 = append([]uint8(nil), t.Uint8...)
	case Int8:
		c.Int8 = append([]int8(nil), t.Int8...)
	case Float16:
		c.Float16 = append([]uint16(nil), t.Float16...)
	}
	return c
}

// newTensor allocates a zero tensor of a supported type.
func newTensor(dt DType, shape []int) *Tensor {
	n, _ := numel(shape)
	t := &Tensor{Shape: append([]int{}, shape...), DType: dt}
	switch dt {
	case Float32:
		t.Float32 = make([]float32, n)
	case Float64:
		t.Float64 = make([]float64, n)
	case Int64:
		t.Int64 = make([]int64, n)
	case Int32:
		t.Int32 = make([]int32, n)
	case Bool:
		t.Bool = make([]bool, n)
	case Uint8:
		t.Uint8 = make([]uint8, n)
	case Int8:
		t.Int8 = make([]int8, n)
	case Float16:
		t.Float16 = make([]uint16, n)
	}
	return t
}

// widen returns t held as its storage type: t itself unless its type is
// an edge type.
func widen(t *Tensor) *Tensor {
	if t == nil || !t.Type().narrow() {
		return t
	}
	w := &Tensor{Shape: t.Shape, DType: t.Type().storage()}
	switch t.Type() {
	case Uint8:
		w.Int32 = make([]int32, len(t.Uint8))
		for i, v := range t.Uint8 {
			w.Int32[i] = int32(v)
		}
	case Int8:
		w.Int32 = make([]int32, len(t.Int8))
		for i, v := range t.Int8 {
			w.Int32[i] = int32(v)
		}
	case Float16:
		w.Float32 = make([]float32, len(t.Float16))
		for i, v := range t.Float16 {
			w.Float32[i] = halfToFloat32(v)
		}
	}
	return w
}

// narrowInto writes src (held as dst's storage type) into dst, an
// edge-type tensor of the same length: float16 rounded to nearest even,
// integers wrapped as a C cast would.
func narrowInto(dst, src *Tensor) {
	switch dst.Type() {
	case Uint8:
		for i, v := range src.Int32[:len(dst.Uint8)] {
			dst.Uint8[i] = uint8(v)
		}
	case Int8:
		for i, v := range src.Int32[:len(dst.Int8)] {
			dst.Int8[i] = int8(v)
		}
	case Float16:
		for i, v := range src.Float32[:len(dst.Float16)] {
			dst.Float16[i] = halfFromFloat64(float64(v))
		}
	}
}

// halfFromFloat64 rounds f to the nearest half-precision number:
// internal/onnxmodel.HalfFromFloat64.
func halfFromFloat64(f float64) uint16 { return onnxmodel.HalfFromFloat64(f) }

// halfToFloat32 converts half-precision bits to float32 (exactly):
// internal/onnxmodel.HalfToFloat.
func halfToFloat32(h uint16) float32 { return onnxmodel.HalfToFloat(h) }

// roundHalf rounds v to the nearest float16 value.
func roundHalf(v float32) float32 { return halfToFloat32(halfFromFloat64(float64(v))) }

// numel multiplies dims, refusing negative dimensions and overflow
// (internal/onnxmodel.Numel).
func numel(shape []int) (int, error) { return onnxmodel.Numel(shape) }
