package export

import (
	"fmt"
	"math"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/internal/onnxmodel"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

type exporter struct {
	g     *build.Graph
	opts  Options
	graph *onnxpb.GraphProto
	// rename maps a graph value to the ONNX tensor that holds it (a folded
	// BatchNorm's output is its convolution's output).
	rename map[string]string
}

func (e *exporter) tensor(v string) string {
	if r, ok := e.rename[v]; ok {
		return r
	}
	if v == e.g.Input {
		return InputName
	}
	if v == e.g.Output {
		return LogitsName
	}
	return v
}

func (e *exporter) emit(opType, name string, inputs []string, output string, attrs ...*onnxpb.AttributeProto) {
	e.graph.Node = append(e.graph.Node, &onnxpb.NodeProto{
		Name: name, OpType: opType, Input: inputs, Output: []string{output}, Attribute: attrs,
	})
}

func (e *exporter) initializer(t *onnxpb.TensorProto) string {
	e.graph.Initializer = append(e.graph.Initializer, t)
	return t.Name
}

func (e *exporter) param(name string) string {
	p := e.g.Param(name)
	return e.initializer(floatTensor(p.Name, p.Shape, p.Data))
}

// foldable finds the BatchNorms that directly follow a convolution whose
// output nothing else reads: conv name → BN node.
func (e *exporter) foldable() map[string]*build.Node {
	folds := map[string]*build.Node{}
	if !e.opts.FoldBN {
		return folds
	}
	readers := map[string]int{}
	producer := map[string]*build.Node{}
	for _, n := range e.g.Nodes {
		producer[n.Output] = n
		for _, in := range n.Inputs {
			readers[in]++
		}
	}
	for _, n := range e.g.Nodes {
		if n.Kind != build.BatchNorm {
			continue
		}
		c := producer[n.Inputs[0]]
		if c != nil && c.Kind == build.Conv && readers[c.Output] == 1 && c.Output != e.g.Output {
			folds[c.Name] = n
		}
	}
	return folds
}

func (e *exporter) nodes() error {
	e.rename = map[string]string{}
	folds := e.foldable()
	folded := map[string]bool{}
	for _, bn := range folds {
		folded[bn.Name] = true
	}
	for _, n := range e.g.Nodes {
		in := make([]string, len(n.Inputs))
		for i, v := range n.Inputs {
			in[i] = e.tensor(v)
		}
		out := e.tensor(n.Output)
		switch n.Kind {
		case build.Conv:
			if bn, ok := folds[n.Name]; ok {
				out = e.tensor(bn.Output)
				e.foldConv(n, bn, in[0], out)
				continue
			}
			inputs := []string{in[0], e.param(n.Params[0])}
			if n.Conv.Bias {
				inputs = append(inputs, e.param(n.Params[1]))
			}
			e.emit("Conv", n.Name, inputs, out, convAttrs(n.Conv)...)
		case build.BatchNorm:
			if folded[n.Name] {
				continue
			}
			inputs := []string{in[0]}
			for _, p := range n.Params {
				inputs = append(inputs, e.param(p))
			}
			e.emit("BatchNormalization", n.Name, inputs, out, floatAttr("epsilon", n.BN.Epsilon), floatAttr("momentum", 1-n.BN.Momentum))
		case build.Relu:
			e.emit("Relu", n.Name, in, out)
		case build.Add:
			e.emit("Add", n.Name, in, out)
		case build.MaxPool:
			e.emit("MaxPool", n.Name, in, out, poolAttrs(n.Pool)...)
		case build.AvgPool:
			e.emit("AveragePool", n.Name, in, out, append(poolAttrs(n.Pool), intAttr("count_include_pad", 0))...)
		case build.GlobalAvgPool:
			e.emit("GlobalAveragePool", n.Name, in, out)
		case build.Flatten:
			e.emit("Flatten", n.Name, in, out, intAttr("axis", 1))
		case build.Dense:
			e.emit("Gemm", n.Name, []string{in[0], e.param(n.Params[0]), e.param(n.Params[1])}, out,
				floatAttr("alpha", 1), floatAttr("beta", 1), intAttr("transB", 1))
		case build.Softmax:
			e.emit("Softmax", n.Name, in, out, intAttr("axis", 1))
		case build.ChannelPad:
			e.channelPad(n, in[0], out)
		default:
			return fmt.Errorf("export: node %s: op %s has no ONNX form", n.Name, n.Kind)
		}
	}
	if e.opts.Softmax {
		e.emit("Softmax", "softmax", []string{LogitsName}, ProbabilitiesName, intAttr("axis", 1))
	}
	return nil
}

func convAttrs(c *build.ConvAttrs) []*onnxpb.AttributeProto {
	return []*onnxpb.AttributeProto{
		ints("kernel_shape", c.Kernel, c.Kernel),
		ints("strides", c.Stride, c.Stride),
		ints("pads", c.Pad, c.Pad, c.Pad, c.Pad),
		ints("dilations", c.Dilation, c.Dilation),
		intAttr("group", c.Groups),
	}
}

func poolAttrs(p *build.PoolAttrs) []*onnxpb.AttributeProto {
	return []*onnxpb.AttributeProto{
		ints("kernel_shape", p.Kernel, p.Kernel),
		ints("strides", p.Stride, p.Stride),
		ints("pads", p.Pad, p.Pad, p.Pad, p.Pad),
	}
}

// foldConv writes conv followed by bn as one convolution with bias, by
// internal/onnxmodel.FoldConvBN (kernels.FoldBatchNorm's rule).
func (e *exporter) foldConv(conv, bn *build.Node, in, out string) {
	w := e.g.Param(conv.Params[0])
	var bias []float32
	if conv.Conv.Bias {
		bias = e.g.Param(conv.Params[1]).Data
	}
	wf, bf := onnxmodel.FoldConvBN(w.Data, bias, e.g.Param(bn.Params[0]).Data, e.g.Param(bn.Params[1]).Data,
		e.g.Param(bn.Params[2]).Data, e.g.Param(bn.Params[3]).Data, bn.BN.Epsilon)
	outC := w.Shape[0]
	wName := e.initializer(floatTensor(w.Name, w.Shape, wf))
	bName := e.initializer(floatTensor(conv.Name+".bias", []int{outC}, bf))
	e.emit("Conv", conv.Name, []string{in, wName, bName}, out, convAttrs(conv.Conv)...)
}

// channelPad writes the option-A shortcut: subsample by the stride, then pad
// channels with zeros. Opset 9 has no Slice steps, so it subsamples with a
// 1x1 MaxPool of that stride (which selects exactly the same pixels); from
// opset 10, Slice with steps. Pad takes its pads as an attribute before
// opset 11 and as an input from 11 on.
func (e *exporter) channelPad(n *build.Node, in, out string) {
	p := n.Pad
	x := in
	if p.Stride != 1 {
		sub := n.Name + ".subsample"
		if e.opts.Opset < 10 {
			e.emit("MaxPool", sub, []string{x}, sub, ints("kernel_shape", 1, 1), ints("strides", p.Stride, p.Stride))
		} else {
			starts := e.initializer(int64Tensor(sub+".starts", 0, 0))
			ends := e.initializer(int64Tensor(sub+".ends", math.MaxInt64, math.MaxInt64))
			axes := e.initializer(int64Tensor(sub+".axes", 2, 3))
			steps := e.initializer(int64Tensor(sub+".steps", int64(p.Stride), int64(p.Stride)))
			e.emit("Slice", sub, []string{x, starts, ends, axes, steps}, sub)
		}
		x = sub
	}
	pads := []int{0, p.Before, 0, 0, 0, p.After, 0, 0}
	if e.opts.Opset < 11 {
		e.emit("Pad", n.Name, []string{x}, out, stringAttr("mode", "constant"), ints("pads", pads...), floatAttr("value", 0))
		return
	}
	pp := make([]int64, len(pads))
	for i, v := range pads {
		pp[i] = int64(v)
	}
	e.emit("Pad", n.Name, []string{x, e.initializer(int64Tensor(n.Name+".pads", pp...))}, out, stringAttr("mode", "constant"))
}
