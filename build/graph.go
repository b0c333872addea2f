// Package build holds build.Graph, resnetctl's one model representation, and
// the builder that makes a Graph from a models.Spec.
//
// A Graph is a small typed list of ops in execution order (Conv, BatchNorm,
// Relu, Add, MaxPool, GlobalAvgPool, Flatten, Dense, ChannelPad …), each
// naming its input and output values, plus float32 parameters named the way
// torchvision names them ("conv1.weight", "layer1.0.bn2.running_var",
// "fc.bias"), so PyTorch state dicts and ONNX initializers map one to one.
// Export, import, training and summaries all work on this type.
package build

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/resnetctl/resnetctl/models"
)

// Kind is an op type.
type Kind string

// The op kinds a Graph may hold. Every op takes and returns NCHW float32
// tensors, except Flatten and Dense, which work on (N, C) matrices.
const (
	Conv          Kind = "Conv"          // 2-D convolution; params weight [out, in/groups, kh, kw] (+ bias [out])
	BatchNorm     Kind = "BatchNorm"     // per-channel normalisation; params weight, bias, running_mean, running_var
	Relu          Kind = "Relu"          // max(x, 0)
	Add           Kind = "Add"           // element-wise sum of two same-shape inputs
	MaxPool       Kind = "MaxPool"       // max pooling with Pool attributes
	AvgPool       Kind = "AvgPool"       // average pooling with Pool attributes (padding not counted)
	GlobalAvgPool Kind = "GlobalAvgPool" // mean over H and W, keeping 1x1
	Flatten       Kind = "Flatten"       // (N, C, 1, 1) → (N, C)
	Dense         Kind = "Dense"         // y = x·Wᵀ + b; params weight [out, in], bias [out]
	Softmax       Kind = "Softmax"       // softmax over classes
	// ChannelPad is the option-A shortcut: take every Stride-th pixel, then
	// add Before zero channels in front and After behind.
	ChannelPad Kind = "ChannelPad"
)

// ConvAttrs are the attributes of a Conv node.
type ConvAttrs struct {
	Kernel   int  `json:"kernel"` // square kernel side
	Stride   int  `json:"stride"`
	Pad      int  `json:"pad"` // symmetric zero padding on every side
	Dilation int  `json:"dilation"`
	Groups   int  `json:"groups"`
	Bias     bool `json:"bias"`
}

// PoolAttrs are the attributes of MaxPool and AvgPool nodes.
type PoolAttrs struct {
	Kernel int `json:"kernel"`
	Stride int `json:"stride"`
	Pad    int `json:"pad"`
}

// PadAttrs are the attributes of a ChannelPad node.
type PadAttrs struct {
	Stride int `json:"stride"`
	Before int `json:"before"`
	After  int `json:"after"`
}

// BNAttrs are the attributes of a BatchNorm node, in PyTorch's convention:
// running = (1-Momentum)*running + Momentum*batch, with the unbiased batch
// variance in the running estimate.
type BNAttrs struct {
	Epsilon  float32 `json:"epsilon"`
	Momentum float32 `json:"momentum"`
}

// Node is one op. Its output value carries the name Output; parameters are
// referenced by name, in the order the op's documentation above gives.
type Node struct {
	Name   string   `json:"name"`
	Kind   Kind     `json:"kind"`
	Inputs []string `json:"inputs"`
	Output string   `json:"output"`
	// Shape is the per-sample output shape; Flatten, Dense and Softmax
	// outputs have H = W = 1 and are two-dimensional in practice.
	Shape  models.Shape `json:"shape"`
	Params []string     `json:"params,omitempty"`

	Conv *ConvAttrs `json:"conv,omitempty"`
	Pool *PoolAttrs `json:"pool,omitempty"`
	Pad  *PadAttrs  `json:"pad,omitempty"`
	BN   *BNAttrs   `json:"bn,omitempty"`
}

// Param is a named float32 tensor. Data is nil in a graph built with
// Options.ShapesOnly.
type Param struct {
	Name      string    `json:"name"`
	Shape     []int     `json:"shape"`
	Data      []float32 `json:"-"`
	Trainable bool      `json:"trainable"`
}

