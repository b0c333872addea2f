// Package quantize turns a float32 ONNX model into the standard QDQ int8
// form by static post-training quantization: BatchNormalization folded
// into the convolution before it, weights of Conv, Gemm and MatMul as
// int8 (symmetric, per output channel), the activations between them as
// uint8 (or int8) with ranges calibrated on sample inputs, biases as int32
// at the scale of input × weight. Each quantized tensor t becomes
// QuantizeLinear → DequantizeLinear around the float ops, which is what
// ONNX Runtime's quantizer writes and what int8 runtimes (ONNX Runtime,
// TensorRT, OpenVINO, ours) recognise and run with integer kernels.
//
// Use: Prepare the model, run its CalibrationModel on sample inputs
// feeding every output named in Activations to a Stats, then Quantize.
package quantize

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// ErrNothing is returned for a model with no Conv, Gemm or MatMul whose
// weights are constants: there is nothing to quantize.
var ErrNothing = errors.New("nothing to quantize")

// Options are the choices of Quantize.
type Options struct {
	// Method is the calibration method (MinMax, Percentile, Entropy);
	// "" is Percentile, which measured best (README: Quantization).
	Method string
	// Percentile of |x| for the Percentile method (default 99.99).
	Percentile float64
	// PerTensor gives each weight one scale instead of one per output
	// channel.
	PerTensor bool
	// SignedActivations quantizes activations to int8 instead of uint8.
	SignedActivations bool
	// Calibration describes the calibration data, recorded in the
	// model's metadata (e.g. {"data": "cifar10", "images": 500}).
	Calibration map[string]any
	// Metadata are metadata_props to add where the model has none under
	// that key (e.g. the preprocessing the calibration used, for a file
	// that did not say).
	Metadata map[string]string
}

// MetaKey is the metadata_props key Quantize records its choices under (a
// JSON object).
const MetaKey = "quantization"

// Model is a float model being quantized: BatchNormalization folded, and
// the tensors to quantize chosen.
type Model struct {
	mp      *onnxpb.ModelProto
	g       *onnxpb.GraphProto
	inits   map[string]*onnxpb.TensorProto
	opset   int
	weights []weightUse
	acts    []string
}

// weightUse is a node whose constant weight (input 1) is quantized.
type weightUse struct {
	node *onnxpb.NodeProto
	axis int // the output-channel axis of the weight; -1: per tensor only
}

// Prepare decodes a float ONNX model, folds each BatchNormalization into
// the convolution before it, and chooses the tensors to quantize.
func Prepare(model []byte) (*Model, error) {
	mp, err := onnxmodel.Decode(model)
	if err != nil {
		return nil, err
	}
	g := mp.GetGraph()
	if g == nil {
		return nil, errors.New("the model has no graph")
	}
	m := &Model{mp: mp, g: g, inits: map[string]*onnxpb.TensorProto{}}
	for _, o := range mp.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			m.opset = int(o.GetVersion())
		}
	}
	if m.opset == 0 {
		return nil, errors.New("the model imports no ai.onnx opset")
	}
	for _, n := range g.GetNode() {
		switch n.GetOpType() {
		case "QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear":
			return nil, fmt.Errorf("node %q is a %s: the model is already quantized", n.GetName(), n.GetOpType())
		}
		if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
			return nil, fmt.Errorf("node %q is %s of domain %q: quantize reads ai.onnx models only", n.GetName(), n.GetOpType(), n.GetDomain())
		}
	}
	m.constantsToInitializers()
	for _, t := range g.GetInitializer() {
		m.inits[t.GetName()] = t
	}
	if err := m.foldBatchNorms(); err != nil {
		return nil, err
	}
	m.choose()
	if len(m.weights) == 0 {
		return nil, fmt.Errorf("%w: the model has no Conv, Gemm or MatMul with constant float weights", ErrNothing)
	}
	return m, nil
}

// constantsToInitializers turns Constant nodes holding a tensor into
// initializers, so that weights given either way are found.
func (m *Model) constantsToInitializers() {
	var keep []*onnxpb.NodeProto
	for _, n := range m.g.GetNode() {
		if n.GetOpType() == "Constant" && len(n.GetOutput()) == 1 && len(n.GetAttribute()) == 1 && n.GetAttribute()[0].GetName() == "value" && n.GetAttribute()[0].GetT() != nil {
			t := proto.Clone(n.GetAttribute()[0].GetT()).(*onnxpb.TensorProto)
			t.Name = n.GetOutput()[0]
			m.g.Initializer = append(m.g.Initializer, t)
			continue
		}
		keep = append(keep, n)
	}
	m.g.Node = keep
}

