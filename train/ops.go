package train

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/resnetctl/resnetctl/internal/kernels"
)

// Custom gorgonia ops.
//
// Every op of a training graph is one of ours: its forward and backward
// passes run on internal/kernels, and it writes a preallocated buffer (the
// batch size is fixed, so shapes never change) and returns it from Do, so a
// step allocates no tensors. Forward outputs are owned by their op;
// activation gradients are gbufs placed in shared memory by the Net. Forward ops implement
// gorgonia.SDOp: SymDiff builds the backward ops as new graph nodes, which
// gorgonia.Grad wires up and the Net's program runs like any other node.
// State a backward pass needs from its forward pass (BatchNorm statistics,
// max-pool positions, softmax probabilities) lives in the forward op; the
// backward node takes the forward node as an input so that it runs after it.
//
// Every op carries its node's unique name in its hash, because gorgonia
// merges nodes with equal hashes and children.

// env is what the ops of one graph share.
type env struct {
	pool     *kernels.Pool
	training bool
	// extras collects, for a value with several consumers, the gradient
	// nodes its secondary consumers computed; the primary consumer (the
	// first in graph order) adds them into its own gradient (see role).
	extras map[*G.Node][]*G.Node
	// children records each op node's inputs, in order.
	children map[*G.Node][]*G.Node
	// grads lists the activation-gradient buffers, which a Net places in
	// shared memory by liveness (see Net.planMemory).
	grads []*gbuf
	// convScratch is the scratch memory every convolution of the graph
	// shares (ops run one at a time), sized by the largest; nil gives each
	// its own.
	convScratch *kernels.TrainScratch
}

// gbuf is an activation-gradient buffer. Its memory is assigned by the
// Net's memory plan, shared with other gradients whose lifetimes do not
// overlap; an op run outside a Net (gradient checks) allocates it on
// first use.
type gbuf struct {
	shape tensor.Shape
	t     *tensor.Dense
}

// newGrad registers an activation-gradient buffer of the given shape.
func (e *env) newGrad(shape tensor.Shape) *gbuf {
	g := &gbuf{shape: shape.Clone()}
	e.grads = append(e.grads, g)
	return g
}

// fixed returns a buffer that is never shared (parameter gradients, read
// by the optimiser after the step).
func fixed(shape tensor.Shape) *gbuf { return &gbuf{shape: shape.Clone(), t: newDense(shape)} }

// get returns the buffer's tensor.
func (g *gbuf) get() *tensor.Dense {
	if g.t == nil {
		g.t = newDense(g.shape)
	}
	return g.t
}

// gradWriter is implemented by backward ops that write activation
// gradients: the buffers they write and the one their value lives in.
type gradWriter interface {
	gradBufs() (writes []*gbuf, value *gbuf)
}

// role says how an op input takes part in differentiation.
type role uint8

const (
	// noGrad: no gradient flows to this input (the data input, labels,
	// ordering-only inputs).
	noGrad role = iota
	// param: a trainable parameter; its gradient is returned to gorgonia.
	param
	// primary: the first consumer of an activation; its gradient op adds
	// the gradients of all later consumers, so gorgonia never has to sum
	// several gradients of one node (which it would do with its own Add,
	// allocating a tensor per step).
	primary
	// secondary: a later consumer; it computes its gradient for the
	// activation, registers it in env.extras and reports the input as
	// non-differentiable to gorgonia. A secondary node also takes the
	// primary consumer's output as an ordering input, so that
	// Backpropagate (which visits nodes in reverse topological order)
	// differentiates it before the primary.
	secondary
)

// base implements the parts of gorgonia.Op all our ops share.
type base struct {
	kind   string // op type, for String
	name   string // the node's unique name
	inDims []int  // rank of each input (0: scalar)
	shape  tensor.Shape
	roles  []role // per input, for DiffWRT (nil: not differentiable)
	env    *env
}

func (b *base) Arity() int { return len(b.inDims) }

// basePtr gives the net builder access to an op's base.
func (b *base) basePtr() *base { return b }

func tensorType(dims int) hm.Type {
	if dims == 0 {
		return tensor.Float32
	}
	return G.TensorType{Dims: dims, Of: tensor.Float32}
}

func (b *base) Type() hm.Type {
	ts := make([]hm.Type, 0, len(b.inDims)+1)
	for _, d := range b.inDims {
		ts = append(ts, tensorType(d))
	}
	ts = append(ts, tensorType(len(b.shape)))
	return hm.NewFnType(ts...)
}

func (b *base) InferShape(...G.DimSizer) (tensor.Shape, error) { return b.shape.Clone(), nil }
func (b *base) ReturnsPtr() bool                               { return false }
func (b *base) CallsExtern() bool                              { return false }
func (b *base) OverwritesInput() int                           { return -1 }
func (b *base) WriteHash(h hash.Hash)                          { fmt.Fprintf(h, "resnetctl.%s(%s)", b.kind, b.name) }
func (b *base) String() string                                 { return b.kind + "(" + b.name + ")" }

func (b *base) Hashcode() uint32 {
	h := fnv.New32a()
	b.WriteHash(h)
	return h.Sum32()
}

// DiffWRT reports the inputs gorgonia should send gradients to: parameters
// and activations this op is the primary consumer of.
func (b *base) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		if i < len(b.roles) {
			d[i] = b.roles[i] == param || b.roles[i] == primary
		}
	}
	return d
}

