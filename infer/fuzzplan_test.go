package infer

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/memcap"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// fuzzBudget is the memory budget FuzzPlanAndRun loads with.
const fuzzBudget = 256 << 20

// planFuzzBases are the graphs FuzzPlanAndRun mutates: an exported
// ResNet-8 (dynamic batch, fused BN, option-A shortcuts), a small
// ResNet-shaped graph with every pooling and convolution attribute set,
// and the shape-arithmetic seeds of FuzzLoadBytes.
func planFuzzBases(tb testing.TB) []*onnxpb.ModelProto {
	var bases [][]byte
	_, g := buildExport(tb, exportCase{name: "resnet8", model: "resnet8"}, 3)
	b, err := export.Marshal(g, export.Options{Softmax: true})
	if err != nil {
		tb.Fatal(err)
	}
	bases = append(bases, b)
	mini := newGB(13).in("x", Float32, -1, 3, 8, 8).out("p", Float32).
		init("w1", randT(1, 4, 3, 3, 3)).init("b1", randT(2, 4)).
		init("g", f32(sh(4), 1, 1, 1, 1)).init("be", randT(3, 4)).init("mu", randT(4, 4)).init("va", f32(sh(4), 1, 2, 3, 4)).
		init("w2", randT(5, 4, 4, 3, 3)).init("w3", randT(6, 4, 2, 1, 1)).init("fw", randT(7, 5, 4)).init("fb", randT(8, 5)).
		init("shape", i64(sh(2), 0, -1)).init("axes", i64(sh(1), 2)).
		node("Conv", []string{"x", "w1", "b1"}, []string{"c1"}, aInts("kernel_shape", 3, 3), aInts("pads", 1, 1, 1, 1), aInts("strides", 1, 1), aInts("dilations", 1, 1), aInt("group", 1)).
		node("BatchNormalization", []string{"c1", "g", "be", "mu", "va"}, []string{"n1"}).
		node("Relu", []string{"n1"}, []string{"r1"}).
		node("MaxPool", []string{"r1"}, []string{"m1"}, aInts("kernel_shape", 3, 3), aInts("strides", 2, 2), aInts("pads", 1, 1, 1, 1), aInts("dilations", 1, 1), aInt("ceil_mode", 0)).
		node("Conv", []string{"m1", "w2"}, []string{"c2"}, aInts("pads", 1, 1, 1, 1)).
		node("Conv", []string{"c2", "w3"}, []string{"c3"}, aInt("group", 2)).
		node("Add", []string{"c3", "m1"}, []string{"s"}).
		node("AveragePool", []string{"s"}, []string{"a"}, aInts("kernel_shape", 2, 2), aInts("strides", 1, 1), aInts("pads", 0, 0, 1, 1), aInt("count_include_pad", 1)).
		node("ReduceMean", []string{"a"}, []string{"rm"}, aInts("axes", 3), aInt("keepdims", 1)).
		node("GlobalAveragePool", []string{"rm"}, []string{"gp"}).
		node("Reshape", []string{"gp", "shape"}, []string{"f"}).
		node("Gemm", []string{"f", "fw", "fb"}, []string{"p"}, aInt("transB", 1)).bytes(tb)
	bases = append(bases, mini)
	for _, name := range []string{"block", "chain", "optionA9", "optionA13", "misc"} {
		bases = append(bases, fuzzSeeds(tb)[name])
	}
	// Last, so that the seeds above keep their bases: the ops and types
	// added for other tools' files: uint8 NHWC pixels cast in the graph,
	// Resize (linear and nearest), PRelu, InstanceNormalization,
	// BatchNormalization in training mode, the Equal/Where/Expand chain of
	// torch's x.expand(n, -1, h, w), ArgMax and a float16 output.
	edge := newGB(16).in("x", Uint8, -1, 8, 8, 3).out("cls", Int64).out("h", Float16).
		init("sc", f32(sh(4), 1, 1, 1.5, 1.5)).init("roi", f32(sh(0))).init("none", f32(sh(0))).init("sz", i64(sh(4), 2, 4, 6, 6)).
		init("w", randT(11, 4, 3, 3, 3)).init("slope", f32(sh(4, 1, 1), 0.1, 0.2, 0.3, 0.4)).
		init("is", f32(sh(4), 1, 2, 1, 2)).init("ib", randT(12, 4)).
		init("g", f32(sh(4), 1, 1, 1, 1)).init("be", randT(13, 4)).init("mu", randT(14, 4)).init("va", f32(sh(4), 1, 2, 3, 4)).
		init("bias", randT(15, 1, 4, 1, 1)).init("want", i64(sh(4), 2, -1, 6, 6)).init("m1", i64(sh(), -1)).init("ones", i64(sh(4), 1, 1, 1, 1)).
		node("Cast", []string{"x"}, []string{"xf"}, aInt("to", int64(Float32))).
		node("Transpose", []string{"xf"}, []string{"t"}, aInts("perm", 0, 3, 1, 2)).
		node("Resize", []string{"t", "roi", "sc"}, []string{"r"}, aStr("mode", "linear")).
		node("Conv", []string{"r", "w"}, []string{"c"}, aInts("pads", 1, 1, 1, 1)).
		node("PRelu", []string{"c", "slope"}, []string{"p"}).
		node("InstanceNormalization", []string{"p", "is", "ib"}, []string{"in"}).
		node("BatchNormalization", []string{"in", "g", "be", "mu", "va"}, []string{"bn"}, aInt("training_mode", 1)).
		node("Resize", []string{"bn", "roi", "none", "sz"}, []string{"rs"}, aStr("coordinate_transformation_mode", "asymmetric"), aStr("nearest_mode", "floor")).
		node("Equal", []string{"want", "m1"}, []string{"eq"}).
		node("Where", []string{"eq", "ones", "want"}, []string{"shape"}).
		node("Expand", []string{"bias", "shape"}, []string{"e"}).
		node("Add", []string{"rs", "e"}, []string{"a"}).
		node("ReduceMean", []string{"a"}, []string{"gap"}, aInts("axes", 2, 3), aInt("keepdims", 0)).
		node("ArgMax", []string{"gap"}, []string{"cls"}, aInt("axis", 1)).
		node("Cast", []string{"gap"}, []string{"h"}, aInt("to", int64(Float16))).bytes(tb)
	bases = append(bases, edge)
	var out []*onnxpb.ModelProto
	for _, b := range bases {
		mp := &onnxpb.ModelProto{}
		if err := proto.Unmarshal(b, mp); err != nil {
			tb.Fatal(err)
		}
		out = append(out, mp)
	}
	return out
}

