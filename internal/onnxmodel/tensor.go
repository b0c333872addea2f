package onnxmodel

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// DataType is an ONNX element type (TensorProto.DataType).
type DataType = onnxpb.TensorProto_DataType

// Element types.
const (
	Float    = onnxpb.TensorProto_FLOAT
	Uint8    = onnxpb.TensorProto_UINT8
	Int8     = onnxpb.TensorProto_INT8
	Uint16   = onnxpb.TensorProto_UINT16
	Int16    = onnxpb.TensorProto_INT16
	Int32    = onnxpb.TensorProto_INT32
	Int64    = onnxpb.TensorProto_INT64
	String   = onnxpb.TensorProto_STRING
	Bool     = onnxpb.TensorProto_BOOL
	Float16  = onnxpb.TensorProto_FLOAT16
	Double   = onnxpb.TensorProto_DOUBLE
	Uint32   = onnxpb.TensorProto_UINT32
	Uint64   = onnxpb.TensorProto_UINT64
	BFloat16 = onnxpb.TensorProto_BFLOAT16
)

// TypeName is the name errors give an element type: the Go name of the
// types the runtime holds ("float32", "int64", "float16" …), ONNX's name
// of any other ("BFLOAT16", "STRING"), or DataType(n) for numbers ONNX
// does not define.
func TypeName(dt DataType) string {
	if s, ok := goNames[dt]; ok {
		return s
	}
	if s, ok := onnxpb.TensorProto_DataType_name[int32(dt)]; ok {
		return s
	}
	return fmt.Sprintf("DataType(%d)", int32(dt))
}

var goNames = map[DataType]string{
	0: "undefined", Float: "float32", Double: "float64", Float16: "float16",
	Int32: "int32", Int64: "int64", Int8: "int8", Uint8: "uint8", Bool: "bool",
}

// ElemSize is the byte size of one element of dt in raw_data, 0 for the
// types Decode does not read.
func ElemSize(dt DataType) int {
	switch dt {
	case Float, Int32, Uint32:
		return 4
	case Double, Int64, Uint64:
		return 8
	case Float16, BFloat16, Int16, Uint16:
		return 2
	case Bool, Uint8, Int8:
		return 1
	}
	return 0
}

// Tensor is a decoded TensorProto. One data field is set, by Type:
// Float32 (FLOAT), Float64 (DOUBLE), Int64 (INT64), Int32 (INT32), Uint64
// (UINT32, UINT64), Bits16 (FLOAT16, BFLOAT16 bit patterns, INT16, UINT16),
// Uint8 (UINT8), Int8 (INT8), Bool (BOOL).
type Tensor struct {
	Type DataType
	Dims []int

	Float32 []float32
	Float64 []float64
	Int64   []int64
	Int32   []int32
	Uint64  []uint64
	Bits16  []uint16
	Uint8   []uint8
	Int8    []int8
	Bool    []bool
}

// tooManyElements describes dims (each within int32) whose element count
// Numel refused: the count when it fits in an int64, else that it does
// not.
func tooManyElements(dims []int64) string {
	n := uint64(1)
	for _, d := range dims {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return fmt.Sprintf("dims %v have more elements than a tensor may hold (their product overflows int64)", dims)
		}
		n = lo
	}
	return fmt.Sprintf("dims %v have %d elements, more than a tensor may hold", dims, n)
}

