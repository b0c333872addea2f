package onnximport

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/models"
)

// Pseudo op kinds that exist only while lowering; fuse resolves them into
// build ops (or reports them as blockers).
const (
	kSubsample  build.Kind = "onnximport.subsample"  // keep every s-th row and column (Slice steps, 1x1 MaxPool)
	kSpatialPad build.Kind = "onnximport.spatialpad" // symmetric zero padding of H and W (Pad)
	kAddConst   build.Kind = "onnximport.addconst"   // add a per-channel constant, Params[0] (Add, Sub)
)

// lval is what an ONNX value became: a constant, an activation, or the
// output of a blocked node (bad; d still carries the shape when known, so
// the nodes after it are checked too).
type lval struct {
	c   *tensor
	d   *dval
	bad bool
}

// dval is an activation: a build.Graph value in NCHW layout.
type dval struct {
	name  string       // the build.Graph value
	shape models.Shape // per sample, in NCHW order
	rank  int          // 4 (N, C, H, W) or 2 (N, C)
	nhwc  bool         // the ONNX tensor holds it as N, H, W, C
}

// onnxDims is the ONNX per-sample shape of an activation.
func (d *dval) onnxDims() []int {
	s := d.shape
	switch {
	case d.rank == 2:
		return []int{s.C}
	case d.nhwc:
		return []int{s.H, s.W, s.C}
	}
	return []int{s.C, s.H, s.W}
}

// canonAxis maps an ONNX axis of an activation to NCHW order: 0 batch,
// 1 channels, 2 height, 3 width.
func (d *dval) canonAxis(axis int64) (int, error) {
	ax, err := normAxis(axis, d.rank)
	if err != nil {
		return 0, err
	}
	if d.nhwc && ax > 0 {
		return []int{0, 2, 3, 1}[ax], nil
	}
	return ax, nil
}

// lowerer turns ONNX nodes into build.Graph nodes.
type lowerer struct {
	og      *onnxGraph
	g       *build.Graph
	vals    map[string]*lval
	used    map[string]bool // ONNX values some live node (or the output) reads
	names   map[string]bool // every node, value and parameter name in use
	sub     map[*build.Node][2]int
	spad    map[*build.Node]int
	blocked []Blocker
	fatal   error
	// dry is set while lowering a node downstream of a blocked one: the
	// node is checked but nothing is emitted.
	dry bool
	// fixedBatch is the input's batch size when the file fixes it, else 0.
	fixedBatch int64
	converted  map[string]bool // element types converted to float32
	owned      map[*float32]bool
}

// reserved names: the exported graph's input and outputs.
var reservedNames = []string{"input", "logits", "probabilities"}

func (l *lowerer) unique(base string) string {
	name := base
	for k := 2; l.names[name]; k++ {
		name = fmt.Sprintf("%s_%d", base, k)
	}
	l.names[name] = true
	return name
}

// nodeName allocates a node name and the tensor names export derives from
// it (ChannelPad writes NAME.subsample, NAME.pads …).
func (l *lowerer) nodeName(base string) string {
	for k := 1; ; k++ {
		name := base
		if k > 1 {
			name = fmt.Sprintf("%s_%d", base, k)
		}
		derived := []string{name, name + ".subsample", name + ".pads", name + ".subsample.starts",
			name + ".subsample.ends", name + ".subsample.axes", name + ".subsample.steps"}
		if !slices.ContainsFunc(derived, func(s string) bool { return l.names[s] }) {
			for _, s := range derived {
				l.names[s] = true
			}
			return name
		}
	}
}

// emit appends a node (unless dry) and returns its output activation.
func (l *lowerer) emit(n *build.Node, rank int, nhwc bool) *dval {
	if l.dry {
		return &dval{name: "", shape: n.Shape, rank: rank, nhwc: nhwc}
	}
	n.Name = l.nodeName(n.Name)
	n.Output = n.Name
	l.g.Nodes = append(l.g.Nodes, n)
	return &dval{name: n.Output, shape: n.Shape, rank: rank, nhwc: nhwc}
}

// param adds a parameter (unless dry). fileName is the initializer's name
// when the data is taken from the file unchanged; it is kept as the
// parameter's name if free.
func (l *lowerer) param(node, role, fileName string, shape []int, data []float32, trainable bool) string {
	if l.dry {
		return ""
	}
	base := node + "." + role
	if fileName != "" && !l.names[fileName] {
		base = fileName
	}
	name := l.unique(base)
	// Parameters never share storage (fusion and training change them in
	// place), even when the file uses one initializer twice.
	if len(data) > 0 {
		if l.owned[&data[0]] {
			data = slices.Clone(data)
		}
		l.owned[&data[0]] = true
	}
	l.g.Params = append(l.g.Params, &build.Param{Name: name, Shape: shape, Data: data, Trainable: trainable})
	return name
}

