package testmodel

import (
	"encoding/binary"
	"math"
	"math/rand/v2"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// ConverterModel is a small graph written by hand in the style of a tool
// whose files we have no exporter for.
type ConverterModel struct {
	Name   string  // e.g. "tf2onnx_nhwc_opset13"
	ONNX   []byte  // the serialised ModelProto
	Input  string  // the one graph input
	Output string  // the output to compare
	Shape  []int64 // the input's declared shape; -1 is the dynamic batch
}

// ONNX element types used here.
const (
	tFloat = int32(onnxpb.TensorProto_FLOAT)
	tInt64 = int32(onnxpb.TensorProto_INT64)
)

// ConverterStyleModels builds the converter-style graphs (random weights
// from seed; seed 0 gives the weights infer's tests have always used):
//   - mxnet_bn_spatial0_opset8: old MXNet, BatchNormalization spatial=0
//     with per-element parameters [C, H, W] after a convolution, and with
//     [C] on the rank-2 output of a fully connected layer (ArcFace's fc1);
//   - tf2onnx_nhwc_opset13: an NHWC input transposed to NCHW and back,
//     ReduceMean pooling, MatMul + Add and a Softmax head;
//   - insightface_prelu_resize_opset11: PRelu per channel and a nearest
//     Resize by scales;
//   - upsample_opset9: Upsample nearest by 3 and linear by 2;
//   - resize_opset10: Resize nearest by 0.6 and linear by 2;
//   - resize_bicubic_opset13: bicubic Resize as TensorFlow exports write
//     it (cubic_coeff_a -0.5, exclude_outside, half_pixel; by sizes, down)
//     then as PyTorch does (-0.75, align_corners, by scales, up).
func ConverterStyleModels(seed uint64) ([]ConverterModel, error) {
	rnd := func(k uint64, shape ...int64) *onnxpb.TensorProto {
		return randTensor(seed+k, shape, func(v float32) float32 { return v })
	}
	mapped := func(k uint64, f func(float32) float32, shape ...int64) *onnxpb.TensorProto {
		return randTensor(seed+k, shape, f)
	}
	bn := func(g *graph, name string, k uint64, shape ...int64) *graph {
		return g.init(name+".s", mapped(k, func(v float32) float32 { return 1 + 0.2*v }, shape...)).
			init(name+".b", mapped(k+1, func(v float32) float32 { return 0.2 * v }, shape...)).
			init(name+".m", mapped(k+2, func(v float32) float32 { return 0.2 * v }, shape...)).
			init(name+".v", mapped(k+3, func(v float32) float32 { return 0.5 + v*v }, shape...))
	}

	mx := newGraph(8).in("data", -1, 3, 8, 8).out("fc1").
		init("w0", rnd(1, 4, 3, 3, 3)).
		node("Conv", []string{"data", "w0"}, []string{"c0"}, aInts("kernel_shape", 3, 3), aInts("pads", 1, 1, 1, 1))
	mx = bn(mx, "bn0", 10, 4, 8, 8).
		node("BatchNormalization", []string{"c0", "bn0.s", "bn0.b", "bn0.m", "bn0.v"}, []string{"n0"}, aInt("spatial", 0), aFloat("epsilon", 2e-5)).
		node("Relu", []string{"n0"}, []string{"r0"}).
		node("Flatten", []string{"r0"}, []string{"f0"}).
		init("wfc", mapped(2, func(v float32) float32 { return 0.1 * v }, 16, 256)).init("bfc", rnd(3, 16)).
		node("Gemm", []string{"f0", "wfc", "bfc"}, []string{"pre"}, aInt("transB", 1))
	mx = bn(mx, "fc1bn", 20, 16).
		node("BatchNormalization", []string{"pre", "fc1bn.s", "fc1bn.b", "fc1bn.m", "fc1bn.v"}, []string{"fc1"}, aInt("spatial", 0), aFloat("epsilon", 2e-5))
	mx.ir = 4 // ONNX Runtime wants IR-3 initializers listed as inputs

	tf := newGraph(13).in("input_1", -1, 8, 8, 3).out("probs").
		node("Transpose", []string{"input_1"}, []string{"nchw"}, aInts("perm", 0, 3, 1, 2)).
		init("w", rnd(4, 6, 3, 3, 3)).init("b", rnd(5, 6)).
		node("Conv", []string{"nchw", "w", "b"}, []string{"c"}, aInts("strides", 2, 2), aStr("auto_pad", "SAME_UPPER")).
		node("Relu", []string{"c"}, []string{"r"}).
		node("Transpose", []string{"r"}, []string{"nhwc"}, aInts("perm", 0, 2, 3, 1)).
		node("ReduceMean", []string{"nhwc"}, []string{"gap"}, aInts("axes", 1, 2), aInt("keepdims", 0)).
		init("k", rnd(6, 6, 5)).init("kb", rnd(7, 5)).
		node("MatMul", []string{"gap", "k"}, []string{"mm"}).
		node("Add", []string{"mm", "kb"}, []string{"logits"}).
		node("Softmax", []string{"logits"}, []string{"probs"}, aInt("axis", -1))

	ins := newGraph(11).in("x", -1, 4, 6, 6).out("y").
		init("w", rnd(8, 4, 4, 3, 3)).
		node("Conv", []string{"x", "w"}, []string{"c"}, aInts("pads", 1, 1, 1, 1)).
		init("slope", mapped(9, func(v float32) float32 { return 0.25 + 0.1*v }, 4, 1, 1)).
		node("PRelu", []string{"c", "slope"}, []string{"p"}).
		init("roi", f32s([]int64{0})).init("scales", f32s([]int64{4}, 1, 1, 2, 2)).
		node("Resize", []string{"p", "roi", "scales"}, []string{"y"}, aStr("coordinate_transformation_mode", "asymmetric"), aStr("nearest_mode", "floor"))

	up := newGraph(9).in("x", -1, 2, 5, 5).out("y").
		init("s3", f32s([]int64{4}, 1, 1, 3, 3)).init("up", f32s([]int64{4}, 1, 1, 2, 2)).
		node("Upsample", []string{"x", "s3"}, []string{"d"}).
		node("Upsample", []string{"d", "up"}, []string{"y"}, aStr("mode", "linear"))

	r10 := newGraph(10).in("x", -1, 2, 5, 5).out("y").
		init("down", f32s([]int64{4}, 1, 1, 0.6, 0.6)).init("up", f32s([]int64{4}, 1, 1, 2, 2)).
		node("Resize", []string{"x", "down"}, []string{"d"}).
		node("Resize", []string{"d", "up"}, []string{"y"}, aStr("mode", "linear"))

	cub := newGraph(13).in("x", -1, 2, 9, 7).out("y").
		init("roi", f32s([]int64{0})).init("none", f32s([]int64{0})).init("up", f32s([]int64{4}, 1, 1, 2.5, 3)).
		node("Shape", []string{"x"}, []string{"shp"}).init("i0", i64s([]int64{1}, 0)).
		node("Gather", []string{"shp", "i0"}, []string{"n"}).init("rest", i64s([]int64{3}, 2, 5, 4)).
		node("Concat", []string{"n", "rest"}, []string{"sizes"}, aInt("axis", 0)).
		node("Resize", []string{"x", "roi", "none", "sizes"}, []string{"d"}, aStr("mode", "cubic"), aFloat("cubic_coeff_a", -0.5),
			aInt("exclude_outside", 1), aStr("coordinate_transformation_mode", "half_pixel")).
		node("Resize", []string{"d", "roi", "up"}, []string{"y"}, aStr("mode", "cubic"), aStr("coordinate_transformation_mode", "align_corners"))

	cases := []struct {
		name, in, out string
		g             *graph
		shape         []int64
	}{
		{"mxnet_bn_spatial0_opset8", "data", "fc1", mx, []int64{-1, 3, 8, 8}},
		{"tf2onnx_nhwc_opset13", "input_1", "probs", tf, []int64{-1, 8, 8, 3}},
		{"insightface_prelu_resize_opset11", "x", "y", ins, []int64{-1, 4, 6, 6}},
		{"upsample_opset9", "x", "y", up, []int64{-1, 2, 5, 5}},
		{"resize_opset10", "x", "y", r10, []int64{-1, 2, 5, 5}},
		{"resize_bicubic_opset13", "x", "y", cub, []int64{-1, 2, 9, 7}},
	}
	var out []ConverterModel
	for _, c := range cases {
		b, err := proto.Marshal(c.g.model())
		if err != nil {
			return nil, err
		}
		out = append(out, ConverterModel{Name: c.name, ONNX: b, Input: c.in, Output: c.out, Shape: c.shape})
	}
	return out, nil
}

// graph builds a small ModelProto.
type graph struct {
	opset, ir int64
	nodes     []*onnxpb.NodeProto
	inits     []*onnxpb.TensorProto
	inputs    []*onnxpb.ValueInfoProto
	outputs   []*onnxpb.ValueInfoProto
}

// newGraph picks the IR version that goes with opset.
func newGraph(opset int64) *graph {
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
	}
	return &graph{opset: opset, ir: ir}
}

