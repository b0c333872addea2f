package gorgonnx

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	onnx "github.com/owulveryck/onnx-go"
)

// The default-domain opsets accepted. Below 7, Add/Gemm used legacy
// "broadcast" attributes and BatchNormalization had is_test/consumed_inputs;
// up to 22 every op in opSpecs has float32 semantics identical to what onnx-go
// implements (later versions only add types). onnx-go itself never reads the
// opset, so the wrapper must.
const (
	minOpset = 7
	maxOpset = 22
)

// opSpec says how one ONNX op type is accepted.
type opSpec struct {
	minIn, maxIn int
	// attrs checks (and may normalise) the attributes as onnx-go decoded them.
	attrs func(c *attrChecker)
}

// opSpecs is the op set the wrapper lets onnx-go run: ops onnx-go v0.5.0
// implements correctly under the attribute restrictions checked below. Every
// other op (including ones onnx-go registers, like Reshape, Concat, MatMul,
// Constant) is refused.
var opSpecs = map[string]opSpec{
	"Conv":               {2, 3, checkConvAttrs},
	"BatchNormalization": {5, 5, checkBatchNormAttrs},
	"Relu":               {1, 1, noAttrs},
	"Add":                {2, 2, noAttrs},
	"MaxPool":            {1, 1, checkMaxPoolAttrs},
	"GlobalAveragePool":  {1, 1, noAttrs},
	"Flatten":            {1, 1, checkFlattenAttrs},
	"Gemm":               {3, 3, checkGemmAttrs},
	"Softmax":            {1, 1, checkSoftmaxAttrs},
	"Identity":           {1, 1, noAttrs},
}