// lower converts the live nodes feeding out. Problems with single nodes
// are collected in l.blocked.
func (l *lowerer) lower(live []bool) {
	for k, np := range l.og.nodes {
		if !live[k] {
			continue
		}
		name := l.og.names[k]
		ins := make([]*lval, len(np.GetInput()))
		bad := false
		for j, in := range np.GetInput() {
			if in == "" {
				continue
			}
			v := l.vals[in]
			if v == nil { // a constant initializer
				t, err := l.og.initializer(in)
				if err != nil {
					l.fail(err)
					bad = true
					continue
				}
				v = &lval{c: t}
				l.vals[in] = v
			}
			ins[j] = v
			bad = bad || v.bad
		}
		outs, err := l.node(np, name, ins, bad)
		if errors.Is(err, ErrInvalidModel) {
			l.fail(fmt.Errorf("node %q (%s): %w", name, np.GetOpType(), err))
		} else if err != nil {
			l.block(name, np.GetOpType(), err.Error())
		}
		for j, out := range np.GetOutput() {
			if out == "" {
				continue
			}
			var v *lval
			if j < len(outs) && outs[j] != nil {
				v = outs[j]
			} else {
				v = &lval{bad: true}
				if j == 0 && err == nil && !bad && l.used[out] {
					l.block(name, np.GetOpType(), "produced no value (internal error)")
				} else if j > 0 && l.used[out] && err == nil && !bad {
					l.block(name, np.GetOpType(), fmt.Sprintf("its output %d (%q) is used; only the first output of %s has a build.Graph equivalent", j, out, np.GetOpType()))
				}
			}
			if err != nil || bad {
				v.bad = true
			}
			l.vals[out] = v
		}
	}
}

// fail records the first malformed-model error; it ends the import.
func (l *lowerer) fail(err error) {
	if l.fatal == nil {
		l.fatal = fmt.Errorf("onnximport: %w", err)
	}
}

func (l *lowerer) block(node, op, reason string) {
	for _, b := range l.blocked {
		if b.Node == node && b.Reason == reason {
			return
		}
	}
	l.blocked = append(l.blocked, Blocker{Node: node, OpType: op, Reason: reason})
}

// shapePreserving lists ops build.Graph lacks whose output has the shape
// of their first input; the nodes after them are still checked.
var shapePreserving = map[string]bool{
	"Sigmoid": true, "Tanh": true, "LeakyRelu": true, "Elu": true, "Selu": true, "Celu": true,
	"HardSigmoid": true, "HardSwish": true, "Softplus": true, "Softsign": true, "Clip": true,
	"Exp": true, "Log": true, "Neg": true, "Abs": true, "Sqrt": true, "Erf": true, "Gelu": true,
	"PRelu": true, "Mish": true, "Reciprocal": true, "Floor": true, "Ceil": true, "Round": true,
	"Sign": true, "Sin": true, "Cos": true, "LRN": true, "InstanceNormalization": true,
	"LayerNormalization": true, "Mul": true, "Div": true, "Pow": true, "Max": true, "Min": true,
	"ThresholdedRelu": true, "Shrink": true, "LpNormalization": true,
}

// node lowers one node. bad says an input comes from a blocked node.
func (l *lowerer) node(np *onnxpb.NodeProto, name string, ins []*lval, bad bool) ([]*lval, error) {
	op := np.GetOpType()
	if d := np.GetDomain(); d != "" && d != "ai.onnx" {
		return nil, fmt.Errorf("op domain %q (only the standard ai.onnx ops are imported)", d)
	}
	a, err := attrsOf(np)
	if err != nil {
		return nil, err
	}
	if op == "Constant" {
		t, err := constant(a)
		if err != nil {
			return nil, err
		}
		return []*lval{{c: t}}, nil
	}
	allConst, anyData := true, false
	for _, v := range ins {
		if v == nil {
			continue
		}
		if v.c == nil {
			allConst = false
		}
		if v.d != nil || (v.bad && v.c == nil) {
			anyData = true
		}
	}
	if bad {
		// Check the node as far as the shapes allow, emit nothing.
		for _, v := range ins {
			if v != nil && v.bad && v.d == nil && v.c == nil {
				if dataOps[op] == nil && constOps[op] == nil {
					return nil, fmt.Errorf("op %s has no build.Graph equivalent", op)
				}
				return []*lval{{bad: true}}, nil // shape unknown: nothing more to check
			}
		}
		l.dry = true
		defer func() { l.dry = false }()
	}
	if allConst && !anyData {
		f := constOps[op]
		if f == nil {
			return nil, fmt.Errorf("a constant expression with op %s is not evaluated", op)
		}
		cs := make([]*tensor, len(ins))
		for k, v := range ins {
			if v != nil {
				cs[k] = v.c
			}
		}
		t, err := f(a, cs, l.og.opset)
		if err != nil {
			return nil, err
		}
		return []*lval{{c: t}}, nil
	}
	conv := dataOps[op]
	if conv == nil {
		var out []*lval
		if shapePreserving[op] && len(ins) > 0 && ins[0] != nil && ins[0].d != nil {
			d := *ins[0].d
			out = []*lval{{d: &d, bad: true}}
		}
		return out, fmt.Errorf("op %s has no build.Graph equivalent", op)
	}
	c := &call{l: l, name: name, op: op, a: a, ins: ins, np: np}
	d, err := conv(c)
	if err != nil {
		return nil, err
	}
	return []*lval{d}, nil
}

// call is one node being lowered.
type call struct {
	l    *lowerer
	name string
	op   string
	a    attrs
	ins  []*lval
	np   *onnxpb.NodeProto
}

func (c *call) data(k int) (*dval, error) {
	if k >= len(c.ins) || c.ins[k] == nil {
		return nil, fmt.Errorf("missing input %d", k)
	}
	if c.ins[k].d == nil {
		return nil, fmt.Errorf("input %d (%q) is a constant where an activation is expected", k, c.np.GetInput()[k])
	}
	return c.ins[k].d, nil
}

// image returns input k as an NCHW activation, as Conv and pooling read it.
func (c *call) image(k int) (*dval, error) {
	d, err := c.data(k)
	if err != nil {
		return nil, err
	}
	if d.rank != 4 {
		return nil, fmt.Errorf("input is a rank-%d tensor; %s is imported for (N, C, H, W) images only", d.rank, c.op)
	}
	if d.nhwc {
		return nil, fmt.Errorf("input is in N, H, W, C layout (a Transpose to N, C, H, W is missing)")
	}
	return d, nil
}