// DecodeTensor decodes a TensorProto: an initializer, an attribute value or a
// test-data file. ext reads external data (nil refuses it). Shapes and
// data lengths are checked before anything is allocated, so a corrupt
// header cannot cause a large allocation.
func DecodeTensor(tp *onnxpb.TensorProto, ext *ExternalData) (*Tensor, error) {
	if tp.GetSegment() != nil {
		return nil, fmt.Errorf("%w: segmented tensors", ErrUnsupported)
	}
	dims := make([]int, len(tp.GetDims()))
	for i, d := range tp.GetDims() {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("%w: dimension %d in dims %v", ErrInvalidModel, d, tp.GetDims())
		}
		dims[i] = int(d)
	}
	n, err := Numel(dims)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidModel, tooManyElements(tp.GetDims()))
	}
	dt := DataType(tp.GetDataType())
	size := ElemSize(dt)
	if size == 0 {
		return nil, fmt.Errorf("%w: element type %s", ErrUnsupported, TypeName(dt))
	}
	raw := tp.GetRawData()
	external := tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL
	if external {
		if n > math.MaxInt/8 {
			return nil, fmt.Errorf("%w: dims %v too large", ErrInvalidModel, tp.GetDims())
		}
		if raw, err = ext.read(tp.GetExternalData(), n*size); err != nil {
			return nil, err
		}
	} else if len(tp.GetExternalData()) > 0 {
		return nil, fmt.Errorf("%w: external_data given but data_location is not EXTERNAL", ErrInvalidModel)
	}
	t := &Tensor{Type: dt, Dims: dims}
	if len(raw) > 0 || external {
		if len(raw) != n*size {
			return nil, fmt.Errorf("%w: raw_data has %d bytes, dims %v of %s need %d", ErrInvalidModel, len(raw), dims, TypeName(dt), n*size)
		}
		t.fromRaw(raw, n)
		return t, nil
	}
	return t, t.fromFields(tp, n)
}

