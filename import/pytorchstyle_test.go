package onnximport_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/resnetctl/resnetctl/export"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// pytorchStyle rewrites an opset-13 export (metadata stripped) the way
// PyTorch's exporter writes the same model, so the constant folding of the
// import is tested without PyTorch installed: the option-A subsample as two
// Slices with Constant inputs, the channel pads of F.pad computed by
// Constant/ConstantOfShape/Concat/Reshape/Slice(step -1)/Transpose/Reshape/
// Cast, and x.view(x.size(0), -1) as Shape/Gather/Unsqueeze/Concat/Reshape.
func pytorchStyle(t testing.TB, b []byte) *onnxpb.ModelProto {
	m := decode(t, b)
	stripMetadata(m)
	gp := m.Graph
	constant := func(name string, v *onnxpb.TensorProto) *onnxpb.NodeProto {
		v.Name = ""
		return onnxNode("Constant", name, nil, []string{name + "_output_0"}, &onnxpb.AttributeProto{Name: "value", Type: onnxpb.AttributeProto_TENSOR, T: v})
	}
	scalar := func(v int64) *onnxpb.TensorProto {
		return &onnxpb.TensorProto{DataType: int32(onnxpb.TensorProto_INT64), Int64Data: []int64{v}}
	}
	drop := map[string]bool{}
	var nodes []*onnxpb.NodeProto
	for _, n := range gp.Node {
		switch {
		case n.OpType == "Slice":
			p := "/" + n.Name
			in := n.Input[0]
			for k, axis := range []int64{2, 3} {
				q := fmt.Sprintf("%s/%d", p, k)
				nodes = append(nodes,
					constant(q+"/axes", int64Tensor("", axis)), constant(q+"/starts", int64Tensor("", 0)),
					constant(q+"/ends", int64Tensor("", math.MaxInt64)), constant(q+"/steps", int64Tensor("", 2)),
					onnxNode("Slice", q+"/Slice", []string{in, q + "/starts_output_0", q + "/ends_output_0", q + "/axes_output_0", q + "/steps_output_0"}, []string{q + "/Slice_output_0"}))
				in = q + "/Slice_output_0"
			}
			nodes = append(nodes, onnxNode("Identity", p+"/Identity", []string{in}, n.Output))
			for _, i := range n.Input[1:] {
				drop[i] = true
			}
		case n.OpType == "Pad":
			p := "/" + n.Name
			pads := initializer(gp, n.Input[1]).Int64Data // [0 b 0 0 0 a 0 0]
			drop[n.Input[1]] = true
			nodes = append(nodes,
				constant(p+"/c8", int64Tensor("", 2)),
				constant(p+"/c9", int64Tensor("", 0, 0, 0, 0, pads[1], pads[5])),
				onnxNode("ConstantOfShape", p+"/ConstantOfShape", []string{p + "/c8_output_0"}, []string{p + "/cos"},
					&onnxpb.AttributeProto{Name: "value", Type: onnxpb.AttributeProto_TENSOR, T: int64Tensor("", 0)}),
				onnxNode("Concat", p+"/Concat", []string{p + "/c9_output_0", p + "/cos"}, []string{p + "/concat"}, intAttr("axis", 0)),
				constant(p+"/c10", int64Tensor("", -1, 2)),
				onnxNode("Reshape", p+"/Reshape", []string{p + "/concat", p + "/c10_output_0"}, []string{p + "/reshape"}),
				constant(p+"/c11", int64Tensor("", 0)), constant(p+"/c12", int64Tensor("", -1)),
				constant(p+"/c13", int64Tensor("", -math.MaxInt64)), constant(p+"/c14", int64Tensor("", -1)),
				onnxNode("Slice", p+"/Slice_2", []string{p + "/reshape", p + "/c12_output_0", p + "/c13_output_0", p + "/c11_output_0", p + "/c14_output_0"}, []string{p + "/rev"}),
				onnxNode("Transpose", p+"/Transpose", []string{p + "/rev"}, []string{p + "/tr"}, intsAttr("perm", 1, 0)),
				constant(p+"/c15", int64Tensor("", -1)),
				onnxNode("Reshape", p+"/Reshape_1", []string{p + "/tr", p + "/c15_output_0"}, []string{p + "/flat"}),
				onnxNode("Cast", p+"/Cast", []string{p + "/flat"}, []string{p + "/pads"}, intAttr("to", int64(onnxpb.TensorProto_INT64))),
				constant(p+"/c16", &onnxpb.TensorProto{DataType: int32(onnxpb.TensorProto_FLOAT), FloatData: []float32{0}}),
				onnxNode("Pad", n.Name, []string{n.Input[0], p + "/pads", p + "/c16_output_0"}, n.Output, n.Attribute...))
		case n.OpType == "Flatten":
			nodes = append(nodes,
				onnxNode("Shape", "/Shape", []string{n.Input[0]}, []string{"/shape"}),
				constant("/c1", scalar(0)),
				onnxNode("Gather", "/Gather", []string{"/shape", "/c1_output_0"}, []string{"/batch"}, intAttr("axis", 0)),
				constant("/axes", int64Tensor("", 0)),
				onnxNode("Unsqueeze", "/Unsqueeze", []string{"/batch", "/axes_output_0"}, []string{"/batch1"}),
				constant("/c2", int64Tensor("", -1)),
				onnxNode("Concat", "/Concat", []string{"/batch1", "/c2_output_0"}, []string{"/target"}, intAttr("axis", 0)),
				onnxNode("Reshape", "/Reshape", []string{n.Input[0], "/target"}, n.Output))
		default:
			nodes = append(nodes, n)
		}
	}
	gp.Node = nodes
	gp.Initializer = slices.DeleteFunc(gp.Initializer, func(tp *onnxpb.TensorProto) bool { return drop[tp.Name] })
	return m
}