// floats decodes a float32 initializer, or returns nil.
func (m *Model) floats(name string) ([]float32, []int) {
	t := m.inits[name]
	if t == nil || t.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil, nil
	}
	d, err := onnxmodel.DecodeTensor(t, nil)
	if err != nil {
		return nil, nil
	}
	f, ok := d.Floats()
	if !ok {
		return nil, nil
	}
	return f, d.Dims
}

// uses counts the nodes reading each tensor, and marks graph outputs.
func (m *Model) uses() (count map[string]int, output map[string]bool) {
	count, output = map[string]int{}, map[string]bool{}
	for _, n := range m.g.GetNode() {
		for _, in := range n.GetInput() {
			count[in]++
		}
	}
	for _, o := range m.g.GetOutput() {
		output[o.GetName()] = true
	}
	return count, output
}

// foldBatchNorms folds each BatchNormalization reading a Conv's output
// (that nothing else reads) into the Conv's weight and bias.
func (m *Model) foldBatchNorms() error {
	count, output := m.uses()
	producer := map[string]*onnxpb.NodeProto{}
	for _, n := range m.g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
	}
	removed := map[*onnxpb.NodeProto]bool{}
	for _, bn := range m.g.GetNode() {
		if bn.GetOpType() != "BatchNormalization" || len(bn.GetInput()) != 5 || len(bn.GetOutput()) < 1 {
			continue
		}
		x := bn.GetInput()[0]
		conv := producer[x]
		if conv == nil || conv.GetOpType() != "Conv" || count[x] != 1 || output[x] || len(conv.GetInput()) < 2 {
			continue
		}
		if intAttrOf(bn, "training_mode", 0) != 0 {
			continue
		}
		w, wd := m.floats(conv.GetInput()[1])
		gamma, _ := m.floats(bn.GetInput()[1])
		beta, _ := m.floats(bn.GetInput()[2])
		mean, _ := m.floats(bn.GetInput()[3])
		variance, _ := m.floats(bn.GetInput()[4])
		if w == nil || gamma == nil || beta == nil || mean == nil || variance == nil || len(wd) < 1 {
			continue
		}
		oc := wd[0]
		if len(gamma) != oc || len(beta) != oc || len(mean) != oc || len(variance) != oc {
			return fmt.Errorf("node %q: BatchNormalization of %d channels after a Conv of %d", bn.GetName(), len(gamma), oc)
		}
		var bias []float32
		if len(conv.GetInput()) > 2 && conv.GetInput()[2] != "" {
			if bias, _ = m.floats(conv.GetInput()[2]); bias == nil || len(bias) != oc {
				continue
			}
		}
		eps := float32(1e-5)
		for _, a := range bn.GetAttribute() {
			if a.GetName() == "epsilon" {
				eps = a.GetF()
			}
		}
		wf, bf := onnxmodel.FoldConvBN(w, bias, gamma, beta, mean, variance, eps)
		wName := m.unique(conv.GetInput()[1] + "_bnfolded")
		bName := m.unique(bn.GetOutput()[0] + "_bias")
		m.addInit(floatTensor(wName, wd, wf))
		m.addInit(floatTensor(bName, []int{oc}, bf))
		in := slices.Clone(conv.GetInput())
		in[1] = wName
		if len(in) > 2 {
			in[2] = bName
		} else {
			in = append(in, bName)
		}
		conv.Input = in
		conv.Output = []string{bn.GetOutput()[0]}
		removed[bn] = true
	}
	m.g.Node = slices.DeleteFunc(m.g.Node, func(n *onnxpb.NodeProto) bool { return removed[n] })
	m.dropUnused()
	return nil
}

// dropUnused removes initializers that no node reads any more.
func (m *Model) dropUnused() {
	count, output := m.uses()
	m.g.Initializer = slices.DeleteFunc(m.g.Initializer, func(t *onnxpb.TensorProto) bool {
		if count[t.GetName()] == 0 && !output[t.GetName()] {
			delete(m.inits, t.GetName())
			return true
		}
		return false
	})
	// Graph inputs that were initializers (IR < 4 style) stay: harmless.
}

