// Package gorgonnx runs an ONNX model with github.com/owulveryck/onnx-go
// v0.5.0 and its gorgonia backend (backend/x/gorgonnx). It exists so tests can
// cross-check our ONNX exports against an independent second engine; package
// infer/gorgonnx offers it as an opt-in engine of package infer (so only the
// programs importing that package link onnx-go and this package's init).
//
// onnx-go is old and has silent failure modes, so the wrapper only lets it
// run what it computes correctly and refuses the rest with ErrUnsupported:
//
//   - Ops: Conv (group 1, with or without bias), BatchNormalization, Relu,
//     Add (equal shapes), MaxPool, GlobalAveragePool, Flatten (axis >= 0),
//     Gemm, Softmax (rank-2 input), Identity; default domain, opset 7..22.
//     onnx-go never reads the opset, Conv's group, or several other
//     attributes; the wrapper checks them (see check.go).
//   - Conv and MaxPool pads must be absent or four equal values; onnx-go
//     maps ONNX pads onto gorgonia in an order that is only right then.
//   - onnx-go reads only dim_value of the declared input shape, so a
//     symbolic batch (dim_param) works: the input tensor is set before the
//     gorgonia graph is built and every shape follows from it.
//   - At batch 1 onnx-go's BatchNormalization and Gemm write into one of
//     their inputs; the wrapper builds a fresh model and backend for every
//     evaluation (reusing one gives growing errors) and refuses graphs where
//     the overwritten tensor is read by anything else.
//   - onnx-go only fills graph outputs that no node consumes, and gorgonia
//     may overwrite a consumed tensor in place (Softmax subtracts the row
//     max from its input). The wrapper reads every graph output through an
//     extra "Mul by 1" sink, a real gorgonia consumer, so intermediate
//     outputs (e.g. logits feeding a Softmax) come back intact. An Identity
//     sink is not enough: it adds no gorgonia node.
//
// Every Run evaluates the model in a fresh child process: the current
// executable, started again with RESNETCTL_GORGONNX_CHILD set, which this
// package's init function turns into a one-shot evaluator (see child.go).
// So no Run depends on what ran before in the caller's process. onnx-go,
// gorgonia and gorgonia's tensor package keep much process-wide mutable
// state: an unsynchronised node-name counter, sync.Pools of shapes, types
// and nodes that some code paths refill while the objects are still in use,
// a channel pool of *tensor.Dense, finalizers that return slices to a pool,
// the BLAS in use. onnx-go's results for BatchNorm-folded exports (Conv with
// bias, then Softmax) were seen to drift by about the size of the logits
// after many other models had run in the same process (export's
// TestInterop); a fresh process per evaluation rules out that whole class.
// It costs a process start (about 10 to 40 ms) plus copying the model to the
// child per Run. Runs are serialised, to bound memory: onnx-go needs
// several times the model's size.
package gorgonnx

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	onnx "github.com/owulveryck/onnx-go"
	gx "github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gonum.org/v1/gonum/graph"
	"gorgonia.org/tensor"
)

// ErrUnsupported is wrapped by the errors Run returns when the model uses
// something onnx-go cannot run, or would run with wrong results (an op outside
// the checked set, Conv group != 1, unequal pads, a broadcasting Add, ...).
// The message names every offending node and op.
var ErrUnsupported = errors.New("gorgonnx: not supported by onnx-go")

// Output is one graph output: its shape and its row-major float32 data.
type Output struct {
	// Shape is the output's dimensions.
	Shape []int
	// Data holds the values in row-major order; len(Data) is the product of Shape.
	Data []float32
}

// slot serialises evaluations (one child process at a time).
var slot = make(chan struct{}, 1)

// Run executes model (ONNX bytes) on one float32 NCHW input of the given
// shape and returns every graph output by name. Each call builds a fresh
// onnx-go model and gorgonia backend in a fresh child process, so calls are
// independent of each other and of the calling process's onnx-go and
// gorgonia state. Errors wrap ErrUnsupported when the model is outside what
// onnx-go runs correctly; panics inside onnx-go or gorgonia are recovered
// and returned as errors, and a crash of the child is an error too.
//
// If ctx is cancelled Run kills the child process and returns ctx.Err().
func Run(ctx context.Context, model []byte, input []float32, shape []int) (map[string]Output, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The checks that need no onnx-go, here so that refusals cost no
	// process; the child repeats them.
	if err := checkInput(input, shape); err != nil {
		return nil, err
	}
	info, err := parseModel(model)
	if err != nil {
		return nil, fmt.Errorf("gorgonnx: cannot parse ONNX model: %w", err)
	}
	if _, problems, err := checkModel(info, shape); err != nil {
		return nil, fmt.Errorf("gorgonnx: %w", err)
	} else if len(problems) > 0 {
		return nil, unsupported(problems)
	}

	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-slot }()
	return runChild(ctx, model, input, shape)
}