// TestPyTorchShapeChains imports PyTorch-style option-A and flatten chains
// (written by hand, so PyTorch need not be installed) and checks that the
// result is the model that was exported.
func TestPyTorchShapeChains(t *testing.T) {
	for _, name := range []string{"resnet20", "resnet32"} {
		g := newGraph(t, spec(t, name), 4)
		b, err := export.Marshal(g, export.Options{Opset: 13})
		if err != nil {
			t.Fatal(err)
		}
		g2, r, err := onnximport.FromBytes(encode(t, pytorchStyle(t, b)))
		if err != nil {
			t.Fatal(err)
		}
		if r.Summary() != name+", 10 classes, BN kept" || r.Method != onnximport.MethodRecognised {
			t.Errorf("%s: %s (%s)", name, r.Summary(), r.Method)
		}
		if msg := sameParams(g, g2); msg != "" {
			t.Errorf("%s: %s", name, msg)
		}
	}
}

// FuzzMutatedModels changes valid models at the protobuf level (op types,
// attributes, wiring, shapes, element types, opsets, metadata), reaching
// the importer's semantic checks that random bytes rarely get past.
func FuzzMutatedModels(f *testing.F) {
	f.Add(uint8(0), []byte{0, 3, 1, 9})
	f.Add(uint8(1), []byte{1, 2, 0, 3, 2, 5, 1, 0})
	f.Add(uint8(2), []byte{3, 0, 1, 200, 4, 1, 0, 7})
	f.Add(uint8(3), []byte{5, 0, 2, 1, 6, 0, 0, 8})
	f.Add(uint8(4), []byte{7, 4, 0, 0, 8, 1, 0, 2, 9, 0, 0, 1})
	bases := [][]byte{
		tinyExport(f, export.Options{Opset: 9}),
		tinyExport(f, export.Options{Opset: 13, FoldBN: true, Softmax: true}),
		encode(f, pytorchStyle(f, tinyExport(f, export.Options{Opset: 13}))),
		encode(f, plainCNN()),
		tinyExport(f, export.Options{Opset: 21}),
	}
	ops := []string{"Conv", "Relu", "Add", "Slice", "Pad", "Reshape", "Gather", "Concat", "Transpose", "MaxPool",
		"AveragePool", "Flatten", "Gemm", "MatMul", "BatchNormalization", "ConstantOfShape", "Squeeze", "Unsqueeze",
		"Cast", "ReduceMean", "Softmax", "Shape", "Identity", "Sigmoid", "Div", "Mul", "Sub", "GlobalAveragePool", "Constant"}
	f.Fuzz(func(t *testing.T, which uint8, script []byte) {
		m := decode(t, bases[int(which)%len(bases)])
		gp := m.Graph
		r := rand.New(rand.NewPCG(uint64(len(script)), 1))
		for k := 0; k+3 < len(script) && k < 64; k += 4 {
			kind, a, b, c := script[k], int(script[k+1]), int(script[k+2]), int64(int8(script[k+3]))
			if len(gp.Node) == 0 {
				break
			}
			n := gp.Node[a%len(gp.Node)]
			switch kind % 10 {
			case 0:
				n.OpType = ops[b%len(ops)]
			case 1:
				if len(n.Attribute) > 0 {
					at := n.Attribute[b%len(n.Attribute)]
					if len(at.Ints) > 0 {
						at.Ints[r.IntN(len(at.Ints))] = c
					} else {
						at.I, at.F = c, float32(c)
					}
				}
			case 2:
				if len(n.Input) > 0 {
					src := gp.Node[b%len(gp.Node)]
					if len(src.Output) > 0 {
						n.Input[r.IntN(len(n.Input))] = src.Output[0]
					}
				}
			case 3:
				if len(gp.Initializer) > 0 {
					tp := gp.Initializer[b%len(gp.Initializer)]
					if len(tp.Dims) > 0 {
						tp.Dims[r.IntN(len(tp.Dims))] = c
					}
				}
			case 4:
				if len(gp.Initializer) > 0 {
					gp.Initializer[b%len(gp.Initializer)].DataType = int32(c)
				}
			case 5:
				if d := gp.Input[0].GetType().GetTensorType().GetShape().GetDim(); len(d) > 0 {
					d[b%len(d)].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: c}
				}
			case 6:
				m.OpsetImport[0].Version = c
			case 7:
				gp.Node = slices.Delete(gp.Node, a%len(gp.Node), a%len(gp.Node)+1)
			case 8:
				n.Attribute = append(n.Attribute, intsAttr([]string{"axes", "perm", "pads", "strides", "kernel_shape", "group", "axis"}[b%7], c, c+1))
			case 9:
				if len(m.MetadataProps) > 0 {
					p := m.MetadataProps[b%len(m.MetadataProps)]
					if i := r.IntN(len(p.Value) + 1); i < len(p.Value) {
						p.Value = p.Value[:i] + fmt.Sprint(c) + p.Value[i+1:]
					}
				}
			}
		}
		b, err := encodeErr(m)
		if err != nil {
			return
		}
		importOK(t, b)
	})
}