func (c *call) konst(k int, what string) (*tensor, error) {
	if k >= len(c.ins) || c.ins[k] == nil {
		return nil, nil
	}
	if c.ins[k].c == nil {
		return nil, fmt.Errorf("%s (input %d, %q) is computed at run time; build.Graph needs it constant", what, k, c.np.GetInput()[k])
	}
	return c.ins[k].c, nil
}

func (c *call) floats(k int, what string, dims ...int) (*tensor, error) {
	t, err := c.konst(k, what)
	if err != nil || t == nil {
		return t, err
	}
	if !t.float {
		return nil, fmt.Errorf("%s is not a floating-point tensor", what)
	}
	if dims != nil && !slices.Equal(t.dims, dims) {
		return nil, fmt.Errorf("%s has shape %v, want %v", what, t.dims, dims)
	}
	if t.from != "" {
		c.l.converted[t.from] = true
	}
	return t, nil
}

func (c *call) node(kind build.Kind, in []*dval, shape models.Shape) *build.Node {
	n := &build.Node{Name: c.name, Kind: kind, Shape: shape}
	for _, d := range in {
		n.Inputs = append(n.Inputs, d.name)
	}
	return n
}

var dataOps = map[string]func(*call) (*lval, error){
	"Conv":               lowerConv,
	"BatchNormalization": lowerBN,
	"Relu":               lowerRelu,
	"Add":                lowerAdd,
	"Sum":                lowerAdd,
	"Sub":                lowerAdd,
	"MaxPool":            lowerMaxPool,
	"AveragePool":        lowerAvgPool,
	"GlobalAveragePool":  lowerGAP,
	"ReduceMean":         lowerReduceMean,
	"Flatten":            lowerFlatten,
	"Reshape":            lowerReshape,
	"Squeeze":            lowerSqueeze,
	"Gemm":               lowerGemm,
	"MatMul":             lowerMatMul,
	"Softmax":            lowerSoftmax,
	"Identity":           lowerIdentity,
	"Dropout":            lowerIdentity,
	"Cast":               lowerCast,
	"Transpose":          lowerTranspose,
	"Slice":              lowerSlice,
	"Pad":                lowerPad,
	"Shape":              lowerShape,
}

func same(d *dval) *lval { return &lval{d: d} }

func outSize(in, kernel, stride, pad, dilation int) int {
	if stride < 1 {
		return 0
	}
	return (in+2*pad-dilation*(kernel-1)-1)/stride + 1
}

// window reads the square-window attributes Conv and the pools share and
// resolves auto_pad. kernel is the kernel side (from the weights for Conv).
func (c *call) window(x *dval, kernel int, dilations bool) (stride, pad, dilation int, err error) {
	if ks, err := c.a.ints("kernel_shape", nil); err != nil {
		return 0, 0, 0, err
	} else if ks != nil && !slices.Equal(ks, []int64{int64(kernel), int64(kernel)}) {
		return 0, 0, 0, fmt.Errorf("kernel_shape %v; build.Graph has square 2-D kernels only (want [%d %d])", ks, kernel, kernel)
	}
	pair := func(name string, def int64) (int, error) {
		v, err := c.a.ints(name, []int64{def, def})
		if err != nil {
			return 0, err
		}
		if len(v) != 2 || v[0] != v[1] || v[0] < 1 || v[0] > 1<<20 {
			return 0, fmt.Errorf("%s %v; build.Graph needs one positive value for both axes", name, v)
		}
		return int(v[0]), nil
	}
	if stride, err = pair("strides", 1); err != nil {
		return
	}
	dilation = 1
	if dilations {
		if dilation, err = pair("dilations", 1); err != nil {
			return
		}
	}
	autoPad, err := c.a.str("auto_pad", "NOTSET")
	if err != nil {
		return
	}
	span := dilation*(kernel-1) + 1
	switch autoPad {
	case "NOTSET", "":
		pads, err := c.a.ints("pads", []int64{0, 0, 0, 0})
		if err != nil {
			return 0, 0, 0, err
		}
		if len(pads) != 4 || pads[0] != pads[1] || pads[0] != pads[2] || pads[0] != pads[3] || pads[0] < 0 || pads[0] > 1<<20 {
			return 0, 0, 0, fmt.Errorf("pads %v; build.Graph needs the same padding on every side", pads)
		}
		pad = int(pads[0])
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		for _, in := range []int{x.shape.H, x.shape.W} {
			out := (in + stride - 1) / stride
			total := max((out-1)*stride+span-in, 0)
			if total%2 != 0 {
				return 0, 0, 0, fmt.Errorf("auto_pad %s pads %d rows/columns, unevenly; build.Graph pads symmetrically", autoPad, total)
			}
			if in == x.shape.H {
				pad = total / 2
			} else if total/2 != pad {
				return 0, 0, 0, fmt.Errorf("auto_pad %s pads height and width differently", autoPad)
			}
		}
	default:
		return 0, 0, 0, fmt.Errorf("auto_pad %q", autoPad)
	}
	if outSize(x.shape.H, kernel, stride, pad, dilation) < 1 || outSize(x.shape.W, kernel, stride, pad, dilation) < 1 {
		return 0, 0, 0, fmt.Errorf("a %dx%d window does not fit the %dx%d input", kernel, kernel, x.shape.H, x.shape.W)
	}
	return stride, pad, dilation, nil
}