// supportedOps lists opSpecs' keys for messages.
func supportedOps() string {
	var s []string
	for k := range opSpecs {
		s = append(s, k)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// checkModel applies the checks that need only the graph structure and the
// input shape. It returns the name of the data input and the problems that
// make the model unsupported; a non-nil error means the model or the input is
// invalid.
func checkModel(info *modelInfo, shape []int) (string, []string, error) {
	if !info.hasGraph {
		return "", nil, fmt.Errorf("model has no graph")
	}
	if len(info.nodes) == 0 {
		return "", nil, fmt.Errorf("graph has no nodes")
	}
	if len(info.outputs) == 0 {
		return "", nil, fmt.Errorf("graph has no outputs")
	}
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if v, ok := info.opsets[""]; !ok {
		addf("no ai.onnx opset import")
	} else if v < minOpset || v > maxOpset {
		addf("ai.onnx opset %d outside the checked range %d..%d", v, minOpset, maxOpset)
	}
	if info.sparseInit {
		addf("sparse initializers")
	}

	consumers := map[string]int{}
	for _, n := range info.nodes {
		for _, in := range n.inputs {
			consumers[in]++
		}
	}
	graphOutput := map[string]bool{}
	for _, o := range info.outputs {
		graphOutput[o.name] = true
	}
	batch1 := len(shape) > 0 && shape[0] == 1
	unknownOp := false

	for _, n := range info.nodes {
		if n.domain != "" && n.domain != "ai.onnx" {
			addf("%s: domain %q", n.label(), n.domain)
			continue
		}
		spec, ok := opSpecs[n.opType]
		if !ok {
			addf("%s: op %s is not in the checked op set", n.label(), n.opType)
			unknownOp = true
			continue
		}
		if len(n.inputs) < spec.minIn || len(n.inputs) > spec.maxIn {
			addf("%s: %d inputs, want %d..%d", n.label(), len(n.inputs), spec.minIn, spec.maxIn)
		}
		seen := map[string]bool{}
		for _, in := range n.inputs {
			switch {
			case in == "":
				addf("%s: omitted optional input", n.label())
			case seen[in]:
				// onnx-go's graph keeps one edge per (node, input) pair.
				addf("%s: input %q used twice by the same node", n.label(), in)
			}
			seen[in] = true
		}
		if len(n.outputs) != 1 || n.outputs[0] == "" {
			// onnx-go computes only the first output (MaxPool Indices and
			// training-mode BatchNormalization outputs are not computed).
			addf("%s: %d outputs, want exactly 1", n.label(), len(n.outputs))
		}
		if len(n.inputs) < spec.minIn {
			continue
		}
		// In-place ops: at batch 1 onnx-go's BatchNormalization writes its
		// result into X, and Gemm accumulates into C whenever C has M*N
		// elements. Both are wrong if another node (or the caller) also
		// reads that tensor. Also, two batch-1 BatchNormalizations on the
		// same X would be merged by gorgonia (their op hash is epsilon only).
		shared := func(name string) bool { return consumers[name] > 1 || graphOutput[name] }
		switch n.opType {
		case "BatchNormalization":
			if batch1 && shared(n.inputs[0]) {
				addf("%s: at batch 1 onnx-go overwrites input %q in place, but it is also used elsewhere", n.label(), n.inputs[0])
			}
		case "Gemm":
			if (batch1 || !info.initializers[n.inputs[2]]) && shared(n.inputs[2]) {
				addf("%s: onnx-go accumulates into C %q in place, but it is also used elsewhere", n.label(), n.inputs[2])
			}
		}
	}

	if unknownOp {
		problems = append(problems, "checked op set: "+supportedOps())
	}

	var data []valueInfo
	for _, in := range info.inputs {
		if !info.initializers[in.name] {
			data = append(data, in)
		}
	}
	if len(data) != 1 {
		addf("graph has %d non-initializer inputs, Run feeds exactly one", len(data))
		return "", problems, nil
	}
	in := data[0]
	if in.isTensor && in.elemType != 0 && in.elemType != onnxFloat {
		addf("input %q has element type %d, only float32 (1) is supported", in.name, in.elemType)
	}
	if in.hasShape {
		if len(in.dims) != len(shape) {
			return "", nil, fmt.Errorf("input %q has rank %d, got shape %v", in.name, len(in.dims), shape)
		}
		for i, d := range in.dims {
			if d.hasValue && d.value > 0 && d.value != int64(shape[i]) {
				return "", nil, fmt.Errorf("input %q has dimension %d = %d, got shape %v", in.name, i, d.value, shape)
			}
		}
	}
	return in.name, problems, nil
}

// attrChecker validates the attributes of one node as onnx-go decoded them
// (ints are int64, floats float32, lists []int64, strings string).
type attrChecker struct {
	node     *nodeInfo
	attrs    map[string]any
	seen     map[string]bool
	problems []string
}

func (c *attrChecker) addf(format string, args ...any) {
	c.problems = append(c.problems, c.node.label()+": "+fmt.Sprintf(format, args...))
}

// get returns the attribute and marks it as known.
func (c *attrChecker) get(name string) (any, bool) {
	c.seen[name] = true
	v, ok := c.attrs[name]
	return v, ok
}

// ints returns an INTS attribute of length n with every value >= min.
func (c *attrChecker) ints(name string, n int, min int64, required bool) ([]int64, bool) {
	v, ok := c.get(name)
	if !ok {
		if required {
			c.addf("missing attribute %s", name)
		}
		return nil, false
	}
	s, ok := v.([]int64)
	if !ok || len(s) != n {
		c.addf("attribute %s = %v, want %d ints", name, v, n)
		return nil, false
	}
	for _, x := range s {
		if x < min {
			c.addf("attribute %s = %v, want values >= %d", name, s, min)
			return nil, false
		}
	}
	return s, true
}

// int returns an INT attribute.
func (c *attrChecker) int(name string) (int64, bool) {
	v, ok := c.get(name)
	if !ok {
		return 0, false
	}
	i, ok := v.(int64)
	if !ok {
		c.addf("attribute %s = %v is not an int", name, v)
	}
	return i, ok
}

// intIn requires an optional INT attribute to be one of allowed.
func (c *attrChecker) intIn(name string, allowed ...int64) {
	if i, ok := c.int(name); ok && !slices.Contains(allowed, i) {
		c.addf("attribute %s = %d, onnx-go only handles %v", name, i, allowed)
	}
}

// float requires an optional FLOAT attribute to be a float.
func (c *attrChecker) float(name string) {
	if v, ok := c.get(name); ok {
		if _, ok := v.(float32); !ok {
			c.addf("attribute %s = %v is not a float", name, v)
		}
	}
}

// autoPad accepts auto_pad NOTSET or VALID; onnx-go's SAME_* handling is
// symmetric-only (Conv) or inconsistent with its explicit pads (MaxPool).
func (c *attrChecker) autoPad() string {
	v, ok := c.get("auto_pad")
	if !ok {
		return "NOTSET"
	}
	s, _ := v.(string)
	switch s {
	case "", "NOTSET":
		return "NOTSET"
	case "VALID":
		return s
	}
	c.addf("auto_pad %v not supported", v)
	return s
}

// pads accepts absent pads or four equal pads: onnx-go maps ONNX
// [h_begin, w_begin, h_end, w_end] onto gorgonia in an order that is only
// right when all four are equal.
func (c *attrChecker) pads() {
	p, ok := c.ints("pads", 4, 0, false)
	if ok && (p[0] != p[1] || p[0] != p[2] || p[0] != p[3]) {
		c.addf("pads %v: onnx-go handles only four equal pads", p)
	}
}

// unknown reports attributes no check looked at.
func (c *attrChecker) unknown() {
	var names []string
	for k := range c.attrs {
		if !c.seen[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		c.addf("attribute %s not supported", k)
	}
}

func noAttrs(*attrChecker) {}

func checkConvAttrs(c *attrChecker) {
	c.ints("kernel_shape", 2, 1, true)
	c.ints("strides", 2, 1, false)
	c.ints("dilations", 2, 1, false)
	c.pads()
	if c.autoPad() == "VALID" {
		if p, ok := c.attrs["pads"].([]int64); ok && slices.ContainsFunc(p, func(x int64) bool { return x != 0 }) {
			c.addf("auto_pad VALID with non-zero pads")
		}
	}
	// onnx-go never reads group; refuse anything but 1.
	if g, ok := c.int("group"); ok && g != 1 {
		c.addf("group = %d, onnx-go ignores group (only group = 1 is supported)", g)
	}
}

func checkBatchNormAttrs(c *attrChecker) {
	c.float("epsilon")
	c.float("momentum")
	c.intIn("spatial", 1)       // opset 7..8; spatial=0 is per-activation
	c.intIn("training_mode", 0) // opset 14+
}

func checkMaxPoolAttrs(c *attrChecker) {
	c.ints("kernel_shape", 2, 1, true)
	c.ints("strides", 2, 1, false)
	c.pads()
	c.autoPad()
	c.intIn("ceil_mode", 0)
	c.int("storage_order") // only affects the Indices output, which is refused
	if d, ok := c.ints("dilations", 2, 1, false); ok {
		if d[0] != 1 || d[1] != 1 {
			c.addf("dilations %v: onnx-go has no dilated MaxPool", d)
		} else {
			// onnx-go refuses the attribute even when it is a no-op.
			delete(c.attrs, "dilations")
		}
	}
}

func checkFlattenAttrs(c *attrChecker) {
	// onnx-go computes a negative axis as 0.
	if a, ok := c.int("axis"); ok && a < 0 {
		c.addf("axis = %d, onnx-go only handles axis >= 0", a)
	}
}

func checkGemmAttrs(c *attrChecker) {
	c.float("alpha")
	c.float("beta")
	c.intIn("transA", 0, 1)
	c.intIn("transB", 0, 1)
}

func checkSoftmaxAttrs(c *attrChecker) {
	// For the rank-2 inputs the wrapper accepts (checked after the run),
	// axis 1 and -1 mean the same in every opset; onnx-go ignores the axis
	// of a rank-2 input.
	c.intIn("axis", 1, -1)
}

// checkAttrs validates op's attributes for node and returns the problems.
// It may normalise op.Attributes (drop no-op attributes onnx-go rejects).
func checkAttrs(node *nodeInfo, op onnx.Operation) []string {
	spec, ok := opSpecs[op.Name]
	if !ok {
		return []string{fmt.Sprintf("%s: op %s not supported", node.label(), op.Name)}
	}
	if op.Attributes == nil {
		op.Attributes = map[string]any{}
	}
	c := &attrChecker{node: node, attrs: op.Attributes, seen: map[string]bool{}}
	spec.attrs(c)
	c.unknown()
	return c.problems
}

// probeNames lists the tensors whose shapes checkShapes needs after the run.
func probeNames(info *modelInfo) []string {
	var names []string
	for _, n := range info.nodes {
		if len(n.inputs) == 0 || len(n.outputs) == 0 {
			continue
		}
		switch n.opType {
		case "Add":
			names = append(names, n.inputs...)
		case "Softmax":
			names = append(names, n.inputs[0])
		case "Gemm":
			if len(n.inputs) == 3 {
				names = append(names, n.inputs[2], n.outputs[0])
			}
		}
	}
	return names
}

// checkShapes applies the checks that need run-time shapes: onnx-go's
// broadcasting is a heuristic (Add), its Softmax flattens to 2-D with the
// pre-opset-13 rule, and its Gemm treats any C with N elements as a row.
func checkShapes(info *modelInfo, shapeOf func(string) ([]int, bool)) []string {
	var problems []string
	for _, n := range info.nodes {
		if len(n.inputs) == 0 || len(n.outputs) == 0 {
			continue
		}
		switch n.opType {
		case "Add":
			a, ok1 := shapeOf(n.inputs[0])
			b, ok2 := shapeOf(n.inputs[1])
			if ok1 && ok2 && !slices.Equal(a, b) {
				problems = append(problems, fmt.Sprintf("%s: broadcasting %v + %v (onnx-go only adds equal shapes correctly)", n.label(), a, b))
			}
		case "Softmax":
			if s, ok := shapeOf(n.inputs[0]); ok && len(s) != 2 {
				problems = append(problems, fmt.Sprintf("%s: input shape %v, only rank 2 is supported", n.label(), s))
			}
		case "Gemm":
			cs, ok1 := shapeOf(n.inputs[2])
			ys, ok2 := shapeOf(n.outputs[0])
			if !ok1 || !ok2 || len(ys) != 2 {
				continue
			}
			m, nn := ys[0], ys[1]
			good := len(cs) == 0 || slices.Equal(cs, []int{1}) || slices.Equal(cs, []int{nn}) ||
				slices.Equal(cs, []int{1, nn}) || slices.Equal(cs, []int{m, nn})
			if !good {
				problems = append(problems, fmt.Sprintf("%s: C of shape %v for output %v is not supported", n.label(), cs, ys))
			}
		}
	}
	return problems
}