// runLocal is Run's evaluation in the current process: checks, decoding,
// the forward pass and the run-time checks, with panics recovered. Only
// child processes call it (see child.go).
func runLocal(model []byte, input []float32, shape []int) (outs map[string]Output, err error) {
	if err := checkInput(input, shape); err != nil {
		return nil, err
	}
	info, err := parseModel(model)
	if err != nil {
		return nil, fmt.Errorf("gorgonnx: cannot parse ONNX model: %w", err)
	}
	inputName, problems, err := checkModel(info, shape)
	if err != nil {
		return nil, fmt.Errorf("gorgonnx: %w", err)
	}
	if len(problems) > 0 {
		return nil, unsupported(problems)
	}
	defer func() {
		if p := recover(); p != nil {
			outs, err = nil, fmt.Errorf("gorgonnx: onnx-go panicked: %v\n%s", p, firstFrames(debug.Stack()))
		}
	}()
	return run(info, model, inputName, input, shape)
}

// checkInput validates the caller's tensor.
func checkInput(input []float32, shape []int) error {
	if len(shape) == 0 {
		return errors.New("gorgonnx: empty input shape")
	}
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return fmt.Errorf("gorgonnx: invalid input shape %v", shape)
		}
		if n > len(input)/d {
			return fmt.Errorf("gorgonnx: input has %d values, shape %v needs more", len(input), shape)
		}
		n *= d
	}
	if n != len(input) {
		return fmt.Errorf("gorgonnx: input has %d values, shape %v needs %d", len(input), shape, n)
	}
	return nil
}

// unsupported wraps ErrUnsupported with the list of problems.
func unsupported(problems []string) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, strings.Join(problems, "; "))
}

// checkedBackend is the gorgonnx graph with every operation checked on its
// way in, so the attributes are seen exactly as onnx-go decoded them.
type checkedBackend struct {
	*gx.Graph
	byOutput map[string]*nodeInfo
	problems []string
}

// ApplyOperation checks (and may normalise) o, then hands it to gorgonnx.
func (b *checkedBackend) ApplyOperation(o onnx.Operation, ns ...graph.Node) error {
	node := &nodeInfo{opType: o.Name}
	if len(ns) > 0 {
		if n, ok := ns[0].(onnx.Namer); ok {
			if info, ok := b.byOutput[n.GetName()]; ok {
				node = info
			} else {
				node.outputs = []string{n.GetName()}
			}
		}
	}
	b.problems = append(b.problems, checkAttrs(node, o)...)
	return b.Graph.ApplyOperation(o, ns...)
}

