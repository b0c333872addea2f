package infer

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/toposort"
)

// Supported format versions: internal/onnxmodel's, shared with the
// importer.
const (
	MinIRVersion = onnxmodel.MinIRVersion
	MaxIRVersion = onnxmodel.MaxIRVersion
	MinOpset     = onnxmodel.MinOpset
	MaxOpset     = onnxmodel.MaxOpset
)

// value is one named tensor of the graph.
type value struct {
	id    int
	name  string
	dtype DType // 0 when unknown (a problem was reported upstream)
	// shape is the declared shape of a graph input or output: -1 for a
	// dynamic dimension (names in dimNames), nil with rank -1 when unknown.
	shape    []int
	dimNames []string
	rank     int
	init     *Tensor // the value when known at load (initializer, Constant)
	producer int     // index in model.nodes, -1 for inputs and constants
	input    bool    // a user input (graph input without initializer)
	output   bool    // a graph output
	// needValue: planning needs the contents (a shape operand …).
	needValue bool
}

// node is one op application.
type node struct {
	name   string
	opType string
	since  int
	in     []int // value ids, -1 for omitted optional inputs
	out    []int // value ids, -1 for omitted optional outputs
	op     op
	// valuePorts are the inputs whose values planning needs.
	valuePorts []int
}

// model is a validated graph in topological order.
type model struct {
	opset   int
	values  []*value
	byName  map[string]int
	nodes   []*node
	inputs  []int // user inputs, in graph order
	outputs []int // graph outputs, in graph order
	// keyInputs are user inputs whose contents planning needs; their
	// values are part of the plan key.
	keyInputs []int
	meta      Metadata
}

func isUnsupported(err error) bool { return errors.Is(err, ErrUnsupported) }

// problemList accumulates load problems.
type problemList []Problem

func (p *problemList) add(invalid bool, format string, args ...any) {
	*p = append(*p, Problem{Msg: fmt.Sprintf(format, args...), Invalid: invalid})
}

func (p *problemList) node(n string, op string, invalid bool, format string, args ...any) {
	*p = append(*p, Problem{Node: n, OpType: op, Msg: fmt.Sprintf(format, args...), Invalid: invalid})
}

