package infer

import (
	"fmt"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// externalData is the folder TensorProto external_data is read from (the
// model's), under internal/onnxmodel's confinement rules. A nil
// *externalData refuses every external tensor.
type externalData struct {
	dir string
	src *onnxmodel.ExternalData
}

func (e *externalData) close() {
	if e != nil {
		e.src.Close()
	}
}

func (e *externalData) source() *onnxmodel.ExternalData {
	if e == nil {
		return nil
	}
	if e.src == nil {
		e.src = onnxmodel.NewExternalData(e.dir)
	}
	return e.src
}

// tensorFromProto decodes a TensorProto (an initializer, an attribute value
// or a test-data file) of a type the runtime holds; internal/onnxmodel
// checks shapes and data lengths before anything is allocated.
func tensorFromProto(tp *onnxpb.TensorProto, ext *externalData) (*Tensor, error) {
	dt := DType(tp.GetDataType())
	if !dt.supported() {
		return nil, fmt.Errorf("%w: element type %s (supported: float32, float64, int64, int32, bool)", ErrUnsupported, dt)
	}
	d, err := onnxmodel.DecodeTensor(tp, ext.source())
	if err != nil {
		return nil, err
	}
	return &Tensor{Shape: d.Dims, DType: dt, Float32: d.Float32, Float64: d.Float64, Int64: d.Int64,
		Int32: d.Int32, Bool: d.Bool, Uint8: d.Uint8, Int8: d.Int8, Float16: d.Bits16}, nil
}
