package onnximport

import (
	"fmt"
	"slices"

	"github.com/resnetctl/resnetctl/build"
)

// graphIndex answers who produces and who reads each value of a graph.
type graphIndex struct {
	producer map[string]*build.Node
	readers  map[string][]*build.Node
}

func indexGraph(g *build.Graph) *graphIndex {
	x := &graphIndex{producer: map[string]*build.Node{}, readers: map[string][]*build.Node{}}
	for _, n := range g.Nodes {
		x.producer[n.Output] = n
		for _, in := range n.Inputs {
			x.readers[in] = append(x.readers[in], n)
		}
	}
	return x
}

// soleReader returns the one node reading v, or nil when v has several
// readers, none, or is the graph output.
func (x *graphIndex) soleReader(g *build.Graph, v string) *build.Node {
	if v == g.Output || len(x.readers[v]) != 1 {
		return nil
	}
	return x.readers[v][0]
}

// replaceUses makes every reader of old read new instead.
func replaceUses(g *build.Graph, old, new string) {
	for _, n := range g.Nodes {
		for k, in := range n.Inputs {
			if in == old {
				n.Inputs[k] = new
			}
		}
	}
	if g.Output == old {
		g.Output = new
	}
}

// fuse resolves the pseudo ops into build ops: subsamples merge into the
// channel pad that follows (option-A shortcuts), spatial zero pads into the
// convolution that follows, constant additions into the bias of the
// convolution or dense layer before them. What cannot be resolved is
// returned as blockers.
func (l *lowerer) fuse() []Blocker {
	g := l.g
	var blocked []Blocker
	removed := map[*build.Node]bool{}
	drop := func(n *build.Node, keep string) {
		replaceUses(g, n.Output, keep)
		removed[n] = true
	}
	for _, n := range slices.Clone(g.Nodes) {
		if removed[n] || (n.Kind != kSubsample && n.Kind != kSpatialPad && n.Kind != kAddConst) {
			continue
		}
		x := indexGraph(g)
		switch n.Kind {
		case kSubsample:
			// x[:, :, ::2][:, :, :, ::2]: merge into the next subsample.
			if r := x.soleReader(g, n.Output); r != nil && r.Kind == kSubsample {
				s, t := l.sub[n], l.sub[r]
				l.sub[r] = [2]int{s[0] * t[0], s[1] * t[1]}
				r.Inputs[0] = n.Inputs[0]
				removed[n] = true
				continue
			}
			s := l.sub[n]
			if r := x.soleReader(g, n.Output); r != nil && r.Kind == build.ChannelPad && r.Pad.Stride == 1 && s[0] == s[1] {
				r.Pad.Stride = s[0]
				r.Inputs[0] = n.Inputs[0]
				removed[n] = true
				continue
			}
			if s[0] != s[1] {
				blocked = append(blocked, Blocker{Node: n.Name, OpType: "Slice", Reason: fmt.Sprintf("keeps every %d-th row but every %d-th column; build.Graph subsamples both alike", s[0], s[1])})
				continue
			}
			// A subsample alone is a channel pad of zero channels.
			n.Kind, n.Pad = build.ChannelPad, &build.PadAttrs{Stride: s[0]}
		case kSpatialPad:
			r := x.soleReader(g, n.Output)
			p := l.spad[n]
			switch {
			case r != nil && r.Kind == kSpatialPad:
				l.spad[r] += p
				r.Inputs[0] = n.Inputs[0]
				removed[n] = true
			case r != nil && r.Kind == build.Conv && r.Conv.Pad == 0:
				r.Conv.Pad = p
				r.Inputs[0] = n.Inputs[0]
				removed[n] = true
			default:
				blocked = append(blocked, Blocker{Node: n.Name, OpType: "Pad", Reason: "zero-pads height and width but does not feed a convolution; build.Graph has no separate padding op"})
			}
		case kAddConst:
			p := x.producer[n.Inputs[0]]
			if p == nil || x.soleReader(g, p.Output) != n || (p.Kind != build.Conv && p.Kind != build.Dense) {
				blocked = append(blocked, Blocker{Node: n.Name, OpType: "Add", Reason: "adds a constant that is not the bias of the convolution or dense layer before it; build.Graph has no separate bias op"})
				continue
			}
			add := g.Param(n.Params[0])
			switch {
			case p.Kind == build.Conv && !p.Conv.Bias:
				p.Conv.Bias = true
				p.Params = append(p.Params, add.Name)
			default: // add to the existing bias
				b := g.Param(p.Params[1])
				for i := range b.Data {
					b.Data[i] += add.Data[i]
				}
			}
			drop(n, p.Output)
		}
	}
	g.Nodes = slices.DeleteFunc(g.Nodes, func(n *build.Node) bool { return removed[n] })
	return blocked
}