func lowerConv(c *call) (*lval, error) {
	x, err := c.image(0)
	if err != nil {
		return nil, err
	}
	w, err := c.floats(1, "weight")
	if err != nil {
		return nil, err
	}
	if w == nil || len(w.dims) != 4 {
		return nil, fmt.Errorf("weight must be a constant rank-4 tensor (2-D convolution)")
	}
	groups64, err := c.a.int("group", 1)
	if err != nil {
		return nil, err
	}
	out, inPer, kh, kw := w.dims[0], w.dims[1], w.dims[2], w.dims[3]
	if groups64 < 1 || groups64 > int64(x.shape.C) {
		return nil, fmt.Errorf("group %d", groups64)
	}
	groups := int(groups64)
	if inPer*groups != x.shape.C || out%groups != 0 || out < 1 {
		return nil, fmt.Errorf("weight %v does not fit %d input channels in %d groups", w.dims, x.shape.C, groups)
	}
	if kh != kw || kh < 1 {
		return nil, fmt.Errorf("kernel %dx%d; build.Graph has square kernels only", kh, kw)
	}
	stride, pad, dilation, err := c.window(x, kh, true)
	if err != nil {
		return nil, err
	}
	b, err := c.floats(2, "bias", out)
	if err != nil {
		return nil, err
	}
	n := c.node(build.Conv, []*dval{x}, models.Shape{
		C: out, H: outSize(x.shape.H, kh, stride, pad, dilation), W: outSize(x.shape.W, kh, stride, pad, dilation),
	})
	n.Conv = &build.ConvAttrs{Kernel: kh, Stride: stride, Pad: pad, Dilation: dilation, Groups: groups, Bias: b != nil}
	n.Params = []string{c.l.param(c.name, "weight", c.np.GetInput()[1], w.dims, w.f, true)}
	if b != nil {
		n.Params = append(n.Params, c.l.param(c.name, "bias", c.np.GetInput()[2], b.dims, b.f, true))
	}
	return same(c.l.emit(n, 4, false)), nil
}