// buildModel validates a decoded model and builds its graph: versions,
// initializers, inputs, names, topological order, ops with their
// attributes and element types. Every problem is collected and returned
// in one *LoadError; only problems that make the rest meaningless (IR
// version, opset, no graph) return early.
func buildModel(mp *onnxpb.ModelProto, ext *externalData) (*model, error) {
	g, opset, err := onnxmodel.Check(mp, onnxmodel.Reader{Name: "this runtime", Verb: "runs"})
	if err != nil {
		return nil, err
	}
	m := &model{opset: opset, byName: map[string]int{}}
	newValue := func(name string) *value {
		v := &value{id: len(m.values), name: name, producer: -1, rank: -1}
		m.values = append(m.values, v)
		m.byName[name] = v.id
		return v
	}

	// Initializers and user inputs (graph inputs named like an
	// initializer are its default, not user inputs).
	src, names := onnxmodel.IndexSources(g)
	probs := make(problemList, 0, len(names))
	for _, p := range names {
		probs.add(p.Invalid, "%s", p.Msg)
	}
	for _, tp := range src.Initializers {
		name := tp.GetName()
		v := newValue(name)
		t, err := tensorFromProto(tp, ext)
		if err != nil {
			probs.add(!isUnsupported(err), "initializer %q: %v", name, trimSentinel(err))
			continue
		}
		v.init, v.dtype = widen(t), t.Type() // held as its storage type
		v.shape, v.rank = t.Shape, len(t.Shape)
	}
	for _, vi := range src.Inputs {
		name := vi.GetName()
		v := newValue(name)
		v.input = true
		m.inputs = append(m.inputs, v.id)
		dt, shape, names, rank, err := valueType(vi)
		if err != nil {
			probs.add(!isUnsupported(err), "graph input %q: %v", name, trimSentinel(err))
			continue
		}
		v.dtype, v.shape, v.dimNames, v.rank = dt, shape, names, rank
	}

	// Node outputs: each name defined once.
	m.nodes = make([]*node, len(g.GetNode()))
	for i, np := range g.GetNode() {
		n := &node{name: np.GetName(), opType: np.GetOpType()}
		if n.name == "" {
			first := ""
			if len(np.GetOutput()) > 0 {
				first = np.GetOutput()[0]
			}
			n.name = fmt.Sprintf("#%d→%s", i, first)
		}
		m.nodes[i] = n
		for _, out := range np.GetOutput() {
			if out == "" {
				n.out = append(n.out, -1)
				continue
			}
			if id, dup := m.byName[out]; dup {
				what := "another node"
				switch v := m.values[id]; {
				case v.init != nil || v.producer == -1 && !v.input:
					what = "an initializer"
				case v.input:
					what = "a graph input"
				}
				probs.node(n.name, n.opType, true, "output %q is already defined by %s", out, what)
				n.out = append(n.out, -1)
				continue
			}
			v := newValue(out)
			v.producer = i
			n.out = append(n.out, v.id)
		}
	}
	// Node inputs: every name defined somewhere.
	for i, np := range g.GetNode() {
		n := m.nodes[i]
		for _, in := range np.GetInput() {
			if in == "" {
				n.in = append(n.in, -1)
				continue
			}
			id, ok := m.byName[in]
			if !ok {
				probs.node(n.name, n.opType, true, "input %q is not an initializer, a graph input or the output of any node", in)
				id = -1
			}
			n.in = append(n.in, id)
		}
		// Trailing omitted inputs and outputs do not count.
		for len(n.in) > 0 && n.in[len(n.in)-1] == -1 && np.GetInput()[len(n.in)-1] == "" {
			n.in = n.in[:len(n.in)-1]
		}
		for len(n.out) > 0 && np.GetOutput()[len(n.out)-1] == "" {
			n.out = n.out[:len(n.out)-1]
		}
	}

	// Topological order.
	order, cycle := topoSort(m)
	if len(cycle) > 0 {
		names := make([]string, len(cycle))
		for k, i := range cycle {
			names[k] = fmt.Sprintf("%q", m.nodes[i].name)
		}
		probs.add(true, "the graph has a cycle through nodes %s", strings.Join(names, ", "))
	}

	// Ops, attributes and types, in topological order.
	for _, i := range order {
		np, n := g.GetNode()[i], m.nodes[i]
		probs = append(probs, buildNode(m, np, n)...)
	}

	// Graph outputs.
	seenOutput := map[string]bool{}
	for i, vi := range g.GetOutput() {
		name := vi.GetName()
		id, ok := m.byName[name]
		if name != "" && seenOutput[name] {
			probs.add(true, "graph output %q is listed twice", name)
			continue
		}
		if p := onnxmodel.OutputProblem(i, name, ok); p != "" {
			probs.add(true, "%s", p)
			continue
		}
		seenOutput[name] = true
		v := m.values[id]
		v.output = true
		m.outputs = append(m.outputs, id)
		dt, shape, names, rank, err := valueType(vi)
		if err == nil && v.producer >= 0 {
			v.shape, v.dimNames, v.rank = shape, names, rank
		}
		if err == nil && dt != 0 && v.dtype != 0 && dt != v.dtype {
			probs.add(true, "graph output %q is declared %s but computed as %s", name, dt, v.dtype)
		}
	}
	if len(m.outputs) == 0 && len(probs) == 0 {
		probs.add(true, "the graph has no outputs")
	}
	if len(probs) > 0 {
		return nil, &LoadError{Problems: probs}
	}

	// Keep the nodes in execution order, without Constant nodes (their
	// outputs are constants now).
	var kept []*node
	for _, i := range order {
		if n := m.nodes[i]; n.opType != "Constant" {
			kept = append(kept, n)
		}
	}
	m.nodes = kept
	m.setProducers()
	m.markValueInputs()
	m.meta = metadataOf(mp)
	return m, nil
}

// trimSentinel drops a leading "invalid ONNX model: " or "not supported: "
// from an error that a Problem will classify anyway.
func trimSentinel(err error) string { return onnxmodel.TrimSentinel(err) }

