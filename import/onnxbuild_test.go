package onnximport_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// Small helpers that write ONNX graphs by hand, for files no exporter here
// makes (model-zoo opset 7, tf2onnx NHWC, graphs that cannot be imported).

func onnxNode(op, name string, in, out []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: op, Name: name, Input: in, Output: out, Attribute: attrs}
}

func intsAttr(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS, Ints: v}
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: v}
}

func floatTensor(name string, dims []int64, data []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &onnxpb.TensorProto{Name: name, DataType: int32(onnxpb.TensorProto_FLOAT), Dims: dims, RawData: raw}
}

func randomTensor(r *rand.Rand, name string, scale float64, dims ...int64) *onnxpb.TensorProto {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(r.NormFloat64() * scale)
	}
	return floatTensor(name, dims, data)
}

func int64Tensor(name string, v ...int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: name, DataType: int32(onnxpb.TensorProto_INT64), Dims: []int64{int64(len(v))}, Int64Data: v}
}

// valueInfo describes a float tensor; a negative dimension is the dynamic
// batch "N".
func valueInfo(name string, dims ...int64) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}}
		if d < 0 {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(onnxpb.TensorProto_FLOAT), Shape: shape},
	}}}
}

func model(opset int64, g *onnxpb.GraphProto) *onnxpb.ModelProto {
	ir := int64(8)
	if opset < 9 {
		ir = 3
	}
	return &onnxpb.ModelProto{
		IrVersion: ir, ProducerName: "handmade", Graph: g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: opset}},
	}
}

// nodeIndex returns the index of the node called name.
func nodeIndex(g *onnxpb.GraphProto, name string) int {
	return slices.IndexFunc(g.Node, func(n *onnxpb.NodeProto) bool { return n.Name == name })
}

func initializer(g *onnxpb.GraphProto, name string) *onnxpb.TensorProto {
	for _, t := range g.Initializer {
		if t.Name == name {
			return t
		}
	}
	return nil
}
