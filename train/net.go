package train

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/internal/kernels"
)

// NetOptions configure NewNet.
type NetOptions struct {
	// Threads is the number of kernel threads; 0 means runtime.NumCPU().
	Threads int
	// LabelSmoothing is ε of the cross-entropy loss (0: none).
	LabelSmoothing float64
	// Frozen names trainable parameters to hold fixed (see FrozenParams):
	// they are not among Params, get no gradient, and a BatchNorm whose
	// weight and bias are both frozen runs in inference mode (running
	// statistics, which it leaves unchanged).
	Frozen map[string]bool

	// forwardOnly builds no backward pass (BatchNorm re-estimation).
	forwardOnly bool
}

// Net is a build.Graph as a gorgonia training graph at a fixed batch
// size: the forward graph of our custom ops, a softmax cross-entropy loss,
// and the backward graph gorgonia.Grad derived from the ops' SymDiff, run
// by a program (see exec.go). The trainable parameters are gorgonia nodes over the
// build.Graph's own Param.Data slices, and BatchNorm running statistics are
// updated in their Param.Data, so an optimiser that updates Params() in
// place trains the build.Graph itself (export.WriteFile then writes the
// trained weights). Param.Data slices must therefore be updated in place,
// never replaced, while a Net uses them.
//
// A Net is not safe for concurrent use. Close releases its threads.
type Net struct {
	graph *build.Graph
	batch int

	env    *env
	g      *G.ExprGraph
	input  *G.Node
	labels *G.Node
	logits *G.Node
	loss   *G.Node
	lossOp *lossOp
	xT, yT *tensor.Dense
	params []*Trainable
	prog   *program

	// bns are the BatchNorm ops in graph order.
	bns []*bnOp
	// convs, most expensive to pack first, for packing in parallel.
	convs  []*convOp
	next   atomic.Int64
	packFn func(lo, hi int)
}

// Trainable is one trainable parameter of a Net and its gradient.
type Trainable struct {
	Param *build.Param
	node  *G.Node
	grad  *G.Node
	prog  *program
}

// Grad returns the parameter's gradient from the last Step (the Net's
// buffer, overwritten by the next Step).
func (t *Trainable) Grad() []float32 {
	if v := t.prog.value(t.grad); v != nil {
		return f32(v)
	}
	return nil
}

// ErrUnsupported is wrapped by NewNet's errors for graphs it cannot train.
var ErrUnsupported = errors.New("unsupported for training")

// NewNet builds the training graph of g at the given batch size. The
// graph's parameters must have data.
func NewNet(g *build.Graph, batch int, opts NetOptions) (*Net, error) {
	if batch < 2 {
		return nil, fmt.Errorf("train: batch size %d: BatchNorm needs at least 2 samples", batch)
	}
	if err := g.Check(); err != nil {
		return nil, err
	}
	for _, p := range g.Params {
		if p.Data == nil {
			return nil, fmt.Errorf("train: parameter %s has no data (graph built with ShapesOnly)", p.Name)
		}
	}
	if opts.LabelSmoothing < 0 || opts.LabelSmoothing >= 1 {
		return nil, fmt.Errorf("train: label smoothing %g must be in [0, 1)", opts.LabelSmoothing)
	}
	units, logits, err := plan(g)
	if err != nil {
		return nil, err
	}
	n := &Net{graph: g, batch: batch, env: &env{pool: kernels.NewPool(opts.Threads), training: true, extras: map[*G.Node][]*G.Node{},
		convScratch: &kernels.TrainScratch{}}}
	if err := n.build(units, logits, opts); err != nil {
		n.env.pool.Close()
		return nil, err
	}
	return n, nil
}

// Graph returns the build.Graph the Net trains.
func (n *Net) Graph() *build.Graph { return n.graph }

// Batch returns the fixed batch size.
func (n *Net) Batch() int { return n.batch }

// Params returns the trainable parameters in graph order.
func (n *Net) Params() []*Trainable { return n.params }

// SetTraining selects training mode (batch statistics, running statistics
// updated; the default) or eval mode (running statistics) for BatchNorm.
// Gradients are only meaningful in training mode.
func (n *Net) SetTraining(on bool) { n.env.training = on }

