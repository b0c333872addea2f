package onnximport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// tensor is a constant: an initializer, a Constant node or a value computed
// from constants (shape arithmetic). Floating-point data is held as float32
// (weights must be float32 to round-trip bit for bit), integer and boolean
// data as int64.
type tensor struct {
	dims  []int
	float bool
	f     []float32
	i     []int64
	// from names the element type the file stored, when it was converted
	// (float16, float64 …); empty for float32 and int64.
	from string
}

const (
	// maxRank bounds tensor ranks read from a file.
	maxRank = 16
	// maxComputed bounds the elements of a tensor computed during import
	// (ConstantOfShape, Gather …), so a hostile shape cannot allocate much.
	maxComputed = 1 << 22
	// batchDim stands for the batch size in shapes computed from data
	// (Shape of an activation). Arithmetic on it is refused.
	batchDim = math.MinInt64 / 4
)

var errBatchDependent = errors.New("depends on the batch size")

func (t *tensor) size() int { return len(t.f) + len(t.i) }

// ints returns an integer tensor's values.
func (t *tensor) ints() ([]int64, bool) {
	if t.float {
		return nil, false
	}
	return t.i, true
}

// numel multiplies dims, refusing negative dimensions and overflow.
func numel(dims []int) (int, error) {
	n := 1
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d", d)
		}
		if d != 0 && n > math.MaxInt32/d {
			return 0, fmt.Errorf("dims %v have too many elements", dims)
		}
		n *= d
	}
	return n, nil
}

// newComputed allocates a computed tensor, refusing sizes over maxComputed.
func newComputed(dims []int, float bool) (*tensor, error) {
	n, err := numel(dims)
	if err != nil {
		return nil, err
	}
	if n > maxComputed {
		return nil, fmt.Errorf("a computed constant of shape %v has %d elements (at most %d are evaluated)", dims, n, maxComputed)
	}
	t := &tensor{dims: append([]int{}, dims...), float: float}
	if float {
		t.f = make([]float32, n)
	} else {
		t.i = make([]int64, n)
	}
	return t, nil
}