// fuzzInts are the integers mutations write: small values, zero and
// negatives, and values at the int32 and int64 limits, where unchecked
// arithmetic wraps.
var fuzzInts = []int64{0, 1, 2, 3, -1, -2, 4, 5, 7, 16, 64, 1000, 1 << 20, 1<<31 - 1, 1 << 31, 1 << 32, 1 << 40,
	1 << 62, 1<<62 + 1, math.MaxInt64, math.MinInt64, math.MinInt64 + 1, -(1 << 31)}

func fuzzInt(v byte) int64 { return fuzzInts[int(v)%len(fuzzInts)] }

// mutateModel applies the mutations muts encodes, 5 bytes each: a kind,
// then the node, attribute or tensor it targets and the value it writes.
func mutateModel(mp *onnxpb.ModelProto, muts []byte) {
	g := mp.Graph
	var names []string // every value name, for rewiring
	for _, v := range g.Input {
		names = append(names, v.GetName())
	}
	for _, t := range g.Initializer {
		names = append(names, t.GetName())
	}
	for _, n := range g.Node {
		names = append(names, n.Output...)
	}
	attrNames := []string{"kernel_shape", "pads", "strides", "dilations", "axes", "perm", "group", "axis", "ceil_mode", "keepdims", "auto_pad"}
	for ; len(muts) >= 5; muts = muts[5:] {
		kind, a, b, c, v := muts[0], int(muts[1]), int(muts[2]), int(muts[3]), muts[4]
		node := g.Node[a%len(g.Node)]
		switch kind % 9 {
		case 0, 1: // an element of an INTS attribute, or an INT attribute
			if len(node.Attribute) == 0 {
				continue
			}
			at := node.Attribute[b%len(node.Attribute)]
			if len(at.Ints) > 0 {
				at.Ints[c%len(at.Ints)] = fuzzInt(v)
			} else {
				at.I = fuzzInt(v)
			}
		case 2: // an element of an initializer
			if len(g.Initializer) == 0 {
				continue
			}
			t := g.Initializer[a%len(g.Initializer)]
			switch {
			case len(t.Int64Data) > 0:
				t.Int64Data[b%len(t.Int64Data)] = fuzzInt(v)
			case len(t.RawData) >= 4:
				i := 4 * (b % (len(t.RawData) / 4))
				f := []float32{0, 1, -1, float32(math.NaN()), float32(math.Inf(1)), 1e30, 1e-30}[int(v)%7]
				bits := math.Float32bits(f)
				t.RawData[i], t.RawData[i+1], t.RawData[i+2], t.RawData[i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
			}
		case 3: // a dimension of a graph input: a number or symbolic
			in := g.Input[a%len(g.Input)]
			dims := in.GetType().GetTensorType().GetShape().GetDim()
			if len(dims) == 0 {
				continue
			}
			if v%4 == 0 {
				dims[b%len(dims)].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "d"}
			} else {
				dims[b%len(dims)].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: fuzzInt(v)}
			}
		case 4: // rewire a node's input
			if len(node.Input) > 0 {
				node.Input[b%len(node.Input)] = names[c%len(names)]
			}
		case 5: // drop an attribute
			if len(node.Attribute) > 0 {
				i := b % len(node.Attribute)
				node.Attribute = append(node.Attribute[:i], node.Attribute[i+1:]...)
			}
		case 6: // add (or replace) an attribute, with c%5 values
			name := attrNames[b%len(attrNames)]
			at := &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS}
			for i := range c % 5 {
				at.Ints = append(at.Ints, fuzzInt(v+byte(i)))
			}
			switch name {
			case "group", "axis", "ceil_mode", "keepdims":
				at.Type, at.Ints, at.I = onnxpb.AttributeProto_INT, nil, fuzzInt(v)
			case "auto_pad":
				at.Type, at.Ints, at.S = onnxpb.AttributeProto_STRING, nil, []byte([]string{"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}[v%4])
			}
			kept := node.Attribute[:0]
			for _, x := range node.Attribute {
				if x.GetName() != name {
					kept = append(kept, x)
				}
			}
			node.Attribute = append(kept, at)
		case 7: // a dimension of an initializer (its data no longer fits)
			if len(g.Initializer) == 0 {
				continue
			}
			t := g.Initializer[a%len(g.Initializer)]
			if len(t.Dims) > 0 {
				t.Dims[b%len(t.Dims)] = fuzzInt(v)
			}
		case 8: // the op itself, among ops of the same arity
			ops := []string{"Relu", "Sigmoid", "Identity", "Softmax", "Flatten", "GlobalMaxPool", "GlobalAveragePool", "Transpose"}
			if len(node.Input) == 1 {
				node.OpType = ops[c%len(ops)]
			}
		}
	}
}