// Close releases the kernel threads.
func (n *Net) Close() error {
	n.env.pool.Close()
	return nil
}

// StepResult is what one forward and backward pass measured.
type StepResult struct {
	Loss    float64 // mean loss over the batch
	Correct int     // samples whose top-1 prediction was right
}

// Step runs the forward and backward pass on one batch: x is
// [batch, C, H, W], labels are class indices. Afterwards every
// Trainable's Grad holds dLoss/dParam (the mean loss over the batch) and,
// in training mode, BatchNorm running statistics have been updated.
func (n *Net) Step(x []float32, labels []int) (StepResult, error) {
	xs, ys := n.xT.Float32s(), n.yT.Float32s()
	if len(x) != len(xs) || len(labels) != len(ys) {
		return StepResult{}, fmt.Errorf("train: batch of %d values and %d labels, want %d and %d", len(x), len(labels), len(xs), len(ys))
	}
	k := n.lossOp.k
	for i, l := range labels {
		if l < 0 || l >= k {
			return StepResult{}, fmt.Errorf("train: label %d of sample %d is outside the %d classes", l, i, k)
		}
		ys[i] = float32(l)
	}
	copy(xs, x)
	n.packWeights()
	if err := n.prog.run(); err != nil {
		return StepResult{}, fmt.Errorf("train: %w", err)
	}
	return StepResult{Loss: n.lossOp.total / float64(n.batch), Correct: n.lossOp.correct}, nil
}

// packWeights repacks every convolution's weights for this step, spread
// over the kernel threads (packing is serial within a convolution and
// costs a few percent of a step).
func (n *Net) packWeights() {
	n.next.Store(0)
	p := n.env.pool
	p.Parallel(p.Threads(), n.packFn)
}

func (n *Net) packSome(lo, hi int) {
	for {
		i := int(n.next.Add(1)) - 1
		if i >= len(n.convs) {
			return
		}
		n.convs[i].pack()
	}
}

// Logits returns the logits of the last Step ([batch, classes]).
func (n *Net) Logits() []float32 {
	if v := n.prog.value(n.logits); v != nil {
		return f32(v)
	}
	return nil
}

// unit is one op of the training graph: one build node, or a fused group
// (BatchNorm [+ Add [+ channel pad]] [+ Relu], Add [+ pad] [+ Relu]).
type unit struct {
	kind   build.Kind
	node   *build.Node // the group's leading node
	inputs []string    // activations consumed, in op order
	output string      // the value the group produces
	last   int         // index of the group's last build node
	relu   bool
	pad    *build.PadAttrs // channel pad applied to the last input
}

