package infer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/regularfile"
)

// elemSize is the byte size of one element in raw_data.
func elemSize(dt DType) int {
	switch dt {
	case Float32, Int32:
		return 4
	case Float64, Int64:
		return 8
	case Bool, Uint8, Int8:
		return 1
	case Float16:
		return 2
	}
	return 0
}

// externalData resolves TensorProto external_data locations inside the
// model's folder. A nil *externalData refuses every external tensor.
type externalData struct {
	dir  string
	root *os.Root
}

func (e *externalData) close() {
	if e != nil && e.root != nil {
		e.root.Close()
	}
}

// read returns need bytes of the external tensor described by entries.
func (e *externalData) read(entries []*onnxpb.StringStringEntryProto, need int) ([]byte, error) {
	var location string
	offset, length := int64(0), int64(-1)
	for _, kv := range entries {
		switch kv.GetKey() {
		case "location":
			location = kv.GetValue()
		case "offset", "length":
			v, err := strconv.ParseInt(kv.GetValue(), 10, 64)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("%w: external data %s %q is not a non-negative integer", ErrInvalidModel, kv.GetKey(), kv.GetValue())
			}
			if kv.GetKey() == "offset" {
				offset = v
			} else {
				length = v
			}
		case "checksum": // optional; not verified
		default:
			return nil, fmt.Errorf("%w: unknown external data key %q", ErrUnsupported, kv.GetKey())
		}
	}
	if location == "" {
		return nil, fmt.Errorf("%w: external data without a location", ErrInvalidModel)
	}
	if e == nil || e.dir == "" {
		return nil, fmt.Errorf("%w: tensor data is in external file %q, but the model was loaded from bytes (use Load with the file path, or Options.ExternalDataDir)", ErrUnsupported, location)
	}
	// Refuse anything that could leave the model's folder. os.Root also
	// refuses symlinks that point outside it.
	slashed := filepath.ToSlash(location)
	if filepath.IsAbs(location) || path.IsAbs(slashed) || filepath.VolumeName(location) != "" {
		return nil, fmt.Errorf("%w: external data location %q is an absolute path; it must be relative to the model's folder", ErrInvalidModel, location)
	}
	if clean := path.Clean(slashed); clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, fmt.Errorf("%w: external data location %q escapes the model's folder", ErrInvalidModel, location)
	}
	if e.root == nil {
		r, err := os.OpenRoot(e.dir)
		if err != nil {
			return nil, fmt.Errorf("infer: external data folder: %w", err)
		}
		e.root = r
	}
	// Non-blocking, so that a FIFO is refused below instead of blocking.
	f, err := e.root.OpenFile(filepath.FromSlash(path.Clean(slashed)), regularfile.OpenFlag, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: external data file %q not found next to the model: %v", ErrInvalidModel, location, err)
		}
		return nil, fmt.Errorf("%w: external data file %q: %v (it must be a file inside the model's folder)", ErrInvalidModel, location, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("infer: external data %q: %w", location, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: external data %q is not a regular file", ErrInvalidModel, location)
	}
	if length >= 0 && length != int64(need) {
		return nil, fmt.Errorf("%w: external data %q: length %d, the tensor needs %d bytes", ErrInvalidModel, location, length, need)
	}
	if offset > st.Size() || st.Size()-offset < int64(need) {
		return nil, fmt.Errorf("%w: external data %q has %d bytes, the tensor needs %d from offset %d", ErrInvalidModel, location, st.Size(), need, offset)
	}
	buf := make([]byte, need)
	if _, err := f.ReadAt(buf, offset); err != nil && !(errors.Is(err, io.EOF) && need == 0) {
		return nil, fmt.Errorf("infer: external data %q: %w", location, err)
	}
	return buf, nil
}

// tooManyElements describes dims (each within int32) whose element count
// numel refused: the count when it fits in an int64, else that it does
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