// buildNode looks the node's op up and runs its constructor.
func buildNode(m *model, np *onnxpb.NodeProto, n *node) []Problem {
	if d := np.GetDomain(); d != "" && d != "ai.onnx" {
		return []Problem{{Node: n.name, OpType: n.opType, Msg: fmt.Sprintf("op domain %q is not supported (only ai.onnx)", d)}}
	}
	ver, why := lookupOp(n.opType, m.opset)
	if ver.build == nil {
		return []Problem{{Node: n.name, OpType: n.opType, Msg: why}}
	}
	n.since = ver.since
	b := &nodeBuilder{
		proto: np, name: n.name, opType: n.opType, since: ver.since, opset: m.opset,
		used: map[string]bool{},
	}
	var dups []string
	b.attrs, dups = onnxmodel.Attributes(np)
	for _, name := range dups {
		b.invalid("attribute %q is given twice", name)
	}
	for _, id := range n.in {
		b.inPresent = append(b.inPresent, id >= 0)
		var dt DType
		var c *Tensor
		if id >= 0 {
			dt, c = m.values[id].dtype, m.values[id].init
		}
		b.inTypes = append(b.inTypes, dt)
		b.inConst = append(b.inConst, c)
	}
	for _, id := range n.out {
		b.outPresent = append(b.outPresent, id >= 0)
	}
	b.outTypes = make([]DType, len(n.out))
	n.op = ver.build(b)
	b.leftovers()
	// Float16 data is computed in float32: an op that reads it (input 0)
	// and declares a float32 result gives float16 (Cast says what it gives).
	if b.in(0) == Float16 && n.opType != "Cast" {
		for k, t := range b.outTypes {
			if t == Float32 {
				b.outTypes[k] = Float16
			}
		}
	}
	n.valuePorts = b.valuePorts
	for k, id := range n.out {
		if id >= 0 {
			m.values[id].dtype = b.outTypes[k]
		}
	}
	if c, ok := n.op.(constantOp); ok && len(b.problems) == 0 && len(n.out) == 1 && n.out[0] >= 0 {
		v := m.values[n.out[0]]
		v.init = c.value()
		v.shape, v.rank = v.init.Shape, len(v.init.Shape)
	}
	return b.problems
}

// constantOp is an op whose output is known at load (Constant).
type constantOp interface{ value() *Tensor }

// valueType reads a ValueInfoProto's tensor type and shape.
func valueType(vi *onnxpb.ValueInfoProto) (dt DType, shape []int, names []string, rank int, err error) {
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		if vi.GetType() == nil {
			return 0, nil, nil, -1, fmt.Errorf("%w: no type", ErrInvalidModel)
		}
		return 0, nil, nil, -1, fmt.Errorf("%w: not a tensor (sequences, maps, optionals and sparse tensors are not supported)", ErrUnsupported)
	}
	dt = DType(tt.GetElemType())
	if !dt.supported() {
		return dt, nil, nil, -1, fmt.Errorf("%w: element type %s (supported: float32, float64, int64, int32, bool, and uint8, int8, float16 at the edges)", ErrUnsupported, dt)
	}
	if tt.GetShape() == nil {
		return dt, nil, nil, -1, nil
	}
	for _, d := range tt.GetShape().GetDim() {
		switch x := d.GetValue().(type) {
		case *onnxpb.TensorShapeProto_Dimension_DimValue:
			if x.DimValue < 0 {
				return dt, nil, nil, -1, fmt.Errorf("%w: negative dimension %d", ErrInvalidModel, x.DimValue)
			}
			shape = append(shape, int(min(x.DimValue, 1<<40)))
			names = append(names, "")
		case *onnxpb.TensorShapeProto_Dimension_DimParam:
			shape = append(shape, -1)
			names = append(names, x.DimParam)
		default:
			shape = append(shape, -1)
			names = append(names, "")
		}
	}
	return dt, shape, names, len(shape), nil
}

// topoSort orders the nodes so that every node follows the producers of
// its inputs, keeping the file's order where it is free. It returns the
// nodes on or behind a cycle when there is one.
func topoSort(m *model) (order, cycle []int) {
	n := len(m.nodes)
	indeg := make([]int, n)
	users := make([][]int, n)
	for i, nd := range m.nodes {
		for _, id := range nd.in {
			if id < 0 {
				continue
			}
			if p := m.values[id].producer; p >= 0 {
				indeg[i]++
				users[p] = append(users[p], i)
			}
		}
	}
	return toposort.Stable(users, indeg)
}

// markValueInputs finds the values planning must know: the value ports
// of each node and, transitively, the inputs of the nodes that compute
// them (Shape needs only its input's shape, so the walk stops there).
// User inputs reached this way become plan-key inputs.
func (m *model) markValueInputs() {
	var stack []int
	for _, n := range m.nodes {
		for _, p := range n.valuePorts {
			if id := n.in[p]; id >= 0 {
				stack = append(stack, id)
			}
		}
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		v := m.values[id]
		if v.needValue {
			continue
		}
		v.needValue = true
		if v.init != nil {
			continue
		}
		if v.input {
			m.keyInputs = append(m.keyInputs, id)
			continue
		}
		if v.producer < 0 {
			continue
		}
		p := m.nodes[v.producer]
		if p.opType == "Shape" {
			continue
		}
		for _, in := range p.in {
			if in >= 0 {
				stack = append(stack, in)
			}
		}
	}
	slices.Sort(m.keyInputs)
}

// setProducers points every value at the node computing it, after the
// node list changed.
func (m *model) setProducers() {
	for _, v := range m.values {
		v.producer = -1
	}
	for i, n := range m.nodes {
		for _, o := range n.out {
			if o >= 0 {
				m.values[o].producer = i
			}
		}
	}
}