// decodeTensor reads a TensorProto. Shapes and data lengths are checked
// before anything is allocated, so a corrupt header cannot cause a large
// allocation.
func decodeTensor(tp *onnxpb.TensorProto) (*tensor, error) {
	if tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(tp.GetExternalData()) > 0 {
		return nil, fmt.Errorf("%w: data stored in an external file (%s) is not read; re-save the model with its weights inside (onnx.save(model, path, save_as_external_data=False))", ErrUnsupported, externalLocation(tp))
	}
	if tp.GetSegment() != nil {
		return nil, fmt.Errorf("%w: segmented tensors are not read", ErrUnsupported)
	}
	if len(tp.GetDims()) > maxRank {
		return nil, fmt.Errorf("%w: rank %d", ErrInvalidModel, len(tp.GetDims()))
	}
	dims := make([]int, len(tp.GetDims()))
	for i, d := range tp.GetDims() {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("%w: dimension %d in dims %v", ErrInvalidModel, d, tp.GetDims())
		}
		dims[i] = int(d)
	}
	n, err := numel(dims)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModel, err)
	}
	raw := tp.GetRawData()
	dt := onnxpb.TensorProto_DataType(tp.GetDataType())
	t := &tensor{dims: dims}
	need := func(size int) error {
		if len(raw) != n*size {
			return fmt.Errorf("%w: raw_data has %d bytes, dims %v of %s need %d", ErrInvalidModel, len(raw), dims, dt, n*size)
		}
		return nil
	}
	count := func(have int, field string) error {
		if have != n {
			return fmt.Errorf("%w: %s has %d values, dims %v need %d", ErrInvalidModel, field, have, dims, n)
		}
		return nil
	}
	useRaw := len(raw) > 0 || n == 0
	switch dt {
	case onnxpb.TensorProto_FLOAT:
		t.float = true
		if useRaw {
			if err := need(4); err != nil {
				return nil, err
			}
			t.f = make([]float32, n)
			for i := range t.f {
				t.f[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
			return t, nil
		}
		if err := count(len(tp.GetFloatData()), "float_data"); err != nil {
			return nil, err
		}
		t.f = append(make([]float32, 0, n), tp.GetFloatData()...)
	case onnxpb.TensorProto_DOUBLE:
		t.float, t.from = true, "float64"
		t.f = make([]float32, 0, n)
		if useRaw {
			if err := need(8); err != nil {
				return nil, err
			}
			for i := 0; i < n; i++ {
				t.f = append(t.f, float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))))
			}
			return t, nil
		}
		if err := count(len(tp.GetDoubleData()), "double_data"); err != nil {
			return nil, err
		}
		for _, v := range tp.GetDoubleData() {
			t.f = append(t.f, float32(v))
		}
	case onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		t.float, t.from = true, "float16"
		conv := halfToFloat
		if dt == onnxpb.TensorProto_BFLOAT16 {
			t.from, conv = "bfloat16", func(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
		}
		t.f = make([]float32, 0, n)
		if useRaw {
			if err := need(2); err != nil {
				return nil, err
			}
			for i := 0; i < n; i++ {
				t.f = append(t.f, conv(binary.LittleEndian.Uint16(raw[2*i:])))
			}
			return t, nil
		}
		if err := count(len(tp.GetInt32Data()), "int32_data"); err != nil {
			return nil, err
		}
		for _, v := range tp.GetInt32Data() {
			t.f = append(t.f, conv(uint16(v)))
		}
	case onnxpb.TensorProto_INT64:
		if useRaw {
			if err := need(8); err != nil {
				return nil, err
			}
			t.i = make([]int64, n)
			for i := range t.i {
				t.i[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
			return t, nil
		}
		if err := count(len(tp.GetInt64Data()), "int64_data"); err != nil {
			return nil, err
		}
		t.i = append(make([]int64, 0, n), tp.GetInt64Data()...)
	case onnxpb.TensorProto_INT32, onnxpb.TensorProto_INT16, onnxpb.TensorProto_INT8,
		onnxpb.TensorProto_UINT16, onnxpb.TensorProto_UINT8, onnxpb.TensorProto_BOOL:
		size := map[onnxpb.TensorProto_DataType]int{
			onnxpb.TensorProto_INT32: 4, onnxpb.TensorProto_INT16: 2, onnxpb.TensorProto_UINT16: 2,
			onnxpb.TensorProto_INT8: 1, onnxpb.TensorProto_UINT8: 1, onnxpb.TensorProto_BOOL: 1,
		}[dt]
		t.from = dt.String()
		t.i = make([]int64, 0, n)
		if useRaw {
			if err := need(size); err != nil {
				return nil, err
			}
			for i := 0; i < n; i++ {
				b := raw[size*i:]
				var v int64
				switch dt {
				case onnxpb.TensorProto_INT32:
					v = int64(int32(binary.LittleEndian.Uint32(b)))
				case onnxpb.TensorProto_INT16:
					v = int64(int16(binary.LittleEndian.Uint16(b)))
				case onnxpb.TensorProto_UINT16:
					v = int64(binary.LittleEndian.Uint16(b))
				case onnxpb.TensorProto_INT8:
					v = int64(int8(b[0]))
				case onnxpb.TensorProto_UINT8:
					v = int64(b[0])
				default:
					if b[0] != 0 {
						v = 1
					}
				}
				t.i = append(t.i, v)
			}
			return t, nil
		}
		if err := count(len(tp.GetInt32Data()), "int32_data"); err != nil {
			return nil, err
		}
		for _, v := range tp.GetInt32Data() {
			t.i = append(t.i, int64(v))
		}
	case onnxpb.TensorProto_UINT32, onnxpb.TensorProto_UINT64:
		t.from = dt.String()
		t.i = make([]int64, 0, n)
		if useRaw {
			size := 4
			if dt == onnxpb.TensorProto_UINT64 {
				size = 8
			}
			if err := need(size); err != nil {
				return nil, err
			}
			for i := 0; i < n; i++ {
				if size == 4 {
					t.i = append(t.i, int64(binary.LittleEndian.Uint32(raw[4*i:])))
				} else {
					t.i = append(t.i, int64(binary.LittleEndian.Uint64(raw[8*i:])))
				}
			}
			return t, nil
		}
		if err := count(len(tp.GetUint64Data()), "uint64_data"); err != nil {
			return nil, err
		}
		for _, v := range tp.GetUint64Data() {
			t.i = append(t.i, int64(v))
		}
	default:
		return nil, fmt.Errorf("%w: element type %s", ErrUnsupported, dt)
	}
	return t, nil
}

func externalLocation(tp *onnxpb.TensorProto) string {
	for _, kv := range tp.GetExternalData() {
		if kv.GetKey() == "location" {
			return fmt.Sprintf("%q", kv.GetValue())
		}
	}
	return "no location"
}

// halfToFloat converts an IEEE 754 binary16 value.
func halfToFloat(h uint16) float32 {
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

// strides returns row-major strides of dims.
func strides(dims []int) []int {
	s := make([]int, len(dims))
	acc := 1
	for i := len(dims) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= dims[i]
	}
	return s
}

// gatherFrom makes a tensor of dims whose element k is src element idx(k).
func gatherFrom(src *tensor, dims []int, idx func(k int) int) (*tensor, error) {
	out, err := newComputed(dims, src.float)
	if err != nil {
		return nil, err
	}
	out.from = src.from
	for k := range out.size() {
		j := idx(k)
		if src.float {
			out.f[k] = src.f[j]
		} else {
			out.i[k] = src.i[j]
		}
	}
	return out, nil
}
