package infer

import (
	"fmt"
	"slices"
	"strings"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// opVersion is one version of an ONNX op: the opset that introduced it and
// the constructor that checks a node's attributes and input types at load
// time and returns the op, ready to be planned for concrete shapes.
type opVersion struct {
	since int
	build func(b *nodeBuilder) op
}

// v lists the versions of an op that all share one constructor, which
// reads b.since where versions differ.
func v(build func(b *nodeBuilder) op, since ...int) []opVersion {
	out := make([]opVersion, len(since))
	for i, s := range since {
		out[i] = opVersion{since: s, build: build}
	}
	return out
}

// opRegistry maps an ai.onnx op type to its versions, oldest first. A node
// uses the newest version whose since is at most the model's opset, as
// ONNX defines. The numbers are the opsets in which the ONNX changelog
// records a new version of the op.
var opRegistry = map[string][]opVersion{
	"Conv":                  v(newConv, 1, 11),
	"BatchNormalization":    v(newBatchNorm, 7, 9, 14, 15),
	"Relu":                  v(newRelu, 6, 13, 14),
	"Clip":                  v(newClip, 6, 11, 12, 13),
	"LeakyRelu":             v(newLeakyRelu, 6, 16),
	"Sigmoid":               v(newSigmoid, 6, 13),
	"MaxPool":               v(newMaxPool, 1, 8, 10, 11, 12),
	"AveragePool":           v(newAveragePool, 7, 10, 11, 19),
	"GlobalAveragePool":     v(newGlobalAveragePool, 1),
	"GlobalMaxPool":         v(newGlobalMaxPool, 1),
	"Gemm":                  v(newGemm, 7, 9, 11, 13),
	"MatMul":                v(newMatMul, 1, 9, 13),
	"Add":                   v(newAdd, 7, 13, 14),
	"Sub":                   v(newSub, 7, 13, 14),
	"Mul":                   v(newMul, 7, 13, 14),
	"Div":                   v(newDiv, 7, 13, 14),
	"Sum":                   v(newSum, 6, 8, 13),
	"Mean":                  v(newMean, 6, 8, 13),
	"Flatten":               v(newFlatten, 1, 9, 11, 13, 21),
	"Reshape":               v(newReshape, 5, 13, 14, 19, 21),
	"Squeeze":               v(newSqueeze, 1, 11, 13, 21),
	"Unsqueeze":             v(newUnsqueeze, 1, 11, 13, 21),
	"Transpose":             v(newTranspose, 1, 13, 21),
	"Concat":                v(newConcat, 4, 11, 13),
	"Slice":                 v(newSlice, 1, 10, 11, 13),
	"Pad":                   v(newPad, 2, 11, 13, 18, 19, 21),
	"Shape":                 v(newShape, 1, 13, 15, 19, 21),
	"Gather":                v(newGather, 1, 11, 13),
	"ConstantOfShape":       v(newConstantOfShape, 9, 20, 21),
	"Constant":              v(newConstant, 1, 9, 11, 12, 13, 19, 21),
	"Cast":                  v(newCast, 6, 9, 13, 19, 21),
	"Identity":              v(newIdentity, 1, 13, 14, 16, 19, 21),
	"Dropout":               v(newDropout, 7, 10, 12, 13),
	"Softmax":               v(newSoftmax, 1, 11, 13),
	"LogSoftmax":            v(newLogSoftmax, 1, 11, 13),
	"ReduceMean":            v(newReduceMean, 1, 11, 13, 18),
	"PRelu":                 v(newPRelu, 6, 7, 9, 16),
	"Expand":                v(newExpand, 8, 13),
	"ArgMax":                v(newArgMax, 1, 11, 12, 13),
	"InstanceNormalization": v(newInstanceNorm, 1, 6),
	"Equal":                 v(newEqual, 7, 11, 13, 19),
	"Where":                 v(newWhere, 9, 16),
	"Resize":                v(newResize, 10, 11, 13, 18, 19),
	"Upsample":              v(newUpsample, 7, 9, 10),
	"QuantizeLinear":        v(newQuantizeLinear, 10, 13, 19, 21),
	"DequantizeLinear":      v(newDequantizeLinear, 10, 13, 19, 21),
	"DynamicQuantizeLinear": v(newDynamicQuantizeLinear, 11),
	"ConvInteger":           v(newConvInteger, 10),
	"QLinearConv":           v(newQLinearConv, 10),
	"MatMulInteger":         v(newMatMulInteger, 10),
	"QLinearMatMul":         v(newQLinearMatMul, 10, 21),
}

// SupportedOps lists the ai.onnx op types the native engine runs.
func SupportedOps() []string {
	ops := make([]string, 0, len(opRegistry))
	for k := range opRegistry {
		ops = append(ops, k)
	}
	slices.Sort(ops)
	return ops
}

// lookupOp returns the version of opType in effect at opset, or 0 and a
// reason.
func lookupOp(opType string, opset int) (opVersion, string) {
	versions, ok := opRegistry[opType]
	if !ok {
		return opVersion{}, "op is not supported"
	}
	var best opVersion
	for _, v := range versions {
		if v.since <= opset {
			best = v
		}
	}
	if best.build == nil {
		return opVersion{}, fmt.Sprintf("op does not exist in opset %d (its first version is %d)", opset, versions[0].since)
	}
	return best, ""
}

// nodeBuilder is what an op constructor sees of its node at load time: the
// attributes (each read at most through one typed accessor, so that
// leftovers can be reported as unknown), the element types of the inputs,
// which inputs are constants, and a place to record the output types and
// problems.
type nodeBuilder struct {
	proto  *onnxpb.NodeProto
	name   string
	opType string
	since  int // the op version in effect
	opset  int

	attrs map[string]*onnxpb.AttributeProto
	used  map[string]bool

	inTypes    []DType // 0 when unknown (an upstream problem) or omitted
	inPresent  []bool
	inConst    []*Tensor // load-time constants (initializers, Constant nodes)
	outTypes   []DType
	outPresent []bool
	valuePorts []int // inputs whose values planning needs

	problems []Problem
}

func (b *nodeBuilder) add(invalid bool, format string, args ...any) {
	b.problems = append(b.problems, Problem{Node: b.name, OpType: b.opType, Msg: fmt.Sprintf(format, args...), Invalid: invalid})
}

// fail records something unsupported.
func (b *nodeBuilder) fail(format string, args ...any) { b.add(false, format, args...) }

// invalid records something the ONNX spec does not allow.
func (b *nodeBuilder) invalid(format string, args ...any) { b.add(true, format, args...) }

func (b *nodeBuilder) label() string { return fmt.Sprintf("%s-%d", b.opType, b.since) }

// arity checks the numbers of inputs and outputs; max -1 means unbounded.
// Inputs below minIn and outputs below minOut must be present.
func (b *nodeBuilder) arity(minIn, maxIn, minOut, maxOut int) bool {
	ok := true
	nIn, nOut := len(b.inPresent), len(b.outPresent)
	if nIn < minIn || (maxIn >= 0 && nIn > maxIn) {
		b.invalid("has %d inputs; %s takes %s", nIn, b.label(), rangeText(minIn, maxIn))
		ok = false
	}
	if nOut < minOut || (maxOut >= 0 && nOut > maxOut) {
		b.invalid("has %d outputs; %s has %s", nOut, b.label(), rangeText(minOut, maxOut))
		ok = false
	}
	for i := 0; i < min(minIn, nIn); i++ {
		if !b.inPresent[i] {
			b.invalid("required input %d is empty", i)
			ok = false
		}
	}
	for i := 0; i < min(minOut, nOut); i++ {
		if !b.outPresent[i] {
			b.invalid("required output %d is empty", i)
			ok = false
		}
	}
	return ok
}

func rangeText(lo, hi int) string {
	switch {
	case hi < 0:
		return fmt.Sprintf("at least %d", lo)
	case lo == hi:
		return fmt.Sprint(lo)
	default:
		return fmt.Sprintf("%d to %d", lo, hi)
	}
}

// has reports whether input i is given.
func (b *nodeBuilder) has(i int) bool { return i < len(b.inPresent) && b.inPresent[i] }

// hasOut reports whether output i is requested.
func (b *nodeBuilder) hasOut(i int) bool { return i < len(b.outPresent) && b.outPresent[i] }

// in returns the type of input i, 0 when absent or unknown.
func (b *nodeBuilder) in(i int) DType {
	if !b.has(i) {
		return 0
	}
	return b.inTypes[i]
}

// want checks that input i, if present and of known type, has one of the
// allowed types, and returns its type.
func (b *nodeBuilder) want(i int, role string, allowed ...DType) DType {
	t := b.in(i)
	if t == 0 || slices.Contains(allowed, t) || t == Float16 && slices.Contains(allowed, Float32) {
		return t // float16 is computed in float32
	}
	names := make([]string, len(allowed))
	for k, a := range allowed {
		names[k] = a.String()
	}
	b.fail("input %d (%s) is %s; this runtime computes %s on %s", i, role, t, b.opType, strings.Join(names, " or "))
	return t
}

// sameType checks that inputs i and j have the same type.
func (b *nodeBuilder) sameType(i, j int) {
	ti, tj := b.in(i), b.in(j)
	if ti != 0 && tj != 0 && ti != tj {
		b.invalid("inputs %d and %d have different element types (%s, %s)", i, j, ti, tj)
	}
}

// out sets the type of output i, if requested.
func (b *nodeBuilder) out(i int, dt DType) {
	if b.hasOut(i) {
		b.outTypes[i] = dt
	}
}

// constIn returns input i's value when it is a load-time constant.
func (b *nodeBuilder) constIn(i int) *Tensor {
	if !b.has(i) {
		return nil
	}
	return b.inConst[i]
}

// needValue marks input i as one whose value planning needs (a shape, an
// axis list …): it must be computable from constants and input shapes, or
// come from a graph input whose value then becomes part of the plan key.
func (b *nodeBuilder) needValue(i int) {
	if b.has(i) {
		b.valuePorts = append(b.valuePorts, i)
	}
}

// attr returns the named attribute if it has the wanted type.
func (b *nodeBuilder) attr(name string, want onnxpb.AttributeProto_AttributeType) *onnxpb.AttributeProto {
	if b.attrs[name] != nil {
		b.used[name] = true
	}
	a, err := onnxmodel.Attr(name, b.attrs[name], want)
	if e, ok := err.(*onnxmodel.AttrError); ok {
		b.add(!e.Ref, "%s", e)
	}
	return a
}

// isSet reports whether the node has the attribute (without reading it).
func (b *nodeBuilder) isSet(name string) bool {
	_, ok := b.attrs[name]
	return ok
}

func (b *nodeBuilder) int(name string, def int64) int64 {
	if a := b.attr(name, onnxpb.AttributeProto_INT); a != nil {
		return a.GetI()
	}
	return def
}

func (b *nodeBuilder) ints(name string) ([]int64, bool) {
	if a := b.attr(name, onnxpb.AttributeProto_INTS); a != nil {
		return a.GetInts(), true
	}
	return nil, false
}

func (b *nodeBuilder) float(name string, def float32) float32 {
	if a := b.attr(name, onnxpb.AttributeProto_FLOAT); a != nil {
		return a.GetF()
	}
	return def
}

func (b *nodeBuilder) floats(name string) ([]float32, bool) {
	if a := b.attr(name, onnxpb.AttributeProto_FLOATS); a != nil {
		return a.GetFloats(), true
	}
	return nil, false
}

func (b *nodeBuilder) str(name, def string) string {
	if a := b.attr(name, onnxpb.AttributeProto_STRING); a != nil {
		return string(a.GetS())
	}
	return def
}

func (b *nodeBuilder) tensor(name string) *Tensor {
	a := b.attr(name, onnxpb.AttributeProto_TENSOR)
	if a == nil {
		return nil
	}
	t, err := tensorFromProto(a.GetT(), nil)
	if err != nil {
		b.add(!isUnsupported(err), "attribute %q: %s", name, trimSentinel(err))
		return nil
	}
	return t
}

// boolAttr reads a 0/1 INT attribute.
func (b *nodeBuilder) boolAttr(name string, def bool) bool {
	d := int64(0)
	if def {
		d = 1
	}
	v := b.int(name, d)
	if v != 0 && v != 1 {
		b.invalid("attribute %q is %d, want 0 or 1", name, v)
	}
	return v == 1
}

// leftovers reports attributes no accessor read: unknown to this version
// of the op, or not implemented.
func (b *nodeBuilder) leftovers() {
	for _, a := range b.proto.GetAttribute() {
		if !b.used[a.GetName()] {
			b.fail("attribute %q is not supported by %s", a.GetName(), b.label())
			b.used[a.GetName()] = true
		}
	}
}
