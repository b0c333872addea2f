package infer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/resnetctl/resnetctl/internal/kernels"
	"github.com/resnetctl/resnetctl/internal/onnxmodel"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/regularfile"
)

// Engine names for Options.Engine.
const (
	// EngineNative is this package's runtime, always available.
	EngineNative = "native"
	// EngineGorgonnx is onnx-go with its gorgonia backend, a cross-check
	// available once package github.com/resnetctl/resnetctl/infer/gorgonnx
	// is imported (it registers itself; see RegisterEngine).
	EngineGorgonnx = "gorgonnx"
)

// Options control loading and running a model.
type Options struct {
	// Engine is EngineNative (the default when empty) or the name of an
	// engine registered with RegisterEngine, such as EngineGorgonnx
	// (onnx-go with its gorgonia backend, for cross-checking; one float32
	// input, a subset of the ops) once package infer/gorgonnx is imported.
	Engine string
	// Threads is the number of worker threads of the native engine;
	// 0 means runtime.NumCPU().
	Threads int
	// ExternalDataDir is the folder holding external tensor data files.
	// Load defaults it to the model's folder; LoadBytes refuses external
	// data unless it is set. Locations must stay inside this folder.
	ExternalDataDir string
	// MaxPlans bounds the execution plans cached (one per distinct set of
	// input shapes); 0 means 16. The oldest plan is dropped first.
	MaxPlans int
	// MaxElements bounds the element count of any one tensor a plan may
	// create (a guard against absurd shapes); 0 means 1<<31.
	MaxElements int
	// MaxMemory is the memory budget of a plan, in bytes: the weights,
	// the constants computed while planning, the packed convolutions, and
	// every buffer one run needs (inputs, outputs, temporaries as laid out
	// by liveness, workspaces) together. It is checked when a plan is made
	// (at load for fixed input shapes, else at the first Run with new
	// shapes), before anything is allocated; a plan over it is refused
	// with an error wrapping ErrMemoryBudget that names the largest
	// tensors. The cached plans (MaxPlans) stay within it together, the
	// oldest dropped first; concurrent runs each need their own run
	// buffers. 0 means DefaultMaxMemory() (3/4 of the smallest of physical
	// memory and the process's rlimits and cgroup limit); < 0 turns the
	// check off. The native engine only (gorgonnx is for cross-checking).
	MaxMemory int64
	// NoInt8Kernels runs the convolutions of quantized (QDQ) models in
	// float32 on the dequantized values, as the graph is written, instead
	// of with the int8 kernels (AMX or AVX-512 VNNI) where the CPU has
	// them: for comparison and debugging.
	NoInt8Kernels bool
}

// MaxThreads is the most worker threads Options.Threads may ask for:
// 1024, or 4 per CPU on larger machines. Every thread is a goroutine with
// its own slice of every convolution's workspace.
func MaxThreads() int { return max(1024, 4*runtime.NumCPU()) }

// Session is a loaded model, ready to run. Its methods are safe for
// concurrent use.
type Session struct {
	meta   Metadata
	engine engine
	name   string
	// nonFinite lists the weights holding NaN or ±Inf (native engine).
	nonFinite []NonFinite
}

// engine runs a model.
type engine interface {
	runInto(ctx context.Context, inputs, outputs map[string]*Tensor) error
	close()
}