// FuzzPlanAndRun goes past the loader: it mutates ResNet-shaped graphs
// (attributes, shapes, initializers, wiring: see mutateModel), loads them
// under a memory budget of 256 MiB and two threads, and runs whatever
// loads on inputs whose dynamic dimensions come from the fuzzer (0 to 32,
// twice, so that a second plan is made). Errors must wrap a documented
// sentinel other than ErrInternal (a panic turned into an error is a bug
// too), and the whole attempt must allocate less than the budget plus
// 64 MiB + 64 × the model's size.
func FuzzPlanAndRun(f *testing.F) {
	bases := planFuzzBases(f)
	for i := range bases {
		f.Add(uint8(i), []byte{}, []byte{1, 8, 8})
	}
	f.Add(uint8(1), []byte{0, 3, 3, 0, 19}, []byte{1}) // MaxPool dilation 1<<62 (crashed a worker)
	f.Add(uint8(1), []byte{0, 0, 3, 0, 19}, []byte{1}) // Conv dilation 1<<62 (a wrong answer)
	f.Add(uint8(1), []byte{0, 3, 2, 0, 1}, []byte{2})  // MaxPool pads >= kernel
	f.Add(uint8(0), []byte{3, 0, 2, 0, 12}, []byte{1}) // ResNet-8 input of 2^20 rows
	f.Add(uint8(4), []byte{6, 1, 1, 0, 0}, []byte{1})  // Pad-2 with an empty pads attribute (panicked while loading)
	f.Fuzz(func(t *testing.T, which uint8, muts, dims []byte) {
		mp := proto.Clone(bases[int(which)%len(bases)]).(*onnxpb.ModelProto)
		mutateModel(mp, muts)
		b, err := proto.Marshal(mp)
		if err != nil {
			return
		}
		alloc := memcap.Allocated(func() { planAndRun(t, b, dims, nil) })
		memcap.Check(t, alloc, memcap.Limit(fuzzBudget+64<<20, len(b)), "loading and running a %d-byte model", len(b))
	})
}

