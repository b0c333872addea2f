// Package export turns a build.Graph into an ONNX model (encoded protobuf
// bytes, or a file) for any opset from 9 to 21.
//
// Op versions and their attribute-versus-input forms differ between opsets;
// this package writes the form each opset defines (Slice with steps from
// opset 10, Pad with a pads input from opset 11 …) and sets the IR version
// the ONNX release of that opset introduced. The batch dimension is dynamic
// ("N"); tensor and node names follow the graph, so initializers carry
// torchvision's parameter names. Class names, preprocessing and the
// architecture spec travel in metadata_props.
package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/internal/atomicfile"
	"github.com/resnetctl/resnetctl/internal/onnxmodel"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/modelmeta"
	"github.com/resnetctl/resnetctl/models"
	"google.golang.org/protobuf/proto"
)

// Supported opsets.
const (
	MinOpset     = 9
	MaxOpset     = 21
	DefaultOpset = 17 // the newest the ONNX 1.12 checker knows; ONNX Runtime runs 7–21+
)

// Output names and metadata keys of an exported model, defined by
// package modelmeta (which the runtime reads them from).
const (
	InputName         = modelmeta.InputName
	LogitsName        = modelmeta.LogitsName
	ProbabilitiesName = modelmeta.ProbabilitiesName
	BatchDim          = modelmeta.BatchDim

	MetaClasses      = modelmeta.MetaClasses      // JSON array of class names, in class-index order
	MetaLabelSet     = modelmeta.MetaLabelSet     // catalog name of the label set (cifar10, imagenet …)
	MetaPreprocess   = modelmeta.MetaPreprocess   // JSON Preprocessing
	MetaArchitecture = modelmeta.MetaArchitecture // JSON models.Spec
	MetaFoldedBN     = modelmeta.MetaFoldedBN
)

// Preprocessing is the JSON stored under MetaPreprocess (see
// modelmeta.Preprocessing).
type Preprocessing = modelmeta.Preprocessing

// Options control the export.
type Options struct {
	// Opset is the ai.onnx opset, MinOpset…MaxOpset; 0 means DefaultOpset.
	Opset int
	// FoldBN folds every BatchNorm that directly follows a convolution into
	// that convolution's weights and bias. BatchNorms that follow anything
	// else (pre-activation blocks) stay.
	FoldBN bool
	// Softmax appends a Softmax node whose output is "probabilities", next
	// to the "logits" output.
	Softmax bool
	// ProducerVersion is written as the model's producer_version.
	ProducerVersion string
}

// ErrOpset is wrapped when the requested opset is outside MinOpset…MaxOpset.
var ErrOpset = errors.New("unsupported opset")

// IRVersion is the IR version of the ONNX release that introduced opset.
func IRVersion(opset int) int64 {
	switch {
	case opset <= 8:
		return 3
	case opset == 9:
		return 4
	case opset == 10:
		return 5
	case opset == 11:
		return 6
	case opset <= 14:
		return 7
	case opset <= 18:
		return 8
	case opset <= 20:
		return 9
	default:
		return 10
	}
}

// model converts g to an ONNX model (Marshal and WriteFile encode it).
func model(g *build.Graph, opts Options) (*onnxpb.ModelProto, error) {
	if opts.Opset == 0 {
		opts.Opset = DefaultOpset
	}
	if opts.Opset < MinOpset || opts.Opset > MaxOpset {
		return nil, fmt.Errorf("%w: %d (this exporter writes opsets %d to %d)", ErrOpset, opts.Opset, MinOpset, MaxOpset)
	}
	if err := g.Check(); err != nil {
		return nil, err
	}
	for _, p := range g.Params {
		if p.Data == nil {
			return nil, fmt.Errorf("export: parameter %s has no data (graph built with ShapesOnly)", p.Name)
		}
	}
	e := &exporter{g: g, opts: opts, graph: &onnxpb.GraphProto{Name: g.Spec.Name}}
	if err := e.nodes(); err != nil {
		return nil, err
	}
	in := g.Spec.Input
	e.graph.Input = []*onnxpb.ValueInfoProto{valueInfo(InputName, in.C, in.H, in.W)}
	e.graph.Output = []*onnxpb.ValueInfoProto{valueInfo(LogitsName, g.Spec.Classes)}
	if opts.Softmax {
		e.graph.Output = append(e.graph.Output, valueInfo(ProbabilitiesName, g.Spec.Classes))
	}
	meta, err := metadata(g.Spec, opts.FoldBN || foldedForm(g))
	if err != nil {
		return nil, err
	}
	producer := opts.ProducerVersion
	if producer == "" {
		producer = "dev"
	}
	return &onnxpb.ModelProto{
		IrVersion:       IRVersion(opts.Opset),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: "", Version: int64(opts.Opset)}},
		ProducerName:    "resnetctl",
		ProducerVersion: producer,
		DocString:       fmt.Sprintf("%s (%s) exported by resnetctl", g.Spec.Name, models.About(g.Spec.Name)),
		Graph:           e.graph,
		MetadataProps:   meta,
	}, nil
}

