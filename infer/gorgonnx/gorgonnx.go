// Package gorgonnx registers the "gorgonnx" engine with package infer: the
// same ONNX files run with github.com/owulveryck/onnx-go and its gorgonia
// backend, an independent second engine for cross-checking the native
// runtime. Import it for its side effect:
//
//	import _ "github.com/resnetctl/resnetctl/infer/gorgonnx"
//
//	s, err := infer.Load("model.onnx", infer.Options{Engine: infer.EngineGorgonnx})
//
// The engine takes models with exactly one float32 input and runs a checked
// subset of the ops (Conv with group 1, BatchNormalization, Relu, Add of
// equal shapes, MaxPool, GlobalAveragePool, Flatten, Gemm, Softmax,
// Identity); anything onnx-go would compute wrongly is refused with an
// error wrapping both infer.ErrUnsupported and ErrUnsupported. It is slow:
// every run builds a fresh onnx-go graph in a fresh child process.
//
// Importing this package links onnx-go, gorgonia and their dependencies
// (about 100 more packages and 15 MB more binary) and installs an init function
// that turns the program into a one-shot evaluator, exiting before main,
// when it is started with the environment variable
// RESNETCTL_GORGONNX_CHILD set to the engine's protocol tag: that is how
// each run gets its child process without a separate helper binary.
// Programs that do not import it get neither.
package gorgonnx

import (
	"context"
	"errors"
	"fmt"

	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/gorgonnx"
)

// ErrUnsupported is wrapped (next to infer.ErrUnsupported) by the errors
// of runs the engine refuses because onnx-go cannot run the model, or
// would run it with wrong results.
var ErrUnsupported = gorgonnx.ErrUnsupported

func init() {
	infer.RegisterEngine(infer.EngineGorgonnx, open)
}

// backend runs one model. It keeps only the model's bytes: every run
// decodes them afresh in a child process.
type backend struct {
	model []byte
	meta  infer.Metadata
}

// open checks what the engine can run before any run: the format
// versions the native runtime reads, one float32 input, some outputs.
func open(b []byte, _ infer.Options) (infer.Backend, infer.Metadata, error) {
	meta, err := infer.ReadMetadata(b)
	if err != nil {
		return nil, infer.Metadata{}, err
	}
	if ir := meta.IRVersion; ir < infer.MinIRVersion || ir > infer.MaxIRVersion {
		return nil, infer.Metadata{}, fmt.Errorf("infer: %w: IR version %d (this runtime reads IR versions %d to %d)", infer.ErrUnsupported, ir, infer.MinIRVersion, infer.MaxIRVersion)
	}
	if meta.Opset < infer.MinOpset || meta.Opset > infer.MaxOpset {
		return nil, infer.Metadata{}, fmt.Errorf("infer: %w: ai.onnx opset %d (this runtime runs opsets %d to %d)", infer.ErrUnsupported, meta.Opset, infer.MinOpset, infer.MaxOpset)
	}
	if len(meta.Inputs) != 1 || meta.Inputs[0].DType != infer.Float32 {
		return nil, infer.Metadata{}, fmt.Errorf("infer: %w: the gorgonnx engine runs models with exactly one float32 input", infer.ErrUnsupported)
	}
	// Refused at load as the native engine does: a session of no outputs
	// made callers that read Metadata().Outputs[0] panic.
	if len(meta.Outputs) == 0 {
		return nil, infer.Metadata{}, fmt.Errorf("infer: %w: the graph has no outputs", infer.ErrInvalidModel)
	}
	return &backend{model: b, meta: meta}, meta, nil
}

func (g *backend) Close() {}

func (g *backend) RunInto(ctx context.Context, inputs, outputs map[string]*infer.Tensor) error {
	in := g.meta.Inputs[0]
	t := inputs[in.Name]
	if t == nil || len(inputs) != 1 {
		return fmt.Errorf("infer: %w: the model's only input is %q", infer.ErrInput, in.Name)
	}
	if t.Type() != infer.Float32 {
		return fmt.Errorf("infer: %w: input %q is %s, the model wants float32", infer.ErrInput, in.Name, t.Type())
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("infer: %w: input %q: %v", infer.ErrInput, in.Name, err)
	}
	outs, err := gorgonnx.Run(ctx, g.model, t.Float32, t.Shape)
	if errors.Is(err, gorgonnx.ErrUnsupported) {
		return fmt.Errorf("infer: %w by the gorgonnx engine: %w", infer.ErrUnsupported, err)
	}
	if err != nil {
		return fmt.Errorf("infer: gorgonnx engine: %w", err)
	}
	for _, o := range g.meta.Outputs {
		r, ok := outs[o.Name]
		if !ok {
			return fmt.Errorf("infer: gorgonnx engine: output %q missing", o.Name)
		}
		dst := outputs[o.Name]
		if dst == nil {
			dst = &infer.Tensor{}
			outputs[o.Name] = dst
		}
		setFloat32(dst, r.Shape, r.Data)
	}
	return nil
}

// setFloat32 stores a float32 result in dst, reusing its slices when they
// are large enough.
func setFloat32(dst *infer.Tensor, shape []int, data []float32) {
	dst.DType = infer.Float32
	dst.Shape = append(dst.Shape[:0], shape...)
	if cap(dst.Float32) >= len(data) {
		dst.Float32 = dst.Float32[:len(data)]
	} else {
		dst.Float32 = make([]float32, len(data))
	}
	copy(dst.Float32, data)
}
