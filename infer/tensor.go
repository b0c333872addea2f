package infer

import (
	"fmt"
	"math"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// DType is a tensor element type. Its values are ONNX's
// TensorProto.DataType numbers.
type DType int32

// The element types the runtime stores. Compute ops (convolution, pooling,
// normalisation, activations, matrix products, softmax, reductions) take
// Float32 only; Int64 and Int32 also serve shape arithmetic (Add, Sub, Mul,
// Div) and indices; every type can be moved (Reshape, Concat, Gather, Slice,
// Transpose, Pad …) and converted by Cast.
const (
	Float32 DType = 1
	Int32   DType = 6
	Int64   DType = 7
	Bool    DType = 9
	Float64 DType = 11
)

// String returns the Go name of a supported type, or ONNX's name of any
// other (UINT8, FLOAT16 …).
func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	case Bool:
		return "bool"
	case Float64:
		return "float64"
	case 0:
		return "undefined"
	}
	if s, ok := onnxpb.TensorProto_DataType_name[int32(d)]; ok {
		return s
	}
	return fmt.Sprintf("DataType(%d)", int32(d))
}

// supported reports whether the runtime can hold tensors of type d.
func (d DType) supported() bool {
	switch d {
	case Float32, Int32, Int64, Bool, Float64:
		return true
	}
	return false
}

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
	}
	return t
}

// numel multiplies dims, refusing negative dimensions and overflow.
func numel(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt32*int(16)/d { // far beyond any tensor we hold
			return 0, fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
	}
	return n, nil
}
