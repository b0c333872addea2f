package infer

// OutputOp returns the op type of the node that computes graph output
// name, looking through Identity nodes (exporters often end a graph with
// one), or "" when that is unknown: no such output, an output that is a
// graph input or a constant, or an engine that does not keep the graph
// (gorgonnx). Callers use it to tell an output that already holds a
// distribution (Softmax, LogSoftmax) from one holding logits.
func (s *Session) OutputOp(name string) string {
	e, ok := s.engine.(*native)
	if !ok {
		return ""
	}
	id, ok := e.m.byName[name]
	for ok {
		p := e.m.values[id].producer
		if p < 0 {
			return ""
		}
		n := e.m.nodes[p]
		if n.opType != "Identity" || len(n.in) == 0 || n.in[0] < 0 {
			return n.opType
		}
		id = n.in[0]
	}
	return ""
}