func (m *Model) addInit(t *onnxpb.TensorProto) {
	m.g.Initializer = append(m.g.Initializer, t)
	m.inits[t.GetName()] = t
}

// unique returns name, or name with a numeric suffix, not yet used by a
// tensor of the graph.
func (m *Model) unique(name string) string {
	used := func(s string) bool {
		if m.inits[s] != nil {
			return true
		}
		for _, n := range m.g.GetNode() {
			if slices.Contains(n.GetOutput(), s) || slices.Contains(n.GetInput(), s) {
				return true
			}
		}
		for _, v := range m.g.GetInput() {
			if v.GetName() == s {
				return true
			}
		}
		return false
	}
	if !used(name) {
		return name
	}
	for i := 1; ; i++ {
		if s := fmt.Sprintf("%s_%d", name, i); !used(s) {
			return s
		}
	}
}

// choose picks the weights and activations to quantize: the constant
// weight of each Conv, Gemm and MatMul; their activation inputs; the
// inputs and outputs of Add; the outputs of Conv, Gemm and pooling — a
// Relu reading such an output alone is quantized after instead (a uint8
// range from 0 is the ReLU). Graph outputs stay float.
func (m *Model) choose() {
	count, output := m.uses()
	consumers := map[string][]*onnxpb.NodeProto{}
	for _, n := range m.g.GetNode() {
		for _, in := range n.GetInput() {
			consumers[in] = append(consumers[in], n)
		}
	}
	seen := map[string]bool{}
	add := func(t string) {
		if t == "" || seen[t] || output[t] || m.inits[t] != nil {
			return
		}
		seen[t] = true
		m.acts = append(m.acts, t)
	}
	addOut := func(t string) {
		if c := consumers[t]; count[t] == 1 && len(c) == 1 && c[0].GetOpType() == "Relu" {
			t = c[0].GetOutput()[0]
		}
		add(t)
	}
	for _, n := range m.g.GetNode() {
		in := n.GetInput()
		switch n.GetOpType() {
		case "Conv", "Gemm", "MatMul":
			if len(in) < 2 {
				continue
			}
			w, wd := m.floats(in[1])
			if w == nil {
				continue
			}
			axis := -1
			switch n.GetOpType() {
			case "Conv":
				axis = 0
			case "Gemm":
				axis = 1
				if intAttrOf(n, "transB", 0) != 0 {
					axis = 0
				}
			case "MatMul":
				if len(wd) == 2 {
					axis = 1
				}
			}
			m.weights = append(m.weights, weightUse{node: n, axis: axis})
			add(in[0])
			addOut(n.GetOutput()[0])
		case "Add":
			for _, t := range in {
				add(t)
			}
			addOut(n.GetOutput()[0])
		case "GlobalAveragePool", "AveragePool", "MaxPool":
			if seen[in[0]] {
				addOut(n.GetOutput()[0])
			}
		}
	}
}

func intAttrOf(n *onnxpb.NodeProto, name string, def int64) int64 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetI()
		}
	}
	return def
}

// Activations lists the activation tensors to calibrate, in graph order.
func (m *Model) Activations() []string { return slices.Clone(m.acts) }

// Inputs lists the graph inputs the calibration model needs fed (not the
// initializers some files also list as inputs).
func (m *Model) Inputs() []string {
	var out []string
	for _, v := range m.g.GetInput() {
		if m.inits[v.GetName()] == nil {
			out = append(out, v.GetName())
		}
	}
	return out
}

// CalibrationModel returns the folded float model with every activation
// as an extra graph output, for the calibration runs.
func (m *Model) CalibrationModel() ([]byte, error) {
	mp := proto.Clone(m.mp).(*onnxpb.ModelProto)
	have := map[string]bool{}
	for _, o := range mp.GetGraph().GetOutput() {
		have[o.GetName()] = true
	}
	for _, t := range m.acts {
		if !have[t] {
			mp.Graph.Output = append(mp.Graph.Output, &onnxpb.ValueInfoProto{Name: t})
		}
	}
	return proto.Marshal(mp)
}

// Report says what Quantize did.
type Report struct {
	Weights     int            // weight tensors quantized
	Activations int            // activation tensors quantized
	Biases      int            // biases quantized to int32
	Ops         map[string]int // quantized nodes by op type
}

// qparams is an activation's quantization: scale and zero point.
type qparams struct {
	scale float32
	zp    int32
}