// Marshal converts g to an ONNX model and returns its encoded bytes (what
// infer.LoadBytes reads).
func Marshal(g *build.Graph, opts Options) ([]byte, error) {
	m, err := model(g, opts)
	if err != nil {
		return nil, err
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("export: encode: %w", err)
	}
	return b, nil
}

// Info describes a written model.
type Info struct {
	Path      string   `json:"path"`
	Opset     int      `json:"opset"`
	IRVersion int64    `json:"ir_version"`
	Inputs    []string `json:"inputs"`
	Outputs   []string `json:"outputs"`
	Bytes     int64    `json:"bytes"`
	Params    int64    `json:"params"` // elements of every initializer
	Nodes     int      `json:"nodes"`
}

// WriteFile exports g to path atomically: the file appears complete or not
// at all, and an existing file is only replaced by a complete new one.
func WriteFile(path string, g *build.Graph, opts Options) (Info, error) {
	m, err := model(g, opts)
	if err != nil {
		return Info{}, err
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return Info{}, fmt.Errorf("export: encode: %w", err)
	}
	if err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}); err != nil {
		return Info{}, err
	}
	info := Info{Path: path, Opset: int(m.OpsetImport[0].Version), IRVersion: m.IrVersion, Bytes: int64(len(b)), Nodes: len(m.Graph.Node)}
	for _, v := range m.Graph.Input {
		info.Inputs = append(info.Inputs, v.Name)
	}
	for _, v := range m.Graph.Output {
		info.Outputs = append(info.Outputs, v.Name)
	}
	for _, t := range m.Graph.Initializer {
		n := int64(1)
		for _, d := range t.Dims {
			n *= d
		}
		if t.DataType == int32(onnxpb.TensorProto_FLOAT) {
			info.Params += n
		}
	}
	return info, nil
}

// foldedForm reports whether g is already in BatchNorm-folded form: it has
// convolutions with biases and no BatchNorm that FoldBN would fold (one
// reading a convolution's output that nothing else reads), as an imported
// folded file is, so that its export is what FoldBN makes.
func foldedForm(g *build.Graph) bool {
	bias := false
	for _, n := range g.Nodes {
		if n.Kind == build.Conv {
			bias = bias || n.Conv.Bias
		}
	}
	e := &exporter{g: g, opts: Options{FoldBN: true}}
	return bias && len(e.foldable()) == 0
}

// metadata writes what the Spec vouches for: class names when it names a
// label set; the preprocessing only when it is known (a scale and one mean
// and standard deviation per input channel: a general graph imported from
// a file without resnetctl metadata has none); the architecture only for a
// builder Spec (one with a family; a general graph's Spec is just a name,
// an input shape and a class count, which the ONNX graph itself states).
func metadata(s models.Spec, folded bool) ([]*onnxpb.StringStringEntryProto, error) {
	var meta []*onnxpb.StringStringEntryProto
	add := func(k string, v any) error {
		var str string
		if s, ok := v.(string); ok {
			str = s
		} else {
			b, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("export: metadata %s: %w", k, err)
			}
			str = string(b)
		}
		meta = append(meta, &onnxpb.StringStringEntryProto{Key: k, Value: str})
		return nil
	}
	if s.Labels != "" {
		labels, err := models.Labels(s.Labels)
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		if err := add(MetaClasses, labels); err != nil {
			return nil, err
		}
		if err := add(MetaLabelSet, s.Labels); err != nil {
			return nil, err
		}
	}
	if p := s.Preprocess; p.Scale != 0 && len(p.Mean) == s.Input.C && len(p.Std) == s.Input.C {
		pre := Preprocessing{
			Scale: p.Scale, Mean: p.Mean, Std: p.Std,
			Layout: "NCHW", Color: "RGB", InputSize: []int{s.Input.C, s.Input.H, s.Input.W}, Preset: p.Name,
		}
		if err := add(MetaPreprocess, pre); err != nil {
			return nil, err
		}
	}
	if s.Family != "" {
		if err := add(MetaArchitecture, s); err != nil {
			return nil, err
		}
	}
	if err := add(MetaFoldedBN, fmt.Sprint(folded)); err != nil {
		return nil, err
	}
	return meta, nil
}

func valueInfo(name string, dims ...int) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
		{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: BatchDim}},
	}}
	for _, d := range dims {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(onnxpb.TensorProto_FLOAT), Shape: shape},
	}}}
}

// floatTensor makes a float32 initializer with raw little-endian data.
var floatTensor = onnxmodel.FloatTensor

// int64Tensor makes a 1-D int64 initializer.
func int64Tensor(name string, data ...int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: name, DataType: int32(onnxpb.TensorProto_INT64), Dims: []int64{int64(len(data))}, Int64Data: data}
}

func ints(name string, v ...int) *onnxpb.AttributeProto {
	a := &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS}
	for _, x := range v {
		a.Ints = append(a.Ints, int64(x))
	}
	return a
}

func intAttr(name string, v int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: int64(v)}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_FLOAT, F: v}
}

func stringAttr(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_STRING, S: []byte(v)}
}
