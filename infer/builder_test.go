package infer

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// gb builds small ONNX models for tests.
type gb struct {
	opset, ir int64
	nodes     []*onnxpb.NodeProto
	inits     []*onnxpb.TensorProto
	inputs    []*onnxpb.ValueInfoProto
	outputs   []*onnxpb.ValueInfoProto
	meta      map[string]string
}

func newGB(opset int64) *gb {
	ir := int64(8)
	switch {
	case opset <= 8:
		ir = 3
	case opset == 9:
		ir = 4
	case opset == 10:
		ir = 5
	case opset == 11:
		ir = 6
	case opset <= 14:
		ir = 7
	case opset <= 18:
		ir = 8
	case opset <= 20:
		ir = 9
	default:
		ir = 10
	}
	return &gb{opset: opset, ir: ir}
}

// vi makes a tensor ValueInfo; a negative dim is dynamic ("N").
func vi(name string, dt DType, dims ...int64) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		if d < 0 {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}})
		} else {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(dt), Shape: shape}}}}
}

// in declares a graph input.
func (g *gb) in(name string, dt DType, dims ...int64) *gb {
	g.inputs = append(g.inputs, vi(name, dt, dims...))
	return g
}

// inNoShape declares a graph input of unknown rank.
func (g *gb) inNoShape(name string, dt DType) *gb {
	g.inputs = append(g.inputs, &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(dt)}}}})
	return g
}

// out declares a graph output (shape not declared).
func (g *gb) out(name string, dt DType) *gb {
	g.outputs = append(g.outputs, &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(dt)}}}})
	return g
}

// init adds an initializer (float32 as raw_data, others in typed fields).
func (g *gb) init(name string, t *Tensor) *gb {
	tp := protoOf(t)
	tp.Name = name
	g.inits = append(g.inits, tp)
	return g
}

func protoOf(t *Tensor) *onnxpb.TensorProto {
	tp := &onnxpb.TensorProto{DataType: int32(t.Type())}
	for _, d := range t.Shape {
		tp.Dims = append(tp.Dims, int64(d))
	}
	switch t.Type() {
	case Float32:
		raw := make([]byte, 4*len(t.Float32))
		for i, v := range t.Float32 {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
		tp.RawData = raw
	case Float64:
		tp.DoubleData = t.Float64
	case Int64:
		tp.Int64Data = t.Int64
	case Int32:
		tp.Int32Data = t.Int32
	case Bool:
		for _, b := range t.Bool {
			v := int32(0)
			if b {
				v = 1
			}
			tp.Int32Data = append(tp.Int32Data, v)
		}
	case Float16: // raw_data, as exporters write it
		raw := make([]byte, 2*len(t.Float16))
		for i, v := range t.Float16 {
			binary.LittleEndian.PutUint16(raw[2*i:], v)
		}
		tp.RawData = raw
	case Uint8:
		for _, v := range t.Uint8 {
			tp.Int32Data = append(tp.Int32Data, int32(v))
		}
	case Int8:
		for _, v := range t.Int8 {
			tp.Int32Data = append(tp.Int32Data, int32(v))
		}
	}
	return tp
}

// node adds a node named after its first output.
func (g *gb) node(op string, ins, outs []string, attrs ...*onnxpb.AttributeProto) *gb {
	g.nodes = append(g.nodes, &onnxpb.NodeProto{Name: op + ":" + outs[0], OpType: op, Input: ins, Output: outs, Attribute: attrs})
	return g
}

func (g *gb) model() *onnxpb.ModelProto {
	m := &onnxpb.ModelProto{
		IrVersion:    g.ir,
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Version: g.opset}},
		ProducerName: "infer-test",
		Graph: &onnxpb.GraphProto{Name: "test", Node: g.nodes, Initializer: g.inits,
			Input: g.inputs, Output: g.outputs},
	}
	for k, v := range g.meta {
		m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: k, Value: v})
	}
	return m
}

func (g *gb) bytes(t testing.TB) []byte {
	t.Helper()
	b, err := proto.Marshal(g.model())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func aInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: v}
}

func aInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS, Ints: v}
}

func aFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_FLOAT, F: v}
}

func aFloats(name string, v ...float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_FLOATS, Floats: v}
}

func aStr(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_STRING, S: []byte(v)}
}

func aTensor(name string, t *Tensor) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_TENSOR, T: protoOf(t)}
}

// f32 and i64 make tensors tersely.
func f32(shape []int, data ...float32) *Tensor { return NewFloat32(shape, data) }
func i64(shape []int, data ...int64) *Tensor   { return NewInt64(shape, data) }

// seq returns 0, 1, … n-1 as float32s (times scale, plus offset).
func seq(n int, scale, offset float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(i)*scale + offset
	}
	return out
}

func sh(d ...int) []int { return d }