// plan groups the graph's nodes into units and returns them in a valid
// execution order, plus the name of the logits value.
func plan(g *build.Graph) ([]*unit, string, error) {
	producer := map[string]int{}
	consumers := map[string][]int{}
	for i, nd := range g.Nodes {
		producer[nd.Output] = i
		for _, in := range nd.Inputs {
			consumers[in] = append(consumers[in], i)
		}
	}
	logits := g.Output
	if i, ok := producer[logits]; ok && g.Nodes[i].Kind == build.Softmax {
		logits = g.Nodes[i].Inputs[0] // train on the logits; the loss has the softmax
	}
	claimed := make([]bool, len(g.Nodes))
	// only returns the single consumer of value v, or -1.
	only := func(v string) int {
		if c := consumers[v]; len(c) == 1 && v != g.Output && v != logits {
			return c[0]
		}
		return -1
	}
	var units []*unit
	// addTail extends a group ending in Add node a with a pad on its input
	// other and a following Relu.
	addTail := func(u *unit, a int, other string) {
		claimed[a] = true
		u.last = a
		u.output = g.Nodes[a].Output
		u.inputs = append(u.inputs, other)
		if p, ok := producer[other]; ok && g.Nodes[p].Kind == build.ChannelPad && !claimed[p] && only(other) == a {
			claimed[p] = true
			u.pad = g.Nodes[p].Pad
			u.inputs[len(u.inputs)-1] = g.Nodes[p].Inputs[0]
		}
		if r := only(u.output); r >= 0 && g.Nodes[r].Kind == build.Relu && !claimed[r] {
			claimed[r] = true
			u.relu, u.last, u.output = true, r, g.Nodes[r].Output
		}
	}
	for i, nd := range g.Nodes {
		if nd.Kind != build.BatchNorm {
			continue
		}
		claimed[i] = true
		u := &unit{kind: build.BatchNorm, node: nd, inputs: []string{nd.Inputs[0]}, output: nd.Output, last: i}
		if c := only(nd.Output); c >= 0 && !claimed[c] {
			switch next := g.Nodes[c]; {
			case next.Kind == build.Relu:
				claimed[c] = true
				u.relu, u.last, u.output = true, c, next.Output
			case next.Kind == build.Add && next.Inputs[0] != next.Inputs[1]:
				other := next.Inputs[0]
				if other == nd.Output {
					other = next.Inputs[1]
				}
				addTail(u, c, other)
			}
		}
		units = append(units, u)
	}
	for i, nd := range g.Nodes {
		if claimed[i] || nd.Kind != build.Add {
			continue
		}
		a, b := nd.Inputs[0], nd.Inputs[1]
		if p, ok := producer[a]; ok && g.Nodes[p].Kind == build.ChannelPad && only(a) == i {
			a, b = b, a // the padded input goes last
		}
		u := &unit{kind: build.Add, node: nd, inputs: []string{a}}
		addTail(u, i, b)
		units = append(units, u)
	}
	for i, nd := range g.Nodes {
		if claimed[i] {
			continue
		}
		if nd.Kind == build.Softmax {
			if nd.Output == g.Output {
				continue
			}
			return nil, "", fmt.Errorf("train: %w: %s: a Softmax inside the graph", ErrUnsupported, nd.Name)
		}
		units = append(units, &unit{kind: nd.Kind, node: nd, inputs: append([]string(nil), nd.Inputs...), output: nd.Output, last: i})
	}
	sort.Slice(units, func(i, j int) bool { return units[i].last < units[j].last })
	return units, logits, nil
}

