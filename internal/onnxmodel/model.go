package onnxmodel

import (
	"errors"
	"fmt"
	"strings"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Sentinel errors: every error of this package wraps one of them.
var (
	// ErrInvalidModel: the bytes are not a well-formed ONNX model (bad
	// protobuf, dangling or repeated names, tensors whose data does not
	// match their shape …).
	ErrInvalidModel = errors.New("invalid ONNX model")
	// ErrUnsupported: a well-formed model uses something not read (an IR
	// version or opset outside the supported range, an element type, an
	// external data key …).
	ErrUnsupported = errors.New("not supported")
)

// The ONNX versions resnetctl reads, both to run and to import.
const (
	MinIRVersion = 3
	MaxIRVersion = 10
	MinOpset     = 7
	MaxOpset     = 21
)

// Decode unmarshals a model's bytes.
func Decode(b []byte) (*onnxpb.ModelProto, error) {
	mp := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil {
		return nil, fmt.Errorf("%w: cannot decode the ONNX protobuf (truncated or not an ONNX file?): %v", ErrInvalidModel, err)
	}
	return mp, nil
}

// Reader names what reads a model in the version errors of Check:
// "this runtime" runs opsets, "this importer" reads them.
type Reader struct {
	Name string
	Verb string // for opsets
}

// Check checks what must hold before a graph can be read: an IR version
// and an ai.onnx opset in the supported ranges, and a graph. It returns
// the graph and the ai.onnx opset.
func Check(mp *onnxpb.ModelProto, r Reader) (*onnxpb.GraphProto, int, error) {
	ir := mp.GetIrVersion()
	if ir == 0 {
		return nil, 0, fmt.Errorf("%w: no IR version (is this an ONNX model?)", ErrInvalidModel)
	}
	if ir < MinIRVersion || ir > MaxIRVersion {
		return nil, 0, fmt.Errorf("%w: IR version %d (%s reads IR versions %d to %d)", ErrUnsupported, ir, r.Name, MinIRVersion, MaxIRVersion)
	}
	opset, found := 0, false
	for _, o := range mp.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			opset, found = int(o.GetVersion()), true
		}
	}
	if !found {
		return nil, 0, fmt.Errorf("%w: no ai.onnx opset import", ErrInvalidModel)
	}
	if opset < MinOpset || opset > MaxOpset {
		return nil, 0, fmt.Errorf("%w: ai.onnx opset %d (%s %s opsets %d to %d)", ErrUnsupported, opset, r.Name, r.Verb, MinOpset, MaxOpset)
	}
	g := mp.GetGraph()
	if g == nil {
		return nil, 0, fmt.Errorf("%w: the model has no graph", ErrInvalidModel)
	}
	return g, opset, nil
}

// Problem is one thing wrong with a graph.
type Problem struct {
	Msg     string
	Invalid bool // ErrInvalidModel; else ErrUnsupported
}

// Err is the problem as an error wrapping its sentinel.
func (p Problem) Err() error {
	if p.Invalid {
		return fmt.Errorf("%w: %s", ErrInvalidModel, p.Msg)
	}
	return fmt.Errorf("%w: %s", ErrUnsupported, p.Msg)
}

// Sources are a graph's initializers and user inputs, their names checked.
type Sources struct {
	// Initializers, each named once, in file order.
	Initializers []*onnxpb.TensorProto
	// Inputs are the graph inputs that are not initializers (IR 3 and
	// model-zoo files list every weight as an input too), in file order.
	Inputs []*onnxpb.ValueInfoProto
}

// IndexSources checks the names of g's initializers and inputs (each
// given, each listed once) and refuses sparse initializers. The problems
// come in file order; what has a problem is left out.
func IndexSources(g *onnxpb.GraphProto) (Sources, []Problem) {
	var s Sources
	var probs []Problem
	add := func(invalid bool, format string, args ...any) {
		probs = append(probs, Problem{Msg: fmt.Sprintf(format, args...), Invalid: invalid})
	}
	inits := map[string]bool{}
	for i, tp := range g.GetInitializer() {
		switch name := tp.GetName(); {
		case name == "":
			add(true, "initializer %d has no name", i)
		case inits[name]:
			add(true, "initializer %q is defined twice", name)
		default:
			inits[name] = true
			s.Initializers = append(s.Initializers, tp)
		}
	}
	for _, sp := range g.GetSparseInitializer() {
		add(false, "sparse initializer %q is not supported", sp.GetValues().GetName())
	}
	seen := map[string]bool{}
	for i, vi := range g.GetInput() {
		switch name := vi.GetName(); {
		case name == "":
			add(true, "graph input %d has no name", i)
		case seen[name]:
			add(true, "graph input %q is listed twice", name)
		default:
			seen[name] = true
			if !inits[name] {
				s.Inputs = append(s.Inputs, vi)
			}
		}
	}
	return s, probs
}

// OutputProblem checks graph output i, called name, against the values
// defined: a name, defined somewhere. "" when it is fine.
func OutputProblem(i int, name string, defined bool) string {
	switch {
	case name == "":
		return fmt.Sprintf("graph output %d has no name", i)
	case !defined:
		return fmt.Sprintf("graph output %q is not computed by any node", name)
	}
	return ""
}

// TrimSentinel drops a leading sentinel text ("invalid ONNX model: ",
// "not supported: ") from err's message, for a caller that classifies
// the error itself.
func TrimSentinel(err error) string {
	s := err.Error()
	for _, p := range []string{ErrInvalidModel.Error() + ": ", ErrUnsupported.Error() + ": "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}