// mergeConvBias moves the bias of a convolution that only feeds a
// BatchNorm into that BatchNorm's running mean (BN(x+b) with mean μ is
// BN(x) with mean μ-b), the form torchvision's bias-free convolutions
// have. Keras and tf2onnx files keep such biases. It returns the number of
// biases moved.
func mergeConvBias(g *build.Graph) int {
	x := indexGraph(g)
	moved := 0
	for _, n := range g.Nodes {
		if n.Kind != build.Conv || !n.Conv.Bias || len(n.Params) != 2 {
			continue
		}
		bn := x.soleReader(g, n.Output)
		if bn == nil || bn.Kind != build.BatchNorm {
			continue
		}
		bias, mean := g.Param(n.Params[1]), g.Param(bn.Params[2])
		for i := range mean.Data {
			mean.Data[i] -= bias.Data[i]
		}
		n.Conv.Bias = false
		n.Params = n.Params[:1]
		moved++
	}
	if moved > 0 {
		pruneParams(g)
	}
	return moved
}

// pruneNodes drops the nodes the output does not depend on.
func pruneNodes(g *build.Graph) int {
	x := indexGraph(g)
	need := map[*build.Node]bool{}
	stack := []string{g.Output}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p := x.producer[v]
		if p == nil || need[p] {
			continue
		}
		need[p] = true
		stack = append(stack, p.Inputs...)
	}
	before := len(g.Nodes)
	g.Nodes = slices.DeleteFunc(g.Nodes, func(n *build.Node) bool { return !need[n] })
	pruneParams(g)
	return before - len(g.Nodes)
}

// pruneParams drops parameters no node references.
func pruneParams(g *build.Graph) {
	ref := map[string]bool{}
	for _, n := range g.Nodes {
		for _, p := range n.Params {
			ref[p] = true
		}
	}
	g.Params = slices.DeleteFunc(g.Params, func(p *build.Param) bool { return !ref[p.Name] })
	g.Reindex()
}

// foldBN folds every BatchNorm that directly follows a convolution whose
// output nothing else reads into that convolution's weights and bias, the
// rule of export's FoldBN, and names the new bias "<conv>.bias" as export
// does. The convolution takes over the BatchNorm's output value. Only the
// structure changes: callers load the folded weights (a new bias starts at
// zero when the graph has data).
func foldBN(g *build.Graph) int {
	x := indexGraph(g)
	folded := 0
	var bns []*build.Node
	for _, n := range g.Nodes {
		if n.Kind != build.BatchNorm {
			continue
		}
		c := x.producer[n.Inputs[0]]
		if c == nil || c.Kind != build.Conv || c.Output == g.Output || len(x.readers[c.Output]) != 1 {
			continue
		}
		bns = append(bns, n)
		c.Output = n.Output
		if !c.Conv.Bias {
			c.Conv.Bias = true
			w := g.Param(c.Params[0])
			bias := &build.Param{Name: c.Name + ".bias", Shape: []int{w.Shape[0]}, Trainable: true}
			if w.Data != nil {
				bias.Data = make([]float32, w.Shape[0])
			}
			i := slices.Index(g.Params, w)
			g.Params = slices.Insert(g.Params, i+1, bias)
			c.Params = append(c.Params, bias.Name)
			g.Reindex()
		}
		folded++
	}
	drop := map[*build.Node]bool{}
	for _, bn := range bns {
		drop[bn] = true
	}
	g.Nodes = slices.DeleteFunc(g.Nodes, func(n *build.Node) bool { return drop[n] })
	pruneParams(g)
	return folded
}