// actParams turns a range into a scale and zero point for the activation
// type: asymmetric, 0 exactly representable.
func actParams(lo, hi float64, signed bool) qparams {
	qmin, qmax := 0.0, 255.0
	if signed {
		qmin, qmax = -128, 127
	}
	lo, hi = min(lo, 0), max(hi, 0)
	if hi-lo == 0 {
		return qparams{scale: 1, zp: int32(qmin)}
	}
	s := (hi - lo) / (qmax - qmin)
	zp := math.RoundToEven(qmin - lo/s)
	zp = min(max(zp, qmin), qmax)
	return qparams{scale: float32(s), zp: int32(zp)}
}

// Quantize writes the QDQ model: stats holds each activation's
// statistics (from CalibrationModel runs).
func (m *Model) Quantize(stats map[string]*Stats, opts Options) ([]byte, Report, error) {
	rep := Report{Ops: map[string]int{}}
	if opts.Method == "" {
		opts.Method = Percentile
	}
	if !slices.Contains(Methods, opts.Method) {
		return nil, rep, fmt.Errorf("unknown calibration method %q (want %s, %s or %s)", opts.Method, MinMax, Percentile, Entropy)
	}
	if opts.Percentile == 0 {
		opts.Percentile = 99.99
	}
	if !(opts.Percentile > 0 && opts.Percentile <= 100) {
		return nil, rep, fmt.Errorf("percentile %g is not in (0, 100]", opts.Percentile)
	}
	if !opts.PerTensor && m.opset < 13 {
		return nil, rep, fmt.Errorf("the model's opset is %d: per-channel weights need DequantizeLinear's axis (opset 13); quantize per tensor instead", m.opset)
	}
	actType := onnxpb.TensorProto_UINT8
	if opts.SignedActivations {
		actType = onnxpb.TensorProto_INT8
	}
	params := map[string]qparams{}
	for _, t := range m.acts {
		s := stats[t]
		if s == nil || s.Count == 0 {
			return nil, rep, fmt.Errorf("tensor %q: no calibration values", t)
		}
		lo, hi, err := s.Range(opts.Method, opts.Percentile)
		if err != nil {
			return nil, rep, fmt.Errorf("tensor %q: %w", t, err)
		}
		params[t] = actParams(lo, hi, opts.SignedActivations)
	}
	// Work on a copy: m stays usable (e.g. to try another method).
	work := &Model{mp: proto.Clone(m.mp).(*onnxpb.ModelProto), opset: m.opset, inits: map[string]*onnxpb.TensorProto{}}
	work.g = work.mp.GetGraph()
	for _, t := range work.g.GetInitializer() {
		work.inits[t.GetName()] = t
	}
	nodeAt := map[string]int{} // a node's first output → its index in m
	for i, n := range m.g.GetNode() {
		if len(n.GetOutput()) > 0 {
			nodeAt[n.GetOutput()[0]] = i
		}
	}
	var pre []*onnxpb.NodeProto            // QDQ of graph inputs, first
	after := map[int][]*onnxpb.NodeProto{} // QDQ nodes to emit after node i
	producerOf := map[string]int{}
	for i, n := range work.g.GetNode() {
		for _, o := range n.GetOutput() {
			producerOf[o] = i
		}
	}
	// Activations: t → Q → DQ, consumers read the DQ output.
	renamed := map[string]string{}
	for _, t := range m.acts {
		p := params[t]
		base := sanitize(t)
		scale, zp := work.unique(base+"_scale"), work.unique(base+"_zero_point")
		work.addInit(scalarFloat(scale, p.scale))
		work.addInit(scalarInt(zp, actType, p.zp))
		qo, dqo := work.unique(base+"_quantized"), work.unique(base+"_dequantized")
		nodes := []*onnxpb.NodeProto{
			{OpType: "QuantizeLinear", Name: work.unique(base + "_QuantizeLinear"), Input: []string{t, scale, zp}, Output: []string{qo}},
			{OpType: "DequantizeLinear", Name: work.unique(base + "_DequantizeLinear"), Input: []string{qo, scale, zp}, Output: []string{dqo}},
		}
		if i, ok := producerOf[t]; ok {
			after[i] = append(after[i], nodes...)
		} else {
			pre = append(pre, nodes...)
		}
		renamed[t] = dqo
		rep.Activations++
	}
	for _, n := range work.g.GetNode() {
		for j, in := range n.GetInput() {
			if r, ok := renamed[in]; ok {
				n.Input[j] = r
			}
		}
	}
	// Weights and biases.
	for _, wu := range m.weights {
		i := nodeAt[wu.node.GetOutput()[0]]
		n := work.g.GetNode()[i]
		x := wu.node.GetInput()[0] // the activation input, as m names it
		wq, err := work.quantizeWeight(n, wu.axis, opts.PerTensor)
		if err != nil {
			return nil, rep, err
		}
		pre = append(pre, wq.dq) // reads initializers only: first

		rep.Weights++
		rep.Ops[n.GetOpType()]++
		// Bias: int32 at scale x_scale*w_scale, when the input is quantized.
		if px, ok := params[x]; ok && len(n.GetInput()) > 2 && n.GetInput()[2] != "" {
			if dq := work.quantizeBias(n, px.scale, wq); dq != nil {
				pre = append(pre, dq)
				rep.Biases++
			}
		}
	}
	var nodes []*onnxpb.NodeProto
	nodes = append(nodes, pre...)
	for i, n := range work.g.GetNode() {
		nodes = append(nodes, n)
		nodes = append(nodes, after[i]...)
	}
	work.g.Node = nodes
	work.dropUnused()
	if err := work.recordMetadata(opts); err != nil {
		return nil, rep, err
	}
	b, err := proto.Marshal(work.mp)
	return b, rep, err
}

