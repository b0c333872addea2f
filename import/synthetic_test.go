package onnximport_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/internal/interop"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/models"
)

// modelZoo rewrites an opset-9 export the way ONNX model-zoo opset-7 files
// are written: IR version 3, opset 7, every initializer also listed as a
// graph input, BatchNormalization with its spatial attribute, unnamed
// nodes, no metadata.
func modelZoo(t *testing.T, g *build.Graph) *onnxpb.ModelProto {
	b, err := export.Marshal(g, export.Options{Opset: 9})
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, b)
	stripMetadata(m)
	m.IrVersion = 3
	m.OpsetImport[0].Version = 7
	for _, tp := range m.Graph.Initializer {
		m.Graph.Input = append(m.Graph.Input, valueInfo(tp.Name, tp.Dims...))
	}
	for _, n := range m.Graph.Node {
		n.Name = ""
		if n.OpType == "BatchNormalization" {
			n.Attribute = append(n.Attribute, intAttr("spatial", 1))
		}
	}
	return m
}

// tf2onnx rewrites a CIFAR export (opset 13, BN kept) the way tf2onnx
// writes Keras models: an NHWC input with a Transpose to NCHW, the stem's
// padding as a Pad in NHWC before that Transpose, a Keras-style bias on a
// convolution that feeds a BatchNorm, the global average pool as a
// Transpose back to NHWC and a ReduceMean, the classifier as MatMul + Add,
// and a final Softmax as the only output.
func tf2onnx(t *testing.T, g *build.Graph) *onnxpb.ModelProto {
	b, err := export.Marshal(g, export.Options{Opset: 13})
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, b)
	stripMetadata(m)
	gp := m.Graph
	r := rand.New(rand.NewPCG(5, 5))
	in := g.Spec.Input
	gp.Input = []*onnxpb.ValueInfoProto{valueInfo("input_1", -1, int64(in.H), int64(in.W), int64(in.C))}
	stem := gp.Node[nodeIndex(gp, "conv1")]
	stem.Attribute = slices.DeleteFunc(stem.Attribute, func(a *onnxpb.AttributeProto) bool { return a.Name == "pads" })
	stem.Input = append(stem.Input, "conv1/BiasAdd/ReadVariableOp")
	gp.Initializer = append(gp.Initializer,
		randomTensor(r, "conv1/BiasAdd/ReadVariableOp", 0.1, int64(g.Spec.StemWidth)),
		int64Tensor("zero_padding2d/Pad/paddings", 0, 1, 1, 0, 0, 1, 1, 0))
	head := []*onnxpb.NodeProto{
		onnxNode("Pad", "zero_padding2d/Pad", []string{"input_1", "zero_padding2d/Pad/paddings"}, []string{"zero_padding2d/Pad:0"}),
		onnxNode("Transpose", "conv1/Conv2D__6", []string{"zero_padding2d/Pad:0"}, []string{"input"}, intsAttr("perm", 0, 3, 1, 2)),
	}
	gp.Node = append(head, gp.Node...)
	gap := nodeIndex(gp, "avgpool")
	src := gp.Node[gap].Input[0]
	flat := gp.Node[nodeIndex(gp, "flatten")].Output[0]
	tail := []*onnxpb.NodeProto{
		onnxNode("Transpose", "global_average_pooling2d/Mean__20", []string{src}, []string{"gap_nhwc"}, intsAttr("perm", 0, 2, 3, 1)),
		onnxNode("ReduceMean", "global_average_pooling2d/Mean", []string{"gap_nhwc"}, []string{flat}, intsAttr("axes", 1, 2), intAttr("keepdims", 0)),
	}
	w := initializer(gp, "fc.weight")
	wt := floatTensor("dense/MatMul/ReadVariableOp", []int64{w.Dims[1], w.Dims[0]}, transposeRaw(w))
	gp.Initializer = append(gp.Initializer, wt)
	tail = append(tail,
		onnxNode("MatMul", "dense/MatMul", []string{flat, wt.Name}, []string{"dense/MatMul:0"}),
		onnxNode("Add", "dense/BiasAdd", []string{"dense/MatMul:0", "fc.bias"}, []string{"dense/BiasAdd:0"}),
		onnxNode("Softmax", "dense/Softmax", []string{"dense/BiasAdd:0"}, []string{"probs"}, intAttr("axis", -1)),
	)
	var nodes []*onnxpb.NodeProto
	for _, n := range gp.Node {
		switch n.Name {
		case "avgpool", "flatten", "fc":
			continue
		}
		nodes = append(nodes, n)
		if n == gp.Node[gap-1] {
			nodes = append(nodes, tail[:2]...)
		}
	}
	gp.Node = append(nodes, tail[2:]...)
	gp.Initializer = slices.DeleteFunc(gp.Initializer, func(tp *onnxpb.TensorProto) bool { return tp.Name == "fc.weight" })
	gp.Output = []*onnxpb.ValueInfoProto{valueInfo("probs", -1, int64(g.Spec.Classes))}
	return m
}