// Size is the number of elements of the parameter.
func (p *Param) Size() int64 {
	n := int64(1)
	for _, d := range p.Shape {
		n *= int64(d)
	}
	return n
}

// Graph is a model: an input, ops in execution order, parameters and one
// output. The batch dimension is left open: shapes are per sample.
type Graph struct {
	Spec   models.Spec `json:"spec"`
	Input  string      `json:"input"`
	Output string      `json:"output"`
	Nodes  []*Node     `json:"nodes"`
	Params []*Param    `json:"params"`

	index map[string]*Param
}

// Param returns the parameter with the given name, or nil. Lookups use an
// index made by the builder (or Reindex) and fall back to a scan when
// Params has changed since, so reads never mutate the graph.
func (g *Graph) Param(name string) *Param {
	if len(g.index) == len(g.Params) {
		if p := g.index[name]; p != nil && p.Name == name {
			return p
		}
	}
	for _, p := range g.Params {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Reindex rebuilds the name index after Params was changed by hand.
func (g *Graph) Reindex() {
	g.index = make(map[string]*Param, len(g.Params))
	for _, p := range g.Params {
		g.index[p.Name] = p
	}
}

// Counts holds parameter and compute totals.
type Counts struct {
	Trainable    int64 `json:"trainable"`
	NonTrainable int64 `json:"non_trainable"`
	MACs         int64 `json:"macs"`
}

// Total is the number of parameters, trainable or not.
func (c Counts) Total() int64 { return c.Trainable + c.NonTrainable }

// Counts returns the parameter totals and the multiply-accumulates of one
// forward pass for one sample. MACs count convolutions and dense layers
// only, the convention of torchvision's published GFLOPS figures.
func (g *Graph) Counts() Counts {
	var c Counts
	for _, p := range g.Params {
		if p.Trainable {
			c.Trainable += p.Size()
		} else {
			c.NonTrainable += p.Size()
		}
	}
	for _, n := range g.Nodes {
		c.MACs += g.NodeMACs(n)
	}
	return c
}

// NodeMACs is the multiply-accumulate count of one node for one sample.
func (g *Graph) NodeMACs(n *Node) int64 {
	switch n.Kind {
	case Conv, Dense:
		if len(n.Params) == 0 {
			return 0
		}
		w := g.Param(n.Params[0])
		if w == nil || len(w.Shape) == 0 {
			return 0
		}
		// Every output element takes one MAC per weight of its filter.
		perOut := w.Size() / int64(w.Shape[0])
		return int64(n.Shape.C) * int64(n.Shape.H) * int64(n.Shape.W) * perOut
	}
	return 0
}

// NodeParams is the number of parameter elements a node owns, split into
// trainable and non-trainable.
func (g *Graph) NodeParams(n *Node) (trainable, nonTrainable int64) {
	for _, name := range n.Params {
		if p := g.Param(name); p != nil {
			if p.Trainable {
				trainable += p.Size()
			} else {
				nonTrainable += p.Size()
			}
		}
	}
	return trainable, nonTrainable
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ErrInvalidGraph is wrapped by every error Check returns.
var ErrInvalidGraph = errors.New("invalid graph")

// Check verifies that the graph is well formed: unique node and value
// names, every input defined before use, every referenced parameter present
// with data of the right length (unless data is absent everywhere), and
// attributes present for the ops that need them. Import uses it on graphs
// that did not come from the builder.
func (g *Graph) Check() error {
	bad := func(n *Node, format string, args ...any) error {
		return fmt.Errorf("%w: node %s (%s): %s", ErrInvalidGraph, n.Name, n.Kind, fmt.Sprintf(format, args...))
	}
	if g.Input == "" || g.Output == "" {
		return fmt.Errorf("%w: input and output must be named", ErrInvalidGraph)
	}
	defined := map[string]bool{g.Input: true}
	names := map[string]bool{}
	params := map[string]bool{}
	withData := 0
	for _, p := range g.Params {
		if params[p.Name] {
			return fmt.Errorf("%w: parameter %s appears twice", ErrInvalidGraph, p.Name)
		}
		params[p.Name] = true
		if p.Data != nil {
			withData++
			if int64(len(p.Data)) != p.Size() {
				return fmt.Errorf("%w: parameter %s has %d values for shape %v", ErrInvalidGraph, p.Name, len(p.Data), p.Shape)
			}
		}
	}
	if withData != 0 && withData != len(g.Params) {
		return fmt.Errorf("%w: %d of %d parameters have data", ErrInvalidGraph, withData, len(g.Params))
	}
	for _, n := range g.Nodes {
		if names[n.Name] {
			return bad(n, "duplicate node name")
		}
		names[n.Name] = true
		for _, in := range n.Inputs {
			if !defined[in] {
				return bad(n, "input %q is not defined before it is used", in)
			}
		}
		if defined[n.Output] {
			return bad(n, "output %q is defined twice", n.Output)
		}
		defined[n.Output] = true
		for _, p := range n.Params {
			if !params[p] {
				return bad(n, "parameter %q does not exist", p)
			}
		}
		want := 1
		switch n.Kind {
		case Add:
			want = 2
		case Conv:
			if n.Conv == nil {
				return bad(n, "missing conv attributes")
			}
			if want := 1 + btoi(n.Conv.Bias); len(n.Params) != want {
				return bad(n, "has %d parameters, want %d (weight, and bias when Bias is set)", len(n.Params), want)
			}
		case Dense:
			if len(n.Params) != 2 {
				return bad(n, "has %d parameters, want weight and bias", len(n.Params))
			}
		case MaxPool, AvgPool:
			if n.Pool == nil {
				return bad(n, "missing pool attributes")
			}
		case ChannelPad:
			if n.Pad == nil {
				return bad(n, "missing pad attributes")
			}
		case BatchNorm:
			if n.BN == nil || len(n.Params) != 4 {
				return bad(n, "needs BN attributes and 4 parameters")
			}
		case Relu, GlobalAvgPool, Flatten, Softmax:
		default:
			return bad(n, "unknown op kind")
		}
		if len(n.Inputs) != want {
			return bad(n, "has %d inputs, want %d", len(n.Inputs), want)
		}
	}
	if !defined[g.Output] {
		return fmt.Errorf("%w: output %q is never computed", ErrInvalidGraph, g.Output)
	}
	return nil
}

// ReplaceHead gives the graph a new classifier for classes outputs: the
// last Dense node (which must produce the graph's output) gets fresh
// weights and bias, uniform in ±1/sqrt(fan-in) from seed, as the builder
// initialises them. Everything before it is kept: this is transfer
// learning's new head. The spec's class count follows; its label set is
// dropped when its size no longer fits.
func (g *Graph) ReplaceHead(classes int, seed uint64) error {
	if classes < 1 {
		return fmt.Errorf("%w: classes must be at least 1, got %d", models.ErrInvalidSpec, classes)
	}
	var head *Node
	for _, n := range g.Nodes {
		if n.Kind == Dense {
			head = n
		}
	}
	if head == nil || head.Output != g.Output {
		return fmt.Errorf("%w: no dense layer produces the output %q, so there is no head to replace", ErrInvalidGraph, g.Output)
	}
	w, b := g.Param(head.Params[0]), g.Param(head.Params[1])
	if w == nil || b == nil || len(w.Shape) != 2 {
		return fmt.Errorf("%w: head %s has no weight and bias", ErrInvalidGraph, head.Name)
	}
	in := w.Shape[1]
	r := rand.New(rand.NewPCG(seed, 0x68656164)) // "head"
	bound := 1 / math.Sqrt(float64(in))
	fresh := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32((2*r.Float64() - 1) * bound)
		}
		return v
	}
	w.Shape, w.Data = []int{classes, in}, fresh(classes*in)
	b.Shape, b.Data = []int{classes}, fresh(classes)
	head.Shape.C = classes
	for _, n := range g.Nodes { // a Softmax after the head follows it
		if n.Kind == Softmax {
			n.Shape.C = classes
		}
	}
	if g.Spec.Labels != "" {
		if l, err := models.Labels(g.Spec.Labels); err != nil || len(l) != classes {
			g.Spec.Labels = ""
		}
	}
	g.Spec.Classes = classes
	return g.Check()
}
