package onnximport

import (
	"fmt"
	"strings"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
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
	ext      *onnxmodel.ExternalData // external data of initializers
}

// readGraph checks the structure of mp's graph: names defined once, every
// input defined, no cycle. Initializers are decoded on first use, their
// external data read from ext (nil for none).
func readGraph(mp *onnxpb.ModelProto, ext *onnxmodel.ExternalData) (*onnxGraph, error) {
	gp, opset, err := onnxmodel.Check(mp, onnxmodel.Reader{Name: "this importer", Verb: "reads"})
	if err != nil {
		return nil, fmt.Errorf("onnximport: %w", layerError(err))
	}
	g := &onnxGraph{
		opset: opset, producer: map[string]int{}, inits: map[string]*onnxpb.TensorProto{},
		decoded: map[string]*tensor{}, meta: map[string]string{}, ext: ext,
	}
	for _, kv := range mp.GetMetadataProps() {
		g.meta[kv.GetKey()] = kv.GetValue()
	}
	src, probs := onnxmodel.IndexSources(gp)
	if len(probs) > 0 {
		return nil, fmt.Errorf("onnximport: %w", layerError(probs[0].Err()))
	}
	defined := map[string]bool{}
	for _, tp := range src.Initializers {
		defined[tp.GetName()] = true
		g.inits[tp.GetName()] = tp
	}
	for _, vi := range src.Inputs {
		defined[vi.GetName()] = true
	}
	g.inputs = src.Inputs
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
		if p := onnxmodel.OutputProblem(i, name, defined[name]); p != "" {
			return nil, invalidf("%s", p)
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
	t, err := decodeTensor(tp, g.ext)
	if err != nil {
		return nil, fmt.Errorf("initializer %q: %w", name, err)
	}
	g.decoded[name] = t
	return t, nil
}

// live marks the nodes that the value out depends on.
func (g *onnxGraph) live(out string) []bool {
	live := make([]bool, len(g.nodes))
	walk(out, func(v string) ([]string, bool) {
		i, ok := g.producer[v]
		if !ok || live[i] {
			return nil, true
		}
		live[i] = true
		return g.nodes[i].GetInput(), true
	})
	return live
}

// walk visits the values reachable from start, each once, breadth first:
// visit returns the values v leads to, or false to end the walk, which
// then returns false.
func walk(start string, visit func(v string) ([]string, bool)) bool {
	seen := map[string]bool{}
	for queue := []string{start}; len(queue) > 0; queue = queue[1:] {
		if v := queue[0]; v != "" && !seen[v] {
			seen[v] = true
			next, ok := visit(v)
			if !ok {
				return false
			}
			queue = append(queue, next...)
		}
	}
	return true
}
