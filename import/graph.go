package onnximport

import (
	"fmt"
	"strings"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/toposort"
)

// onnxGraph is a decoded, checked ONNX graph: nodes in topological order,
// every value defined once, initializers decoded on first use.
type onnxGraph struct {
	opset    int
	nodes    []*onnxpb.NodeProto // topological order
	names    []string            // node names, unique, made up where missing
	producer map[string]int      // value → index in nodes
	inits    map[string]*onnxpb.TensorProto
	decoded  map[string]*tensor
	inputs   []*onnxpb.ValueInfoProto // graph inputs that are not initializers
	outputs  []string
	meta     map[string]string
}

// readGraph checks the structure of mp's graph: names defined once, every
// input defined, no cycle.
func readGraph(mp *onnxpb.ModelProto) (*onnxGraph, error) {
	ir := mp.GetIrVersion()
	if ir == 0 {
		return nil, invalidf("no IR version (is this an ONNX model?)")
	}
	if ir < 3 || ir > 10 {
		return nil, unsupportedf("IR version %d (this importer reads IR versions 3 to 10)", ir)
	}
	opset, found := 0, false
	for _, o := range mp.GetOpsetImport() {
		switch o.GetDomain() {
		case "", "ai.onnx":
			opset, found = int(o.GetVersion()), true
		}
	}
	if !found {
		return nil, invalidf("no ai.onnx opset import")
	}
	if opset < 7 || opset > 21 {
		return nil, unsupportedf("ai.onnx opset %d (this importer reads opsets 7 to 21)", opset)
	}
	gp := mp.GetGraph()
	if gp == nil {
		return nil, invalidf("the model has no graph")
	}
	g := &onnxGraph{
		opset: opset, producer: map[string]int{}, inits: map[string]*onnxpb.TensorProto{},
		decoded: map[string]*tensor{}, meta: map[string]string{},
	}
	for _, kv := range mp.GetMetadataProps() {
		g.meta[kv.GetKey()] = kv.GetValue()
	}
	defined := map[string]bool{}
	for i, tp := range gp.GetInitializer() {
		name := tp.GetName()
		if name == "" {
			return nil, invalidf("initializer %d has no name", i)
		}
		if defined[name] {
			return nil, invalidf("initializer %q is defined twice", name)
		}
		defined[name] = true
		g.inits[name] = tp
	}
	if len(gp.GetSparseInitializer()) > 0 {
		return nil, unsupportedf("sparse initializers")
	}
	seen := map[string]bool{}
	for i, vi := range gp.GetInput() {
		name := vi.GetName()
		if name == "" {
			return nil, invalidf("graph input %d has no name", i)
		}
		if seen[name] {
			return nil, invalidf("graph input %q is listed twice", name)
		}
		seen[name] = true
		if g.inits[name] != nil {
			continue // a default value: IR 3 files list every weight as an input
		}
		defined[name] = true
		g.inputs = append(g.inputs, vi)
	}
	nodes := gp.GetNode()
	prod := make(map[string]int, len(nodes))
	for i, np := range nodes {
		for _, out := range np.GetOutput() {
			if out == "" {
				continue
			}
			if defined[out] {
				return nil, invalidf("node %d (%s) output %q is already defined", i, np.GetOpType(), out)
			}
			defined[out] = true
			prod[out] = i
		}
	}
	indeg := make([]int, len(nodes))
	users := make([][]int, len(nodes))
	for i, np := range nodes {
		for _, in := range np.GetInput() {
			if in == "" {
				continue
			}
			if !defined[in] {
				return nil, invalidf("node %d (%s %q) reads %q, which is not an initializer, a graph input or a node output", i, np.GetOpType(), np.GetName(), in)
			}
			if p, ok := prod[in]; ok {
				indeg[i]++
				users[p] = append(users[p], i)
			}
		}
	}
	order, cycle := toposort.Stable(users, indeg)
	if len(cycle) > 0 {
		var cyc []string
		for _, i := range cycle[:min(5, len(cycle))] {
			cyc = append(cyc, fmt.Sprintf("%q", nodes[i].GetName()))
		}
		return nil, invalidf("the graph has a cycle through nodes %s", strings.Join(cyc, ", "))
	}
	used := map[string]bool{}
	for k, i := range order {
		np := nodes[i]
		g.nodes = append(g.nodes, np)
		name := np.GetName()
		if name == "" || used[name] {
			first := ""
			if len(np.GetOutput()) > 0 {
				first = np.GetOutput()[0]
			}
			name = fmt.Sprintf("%s_%d(%s)", np.GetOpType(), k, first)
		}
		used[name] = true
		g.names = append(g.names, name)
		for _, out := range np.GetOutput() {
			if out != "" {
				g.producer[out] = k
			}
		}
	}
	for i, vi := range gp.GetOutput() {
		name := vi.GetName()
		if name == "" {
			return nil, invalidf("graph output %d has no name", i)
		}
		if !defined[name] {
			return nil, invalidf("graph output %q is not computed", name)
		}
		g.outputs = append(g.outputs, name)
	}
	if len(g.outputs) == 0 {
		return nil, invalidf("the graph has no outputs")
	}
	return g, nil
}

// initializer decodes (once) and returns the initializer called name.
func (g *onnxGraph) initializer(name string) (*tensor, error) {
	if t, ok := g.decoded[name]; ok {
		return t, nil
	}
	tp := g.inits[name]
	if tp == nil {
		return nil, nil
	}
	t, err := decodeTensor(tp)
	if err != nil {
		return nil, fmt.Errorf("initializer %q: %w", name, err)
	}
	g.decoded[name] = t
	return t, nil
}

// live marks the nodes that the value out depends on.
func (g *onnxGraph) live(out string) []bool {
	live := make([]bool, len(g.nodes))
	stack := []string{out}
	seen := map[string]bool{}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[v] {
			continue
		}
		seen[v] = true
		i, ok := g.producer[v]
		if !ok || live[i] {
			continue
		}
		live[i] = true
		for _, in := range g.nodes[i].GetInput() {
			if in != "" {
				stack = append(stack, in)
			}
		}
	}
	return live
}