// fromRaw decodes n little-endian elements.
func (t *Tensor) fromRaw(raw []byte, n int) {
	le := binary.LittleEndian
	switch t.Type {
	case Float:
		t.Float32 = make([]float32, n)
		for i := range t.Float32 {
			t.Float32[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case Double:
		t.Float64 = make([]float64, n)
		for i := range t.Float64 {
			t.Float64[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
	case Int64:
		t.Int64 = make([]int64, n)
		for i := range t.Int64 {
			t.Int64[i] = int64(le.Uint64(raw[8*i:]))
		}
	case Int32:
		t.Int32 = make([]int32, n)
		for i := range t.Int32 {
			t.Int32[i] = int32(le.Uint32(raw[4*i:]))
		}
	case Uint32:
		t.Uint64 = make([]uint64, n)
		for i := range t.Uint64 {
			t.Uint64[i] = uint64(le.Uint32(raw[4*i:]))
		}
	case Uint64:
		t.Uint64 = make([]uint64, n)
		for i := range t.Uint64 {
			t.Uint64[i] = le.Uint64(raw[8*i:])
		}
	case Float16, BFloat16, Int16, Uint16:
		t.Bits16 = make([]uint16, n)
		for i := range t.Bits16 {
			t.Bits16[i] = le.Uint16(raw[2*i:])
		}
	case Uint8:
		t.Uint8 = append(make([]uint8, 0, n), raw...)
	case Int8:
		t.Int8 = make([]int8, n)
		for i := range t.Int8 {
			t.Int8[i] = int8(raw[i])
		}
	case Bool:
		t.Bool = make([]bool, n)
		for i := range t.Bool {
			t.Bool[i] = raw[i] != 0
		}
	}
}

// fromFields reads the typed field of t's type, which must hold n values.
func (t *Tensor) fromFields(tp *onnxpb.TensorProto, n int) error {
	count := func(have int, field string) error {
		if have != n {
			return fmt.Errorf("%w: %s has %d values, dims %v need %d", ErrInvalidModel, field, have, t.Dims, n)
		}
		return nil
	}
	switch t.Type {
	case Float:
		if err := count(len(tp.GetFloatData()), "float_data"); err != nil {
			return err
		}
		t.Float32 = append(make([]float32, 0, n), tp.GetFloatData()...)
	case Double:
		if err := count(len(tp.GetDoubleData()), "double_data"); err != nil {
			return err
		}
		t.Float64 = append(make([]float64, 0, n), tp.GetDoubleData()...)
	case Int64:
		if err := count(len(tp.GetInt64Data()), "int64_data"); err != nil {
			return err
		}
		t.Int64 = append(make([]int64, 0, n), tp.GetInt64Data()...)
	case Uint32, Uint64:
		if err := count(len(tp.GetUint64Data()), "uint64_data"); err != nil {
			return err
		}
		t.Uint64 = append(make([]uint64, 0, n), tp.GetUint64Data()...)
	default: // in int32_data, one value (or bit pattern) each
		v := tp.GetInt32Data()
		if err := count(len(v), "int32_data"); err != nil {
			return err
		}
		switch t.Type {
		case Int32:
			t.Int32 = append(make([]int32, 0, n), v...)
		case Float16, BFloat16, Int16, Uint16:
			t.Bits16 = convert(v, func(x int32) uint16 { return uint16(x) })
		case Uint8:
			t.Uint8 = convert(v, func(x int32) uint8 { return uint8(x) })
		case Int8:
			t.Int8 = convert(v, func(x int32) int8 { return int8(x) })
		case Bool:
			t.Bool = convert(v, func(x int32) bool { return x != 0 })
		}
	}
	return nil
}

// convert applies f to every value of v.
func convert[T, U any](v []T, f func(T) U) []U {
	out := make([]U, len(v))
	for i, x := range v {
		out[i] = f(x)
	}
	return out
}

// Floats returns a floating-point tensor's values as float32 (FLOAT,
// DOUBLE, FLOAT16, BFLOAT16), false for other types.
func (t *Tensor) Floats() ([]float32, bool) {
	switch t.Type {
	case Float:
		return t.Float32, true
	case Double:
		return convert(t.Float64, func(v float64) float32 { return float32(v) }), true
	case Float16:
		return convert(t.Bits16, HalfToFloat), true
	case BFloat16:
		return convert(t.Bits16, func(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }), true
	}
	return nil, false
}

// Ints returns an integer or boolean tensor's values as int64, false
// for other types.
func (t *Tensor) Ints() ([]int64, bool) {
	switch t.Type {
	case Int64:
		return t.Int64, true
	case Int32:
		return convert(t.Int32, func(v int32) int64 { return int64(v) }), true
	case Int16:
		return convert(t.Bits16, func(v uint16) int64 { return int64(int16(v)) }), true
	case Uint16:
		return convert(t.Bits16, func(v uint16) int64 { return int64(v) }), true
	case Uint32, Uint64:
		return convert(t.Uint64, func(v uint64) int64 { return int64(v) }), true
	case Uint8:
		return convert(t.Uint8, func(v uint8) int64 { return int64(v) }), true
	case Int8:
		return convert(t.Int8, func(v int8) int64 { return int64(v) }), true
	case Bool:
		return convert(t.Bool, func(v bool) int64 {
			if v {
				return 1
			}
			return 0
		}), true
	}
	return nil, false
}

// HalfFromFloat64 rounds f to the nearest IEEE 754 half-precision number
// (ties to even; overflow to infinity; subnormals kept) and returns its
// bits.
func HalfFromFloat64(f float64) uint16 {
	sign := uint16(math.Float64bits(f)>>48) & 0x8000
	a := math.Abs(f)
	switch {
	case math.IsNaN(f):
		return sign | 0x7e00
	case a >= 65520: // halfway between 65504 and 65536 rounds up (to even)
		return sign | 0x7c00
	case a < 0x1p-14: // subnormal: multiples of 2^-24
		return sign | uint16(math.RoundToEven(a*0x1p24))
	}
	fr, exp := math.Frexp(a) // a = fr·2^exp, fr in [0.5, 1)
	m := math.RoundToEven((2*fr - 1) * 1024)
	e := exp - 1 + 15
	if m == 1024 {
		m, e = 0, e+1
	}
	if e >= 31 {
		return sign | 0x7c00
	}
	return sign | uint16(e)<<10 | uint16(m)
}

// HalfToFloat converts an IEEE 754 binary16 value.
func HalfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		e := uint32(127 - 15 + 1)
		for frac&0x400 == 0 {
			frac <<= 1
			e--
		}
		frac &= 0x3ff
		return math.Float32frombits(sign | e<<23 | frac<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}

// FloatTensor makes a float32 TensorProto (an initializer) with
// little-endian raw_data, as exporters write them.
func FloatTensor(name string, dims []int, data []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	t := &onnxpb.TensorProto{Name: name, DataType: int32(onnxpb.TensorProto_FLOAT), RawData: raw}
	for _, d := range dims {
		t.Dims = append(t.Dims, int64(d))
	}
	return t
}