// planAndRun loads b under the fuzz budget and runs it twice; ran, if
// not nil, counts the runs that succeeded.
func planAndRun(t *testing.T, b, dims []byte, ran *int) {
	sentinel := func(what string, err error) {
		if errors.Is(err, ErrInternal) || !(errors.Is(err, ErrInvalidModel) || errors.Is(err, ErrUnsupported) ||
			errors.Is(err, ErrInput) || errors.Is(err, ErrMemoryBudget)) {
			t.Fatalf("%s: %v", what, err)
		}
	}
	s, err := LoadBytes(b, Options{Threads: 2, MaxMemory: fuzzBudget, MaxPlans: 2})
	if err != nil {
		sentinel("load", err)
		return
	}
	defer s.Close()
	for range 2 {
		inputs := map[string]*Tensor{}
		for _, in := range s.Metadata().Inputs {
			if in.Shape == nil || !in.DType.supported() {
				return
			}
			shape := make([]int, len(in.Shape))
			for i, d := range in.Shape {
				shape[i] = d
				if d < 0 {
					shape[i] = 0
					if len(dims) > 0 {
						shape[i], dims = int(dims[0])%33, dims[1:]
					}
				}
			}
			n, err := numel(shape)
			if err != nil || n > 1<<20 {
				return // an input the caller could not allocate either
			}
			x := newTensor(in.DType, shape)
			for i := range x.Float32 {
				x.Float32[i] = float32(i%7) - 3
			}
			inputs[in.Name] = x
		}
		if _, err := s.Run(context.Background(), inputs); err != nil {
			sentinel("run", err)
		} else if ran != nil {
			*ran++
		}
	}
}

// TestPlanFuzzBases: every base of FuzzPlanAndRun loads and runs as it
// is, so that the fuzzer starts from graphs that reach planning.
func TestPlanFuzzBases(t *testing.T) {
	for i, mp := range planFuzzBases(t) {
		b, err := proto.Marshal(mp)
		if err != nil {
			t.Fatal(err)
		}
		ran := 0
		planAndRun(t, b, []byte{2, 8, 8, 1, 4, 4}, &ran)
		if ran != 2 {
			t.Errorf("base %d (%s): %d of 2 runs succeeded", i, mp.GetGraph().GetName(), ran)
		}
	}
}