// build creates the gorgonia graph, its gradient and the machine.
func (n *Net) build(units []*unit, logits string, opts NetOptions) (err error) {
	g := n.graph
	gg := G.NewGraph()
	n.g = gg
	e := n.env
	N := n.batch
	in := g.Spec.Input

	// Values: the input, then each unit's output.
	nodes := map[string]*G.Node{}
	shapes := map[string]tensor.Shape{}
	n.xT = newDense(tensor.Shape{N, in.C, in.H, in.W})
	n.input = G.NewTensor(gg, tensor.Float32, 4, G.WithShape(N, in.C, in.H, in.W), G.WithName(g.Input), G.WithValue(n.xT))
	nodes[g.Input], shapes[g.Input] = n.input, n.xT.Shape()
	n.yT = newDense(tensor.Shape{N})
	n.labels = G.NewVector(gg, tensor.Float32, G.WithShape(N), G.WithName("labels"), G.WithValue(n.yT))

	params := map[string]*G.Node{}
	paramNode := func(name string) (*G.Node, error) {
		if pn := params[name]; pn != nil {
			return nil, fmt.Errorf("train: %w: parameter %s is used twice", ErrUnsupported, name)
		}
		p := g.Param(name)
		if p == nil {
			return nil, fmt.Errorf("train: parameter %s does not exist", name)
		}
		if !p.Trainable {
			return nil, fmt.Errorf("train: parameter %s is not trainable", name)
		}
		t := tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(p.Data))
		pn := G.NewTensor(gg, tensor.Float32, len(p.Shape), G.WithShape(p.Shape...), G.WithName(p.Name), G.WithValue(t))
		params[name] = pn
		if !opts.Frozen[name] { // frozen parameters are inputs gorgonia does not differentiate
			n.params = append(n.params, &Trainable{Param: p, node: pn})
		}
		return pn, nil
	}

	// Roles: the first consumer of an activation is primary, later ones
	// secondary (they also wait for the primary, see role).
	consumers := map[string][]*unit{}
	for _, u := range units {
		for _, v := range u.inputs {
			for _, c := range consumers[v] {
				if c == u {
					return fmt.Errorf("train: %w: %s uses %s twice", ErrUnsupported, u.node.Name, v)
				}
			}
			consumers[v] = append(consumers[v], u)
		}
	}
	roleOf := func(u *unit, v string) role {
		switch {
		case v == g.Input:
			return noGrad
		case consumers[v][0] == u:
			return primary
		}
		return secondary
	}

	outShape := func(u *unit) tensor.Shape {
		s := u.node.Shape
		if u.relu || u.pad != nil || u.kind == build.BatchNorm || u.kind == build.Add {
			s = g.Nodes[u.last].Shape
		}
		switch u.kind {
		case build.Flatten, build.Dense:
			return tensor.Shape{N, s.C}
		}
		return tensor.Shape{N, s.C, s.H, s.W}
	}

	for _, u := range units {
		var children []*G.Node
		var roles []role
		for _, v := range u.inputs {
			c := nodes[v]
			if c == nil {
				return fmt.Errorf("train: %s: input %s is not computed before it is used", u.node.Name, v)
			}
			children = append(children, c)
			roles = append(roles, roleOf(u, v))
		}
		out := outShape(u)
		nd := u.node
		name := nd.Name
		b := base{kind: string(u.kind), name: name, shape: out, env: e}
		var op G.Op
		switch u.kind {
		case build.Conv:
			a := nd.Conv
			xs := shapes[u.inputs[0]]
			prm := kernels.ConvParams{InC: xs[1], InH: xs[2], InW: xs[3], OutC: out[1], KH: a.Kernel, KW: a.Kernel,
				StrideH: a.Stride, StrideW: a.Stride, DilationH: a.Dilation, DilationW: a.Dilation,
				PadTop: a.Pad, PadLeft: a.Pad, PadBottom: a.Pad, PadRight: a.Pad, Group: a.Groups}
			if len(nd.Params) != 1+btoi(a.Bias) {
				return fmt.Errorf("train: %s: %d parameters for a conv with bias=%v", name, len(nd.Params), a.Bias)
			}
			for _, pn := range nd.Params {
				w, err := paramNode(pn)
				if err != nil {
					return err
				}
				children = append(children, w)
				roles = append(roles, param)
			}
			co, err := newConvOp(e, name, N, xs, out, prm, a.Bias, roles)
			if err != nil {
				return fmt.Errorf("train: %s: %w", name, err)
			}
			co.wData = g.Param(nd.Params[0]).Data
			if a.Bias {
				co.bData = g.Param(nd.Params[1]).Data
			}
			n.convs = append(n.convs, co)
			op = co
		case build.BatchNorm:
			xs := shapes[u.inputs[0]]
			k, err := kernels.NewBatchNormTrain(N, xs[1], xs[2], xs[3], nd.BN.Epsilon)
			if err != nil {
				return fmt.Errorf("train: %s: %w", name, err)
			}
			bo := &bnOp{k: k, relu: u.relu, momentum: float64(nd.BN.Momentum),
				frozen:  opts.Frozen[nd.Params[0]] && opts.Frozen[nd.Params[1]],
				runMean: g.Param(nd.Params[2]).Data, runVar: g.Param(nd.Params[3]).Data,
				scale: make([]float32, xs[1]), shift: make([]float32, xs[1])}
			var scChild *G.Node
			var scRole role
			if len(u.inputs) == 2 {
				scChild, scRole = children[1], roles[1]
				children, roles = children[:1], roles[:1]
				ss := shapes[u.inputs[1]]
				bo.hasSC, bo.scShape = true, ss.Clone()
				bo.sc = kernels.Shortcut{C: ss[1], H: ss[2], W: ss[3], Stride: 1}
				if u.pad != nil {
					bo.sc.Stride, bo.sc.Before = u.pad.Stride, u.pad.Before
				}
			}
			for _, pn := range nd.Params[:2] {
				w, err := paramNode(pn)
				if err != nil {
					return err
				}
				children = append(children, w)
				roles = append(roles, param)
			}
			if scChild != nil {
				children = append(children, scChild)
				roles = append(roles, scRole)
			}
			b.roles = roles
			bo.base = b
			bo.out = newDense(out)
			n.bns = append(n.bns, bo)
			op = bo
		case build.Relu:
			b.roles = roles
			op = &reluOp{base: b, out: newDense(out)}
		case build.Add:
			b.roles = roles
			op = &addOp{base: b, relu: u.relu, pad: u.pad, n: N, bShape: shapes[u.inputs[1]].Clone(), out: newDense(out)}
		case build.ChannelPad:
			b.roles = roles
			op = &padOp{base: b, n: N, pad: nd.Pad, xShape: shapes[u.inputs[0]].Clone(), out: newDense(out)}
		case build.MaxPool, build.AvgPool, build.GlobalAvgPool:
			b.roles = roles
			po := &poolOp{base: b, global: u.kind == build.GlobalAvgPool, max: u.kind == build.MaxPool,
				inShape: shapes[u.inputs[0]].Clone(), out: newDense(out)}
			if nd.Pool != nil {
				a := nd.Pool
				po.prm = kernels.Pool2DParams{KH: a.Kernel, KW: a.Kernel, StrideH: a.Stride, StrideW: a.Stride,
					PadTop: a.Pad, PadLeft: a.Pad, PadBottom: a.Pad, PadRight: a.Pad}
			}
			if po.max {
				po.idx = make([]int32, out.TotalSize())
			}
			op = po
		case build.Flatten:
			b.roles = roles
			op = &reshapeOp{base: b, inShape: shapes[u.inputs[0]].Clone()}
		case build.Dense:
			xs := shapes[u.inputs[0]]
			if len(xs) != 2 {
				return fmt.Errorf("train: %w: %s: Dense on a %d-D input (flatten first)", ErrUnsupported, name, len(xs))
			}
			for _, pn := range nd.Params {
				w, err := paramNode(pn)
				if err != nil {
					return err
				}
				children = append(children, w)
				roles = append(roles, param)
			}
			b.roles = roles
			op = &denseOp{base: b, n: N, in: xs[1], outF: out[1], out: newDense(out)}
		default:
			return fmt.Errorf("train: %w: %s (%s)", ErrUnsupported, name, u.kind)
		}
		// A secondary consumer must have another input gradients flow
		// through (or gorgonia would not differentiate it at all), and
		// waits for the primary consumers of its inputs.
		hasSecondary, hasGrad := false, false
		for _, r := range roles {
			hasSecondary = hasSecondary || r == secondary
			hasGrad = hasGrad || r == param || r == primary
		}
		if hasSecondary && !hasGrad {
			return fmt.Errorf("train: %w: %s only reads activations other ops read first", ErrUnsupported, name)
		}
		for _, v := range u.inputs {
			if roleOf(u, v) == secondary {
				dep := nodes[consumers[v][0].output]
				if dep == nil {
					return fmt.Errorf("train: %s: %s is not computed before %s", name, consumers[v][0].node.Name, name)
				}
				children = append(children, dep)
			}
		}
		setDims(op, children)
		node, err := apply(op, name, children...)
		if err != nil {
			return err
		}
		nodes[u.output], shapes[u.output] = node, out
	}

	// Loss.
	n.logits = nodes[logits]
	if n.logits == nil || len(shapes[logits]) != 2 {
		return fmt.Errorf("train: %w: the logits %s are not a [batch, classes] matrix", ErrUnsupported, logits)
	}
	k := shapes[logits][1]
	n.lossOp = &lossOp{base: base{kind: "CrossEntropy", name: "loss", inDims: []int{2, 1}, shape: tensor.ScalarShape(),
		roles: []role{primary, noGrad}, env: e}, n: N, k: k, smoothing: opts.LabelSmoothing,
		probs: make([]float32, N*k), loss: new(G.F32)}
	if n.loss, err = apply(n.lossOp, "loss", n.logits, n.labels); err != nil {
		return err
	}

	if opts.forwardOnly {
		return n.compile()
	}
	if len(n.params) == 0 {
		return fmt.Errorf("train: every parameter is frozen: nothing to train")
	}
	wrt := make(G.Nodes, len(n.params))
	for i, t := range n.params {
		wrt[i] = t.node
	}
	grads, err := G.Grad(n.loss, wrt...)
	if err != nil {
		return fmt.Errorf("train: gradient: %w", err)
	}
	for i, t := range n.params {
		t.grad = grads[i]
	}
	if err := n.planMemory(); err != nil {
		return err
	}
	return n.compile()
}