// dataGrad hands the gradient node of input i (computed by this op's
// SymDiff) to gorgonia or to the input's primary consumer, by role. It
// returns what SymDiff should return for the input.
func (b *base) dataGrad(inputs G.Nodes, i int, grad *G.Node) *G.Node {
	switch b.roles[i] {
	case secondary:
		b.env.extras[inputs[i]] = append(b.env.extras[inputs[i]], grad)
		return nil
	case noGrad:
		return nil
	}
	return grad
}

// wantsGrad reports whether input i needs a gradient.
func (b *base) wantsGrad(i int) bool {
	return i < len(b.roles) && b.roles[i] != noGrad
}

// extrasFor returns the gradients other consumers computed for input i if
// this op is its primary consumer.
func (b *base) extrasFor(inputs G.Nodes, i int) []*G.Node {
	if b.roles[i] != primary {
		return nil
	}
	return b.env.extras[inputs[i]]
}

// newDense makes a float32 tensor of the given shape over fresh memory.
func newDense(shape tensor.Shape) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(make([]float32, shape.TotalSize())))
}

// f32 returns the float32 data of a tensor value (or a one-element slice
// for a scalar).
func f32(v G.Value) []float32 {
	switch t := v.(type) {
	case *tensor.Dense:
		return t.Float32s()
	case *G.F32:
		return []float32{float32(*t)}
	}
	panic(fmt.Sprintf("train: unexpected value %T", v))
}

// scalar returns the value of a float32 scalar value.
func scalar(v G.Value) float32 {
	switch t := v.(type) {
	case *G.F32:
		return float32(*t)
	case *tensor.Dense:
		return t.Float32s()[0]
	}
	panic(fmt.Sprintf("train: unexpected scalar value %T", v))
}

// apply adds an op node to the graph with the given name, recording its
// children in the op's env (gorgonia does not export them).
func apply(op G.Op, name string, children ...*G.Node) (*G.Node, error) {
	n, err := G.ApplyOpWithName(op, name, children...)
	if err != nil {
		return nil, fmt.Errorf("train: %s: %w", name, err)
	}
	if b, ok := op.(interface{ basePtr() *base }); ok && b.basePtr().env != nil {
		e := b.basePtr().env
		if e.children == nil {
			e.children = map[*G.Node][]*G.Node{}
		}
		e.children[n] = children
	}
	return n, nil
}

// gradTo hands the gradient g of input i to gorgonia or to the input's
// primary consumer, for ops whose gradient kernels do not accumulate: when
// this op is the primary consumer and other consumers registered
// gradients, a sumOp node adds them.
func (b *base) gradTo(inputs G.Nodes, i int, g *G.Node) (*G.Node, error) {
	if extras := b.extrasFor(inputs, i); len(extras) > 0 {
		op := &sumOp{base: base{kind: "GradSum", name: b.name + ".grad_sum." + fmt.Sprint(i),
			inDims: dimsOf(len(extras)+1, len(g.Shape())), shape: g.Shape().Clone(), env: b.env}}
		op.out = b.env.newGrad(op.shape)
		var err error
		if g, err = apply(op, op.name, append([]*G.Node{g}, extras...)...); err != nil {
			return nil, err
		}
	}
	return b.dataGrad(inputs, i, g), nil
}

// dimsOf returns n copies of rank d.
func dimsOf(n, d int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = d
	}
	return s
}

// sumOp adds its inputs into its own buffer.
type sumOp struct {
	base
	out *gbuf
}

func (o *sumOp) Do(vs ...G.Value) (G.Value, error) {
	t := o.out.get()
	out := t.Float32s()
	copy(out, f32(vs[0]))
	for _, v := range vs[1:] {
		kernels.AddTo(o.env.pool, out, f32(v))
	}
	return t, nil
}

func (o *sumOp) gradBufs() ([]*gbuf, *gbuf) { return []*gbuf{o.out}, o.out }

// viewOp returns a buffer another op of the same step computed (a
// BatchNorm's dgamma, say); its input is that op's node, for ordering.
type viewOp struct {
	base
	b *gbuf
}

func (o *viewOp) Do(...G.Value) (G.Value, error) { return o.b.get(), nil }

func (o *viewOp) gradBufs() ([]*gbuf, *gbuf) { return nil, o.b }

// view adds a viewOp node returning buffer g after node src has run.
func (b *base) view(suffix string, g *gbuf, src *G.Node) (*G.Node, error) {
	op := &viewOp{base: base{kind: "View", name: b.name + suffix, inDims: []int{len(src.Shape())}, shape: g.shape.Clone(), env: b.env}, b: g}
	return apply(op, op.name, src)
}

// gradAccum returns the gradient a backward kernel should add to its own
// result, from the extra gradient inputs of its node: nil for none, the
// one input itself, or (for several) their sum written into dst, which
// the kernel may then read while overwriting it.
func gradAccum(p *kernels.Pool, dst []float32, extras []G.Value) []float32 {
	if len(extras) == 0 {
		return nil
	}
	acc := f32(extras[0])
	if len(extras) > 1 {
		copy(dst, acc)
		accumulate(p, dst, extras[1:])
		acc = dst
	}
	return acc
}

// accumulate adds the values of extra gradient inputs into dst.
func accumulate(p *kernels.Pool, dst []float32, extras []G.Value) {
	for _, e := range extras {
		kernels.AddTo(p, dst, f32(e))
	}
}