// quantizedWeight is a weight's int8 form.
type quantizedWeight struct {
	scales []float32 // per channel along axis, or one
	axis   int
	dq     *onnxpb.NodeProto
}

// quantizeWeight replaces node n's weight (input 1) by DequantizeLinear
// of its int8 form: symmetric, scale max|w|/127 per output channel (or
// for the whole tensor), zero point 0, values in [-127, 127].
func (m *Model) quantizeWeight(n *onnxpb.NodeProto, axis int, perTensor bool) (*quantizedWeight, error) {
	name := n.GetInput()[1]
	w, dims := m.floats(name)
	if w == nil {
		return nil, fmt.Errorf("node %q: weight %q is not a float32 constant", n.GetName(), name)
	}
	for _, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("node %q: weight %q holds %g", n.GetName(), name, v)
		}
	}
	if perTensor || axis < 0 || axis >= len(dims) {
		axis = -1
	}
	nc, inner := 1, len(w)
	if axis >= 0 {
		nc = dims[axis]
		inner = 1
		for _, d := range dims[axis+1:] {
			inner *= d
		}
	}
	scales := make([]float32, nc)
	for c := range scales {
		top := 0.0
		for blk := 0; blk*inner < len(w); blk++ {
			if blk%nc != c && axis >= 0 {
				continue
			}
			for _, v := range w[blk*inner : (blk+1)*inner] {
				top = max(top, math.Abs(float64(v)))
			}
		}
		scales[c] = float32(top / 127)
		if scales[c] == 0 {
			scales[c] = 1 // an all-zero channel: any scale is exact
		}
	}
	q := make([]byte, len(w))
	for i, v := range w {
		c := 0
		if axis >= 0 {
			c = (i / inner) % nc
		}
		r := math.RoundToEven(float64(v) / float64(scales[c]))
		q[i] = byte(int8(min(max(r, -127), 127)))
	}
	base := sanitize(name)
	qn, sn, zn, dqo := m.unique(base+"_quantized"), m.unique(base+"_scale"), m.unique(base+"_zero_point"), m.unique(base+"_dequantized")
	qt := &onnxpb.TensorProto{Name: qn, DataType: int32(onnxpb.TensorProto_INT8), RawData: q}
	for _, d := range dims {
		qt.Dims = append(qt.Dims, int64(d))
	}
	m.addInit(qt)
	zeros := make([]byte, nc)
	if axis >= 0 {
		m.addInit(floatTensor(sn, []int{nc}, scales))
		m.addInit(&onnxpb.TensorProto{Name: zn, DataType: int32(onnxpb.TensorProto_INT8), Dims: []int64{int64(nc)}, RawData: zeros})
	} else {
		m.addInit(scalarFloat(sn, scales[0]))
		m.addInit(scalarInt(zn, onnxpb.TensorProto_INT8, 0))
	}
	dq := &onnxpb.NodeProto{OpType: "DequantizeLinear", Name: m.unique(base + "_DequantizeLinear"), Input: []string{qn, sn, zn}, Output: []string{dqo}}
	if axis >= 0 {
		dq.Attribute = []*onnxpb.AttributeProto{{Name: "axis", Type: onnxpb.AttributeProto_INT, I: int64(axis)}}
	}
	n.Input[1] = dqo
	return &quantizedWeight{scales: scales, axis: axis, dq: dq}, nil
}