func transposeRaw(w *onnxpb.TensorProto) []float32 {
	v := fileFloats(&onnxpb.ModelProto{Graph: &onnxpb.GraphProto{Initializer: []*onnxpb.TensorProto{w}}}, w.Name)
	r, c := int(w.Dims[0]), int(w.Dims[1])
	out := make([]float32, len(v))
	for i := range r {
		for j := range c {
			out[j*r+i] = v[i*c+j]
		}
	}
	return out
}

// nhwc transposes an NCHW batch.
func nhwc(x interop.Tensor) interop.Tensor {
	n, c, h, w := x.Dims[0], x.Dims[1], x.Dims[2], x.Dims[3]
	out := make([]float32, len(x.Data))
	for b := range n {
		for k := range c {
			for i := range h {
				for j := range w {
					out[((b*h+i)*w+j)*c+k] = x.Data[((b*c+k)*h+i)*w+j]
				}
			}
		}
	}
	return interop.Tensor{Dims: []int{n, h, w, c}, Data: out}
}

// plainCNN is a small network of build ops that is not a ResNet.
func plainCNN() *onnxpb.ModelProto {
	r := rand.New(rand.NewPCG(9, 9))
	gp := &onnxpb.GraphProto{
		Name:  "plain",
		Input: []*onnxpb.ValueInfoProto{valueInfo("image", -1, 3, 16, 16)},
		Initializer: []*onnxpb.TensorProto{
			randomTensor(r, "c1.w", 0.3, 8, 3, 3, 3), randomTensor(r, "c2.w", 0.2, 16, 8, 3, 3), randomTensor(r, "c2.b", 0.1, 16),
			randomTensor(r, "bn.s", 0.1, 16), randomTensor(r, "bn.b", 0.1, 16), randomTensor(r, "bn.m", 0.1, 16),
			floatTensor("bn.v", []int64{16}, slices.Repeat([]float32{1.5}, 16)),
			randomTensor(r, "fc.w", 0.2, 5, 16), randomTensor(r, "fc.b", 0.1, 5),
		},
		Node: []*onnxpb.NodeProto{
			onnxNode("Conv", "c1", []string{"image", "c1.w"}, []string{"c1"}, intsAttr("kernel_shape", 3, 3), intsAttr("pads", 1, 1, 1, 1)),
			onnxNode("Relu", "r1", []string{"c1"}, []string{"r1"}),
			onnxNode("MaxPool", "p1", []string{"r1"}, []string{"p1"}, intsAttr("kernel_shape", 2, 2), intsAttr("strides", 2, 2)),
			onnxNode("Conv", "c2", []string{"p1", "c2.w", "c2.b"}, []string{"c2"}, intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2), intsAttr("pads", 1, 1, 1, 1)),
			onnxNode("Relu", "r2", []string{"c2"}, []string{"r2"}),
			onnxNode("BatchNormalization", "bn", []string{"r2", "bn.s", "bn.b", "bn.m", "bn.v"}, []string{"bn"}),
			onnxNode("GlobalAveragePool", "gap", []string{"bn"}, []string{"gap"}),
			onnxNode("Flatten", "flat", []string{"gap"}, []string{"flat"}),
			onnxNode("Gemm", "fc", []string{"flat", "fc.w", "fc.b"}, []string{"scores"}, intAttr("transB", 1)),
		},
		Output: []*onnxpb.ValueInfoProto{valueInfo("scores", -1, 5)},
	}
	return model(13, gp)
}