// Load reads an ONNX model file. External tensor data is looked up next to
// it. Only a regular file is read (a FIFO would block forever), of at most
// onnxpb.MaxModelBytes.
func Load(path string, opts Options) (*Session, error) {
	b, err := regularfile.ReadFile(path, onnxpb.MaxModelBytes)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	if opts.ExternalDataDir == "" {
		opts.ExternalDataDir = filepath.Dir(path)
	}
	s, err := LoadBytes(b, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// LoadBytes decodes and validates an ONNX model. A model the runtime
// cannot run fully is refused here, with a *LoadError listing every
// problem, rather than failing at Run.
func LoadBytes(b []byte, opts Options) (s *Session, err error) {
	defer func() {
		if r := recover(); r != nil { // a bug, reported rather than crashing the caller
			s, err = nil, fmt.Errorf("infer: %w: loading the model: %v", ErrInternal, r)
		}
	}()
	if len(b) == 0 {
		return nil, fmt.Errorf("infer: %w: empty file", ErrInvalidModel)
	}
	if opts.Threads > MaxThreads() {
		return nil, fmt.Errorf("infer: %w: Options.Threads %d is more than %d", ErrInput, opts.Threads, MaxThreads())
	}
	mp, err := onnxmodel.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("infer: %w", err)
	}
	switch opts.Engine {
	case "", EngineNative:
		e, err := newNative(mp, opts)
		if err != nil {
			return nil, err
		}
		return &Session{meta: e.m.meta, engine: e, name: EngineNative, nonFinite: e.nonFinite}, nil
	}
	return openRegistered(opts.Engine, b, opts)
}

// Int8Info says how a quantized model runs.
type Int8Info struct {
	// Convolutions is the number of convolutions running on int8
	// kernels.
	Convolutions int
	// Kernel names them: "amx" (AMX tiles), "avx512-vnni", or "" when
	// none runs.
	Kernel string
	// FloatQDQ is the number of quantize-dequantize pairs computed in
	// float32 (on activations the int8 kernels do not absorb).
	FloatQDQ int
	// Packed is the number of tensors passed between int8 convolutions
	// as packed uint8 rather than float32.
	Packed int
}

// Int8 reports how the model's quantized parts run (zero for float
// models and for engines other than native).
func (s *Session) Int8() Int8Info {
	e, ok := s.engine.(*native)
	if !ok {
		return Int8Info{}
	}
	var info Int8Info
	for _, n := range e.m.nodes {
		switch o := n.op.(type) {
		case *qconvOp:
			info.Convolutions++
			if o.outPacked {
				info.Packed++
			}
			switch {
			case info.Kernel == "":
				info.Kernel = o.kernel
			case info.Kernel != o.kernel:
				info.Kernel = "amx+avx512-vnni" // AMX for the layers deep enough
			}
		case *fakeQuantOp:
			info.FloatQDQ++
		case *qshortcutOp:
			info.Packed++
		}
	}
	return info
}

// Engine returns the name of the engine running the model.
func (s *Session) Engine() string { return s.name }

// Metadata describes the model.
func (s *Session) Metadata() Metadata { return s.meta }

// Close releases the worker threads. It must not be called while a Run is
// in progress; runs after Close fail.
func (s *Session) Close() error {
	s.engine.close()
	return nil
}

// Run computes every graph output for the given inputs, keyed by graph
// input name. The returned tensors are new and belong to the caller.
func (s *Session) Run(ctx context.Context, inputs map[string]*Tensor) (map[string]*Tensor, error) {
	out := make(map[string]*Tensor, len(s.meta.Outputs))
	for _, o := range s.meta.Outputs {
		out[o.Name] = &Tensor{}
	}
	if err := s.engine.runInto(ctx, inputs, out); err != nil {
		return nil, err
	}
	return out, nil
}

// RunInto is Run writing into caller-owned tensors: each graph output is
// stored in outputs[name], reusing that tensor's Shape and data slices
// when they are large enough (a missing or nil entry gets a new tensor).
// With the same input shapes and reused outputs it does not allocate.
func (s *Session) RunInto(ctx context.Context, inputs, outputs map[string]*Tensor) error {
	if outputs == nil {
		return fmt.Errorf("infer: RunInto needs an outputs map")
	}
	return s.engine.runInto(ctx, inputs, outputs)
}

// newNative builds the native engine: validation, graph rewrites (BN
// folding, conv fusion), and an eager plan when the input shapes are fixed.
func newNative(mp *onnxpb.ModelProto, opts Options) (*native, error) {
	var ext *externalData
	if opts.ExternalDataDir != "" {
		ext = &externalData{dir: opts.ExternalDataDir}
		defer ext.close()
	}
	// Collections of the load's garbage: the file's bytes, the protobuf
	// (if the caller dropped it), the weights BatchNorm was folded out of
	// (native.go).
	collectLoadGarbage(rawBytes(mp))
	m, err := buildModel(mp, ext)
	if err != nil {
		return nil, err
	}
	collectLoadGarbage(m.weightBytes())
	nonFinite := nonFiniteWeights(m) // before folding renames and merges weights
	fuse(m)
	if !opts.NoInt8Kernels {
		fuseQConv(m)
	}
	collectLoadGarbage(m.weightBytes())
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	budget := opts.MaxMemory
	switch {
	case budget == 0:
		budget = DefaultMaxMemory()
	case budget < 0:
		budget = math.MaxInt64
	}
	e := &native{m: m, threads: threads, maxElems: opts.MaxElements, maxPlans: opts.MaxPlans, plans: map[string]*plan{},
		pool: kernels.NewPool(threads), nonFinite: nonFinite, budget: budget, weightBytes: m.weightBytes()}
	if e.maxElems <= 0 {
		e.maxElems = 1 << 31
	}
	if e.maxPlans <= 0 {
		e.maxPlans = 16
	}
	// Plan now when the input shapes are fixed (or dynamic in the batch
	// dimension only, planned at batch 1), so that shape errors are load
	// errors and the first run finds its plan ready.
	// The plan is checked against the memory budget before anything of
	// it is allocated (a plan over it is an error of the load), and so are
	// declared inputs that could not even be planned.
	if err := m.checkDeclaredInputs(budget); err != nil {
		e.close()
		return nil, err
	}
	if shapes, ok := m.probeShapes(e.maxElems); ok && len(m.keyInputs) == 0 {
		p, err := e.buildPlan(shapes, nil)
		if errors.Is(err, ErrMemoryBudget) {
			e.close()
			return nil, err
		}
		if err != nil {
			e.close()
			pr := Problem{Msg: trimSentinel(err) + fmt.Sprintf(" (planning input shapes %v)", shapes), Invalid: !isUnsupported(err)}
			var ne *NodeError
			if errors.As(err, &ne) {
				pr.Node, pr.OpType = ne.Node, ne.OpType
				pr.Msg = strings.TrimPrefix(trimSentinel(ne.Err), ErrInput.Error()+": ") + fmt.Sprintf(" (planning input shapes %v)", shapes)
			}
			return nil, &LoadError{Problems: []Problem{pr}}
		}
		p.key = planKey(shapes, nil)
		e.cache(p)
	}
	return e, nil
}

// probeShapes returns the declared input shapes when every dimension is
// known except possibly the first (the batch, then taken as 1), and the
// inputs are of a plausible size.
func (m *model) probeShapes(maxElems int) ([][]int, bool) {
	var shapes [][]int
	for _, id := range m.inputs {
		v := m.values[id]
		if v.rank < 0 {
			return nil, false
		}
		shape := slices.Clone(v.shape)
		for i, d := range shape {
			switch {
			case d >= 0:
			case i == 0:
				shape[i] = 1
			default:
				return nil, false
			}
		}
		if n, err := numel(shape); err != nil || n > maxElems {
			return nil, false
		}
		shapes = append(shapes, shape)
	}
	return shapes, true
}

// checkInputs validates the caller's inputs against the model. It does
// not allocate unless there is an error.
func (m *model) checkInputs(inputs map[string]*Tensor) error {
	missing := 0
	for _, id := range m.inputs {
		v := m.values[id]
		t := inputs[v.name]
		if t == nil {
			missing++
			continue
		}
		if t.Type() != v.dtype {
			return fmt.Errorf("infer: %w: input %q is %s, the model wants %s", ErrInput, v.name, t.Type(), v.dtype)
		}
		if err := t.check(); err != nil {
			return fmt.Errorf("infer: %w: input %q: %v", ErrInput, v.name, err)
		}
		if v.rank >= 0 {
			ok := len(t.Shape) == v.rank
			for i := 0; ok && i < v.rank; i++ {
				ok = v.shape[i] < 0 || v.shape[i] == t.Shape[i]
			}
			if !ok {
				return fmt.Errorf("infer: %w: input %q has shape %v, the model wants %s", ErrInput, v.name, t.Shape, shapeText(v.shape, v.dimNames))
			}
		}
	}
	if missing > 0 || len(inputs) != len(m.inputs) {
		return m.inputNameError(inputs)
	}
	return nil
}

func (m *model) inputNameError(inputs map[string]*Tensor) error {
	var missing, unknown, want []string
	for _, id := range m.inputs {
		name := m.values[id].name
		want = append(want, fmt.Sprintf("%q", name))
		if inputs[name] == nil {
			missing = append(missing, fmt.Sprintf("%q", name))
		}
	}
	for name := range inputs {
		id, ok := m.byName[name]
		if !ok || !m.values[id].input {
			unknown = append(unknown, fmt.Sprintf("%q", name))
		}
	}
	slices.Sort(unknown)
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "missing "+strings.Join(missing, ", "))
	}
	if len(unknown) > 0 {
		parts = append(parts, "unknown "+strings.Join(unknown, ", "))
	}
	if len(parts) == 0 {
		parts = append(parts, "nil tensor")
	}
	return fmt.Errorf("infer: %w: inputs: %s (the model's inputs are %s)", ErrInput, strings.Join(parts, "; "), strings.Join(want, ", "))
}

// shapeText renders a declared shape, dynamic dimensions by name.
func shapeText(shape []int, names []string) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		switch {
		case d >= 0:
			parts[i] = fmt.Sprint(d)
		case i < len(names) && names[i] != "":
			parts[i] = names[i]
		default:
			parts[i] = "?"
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

var errClosed = errors.New("infer: session is closed")
