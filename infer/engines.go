package infer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Backend runs a model for a Session opened by an engine registered with
// RegisterEngine. Its methods must be safe for concurrent use, as the
// Session's are.
type Backend interface {
	// RunInto computes every graph output for inputs (keyed by graph
	// input name) and stores it in outputs[name], reusing that tensor's
	// Shape and data slices when they are large enough; a missing or nil
	// entry gets a new tensor. outputs is never nil.
	RunInto(ctx context.Context, inputs, outputs map[string]*Tensor) error
	// Close releases the backend's resources; runs after Close fail.
	Close()
}

// EngineOpener opens a model (ONNX bytes) for an engine: it checks that
// the engine can run the model and returns the backend running it and the
// model's Metadata (ReadMetadata decodes it). Errors should wrap
// ErrUnsupported or ErrInvalidModel where they apply.
type EngineOpener func(model []byte, opts Options) (Backend, Metadata, error)

var (
	enginesMu sync.RWMutex
	engines   = map[string]EngineOpener{}
)

// knownEngines maps the engines of this module to the package that
// registers them, for the error of an engine not linked in.
var knownEngines = map[string]string{
	EngineGorgonnx: "github.com/resnetctl/resnetctl/infer/gorgonnx",
}

// RegisterEngine makes an engine available as Options.Engine = name, the
// way image formats and database/sql drivers register: an engine package
// calls it from its init function, and a program opts in by importing
// that package (for its side effect only, with _). It panics if open is
// nil, if name is empty or EngineNative, or if name is registered twice.
func RegisterEngine(name string, open EngineOpener) {
	if open == nil {
		panic("infer: RegisterEngine with a nil opener")
	}
	if name == "" || name == EngineNative {
		panic(fmt.Sprintf("infer: RegisterEngine: the name %q is reserved", name))
	}
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if _, dup := engines[name]; dup {
		panic(fmt.Sprintf("infer: RegisterEngine called twice for engine %q", name))
	}
	engines[name] = open
}

// Engines returns the names of the engines available to Options.Engine:
// EngineNative, then every registered engine in sorted order.
func Engines() []string {
	enginesMu.RLock()
	defer enginesMu.RUnlock()
	var names []string
	for name := range engines {
		names = append(names, name)
	}
	slices.Sort(names)
	return append([]string{EngineNative}, names...)
}

// openRegistered opens b with the registered engine name.
func openRegistered(name string, b []byte, opts Options) (*Session, error) {
	enginesMu.RLock()
	open := engines[name]
	enginesMu.RUnlock()
	if open == nil {
		if pkg, ok := knownEngines[name]; ok {
			return nil, fmt.Errorf("infer: engine %q is not linked into this program: add import _ %q", name, pkg)
		}
		var want []string
		for _, n := range Engines() {
			want = append(want, fmt.Sprintf("%q", n))
		}
		return nil, fmt.Errorf("infer: unknown engine %q (want %s)", name, strings.Join(want, " or "))
	}
	be, meta, err := open(b, opts)
	if err != nil {
		return nil, err
	}
	if be == nil {
		return nil, fmt.Errorf("infer: %w: engine %q opened no backend", ErrInternal, name)
	}
	return &Session{meta: meta, engine: backendEngine{be}, name: name}, nil
}

// backendEngine adapts a registered engine's Backend.
type backendEngine struct{ b Backend }

func (e backendEngine) runInto(ctx context.Context, inputs, outputs map[string]*Tensor) error {
	return e.b.RunInto(ctx, inputs, outputs)
}

func (e backendEngine) close() { e.b.Close() }

// Validate checks that t is usable as an input: a supported element type,
// a valid shape, and as many values in the data field of its type as the
// shape describes. Engines registered with RegisterEngine use it on the
// inputs they are given.
func (t *Tensor) Validate() error { return t.check() }
