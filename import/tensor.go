package onnximport

import (
	"errors"
	"fmt"
	"math"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
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
func numel(dims []int) (int, error) { return onnxmodel.Numel(dims) }

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

// decodeTensor reads a TensorProto with internal/onnxmodel (which checks
// shapes and data lengths before anything is allocated, and reads
// external data from ext, nil for none) and converts it: floating-point
// data to float32, integer and boolean data to int64.
func decodeTensor(tp *onnxpb.TensorProto, ext *onnxmodel.ExternalData) (*tensor, error) {
	if len(tp.GetDims()) > maxRank {
		return nil, fmt.Errorf("%w: rank %d", ErrInvalidModel, len(tp.GetDims()))
	}
	d, err := onnxmodel.DecodeTensor(tp, ext)
	if err != nil {
		return nil, layerError(err)
	}
	t := &tensor{dims: d.Dims}
	if d.Type != onnxmodel.Float && d.Type != onnxmodel.Int64 {
		t.from = onnxmodel.TypeName(d.Type)
	}
	if t.f, t.float = d.Floats(); t.float {
		return t, nil
	}
	if t.i, _ = d.Ints(); t.i == nil {
		t.i = []int64{}
	}
	return t, nil
}

// strides returns row-major strides of dims.
func strides(dims []int) []int { return onnxmodel.Strides(dims) }

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