// quantizeBias replaces node n's 1-D bias (input 2) by DequantizeLinear of
// int32 values at scale xs*ws[c], as QLinearConv takes it; nil when the
// bias is not a 1-D constant matching the weight's channels or does not
// fit in int32 (it then stays float).
func (m *Model) quantizeBias(n *onnxpb.NodeProto, xs float32, wq *quantizedWeight) *onnxpb.NodeProto {
	name := n.GetInput()[2]
	b, dims := m.floats(name)
	if b == nil || len(dims) != 1 || wq.axis >= 0 && len(b) != len(wq.scales) {
		return nil
	}
	scales := make([]float32, len(b))
	raw := make([]byte, 4*len(b))
	for i, v := range b {
		scales[i] = xs * wq.scales[min(i, len(wq.scales)-1)]
		r := math.RoundToEven(float64(v) / float64(scales[i]))
		if math.IsNaN(r) || math.Abs(r) > math.MaxInt32-1 {
			return nil
		}
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(int32(r)))
	}
	base := sanitize(name)
	qn, sn, zn, dqo := m.unique(base+"_quantized"), m.unique(base+"_scale"), m.unique(base+"_zero_point"), m.unique(base+"_dequantized")
	m.addInit(&onnxpb.TensorProto{Name: qn, DataType: int32(onnxpb.TensorProto_INT32), Dims: []int64{int64(len(b))}, RawData: raw})
	m.addInit(floatTensor(sn, []int{len(b)}, scales))
	m.addInit(&onnxpb.TensorProto{Name: zn, DataType: int32(onnxpb.TensorProto_INT32), Dims: []int64{int64(len(b))}, RawData: make([]byte, 4*len(b))})
	n.Input[2] = dqo
	return &onnxpb.NodeProto{OpType: "DequantizeLinear", Name: m.unique(base + "_DequantizeLinear"), Input: []string{qn, sn, zn}, Output: []string{dqo},
		Attribute: []*onnxpb.AttributeProto{{Name: "axis", Type: onnxpb.AttributeProto_INT, I: 0}}}
}

// recordMetadata adds the quantization record to metadata_props (and
// marks BatchNormalization as folded where the exporter said it was not).
func (m *Model) recordMetadata(opts Options) error {
	rec := map[string]any{
		"tool":        "resnetctl quantize",
		"format":      "QDQ",
		"method":      opts.Method,
		"weights":     "int8 symmetric " + map[bool]string{true: "per tensor", false: "per channel"}[opts.PerTensor],
		"activations": map[bool]string{true: "int8", false: "uint8"}[opts.SignedActivations] + " asymmetric per tensor",
		"bias":        "int32 at input scale x weight scale",
	}
	if opts.Method == Percentile {
		rec["percentile"] = opts.Percentile
	}
	if opts.Calibration != nil {
		rec["calibration"] = opts.Calibration
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	props := map[string]string{}
	for _, p := range m.mp.GetMetadataProps() {
		props[p.GetKey()] = p.GetValue()
	}
	props[MetaKey] = string(b)
	for k, v := range opts.Metadata {
		if _, ok := props[k]; !ok {
			props[k] = v
		}
	}
	if _, ok := props["folded_batchnorm"]; ok {
		props["folded_batchnorm"] = "true"
	}
	keys := slices.Collect(maps.Keys(props))
	sort.Strings(keys)
	m.mp.MetadataProps = nil
	for _, k := range keys {
		m.mp.MetadataProps = append(m.mp.MetadataProps, &onnxpb.StringStringEntryProto{Key: k, Value: props[k]})
	}
	return nil
}

// sanitize makes a tensor name usable as a prefix of new names.
func sanitize(s string) string {
	if s == "" {
		return "t"
	}
	return s
}

// floatTensor makes a float32 initializer with raw little-endian data.
var floatTensor = onnxmodel.FloatTensor

func scalarFloat(name string, v float32) *onnxpb.TensorProto {
	return floatTensor(name, nil, []float32{v})
}

func scalarInt(name string, dt onnxpb.TensorProto_DataType, v int32) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: name, DataType: int32(dt), RawData: []byte{byte(v)}}
}