// compile orders the weight packing and makes the program.
func (n *Net) compile() (err error) {
	// Pack the largest convolutions (by weight count) first.
	sort.SliceStable(n.convs, func(i, j int) bool { return len(n.convs[i].wData) > len(n.convs[j].wData) })
	n.packFn = n.packSome
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("train: compiling the graph: %v", r)
		}
	}()
	if n.prog, err = newProgram(n.g, n.env.children); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	for _, t := range n.params {
		t.prog = n.prog
	}
	return nil
}

// planMemory places the activation gradients in shared buffers: in the
// order the program runs the nodes (gorgonia's Sort, reversed), each
// gradient lives from the node that writes it to the last node that reads
// it (through views), and gradients whose lifetimes do not overlap share
// memory (best fit, slabs sized to their largest user). A ResNet's backward
// pass then holds a few gradient tensors at a time instead of one per op.
func (n *Net) planMemory() error {
	order, err := G.Sort(n.g)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	slices.Reverse(order)
	shared := map[*gbuf]bool{}
	for _, g := range n.env.grads {
		shared[g] = true
	}
	// valueOf is the shared buffer a node's value lives in, or nil.
	var valueOf func(nd *G.Node) *gbuf
	valueOf = func(nd *G.Node) *gbuf {
		switch op := nd.Op().(type) {
		case gradWriter:
			if _, v := op.gradBufs(); shared[v] {
				return v
			}
		case *reshapeGradOp, *reshapeOp:
			if kids := n.env.children[nd]; len(kids) > 0 {
				return valueOf(kids[0])
			}
		}
		return nil
	}
	first, last := map[*gbuf]int{}, map[*gbuf]int{}
	var bufs []*gbuf
	for k, nd := range order {
		if w, ok := nd.Op().(gradWriter); ok {
			writes, _ := w.gradBufs()
			for _, g := range writes {
				if shared[g] {
					if _, seen := first[g]; seen {
						return fmt.Errorf("train: memory plan: a gradient buffer is written twice (%s)", nd.Name())
					}
					first[g], last[g] = k, k
					bufs = append(bufs, g)
				}
			}
		}
		for _, c := range n.env.children[nd] {
			if g := valueOf(c); g != nil {
				last[g] = max(last[g], k)
			}
		}
	}
	type slab struct{ size, free int }
	var slabs []slab
	assign := make([]int, len(bufs))
	for i, g := range bufs {
		need := g.shape.TotalSize()
		best := -1
		for j, s := range slabs {
			if s.free >= first[g] {
				continue
			}
			// Prefer the smallest slab that fits, else the largest one
			// (which grows).
			switch {
			case best < 0:
				best = j
			case s.size >= need && (slabs[best].size < need || s.size < slabs[best].size):
				best = j
			case s.size < need && slabs[best].size < need && s.size > slabs[best].size:
				best = j
			}
		}
		if best < 0 {
			slabs = append(slabs, slab{})
			best = len(slabs) - 1
		}
		slabs[best].size = max(slabs[best].size, need)
		slabs[best].free = last[g]
		assign[i] = best
	}
	mem := make([][]float32, len(slabs))
	for j, s := range slabs {
		mem[j] = make([]float32, s.size)
	}
	for i, g := range bufs {
		need := g.shape.TotalSize()
		g.t = tensor.New(tensor.WithShape(g.shape.Clone()...), tensor.WithBacking(mem[assign[i]][:need:need]))
	}
	return nil
}

// setDims records the rank of every child as the op's input ranks.
func setDims(op G.Op, children []*G.Node) {
	dims := make([]int, len(children))
	for i, c := range children {
		dims[i] = len(c.Shape())
	}
	op.(interface{ basePtr() *base }).basePtr().inDims = dims
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