// run decodes the model into a fresh backend, feeds the input, runs it and
// collects the outputs. The caller recovers panics.
func run(info *modelInfo, model []byte, inputName string, input []float32, shape []int) (map[string]Output, error) {
	be := &checkedBackend{Graph: gx.NewGraph(), byOutput: map[string]*nodeInfo{}}
	for _, n := range info.nodes {
		if len(n.outputs) > 0 {
			be.byOutput[n.outputs[0]] = n
		}
	}
	m := onnx.NewModel(be)
	decodeErr := m.UnmarshalBinary(model)
	if len(be.problems) > 0 {
		return nil, unsupported(be.problems)
	}
	if decodeErr != nil {
		return nil, wrapOnnxErr("decoding", decodeErr)
	}

	// Feed the input by name (onnx-go's SetInput(i) addresses node ID i,
	// which is only the i-th input by accident of decoding order).
	in, ok := m.GetNodeByName(inputName)
	if !ok {
		return nil, fmt.Errorf("gorgonnx: input %q not found in the decoded graph", inputName)
	}
	carrier, ok := in.(onnx.DataCarrier)
	if !ok {
		return nil, fmt.Errorf("gorgonnx: input %q cannot carry data", inputName)
	}
	data := append([]float32(nil), input...)
	if err := carrier.SetTensor(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))); err != nil {
		return nil, fmt.Errorf("gorgonnx: setting input: %w", err)
	}

	// Read every graph output, and every tensor whose shape is checked
	// after the run, through a "Mul by 1" sink: onnx-go only stores the
	// values of nodes nothing consumes, and gorgonia may overwrite a tensor
	// in place in its last gorgonia consumer (an Identity sink adds no
	// gorgonia node, so it does not keep the value alive). x*1 == x exactly.
	sinks := map[string]*gx.Node{}
	sink := func(name string) error {
		if _, ok := sinks[name]; ok {
			return nil
		}
		target, ok := m.GetNodeByName(name)
		if !ok {
			return fmt.Errorf("gorgonnx: tensor %q not found in the decoded graph", name)
		}
		one := be.Graph.NewNode()
		be.Graph.AddNode(one)
		if err := one.(*gx.Node).SetTensor(tensor.New(tensor.FromScalar(float32(1)))); err != nil {
			return err
		}
		s := be.Graph.NewNode()
		be.Graph.AddNode(s)
		be.Graph.SetWeightedEdge(be.Graph.NewWeightedEdge(s, target, 0))
		be.Graph.SetWeightedEdge(be.Graph.NewWeightedEdge(s, one, 1))
		if err := be.Graph.ApplyOperation(onnx.Operation{Name: "Mul", Attributes: map[string]any{}}, s); err != nil {
			return err
		}
		sinks[name] = s.(*gx.Node)
		return nil
	}
	for _, o := range info.outputs {
		if err := sink(o.name); err != nil {
			return nil, err
		}
	}
	for _, name := range probeNames(info) {
		if err := sink(name); err != nil {
			return nil, err
		}
	}

	if err := be.Graph.Run(); err != nil {
		return nil, wrapOnnxErr("running", err)
	}

	shapeOf := func(name string) ([]int, bool) {
		s, ok := sinks[name]
		if !ok || s.GetTensor() == nil {
			return nil, false
		}
		return append([]int(nil), s.GetTensor().Shape()...), true
	}
	if problems := checkShapes(info, shapeOf); len(problems) > 0 {
		return nil, unsupported(problems)
	}

	outs := make(map[string]Output, len(info.outputs))
	for _, o := range info.outputs {
		out, err := toOutput(sinks[o.name].GetTensor())
		if err != nil {
			return nil, fmt.Errorf("gorgonnx: output %q: %w", o.name, err)
		}
		outs[o.name] = out
	}
	return outs, nil
}

// toOutput copies a float32 tensor.
func toOutput(t tensor.Tensor) (Output, error) {
	if t == nil {
		return Output{}, errors.New("not computed")
	}
	if d, ok := t.(*tensor.Dense); ok && d.IsView() {
		t = d.Materialize()
	}
	data, ok := t.Data().([]float32)
	if !ok {
		return Output{}, fmt.Errorf("dtype %v, want float32", t.Dtype())
	}
	shape := append([]int(nil), t.Shape()...)
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != len(data) {
		return Output{}, fmt.Errorf("shape %v but %d values", shape, len(data))
	}
	return Output{Shape: shape, Data: append([]float32(nil), data...)}, nil
}

// wrapOnnxErr wraps ErrUnsupported around onnx-go's "not implemented" errors.
func wrapOnnxErr(stage string, err error) error {
	var ni *onnx.ErrNotImplemented
	if errors.As(err, &ni) {
		if ni == nil {
			// Some gorgonnx ops (Add, Sub, Mul, Div) replace the
			// error of a failed broadcast by a typed nil.
			return fmt.Errorf("%w: %s: onnx-go failed on a case it does not implement (its message is lost; typically a broadcast it cannot do)", ErrUnsupported, stage)
		}
		return fmt.Errorf("%w: %s: %v", ErrUnsupported, stage, err)
	}
	return fmt.Errorf("gorgonnx: onnx-go %s: %w", stage, err)
}

// firstFrames keeps the start of a stack trace for panic messages.
func firstFrames(stack []byte) string {
	lines := strings.Split(string(stack), "\n")
	if len(lines) > 24 {
		lines = lines[:24]
	}
	return strings.Join(lines, "\n")
}
