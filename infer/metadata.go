package infer

import (
	"encoding/json"
	"fmt"

	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
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
	// export.Meta* keys (class names, preprocessing, architecture).
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

// Classes returns the class names stored under export.MetaClasses, or
// nil when the model has none.
func (md Metadata) Classes() ([]string, error) {
	s, ok := md.Props[export.MetaClasses]
	if !ok {
		return nil, nil
	}
	var classes []string
	if err := json.Unmarshal([]byte(s), &classes); err != nil {
		return nil, fmt.Errorf("infer: metadata %q: %w", export.MetaClasses, err)
	}
	return classes, nil
}

// Preprocessing returns the preprocessing stored under
// export.MetaPreprocess, or nil when the model has none.
func (md Metadata) Preprocessing() (*export.Preprocessing, error) {
	s, ok := md.Props[export.MetaPreprocess]
	if !ok {
		return nil, nil
	}
	var p export.Preprocessing
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return nil, fmt.Errorf("infer: metadata %q: %w", export.MetaPreprocess, err)
	}
	return &p, nil
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