// in declares a float32 graph input; a negative dim is dynamic ("N").
func (g *graph) in(name string, dims ...int64) *graph {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		if d < 0 {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}})
		} else {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
	}
	g.inputs = append(g.inputs, &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: tFloat, Shape: shape}}}})
	return g
}

// out declares a float32 graph output (shape not declared).
func (g *graph) out(name string) *graph {
	g.outputs = append(g.outputs, &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: tFloat}}}})
	return g
}

func (g *graph) init(name string, t *onnxpb.TensorProto) *graph {
	t.Name = name
	g.inits = append(g.inits, t)
	return g
}

// node adds a node named after its first output.
func (g *graph) node(op string, ins, outs []string, attrs ...*onnxpb.AttributeProto) *graph {
	g.nodes = append(g.nodes, &onnxpb.NodeProto{Name: op + ":" + outs[0], OpType: op, Input: ins, Output: outs, Attribute: attrs})
	return g
}

func (g *graph) model() *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:    g.ir,
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Version: g.opset}},
		ProducerName: "infer-test",
		Graph: &onnxpb.GraphProto{Name: "test", Node: g.nodes, Initializer: g.inits,
			Input: g.inputs, Output: g.outputs},
	}
}

// randTensor is a float32 tensor of standard normal values (the stream
// infer's tests call randT(seed, shape...)), each passed through f.
func randTensor(seed uint64, shape []int64, f func(float32) float32) *onnxpb.TensorProto {
	r := rand.New(rand.NewPCG(seed, 3))
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	d := make([]float32, n)
	for i := range d {
		d[i] = f(float32(r.NormFloat64()))
	}
	return f32s(shape, d...)
}

// f32s is a float32 tensor stored as raw_data, as exporters write it.
func f32s(shape []int64, data ...float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &onnxpb.TensorProto{DataType: tFloat, Dims: shape, RawData: raw}
}

func i64s(shape []int64, data ...int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{DataType: tInt64, Dims: shape, Int64Data: data}
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

func aStr(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_STRING, S: []byte(v)}
}
