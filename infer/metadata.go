package infer

import (
	"fmt"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/modelmeta"
)

// Metadata describes a loaded model: where it came from, its format
// versions, its metadata_props, and its user inputs and outputs.
type Metadata struct {
	IRVersion       int64
	Opset           int // ai.onnx
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	DocString       string
	GraphName       string
	// Props holds metadata_props. Models exported by resnetctl carry the
	// modelmeta.Meta* keys (class names, preprocessing, architecture).
	Props map[string]string
	// Inputs are the graph inputs a caller feeds (initializers listed as
	// inputs are not among them); Outputs are the graph outputs.
	Inputs  []ValueInfo
	Outputs []ValueInfo
}

// ValueInfo is a graph input or output as the model declares it.
type ValueInfo struct {
	Name  string
	DType DType
	// Shape has -1 for a dynamic (or unknown) dimension; it is nil when
	// the model declares no shape at all.
	Shape []int
	// DimNames holds the symbolic names of dynamic dimensions ("N"), ""
	// for fixed ones.
	DimNames []string
}

// Classes returns the class names stored under modelmeta.MetaClasses, or
// nil when the model has none.
func (md Metadata) Classes() ([]string, error) {
	classes, err := modelmeta.Classes(md.Props)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	return classes, nil
}

// Preprocessing returns the preprocessing stored under
// modelmeta.MetaPreprocess, or nil when the model has none.
func (md Metadata) Preprocessing() (*modelmeta.Preprocessing, error) {
	p, err := modelmeta.PreprocessingOf(md.Props)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	return p, nil
}

// ReadMetadata decodes an ONNX model's protobuf and returns its Metadata,
// without validating the graph (LoadBytes does that). Engines registered
// with RegisterEngine use it to describe the models they open.
func ReadMetadata(model []byte) (Metadata, error) {
	if len(model) == 0 {
		return Metadata{}, fmt.Errorf("infer: %w: empty file", ErrInvalidModel)
	}
	mp, err := onnxmodel.Decode(model)
	if err != nil {
		return Metadata{}, fmt.Errorf("infer: %w", err)
	}
	return metadataOf(mp), nil
}

// metadataOf reads a model's metadata. Inputs named like an initializer
// are not user inputs.
func metadataOf(mp *onnxpb.ModelProto) Metadata {
	md := Metadata{
		IRVersion:       mp.GetIrVersion(),
		ProducerName:    mp.GetProducerName(),
		ProducerVersion: mp.GetProducerVersion(),
		Domain:          mp.GetDomain(),
		ModelVersion:    mp.GetModelVersion(),
		DocString:       mp.GetDocString(),
		GraphName:       mp.GetGraph().GetName(),
		Props:           map[string]string{},
	}
	for _, o := range mp.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			md.Opset = int(o.GetVersion())
		}
	}
	for _, kv := range mp.GetMetadataProps() {
		md.Props[kv.GetKey()] = kv.GetValue()
	}
	inits := map[string]bool{}
	for _, t := range mp.GetGraph().GetInitializer() {
		inits[t.GetName()] = true
	}
	info := func(vi *onnxpb.ValueInfoProto) ValueInfo {
		dt, shape, names, rank, _ := valueType(vi)
		if rank < 0 {
			shape, names = nil, nil
		}
		return ValueInfo{Name: vi.GetName(), DType: dt, Shape: shape, DimNames: names}
	}
	for _, vi := range mp.GetGraph().GetInput() {
		if !inits[vi.GetName()] {
			md.Inputs = append(md.Inputs, info(vi))
		}
	}
	for _, vi := range mp.GetGraph().GetOutput() {
		md.Outputs = append(md.Outputs, info(vi))
	}
	return md
}
