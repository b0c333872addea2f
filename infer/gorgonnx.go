package infer

import (
	"context"
	"errors"
	"fmt"

	"github.com/resnetctl/resnetctl/internal/gorgonnx"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// gorgonnxEngine runs models with onnx-go and gorgonia through
// internal/gorgonnx, which builds a fresh onnx-go graph per run and
// refuses what onnx-go would compute wrongly. It is a cross-check, slow
// and single-input.
type gorgonnxEngine struct {
	model []byte
	meta  Metadata
}

func newGorgonnx(mp *onnxpb.ModelProto, b []byte) (*gorgonnxEngine, Metadata, error) {
	if ir := mp.GetIrVersion(); ir < MinIRVersion || ir > MaxIRVersion {
		return nil, Metadata{}, fmt.Errorf("infer: %w: IR version %d (this runtime reads IR versions %d to %d)", ErrUnsupported, ir, MinIRVersion, MaxIRVersion)
	}
	meta := metadataOf(mp)
	if meta.Opset < MinOpset || meta.Opset > MaxOpset {
		return nil, Metadata{}, fmt.Errorf("infer: %w: ai.onnx opset %d (this runtime runs opsets %d to %d)", ErrUnsupported, meta.Opset, MinOpset, MaxOpset)
	}
	if len(meta.Inputs) != 1 || meta.Inputs[0].DType != Float32 {
		return nil, Metadata{}, fmt.Errorf("infer: %w: the gorgonnx engine runs models with exactly one float32 input", ErrUnsupported)
	}
	// Refused at load as the native engine does: a session of no outputs
	// made callers that read Metadata().Outputs[0] panic.
	if len(meta.Outputs) == 0 {
		return nil, Metadata{}, fmt.Errorf("infer: %w: the graph has no outputs", ErrInvalidModel)
	}
	return &gorgonnxEngine{model: b, meta: meta}, meta, nil
}

func (g *gorgonnxEngine) close() {}

func (g *gorgonnxEngine) runInto(ctx context.Context, inputs, outputs map[string]*Tensor) error {
	in := g.meta.Inputs[0]
	t := inputs[in.Name]
	if t == nil || len(inputs) != 1 {
		return fmt.Errorf("infer: %w: the model's only input is %q", ErrInput, in.Name)
	}
	if t.Type() != Float32 {
		return fmt.Errorf("infer: %w: input %q is %s, the model wants float32", ErrInput, in.Name, t.Type())
	}
	if err := t.check(); err != nil {
		return fmt.Errorf("infer: %w: input %q: %v", ErrInput, in.Name, err)
	}
	outs, err := gorgonnx.Run(ctx, g.model, t.Float32, t.Shape)
	if errors.Is(err, gorgonnx.ErrUnsupported) {
		return fmt.Errorf("infer: %w by the gorgonnx engine: %w", ErrUnsupported, err)
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
			dst = &Tensor{}
			outputs[o.Name] = dst
		}
		shapeTensor(dst, Float32, r.Shape)
		copy(dst.Float32, r.Data)
	}
	return nil
}