func lowerBN(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	if x.rank != 4 {
		return nil, fmt.Errorf("BatchNormalization of a rank-%d tensor (BatchNorm1d) has no build.Graph equivalent", x.rank)
	}
	if x.nhwc {
		return nil, fmt.Errorf("input is in N, H, W, C layout (a Transpose to N, C, H, W is missing)")
	}
	if spatial, err := c.a.int("spatial", 1); err != nil || spatial != 1 {
		return nil, fmt.Errorf("spatial=%d (per-activation BatchNorm) has no build.Graph equivalent", spatial)
	}
	if tm, err := c.a.int("training_mode", 0); err != nil || tm != 0 {
		return nil, fmt.Errorf("training_mode=%d: the file computes batch statistics; import an inference-mode export", tm)
	}
	eps, err := c.a.float("epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	mom, err := c.a.float("momentum", 0.9)
	if err != nil {
		return nil, err
	}
	if !(eps > 0) || math.IsInf(float64(eps), 0) || !(mom >= 0 && mom <= 1) {
		return nil, fmt.Errorf("epsilon %g, momentum %g", eps, mom)
	}
	n := c.node(build.BatchNorm, []*dval{x}, x.shape)
	n.BN = &build.BNAttrs{Epsilon: eps, Momentum: pytorchMomentum(mom)}
	for k, role := range []string{"weight", "bias", "running_mean", "running_var"} {
		t, err := c.floats(k+1, role, x.shape.C)
		if err != nil {
			return nil, err
		}
		if t == nil {
			return nil, fmt.Errorf("missing %s", role)
		}
		n.Params = append(n.Params, c.l.param(c.name, role, c.np.GetInput()[k+1], t.dims, t.f, k < 2))
	}
	return same(c.l.emit(n, 4, false)), nil
}

// pytorchMomentum converts ONNX's momentum (the weight of the running
// value) to PyTorch's (the weight of the batch value), snapping the
// float32 rounding of 1-0.9 back to 0.1.
func pytorchMomentum(m float32) float32 {
	v := 1 - float64(m)
	if r := math.Round(v*1e6) / 1e6; math.Abs(v-r) < 1e-7 {
		return float32(r)
	}
	return float32(v)
}

func lowerRelu(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	return same(c.l.emit(c.node(build.Relu, []*dval{x}, x.shape), x.rank, x.nhwc)), nil
}

func lowerIdentity(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	if c.op == "Dropout" && len(c.ins) > 2 && c.ins[2] != nil {
		if t := c.ins[2].c; t == nil || t.float || len(t.i) != 1 || t.i[0] != 0 {
			return nil, fmt.Errorf("training_mode is not a constant false")
		}
	}
	return same(x), nil
}

func lowerCast(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	if to, _ := c.a.int("to", 0); to != int64(onnxpb.TensorProto_FLOAT) {
		return nil, fmt.Errorf("cast of an activation to %s", onnxpb.TensorProto_DataType(to))
	}
	return same(x), nil
}

func lowerAdd(c *call) (*lval, error) {
	if c.op == "Sum" && len(c.ins) == 1 {
		return lowerIdentity(c)
	}
	if len(c.ins) != 2 || c.ins[0] == nil || c.ins[1] == nil {
		return nil, fmt.Errorf("%s of %d inputs; build.Graph adds two", c.op, len(c.ins))
	}
	x, y := c.ins[0].d, c.ins[1].d
	if x != nil && y != nil {
		if c.op == "Sub" {
			return nil, fmt.Errorf("the difference of two activations has no build.Graph equivalent")
		}
		if x.rank != y.rank || x.shape != y.shape || (x.rank == 4 && x.nhwc != y.nhwc) {
			return nil, fmt.Errorf("adds a %v to a %v; build.Graph adds same-shape tensors only", x.onnxDims(), y.onnxDims())
		}
		return same(c.l.emit(c.node(build.Add, []*dval{x, y}, x.shape), x.rank, x.nhwc)), nil
	}
	k, sign := 1, float32(1)
	if x == nil {
		if c.op == "Sub" {
			return nil, fmt.Errorf("a constant minus an activation has no build.Graph equivalent")
		}
		x, k = y, 0
	} else if c.op == "Sub" {
		sign = -1
	}
	t, err := c.floats(k, "addend")
	if err != nil {
		return nil, err
	}
	v, err := perChannel(t, x)
	if err != nil {
		return nil, fmt.Errorf("%s of a constant: %v", c.op, err)
	}
	for i := range v {
		v[i] *= sign
	}
	n := c.node(kAddConst, []*dval{x}, x.shape)
	n.Params = []string{c.l.param(c.name, "bias", "", []int{x.shape.C}, v, true)}
	return same(c.l.emit(n, x.rank, x.nhwc)), nil
}

// perChannel reads a constant that broadcasts against x as one value per
// channel (a bias), returning one value per channel.
func perChannel(t *tensor, x *dval) ([]float32, error) {
	dims := t.dims
	for len(dims) > 0 && dims[0] == 1 && len(dims) > 1 {
		dims = dims[1:]
	}
	ok := false
	switch {
	case t.size() == 1:
		ok = len(t.dims) <= x.rank
	case x.rank == 2 || x.nhwc:
		ok = slices.Equal(dims, []int{x.shape.C}) && len(t.dims) <= x.rank
	default:
		ok = slices.Equal(dims, []int{x.shape.C, 1, 1}) && len(t.dims) <= 4
	}
	if !ok {
		return nil, fmt.Errorf("shape %v is not one value per channel of a %v activation", t.dims, x.onnxDims())
	}
	v := make([]float32, x.shape.C)
	for i := range v {
		v[i] = t.f[i%len(t.f)]
	}
	return v, nil
}

// poolWindow reads the square kernel of MaxPool and AveragePool.
func (c *call) poolWindow(x *dval) (kernel, stride, pad int, err error) {
	ks, err := c.a.ints("kernel_shape", nil)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(ks) != 2 || ks[0] != ks[1] || ks[0] < 1 || ks[0] > 1<<20 {
		return 0, 0, 0, fmt.Errorf("kernel_shape %v; build.Graph pools with square 2-D windows", ks)
	}
	kernel = int(ks[0])
	stride, pad, _, err = c.window(x, kernel, c.op == "MaxPool" && c.l.og.opset >= 10)
	if err != nil {
		return 0, 0, 0, err
	}
	if pad >= kernel {
		return 0, 0, 0, fmt.Errorf("padding %d is not smaller than the %dx%d window", pad, kernel, kernel)
	}
	if ceil, err := c.a.int("ceil_mode", 0); err != nil {
		return 0, 0, 0, err
	} else if ceil != 0 {
		for _, in := range []int{x.shape.H, x.shape.W} {
			span := in + 2*pad - kernel
			if span%stride != 0 {
				return 0, 0, 0, fmt.Errorf("ceil_mode=1 changes the output size here; build.Graph rounds down")
			}
		}
	}
	return kernel, stride, pad, nil
}

func lowerMaxPool(c *call) (*lval, error) {
	x, err := c.image(0)
	if err != nil {
		return nil, err
	}
	if len(c.np.GetOutput()) > 1 && c.np.GetOutput()[1] != "" && c.l.used[c.np.GetOutput()[1]] {
		return nil, fmt.Errorf("its Indices output is used")
	}
	kernel, stride, pad, err := c.poolWindow(x)
	if err != nil {
		return nil, err
	}
	shape := models.Shape{C: x.shape.C, H: outSize(x.shape.H, kernel, stride, pad, 1), W: outSize(x.shape.W, kernel, stride, pad, 1)}
	if kernel == 1 && pad == 0 {
		// A 1x1 max pool only picks pixels: the option-A subsample of
		// resnetctl's opset-9 export.
		if stride == 1 {
			return same(x), nil
		}
		n := c.node(kSubsample, []*dval{x}, shape)
		d := c.l.emit(n, 4, false)
		if !c.l.dry {
			c.l.sub[n] = [2]int{stride, stride}
		}
		return same(d), nil
	}
	n := c.node(build.MaxPool, []*dval{x}, shape)
	n.Pool = &build.PoolAttrs{Kernel: kernel, Stride: stride, Pad: pad}
	return same(c.l.emit(n, 4, false)), nil
}

func lowerAvgPool(c *call) (*lval, error) {
	x, err := c.image(0)
	if err != nil {
		return nil, err
	}
	kernel, stride, pad, err := c.poolWindow(x)
	if err != nil {
		return nil, err
	}
	if cip, err := c.a.int("count_include_pad", 0); err != nil {
		return nil, err
	} else if cip != 0 && pad > 0 {
		return nil, fmt.Errorf("count_include_pad=1 with padding; build.Graph's AvgPool does not count padding")
	}
	if pad == 0 && kernel == x.shape.H && kernel == x.shape.W {
		// One window over the whole map: a global average pool (PyTorch's
		// F.avg_pool2d(x, 8) on the last 8x8 map of a CIFAR ResNet).
		return same(c.l.emit(c.node(build.GlobalAvgPool, []*dval{x}, models.Shape{C: x.shape.C, H: 1, W: 1}), 4, false)), nil
	}
	n := c.node(build.AvgPool, []*dval{x}, models.Shape{C: x.shape.C, H: outSize(x.shape.H, kernel, stride, pad, 1), W: outSize(x.shape.W, kernel, stride, pad, 1)})
	n.Pool = &build.PoolAttrs{Kernel: kernel, Stride: stride, Pad: pad}
	return same(c.l.emit(n, 4, false)), nil
}

func lowerGAP(c *call) (*lval, error) {
	x, err := c.image(0)
	if err != nil {
		return nil, err
	}
	return same(c.l.emit(c.node(build.GlobalAvgPool, []*dval{x}, models.Shape{C: x.shape.C, H: 1, W: 1}), 4, false)), nil
}

// intsArg reads an integer list that opsets before since give as the
// attribute name and later ones as the constant input idx (ReduceMean's
// axes, Reshape's shape, ...): nil when absent, an error when required and
// absent or when the input is not an integer tensor.
func (c *call) intsArg(since int, name string, idx int, required bool) ([]int64, error) {
	if c.l.og.opset < since {
		v, err := c.a.ints(name, nil)
		if err == nil && v == nil && required {
			err = fmt.Errorf("missing %s", name)
		}
		return v, err
	}
	t, err := c.konst(idx, name)
	if err != nil {
		return nil, err
	}
	if t == nil {
		if required {
			return nil, fmt.Errorf("missing %s", name)
		}
		return nil, nil
	}
	v, ok := t.ints()
	if !ok {
		return nil, fmt.Errorf("%s is not an integer tensor", name)
	}
	return v, nil
}

func lowerReduceMean(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	axes, err := c.intsArg(18, "axes", 1, false)
	if err != nil {
		return nil, err
	}
	canon := map[int]bool{}
	for _, ax := range axes {
		k, err := x.canonAxis(ax)
		if err != nil {
			return nil, err
		}
		canon[k] = true
	}
	if x.rank != 4 || len(axes) != 2 || !canon[2] || !canon[3] {
		return nil, fmt.Errorf("ReduceMean over axes %v of a %v tensor; only the mean over height and width (a global average pool) is imported", axes, x.onnxDims())
	}
	keep, err := c.a.int("keepdims", 1)
	if err != nil {
		return nil, err
	}
	shape := models.Shape{C: x.shape.C, H: 1, W: 1}
	d := c.l.emit(c.node(build.GlobalAvgPool, []*dval{x}, shape), 4, x.nhwc)
	if keep != 0 {
		return same(d), nil
	}
	n := c.node(build.Flatten, []*dval{d}, shape)
	n.Name += ".flatten"
	return same(c.l.emit(n, 2, false)), nil
}

// flatten turns a (N, C, 1, 1) activation into (N, C).
func (c *call) flatten(x *dval, what string) (*lval, error) {
	if x.rank == 2 {
		return same(x), nil
	}
	if x.shape.H != 1 || x.shape.W != 1 {
		return nil, fmt.Errorf("%s of a %v map; build.Graph's Flatten takes (N, C, 1, 1) only", what, x.onnxDims())
	}
	return same(c.l.emit(c.node(build.Flatten, []*dval{x}, x.shape), 2, false)), nil
}

func lowerFlatten(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	ax, err := c.a.int("axis", 1)
	if err != nil {
		return nil, err
	}
	if ax < 0 {
		ax += int64(x.rank)
	}
	if ax != 1 {
		return nil, fmt.Errorf("Flatten with axis %d; only axis 1 keeps the batch", ax)
	}
	return c.flatten(x, "Flatten")
}

func lowerReshape(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	target, err := c.intsArg(5, "shape", 1, true)
	if err != nil {
		return nil, err
	}
	az, err := c.a.int("allowzero", 0)
	if err != nil {
		return nil, err
	}
	if len(target) < 1 {
		return nil, fmt.Errorf("Reshape to %v drops the batch dimension", target)
	}
	per := x.onnxDims()
	rest := append([]int64{}, target[1:]...)
	for k, v := range rest {
		if v == batchDim {
			return nil, fmt.Errorf("Reshape to %v moves the batch dimension", target)
		}
		if v == 0 && az == 0 && k >= len(per) {
			return nil, fmt.Errorf("Reshape to %v copies a dimension the input does not have", target)
		}
	}
	switch b := target[0]; {
	case b == batchDim, b == 0 && az == 0, b == -1 && !slices.Contains(rest, -1),
		b > 0 && b == c.l.fixedBatch:
	default:
		return nil, fmt.Errorf("Reshape to %v does not keep the batch dimension first", target)
	}
	dims, err := reshapeDims(per, rest, az != 0)
	if err != nil {
		return nil, err
	}
	switch {
	case slices.Equal(dims, per):
		return same(x), nil
	case len(dims) == 1 && dims[0] == x.shape.C:
		return c.flatten(x, "Reshape")
	}
	return nil, fmt.Errorf("Reshape of %v to %v per sample has no build.Graph equivalent", per, dims)
}

func lowerSqueeze(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	axes, err := c.intsArg(13, "axes", 1, false)
	if err != nil {
		return nil, err
	}
	if axes == nil && x.rank == 4 {
		axes = []int64{2, 3}
		if x.nhwc {
			axes = []int64{1, 2}
		}
	}
	canon := map[int]bool{}
	for _, ax := range axes {
		k, err := x.canonAxis(ax)
		if err != nil {
			return nil, err
		}
		canon[k] = true
	}
	if x.rank != 4 || len(axes) != 2 || !canon[2] || !canon[3] {
		return nil, fmt.Errorf("Squeeze of axes %v of a %v tensor; only squeezing a 1x1 map to (N, C) is imported", axes, x.onnxDims())
	}
	return c.flatten(x, "Squeeze")
}

func lowerGemm(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	if x.rank != 2 {
		return nil, fmt.Errorf("Gemm of a rank-%d tensor", x.rank)
	}
	if ta, err := c.a.int("transA", 0); err != nil || ta != 0 {
		return nil, fmt.Errorf("transA=%d", ta)
	}
	tb, err := c.a.int("transB", 0)
	if err != nil {
		return nil, err
	}
	alpha, err := c.a.float("alpha", 1)
	if err != nil {
		return nil, err
	}
	beta, err := c.a.float("beta", 1)
	if err != nil {
		return nil, err
	}
	w, err := c.floats(1, "weight")
	if err != nil {
		return nil, err
	}
	if w == nil || len(w.dims) != 2 {
		return nil, fmt.Errorf("weight must be a constant matrix")
	}
	wt, name := w, c.np.GetInput()[1]
	if tb == 0 {
		if wt, err = transpose2(w); err != nil {
			return nil, err
		}
		name = ""
	}
	if wt.dims[1] != x.shape.C {
		return nil, fmt.Errorf("weight %v does not take %d inputs", w.dims, x.shape.C)
	}
	out := wt.dims[0]
	if alpha != 1 {
		scaled := make([]float32, len(wt.f))
		for i, v := range wt.f {
			scaled[i] = v * alpha
		}
		wt, name = &tensor{dims: wt.dims, float: true, f: scaled}, ""
	}
	bias := make([]float32, out)
	biasName := ""
	if b, err := c.floats(2, "bias"); err != nil {
		return nil, err
	} else if b != nil {
		v, err := perChannel(b, &dval{shape: models.Shape{C: out, H: 1, W: 1}, rank: 2})
		if err != nil {
			return nil, fmt.Errorf("bias: %v", err)
		}
		for i := range bias {
			bias[i] = v[i] * beta
		}
		if beta == 1 && slices.Equal(b.dims, []int{out}) {
			biasName = c.np.GetInput()[2]
		}
	}
	return c.dense(x, wt, name, bias, biasName)
}

func (c *call) dense(x *dval, w *tensor, wName string, bias []float32, bName string) (*lval, error) {
	out := w.dims[0]
	n := c.node(build.Dense, []*dval{x}, models.Shape{C: out, H: 1, W: 1})
	n.Params = []string{
		c.l.param(c.name, "weight", wName, w.dims, w.f, true),
		c.l.param(c.name, "bias", bName, []int{out}, bias, true),
	}
	return same(c.l.emit(n, 2, false)), nil
}

func transpose2(w *tensor) (*tensor, error) {
	r, k := w.dims[0], w.dims[1]
	t := &tensor{dims: []int{k, r}, float: true, f: make([]float32, len(w.f))}
	for i := range r {
		for j := range k {
			t.f[j*r+i] = w.f[i*k+j]
		}
	}
	return t, nil
}

func lowerMatMul(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	if x.rank != 2 {
		return nil, fmt.Errorf("MatMul of a %v tensor; only (N, C) matrices times a constant matrix become a dense layer", x.onnxDims())
	}
	w, err := c.floats(1, "weight")
	if err != nil {
		return nil, err
	}
	if w == nil || len(w.dims) != 2 || w.dims[0] != x.shape.C {
		return nil, fmt.Errorf("weight is not a constant (%d, outputs) matrix", x.shape.C)
	}
	wt, err := transpose2(w)
	if err != nil {
		return nil, err
	}
	return c.dense(x, wt, "", make([]float32, wt.dims[0]), "")
}

func lowerSoftmax(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	def := int64(1)
	if c.l.og.opset >= 13 {
		def = -1
	}
	ax, err := c.a.int("axis", def)
	if err != nil {
		return nil, err
	}
	if x.rank != 2 || (ax != 1 && ax != -1) {
		return nil, fmt.Errorf("Softmax over axis %d of a %v tensor; build.Graph's Softmax is over the classes of (N, C) scores", ax, x.onnxDims())
	}
	return same(c.l.emit(c.node(build.Softmax, []*dval{x}, x.shape), 2, false)), nil
}

func lowerTranspose(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	perm, err := c.a.ints("perm", nil)
	if err != nil {
		return nil, err
	}
	id := []int64{0, 1}
	if x.rank == 4 {
		id = []int64{0, 1, 2, 3}
	}
	switch {
	case perm == nil && x.rank == 2:
		return nil, fmt.Errorf("Transpose of (N, C) scores")
	case slices.Equal(perm, id):
		return same(x), nil
	case x.rank == 4 && !x.nhwc && slices.Equal(perm, []int64{0, 2, 3, 1}):
		d := *x
		d.nhwc = true
		return same(&d), nil
	case x.rank == 4 && x.nhwc && slices.Equal(perm, []int64{0, 3, 1, 2}):
		d := *x
		d.nhwc = false
		return same(&d), nil
	}
	return nil, fmt.Errorf("Transpose %v of a %v tensor; only NCHW↔NHWC layout changes are imported", perm, x.onnxDims())
}

func lowerSlice(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	cs := make([]*tensor, len(c.ins))
	for k := 1; k < len(c.ins); k++ {
		if cs[k], err = c.konst(k, "a Slice parameter"); err != nil {
			return nil, err
		}
	}
	starts, ends, axes, steps, err := sliceParams(c.a, cs, c.l.og.opset)
	if err != nil {
		return nil, err
	}
	if x.rank != 4 {
		return nil, fmt.Errorf("Slice of a rank-%d tensor", x.rank)
	}
	dims := []int{0, x.shape.C, x.shape.H, x.shape.W}
	stride := [4]int{1, 1, 1, 1}
	for k := range starts {
		ax, err := x.canonAxis(axes[k])
		if err != nil {
			return nil, err
		}
		dim := dims[ax]
		if ax == 0 {
			dim = math.MaxInt32 // the batch: must be kept whole
		}
		first, count, err := sliceRange(starts[k], ends[k], steps[k], dim)
		if err != nil {
			return nil, err
		}
		step := steps[k]
		whole := first == 0 && step >= 1 && step <= math.MaxInt32 && count == (dim+int(step)-1)/int(step)
		if !whole || (ax < 2 && step != 1) {
			return nil, fmt.Errorf("Slice [%d:%d:%d] of axis %d; only keeping every s-th row/column of the whole map (x[:, :, ::s, ::s]) is imported", starts[k], ends[k], steps[k], axes[k])
		}
		stride[ax] *= int(step)
	}
	if stride[2] == 1 && stride[3] == 1 {
		return same(x), nil
	}
	shape := models.Shape{C: x.shape.C, H: (x.shape.H + stride[2] - 1) / stride[2], W: (x.shape.W + stride[3] - 1) / stride[3]}
	n := c.node(kSubsample, []*dval{x}, shape)
	d := c.l.emit(n, 4, x.nhwc)
	if !c.l.dry {
		c.l.sub[n] = [2]int{stride[2], stride[3]}
	}
	return same(d), nil
}

func lowerPad(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	mode, err := c.a.str("mode", "constant")
	if err != nil {
		return nil, err
	}
	if mode != "constant" {
		return nil, fmt.Errorf("mode %q; only zero padding is imported", mode)
	}
	var pads []int64
	value := float32(0)
	if c.l.og.opset < 11 {
		if pads, err = c.a.ints("pads", nil); err != nil {
			return nil, err
		}
		if value, err = c.a.float("value", 0); err != nil {
			return nil, err
		}
	} else {
		t, err := c.konst(1, "pads")
		if err != nil {
			return nil, err
		}
		if t == nil {
			return nil, fmt.Errorf("missing pads")
		}
		pads, _ = t.ints()
		if v, err := c.konst(2, "constant_value"); err != nil {
			return nil, err
		} else if v != nil {
			if !v.float || v.size() != 1 {
				return nil, fmt.Errorf("constant_value is not a float scalar")
			}
			value = v.f[0]
		}
		if ax, err := c.konst(3, "axes"); err != nil {
			return nil, err
		} else if ax != nil {
			axes, _ := ax.ints()
			if len(pads) != 2*len(axes) {
				return nil, fmt.Errorf("%d pads for %d axes", len(pads), len(axes))
			}
			full := make([]int64, 2*x.rank)
			for k, a := range axes {
				ak, err := normAxis(a, x.rank)
				if err != nil {
					return nil, err
				}
				full[ak], full[ak+x.rank] = pads[k], pads[k+len(axes)]
			}
			pads = full
		}
	}
	if value != 0 {
		return nil, fmt.Errorf("padding with %g; only zero padding is imported", value)
	}
	if len(pads) != 2*x.rank || x.rank != 4 {
		return nil, fmt.Errorf("pads %v for a rank-%d tensor", pads, x.rank)
	}
	var begin, end [4]int64
	for k := range 4 {
		ax, _ := x.canonAxis(int64(k))
		begin[ax], end[ax] = pads[k], pads[k+4]
		if pads[k] < 0 || pads[k+4] < 0 || pads[k] > 1<<20 || pads[k+4] > 1<<20 {
			return nil, fmt.Errorf("pads %v; cropping is not imported", pads)
		}
	}
	channels := begin[1] != 0 || end[1] != 0
	spatial := begin[2] != 0 || end[2] != 0 || begin[3] != 0 || end[3] != 0
	switch {
	case begin[0] != 0 || end[0] != 0:
		return nil, fmt.Errorf("pads %v pad the batch", pads)
	case channels && spatial:
		return nil, fmt.Errorf("pads %v pad channels and height/width at once", pads)
	case channels:
		shape := x.shape
		shape.C += int(begin[1] + end[1])
		n := c.node(build.ChannelPad, []*dval{x}, shape)
		n.Pad = &build.PadAttrs{Stride: 1, Before: int(begin[1]), After: int(end[1])}
		return same(c.l.emit(n, 4, x.nhwc)), nil
	case spatial:
		p := begin[2]
		if begin[3] != p || end[2] != p || end[3] != p {
			return nil, fmt.Errorf("pads %v pad height and width unevenly; build.Graph's convolutions pad every side alike", pads)
		}
		shape := x.shape
		shape.H += 2 * int(p)
		shape.W += 2 * int(p)
		n := c.node(kSpatialPad, []*dval{x}, shape)
		d := c.l.emit(n, 4, x.nhwc)
		if !c.l.dry {
			c.l.spad[n] = int(p)
		}
		return same(d), nil
	}
	return same(x), nil
}

func lowerShape(c *call) (*lval, error) {
	x, err := c.data(0)
	if err != nil {
		return nil, err
	}
	v := []int64{batchDim}
	for _, d := range x.onnxDims() {
		v = append(v, int64(d))
	}
	start, err := c.a.int("start", 0)
	if err != nil {
		return nil, err
	}
	end, err := c.a.int("end", int64(len(v)))
	if err != nil {
		return nil, err
	}
	first, count, err := sliceRange(start, end, 1, len(v))
	if err != nil {
		return nil, err
	}
	v = v[first : int(first)+count]
	return &lval{c: &tensor{dims: []int{len(v)}, i: v}}, nil
}