// TestSyntheticFormats imports files written the way other tools write
// them and checks the report, the parameters and ONNX Runtime's outputs on
// the original and on the re-export of the import.
func TestSyntheticFormats(t *testing.T) {
	type sample struct {
		name     string
		m        *onnxpb.ModelProto
		orig     *build.Graph // parameters must come back bit for bit, by name
		summary  string
		method   onnximport.Method
		layout   string
		softmax  bool
		notes    []string
		origPath string
		rePath   string
	}
	r18 := newGraph(t, spec(t, "resnet18", input(3, 64, 64)), 1)
	r20 := newGraph(t, spec(t, "resnet20"), 2)
	r20b := newGraph(t, spec(t, "resnet20", shortcutB), 3)
	samples := []*sample{
		{name: "modelzoo-resnet18", m: modelZoo(t, r18), orig: r18, summary: "resnet18, 1000 classes, BN kept", method: onnximport.MethodRecognised, layout: "NCHW"},
		{name: "modelzoo-resnet20A", m: modelZoo(t, r20), orig: r20, summary: "resnet20, 10 classes, BN kept", method: onnximport.MethodRecognised, layout: "NCHW"},
		{name: "tf2onnx-resnet20B", m: tf2onnx(t, r20b), summary: "resnet20 (shortcut B), 10 classes, BN kept", method: onnximport.MethodRecognised,
			layout: "NHWC", softmax: true, notes: []string{"input is NHWC", "1 convolution biases that fed a BatchNorm were moved"}},
		{name: "plain-cnn", m: plainCNN(), summary: "general graph, not a ResNet the builder makes (9 ops), 5 classes", method: onnximport.MethodGeneral, layout: "NCHW",
			notes: []string{"not recognised as a ResNet"}},
	}
	dir := t.TempDir()
	for _, s := range samples {
		b := encode(t, s.m)
		s.origPath = filepath.Join(dir, s.name+".onnx")
		if err := os.WriteFile(s.origPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		g, r, err := onnximport.Load(s.origPath)
		if err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		if r.Summary() != s.summary || r.Method != s.method || r.InputLayout != s.layout || r.Softmax != s.softmax {
			t.Errorf("%s: report %q method %s layout %s softmax %v", s.name, r.Summary(), r.Method, r.InputLayout, r.Softmax)
		}
		for _, n := range s.notes {
			if !strings.Contains(strings.Join(r.Notes, "\n"), n) {
				t.Errorf("%s: no note %q in %q", s.name, n, r.Notes)
			}
		}
		if s.orig != nil {
			if msg := sameParams(s.orig, g); msg != "" {
				t.Errorf("%s: %s", s.name, msg)
			}
		}
		s.rePath = filepath.Join(dir, s.name+"-re.onnx")
		if _, err := export.WriteFile(s.rePath, g, export.Options{Opset: max(r.Opset, export.MinOpset), FoldBN: r.BNFolded, Softmax: r.Softmax}); err != nil {
			t.Errorf("%s: re-export: %v", s.name, err)
			s.rePath = ""
		}
	}
	t.Run("ONNXRuntime", func(t *testing.T) {
		interop.RequireORT(t)
		var jobs []interop.Job
		var ran []*sample
		for k, s := range samples {
			if s.rePath == "" {
				continue
			}
			vi := s.m.Graph.Input[0]
			var dims []int
			for _, d := range vi.GetType().GetTensorType().GetShape().GetDim() {
				dims = append(dims, max(int(d.GetDimValue()), 2))
			}
			x := randomInput(uint64(k+1), dims...)
			xin := x
			if s.layout == "NHWC" { // the import takes NCHW
				xin = randomInput(uint64(k+1), dims[0], dims[3], dims[1], dims[2])
				x = nhwc(xin)
			}
			jobs = append(jobs,
				interop.Job{Model: s.origPath, Inputs: map[string]interop.Tensor{vi.GetName(): x}},
				interop.Job{Model: s.rePath, Inputs: map[string]interop.Tensor{export.InputName: xin}})
			ran = append(ran, s)
		}
		res, err := interop.ORT(context.Background(), jobs)
		if err != nil {
			t.Fatal(err)
		}
		for k, s := range ran {
			orig, re := res[2*k], res[2*k+1]
			if orig.Err != "" || re.Err != "" {
				t.Errorf("%s: ONNX Runtime: %s | %s", s.name, orig.Err, re.Err)
				continue
			}
			want := orig.Outputs[orig.OutputNames[0]]
			got := re.Outputs[export.LogitsName]
			if s.softmax {
				got = re.Outputs[export.ProbabilitiesName]
			}
			if ok, e, m := agree(got.Data, want.Data, torchTolerance); !ok {
				t.Errorf("%s: the re-export differs from the original by %.3g (max |ref| %.3g)", s.name, e, m)
			}
		}
	})
}

// TestBlocked checks that a graph that cannot become a build.Graph is
// refused with one error naming every node that blocks it.
func TestBlocked(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sigmoid := model(13, &onnxpb.GraphProto{
		Input:       []*onnxpb.ValueInfoProto{valueInfo("x", -1, 3, 8, 8)},
		Initializer: []*onnxpb.TensorProto{randomTensor(r, "w", 0.3, 4, 3, 3, 3), randomTensor(r, "m", 0.3, 8, 5)},
		Node: []*onnxpb.NodeProto{
			onnxNode("Conv", "conv", []string{"x", "w"}, []string{"c"}, intsAttr("pads", 1, 1, 1, 1)),
			onnxNode("Sigmoid", "sig", []string{"c"}, []string{"s"}),
			onnxNode("MatMul", "mm", []string{"s", "m"}, []string{"y"}),
		},
		Output: []*onnxpb.ValueInfoProto{valueInfo("y", -1, 4, 8, 5)},
	})
	const hidden = 6
	lstm := model(13, &onnxpb.GraphProto{
		Input: []*onnxpb.ValueInfoProto{valueInfo("x", -1, 3, 8, 8)},
		Initializer: []*onnxpb.TensorProto{
			randomTensor(r, "W", 0.3, 1, 4*hidden, 3), randomTensor(r, "R", 0.3, 1, 4*hidden, hidden),
			int64Tensor("axes0", 0), int64Tensor("axes01", 0, 1), randomTensor(r, "fc.w", 0.3, 10, hidden), randomTensor(r, "fc.b", 0.3, 10),
		},
		Node: []*onnxpb.NodeProto{
			onnxNode("GlobalAveragePool", "gap", []string{"x"}, []string{"g"}),
			onnxNode("Flatten", "flat", []string{"g"}, []string{"f"}),
			onnxNode("Unsqueeze", "seq", []string{"f", "axes0"}, []string{"s"}),
			onnxNode("LSTM", "lstm", []string{"s", "W", "R"}, []string{"Y"}, intAttr("hidden_size", hidden)),
			onnxNode("Squeeze", "sq", []string{"Y", "axes01"}, []string{"h"}),
			onnxNode("Gemm", "fc", []string{"h", "fc.w", "fc.b"}, []string{"y"}, intAttr("transB", 1)),
		},
		Output: []*onnxpb.ValueInfoProto{valueInfo("y", -1, 10)},
	})
	custom := plainCNN()
	custom.Graph.Node[1].Domain, custom.Graph.Node[1].OpType = "com.microsoft", "FusedRelu"
	custom.Graph.Node[4].OpType = "LeakyRelu"
	for _, c := range []struct {
		name  string
		m     *onnxpb.ModelProto
		nodes []string
	}{
		{"conv-sigmoid-matmul", sigmoid, []string{"sig", "mm"}},
		{"lstm", lstm, []string{"seq", "lstm"}},
		{"custom-domain", custom, []string{"r1", "r2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := onnximport.FromBytes(encode(t, c.m))
			var be *onnximport.BlockedError
			if !errors.As(err, &be) || !errors.Is(err, onnximport.ErrUnsupported) {
				t.Fatalf("error %v, want a *BlockedError", err)
			}
			var names []string
			for _, n := range be.Nodes {
				names = append(names, n.Node)
			}
			if !slices.Equal(names, c.nodes) {
				t.Errorf("blocked nodes %v, want %v\n%v", names, c.nodes, err)
			}
			for _, n := range c.nodes {
				if !strings.Contains(err.Error(), `"`+n+`"`) {
					t.Errorf("error does not name %s: %v", n, err)
				}
			}
			t.Log(err)
		})
	}
}

func TestGeneralGraphSpec(t *testing.T) {
	g, r, err := onnximport.FromBytes(encode(t, plainCNN()))
	if err != nil {
		t.Fatal(err)
	}
	if r.Spec != nil || g.Spec.Input != (models.Shape{C: 3, H: 16, W: 16}) || g.Spec.Classes != 5 || r.Params != 8*27+16*72+16+4*16+5*16+5 {
		t.Errorf("spec %+v, report %+v", g.Spec, r)
	}
	if g.Param("c2.b") == nil || g.Param("fc.w") == nil {
		t.Errorf("a general graph keeps the file's initializer names; params %v", g.Params)
	}
}

// TestSharedInitializers: a file may use one initializer in several nodes;
// the imported parameters never share storage, so folding a constant Add
// into one convolution's bias leaves the other's alone.
func TestSharedInitializers(t *testing.T) {
	gp := &onnxpb.GraphProto{
		Input: []*onnxpb.ValueInfoProto{valueInfo("x", -1, 2, 4, 4)},
		Initializer: []*onnxpb.TensorProto{
			floatTensor("w", []int64{2, 2, 1, 1}, []float32{1, 2, 3, 4}), floatTensor("b", []int64{2}, []float32{0.5, -0.5}),
			floatTensor("k", []int64{1, 2, 1, 1}, []float32{10, 20}),
			floatTensor("fc.w", []int64{3, 2}, []float32{1, 0, 0, 1, 1, 1}), floatTensor("fc.b", []int64{3}, []float32{0, 0, 0}),
		},
		Node: []*onnxpb.NodeProto{
			onnxNode("Conv", "c1", []string{"x", "w", "b"}, []string{"c1"}),
			onnxNode("Add", "add", []string{"c1", "k"}, []string{"a"}),
			onnxNode("Conv", "c2", []string{"a", "w", "b"}, []string{"c2"}),
			onnxNode("GlobalAveragePool", "gap", []string{"c2"}, []string{"g"}),
			onnxNode("Flatten", "flat", []string{"g"}, []string{"f"}),
			onnxNode("Gemm", "fc", []string{"f", "fc.w", "fc.b"}, []string{"y"}, intAttr("transB", 1)),
		},
		Output: []*onnxpb.ValueInfoProto{valueInfo("y", -1, 3)},
	}
	g, _, err := onnximport.FromBytes(encode(t, model(13, gp)))
	if err != nil {
		t.Fatal(err)
	}
	var biases [][]float32
	for _, n := range g.Nodes {
		if n.Kind == build.Conv {
			biases = append(biases, g.Param(n.Params[1]).Data)
		}
	}
	if len(biases) != 2 || !slices.Equal(biases[0], []float32{10.5, 19.5}) || !slices.Equal(biases[1], []float32{0.5, -0.5}) {
		t.Errorf("conv biases %v, want [[10.5 19.5] [0.5 -0.5]]", biases)
	}
}
