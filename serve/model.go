package serve

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/infer"
)

// ModelConfig is one model to serve.
type ModelConfig struct {
	// Name is the model's name in URLs: letters, digits and ._- only.
	Name string
	// Session runs the model; the server does not close it.
	Session *infer.Session
	// Instances are more sessions of the same model (Triton's instance
	// group): each runs a batch at the same time as Session and the
	// others, so a model whose runs do not keep every thread busy (small
	// batches of small images) gets more done with, say, two instances of
	// one thread each than with one of two. Their inputs and outputs must
	// be Session's. The server does not close them.
	Instances []*infer.Session
	// Classify overrides what the classify endpoint takes from the
	// model's metadata (preprocessing, class names); zero: the metadata.
	Classify classify.Flags
}

// model is a served model.
type model struct {
	name, version string
	meta          infer.Metadata
	mode          batchMode
	batcher       *batcher
	// active counts this model's requests in flight: admitted, handler
	// not yet returned (begin); the batcher waits for its share of them.
	active atomic.Int64

	// For the classify endpoint: the setup (nil with setupErr when the
	// model is no image classifier), the weights that are not finite, and
	// preprocessors (each keeps buffers, so one per request at a time).
	setup    *classify.Setup
	setupErr error
	weights  []infer.NonFinite
	pre      sync.Pool
}

// begin counts a request to the model as in flight and returns the
// function that stops counting it (and wakes a run waiting for its share
// of them). A request counts until its handler returns, the answer
// written: under load its client sends the next one about then, so
// counting it keeps runs waiting for the requests about to come.
func (m *model) begin() func() {
	m.active.Add(1)
	return func() {
		m.active.Add(-1)
		m.batcher.left()
	}
}

// validName reports whether name can stand in a URL path segment as is.
func validName(name string) bool {
	if name == "" || name == "." || name == ".." {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)) {
			return false
		}
	}
	return true
}

func newModel(mc ModelConfig, cfg *Config, observe func(int)) (*model, error) {
	if !validName(mc.Name) {
		return nil, fmt.Errorf("model name %q: use letters, digits, '.', '_' and '-' only", mc.Name)
	}
	if mc.Session == nil {
		return nil, fmt.Errorf("model %s: no session", mc.Name)
	}
	md := mc.Session.Metadata()
	m := &model{name: mc.Name, version: "1", meta: md, weights: mc.Session.NonFiniteWeights()}
	// The protocol's versions are strings; an ONNX model_version is the
	// natural one, and "1" (Triton's first version folder) otherwise.
	if md.ModelVersion > 0 {
		m.version = strconv.FormatInt(md.ModelVersion, 10)
	}
	m.mode, _ = batchModeOf(md)
	m.setup, m.setupErr = classify.ResolveSession(mc.Session, mc.Classify) // a Softmax output is not normalised again
	if m.setup != nil {
		setup := m.setup
		m.pre.New = func() any { return setup.Preprocessor() }
	}
	runners := []runner{mc.Session}
	for i, s := range mc.Instances {
		if s == nil {
			return nil, fmt.Errorf("model %s: instance %d has no session", mc.Name, i+2)
		}
		if o := s.Metadata(); !reflect.DeepEqual(o.Inputs, md.Inputs) || !reflect.DeepEqual(o.Outputs, md.Outputs) {
			return nil, fmt.Errorf("model %s: instance %d has other inputs or outputs than the first", mc.Name, i+2)
		}
		runners = append(runners, s)
	}
	m.batcher = newBatcher(runners, md, cfg.MaxBatch, cfg.MaxDelay, cfg.MaxInflight+1, observe)
	m.batcher.active = m.active.Load
	return m, nil
}

// metadata is the model's $metadata_model_response.
func (m *model) metadata() modelMetadata {
	md := modelMetadata{Name: m.name, Versions: []string{m.version}, Platform: "onnx_onnxv1",
		Inputs: []metadataTensor{}, Outputs: []metadataTensor{}}
	for _, v := range m.meta.Inputs {
		md.Inputs = append(md.Inputs, metadataTensorOf(v))
	}
	for _, v := range m.meta.Outputs {
		md.Outputs = append(md.Outputs, metadataTensorOf(v))
	}
	return md
}

func metadataTensorOf(v infer.ValueInfo) metadataTensor {
	shape := v.Shape
	if shape == nil {
		shape = []int{} // undeclared: no dimension is known
	}
	return metadataTensor{Name: v.Name, Datatype: datatypeOf(v.DType), Shape: shape}
}

// checkShape checks a request's shape against an input's declared one.
// Dynamic dimensions (-1) take any size; a fixed-batch model takes any
// number of rows, run B at a time.
func (m *model) checkShape(v infer.ValueInfo, shape []int) error {
	if v.Shape == nil {
		return nil
	}
	ok := len(shape) == len(v.Shape)
	for i := 0; ok && i < len(shape); i++ {
		ok = v.Shape[i] < 0 || v.Shape[i] == shape[i] || i == 0 && m.mode == batchFixed
	}
	if !ok {
		return fmt.Errorf("input %s has shape %v; the model's is %v (-1: any size)", v.Name, shape, v.Shape)
	}
	return nil
}

// imageSample turns a decoded image into the one-row input of the
// classify endpoint, preprocessed as the model's setup says.
func (m *model) imageSample(img *imgproc.Image) (*infer.Tensor, error) {
	s := m.setup
	x := make([]float32, s.C*s.H*s.W)
	pre := m.pre.Get().(*imgproc.Preprocessor)
	defer m.pre.Put(pre)
	if err := s.Sample(pre, x, 0, img, "the image"); err != nil {
		return nil, err
	}
	return s.Tensor(1, x), nil // in the model's layout and element type
}

// jobKey is the per-sample signature of inputs (types and shapes past the
// first dimension), so that only requests that can be concatenated share
// a run. Without batching every request is its own.
func jobKey(mode batchMode, inputs []*infer.Tensor) string {
	if mode == batchNone {
		return ""
	}
	var b strings.Builder
	for _, t := range inputs {
		fmt.Fprintf(&b, "%d%v;", t.Type(), t.Shape[1:])
	}
	return b.String()
}