// tensorFromProto decodes a TensorProto (an initializer, an attribute value
// or a test-data file). Shapes and data lengths are checked before anything
// is allocated, so a corrupt header cannot cause a huge allocation.
func tensorFromProto(tp *onnxpb.TensorProto, ext *externalData) (*Tensor, error) {
	dt := DType(tp.GetDataType())
	if !dt.supported() {
		return nil, fmt.Errorf("%w: element type %s (supported: float32, float64, int64, int32, bool)", ErrUnsupported, dt)
	}
	if tp.GetSegment() != nil {
		return nil, fmt.Errorf("%w: segmented tensors", ErrUnsupported)
	}
	shape := make([]int, len(tp.GetDims()))
	for i, d := range tp.GetDims() {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("%w: dimension %d in dims %v", ErrInvalidModel, d, tp.GetDims())
		}
		shape[i] = int(d)
	}
	n, err := numel(shape)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidModel, tooManyElements(tp.GetDims()))
	}
	raw := tp.GetRawData()
	if tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		if n > math.MaxInt/8 {
			return nil, fmt.Errorf("%w: dims %v too large", ErrInvalidModel, tp.GetDims())
		}
		raw, err = ext.read(tp.GetExternalData(), n*elemSize(dt))
		if err != nil {
			return nil, err
		}
		if raw == nil {
			raw = []byte{}
		}
	} else if len(tp.GetExternalData()) > 0 {
		return nil, fmt.Errorf("%w: external_data given but data_location is not EXTERNAL", ErrInvalidModel)
	}
	t := &Tensor{Shape: shape, DType: dt}
	if raw != nil && (len(raw) > 0 || tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL) {
		if len(raw) != n*elemSize(dt) {
			return nil, fmt.Errorf("%w: raw_data has %d bytes, dims %v of %s need %d", ErrInvalidModel, len(raw), shape, dt, n*elemSize(dt))
		}
		switch dt {
		case Float32:
			t.Float32 = make([]float32, n)
			for i := range t.Float32 {
				t.Float32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		case Float64:
			t.Float64 = make([]float64, n)
			for i := range t.Float64 {
				t.Float64[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		case Int64:
			t.Int64 = make([]int64, n)
			for i := range t.Int64 {
				t.Int64[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		case Int32:
			t.Int32 = make([]int32, n)
			for i := range t.Int32 {
				t.Int32[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		case Bool:
			t.Bool = make([]bool, n)
			for i := range t.Bool {
				t.Bool[i] = raw[i] != 0
			}
		case Uint8:
			t.Uint8 = append(make([]uint8, 0, n), raw...)
		case Int8:
			t.Int8 = make([]int8, n)
			for i := range t.Int8 {
				t.Int8[i] = int8(raw[i])
			}
		case Float16:
			t.Float16 = make([]uint16, n)
			for i := range t.Float16 {
				t.Float16[i] = binary.LittleEndian.Uint16(raw[2*i:])
			}
		}
		return t, nil
	}
	count := func(have int, field string) error {
		if have != n {
			return fmt.Errorf("%w: %s has %d values, dims %v need %d", ErrInvalidModel, field, have, shape, n)
		}
		return nil
	}
	switch dt {
	case Float32:
		if err := count(len(tp.GetFloatData()), "float_data"); err != nil {
			return nil, err
		}
		t.Float32 = append(make([]float32, 0, n), tp.GetFloatData()...)
	case Float64:
		if err := count(len(tp.GetDoubleData()), "double_data"); err != nil {
			return nil, err
		}
		t.Float64 = append(make([]float64, 0, n), tp.GetDoubleData()...)
	case Int64:
		if err := count(len(tp.GetInt64Data()), "int64_data"); err != nil {
			return nil, err
		}
		t.Int64 = append(make([]int64, 0, n), tp.GetInt64Data()...)
	case Int32:
		if err := count(len(tp.GetInt32Data()), "int32_data"); err != nil {
			return nil, err
		}
		t.Int32 = append(make([]int32, 0, n), tp.GetInt32Data()...)
	case Bool:
		if err := count(len(tp.GetInt32Data()), "int32_data"); err != nil {
			return nil, err
		}
		t.Bool = make([]bool, n)
		for i, v := range tp.GetInt32Data() {
			t.Bool[i] = v != 0
		}
	case Uint8, Int8, Float16: // in int32_data, one value (or bit pattern) each
		if err := count(len(tp.GetInt32Data()), "int32_data"); err != nil {
			return nil, err
		}
		switch dt {
		case Uint8:
			t.Uint8 = make([]uint8, n)
			for i, v := range tp.GetInt32Data() {
				t.Uint8[i] = uint8(v)
			}
		case Int8:
			t.Int8 = make([]int8, n)
			for i, v := range tp.GetInt32Data() {
				t.Int8[i] = int8(v)
			}
		default:
			t.Float16 = make([]uint16, n)
			for i, v := range tp.GetInt32Data() {
				t.Float16[i] = uint16(v)
			}
		}
	}
	return t, nil
}
