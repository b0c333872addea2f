package infer

import (
	"math"
	"testing"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// TestAddedOps covers PRelu, Expand, ArgMax, InstanceNormalization and the
// BatchNormalization modes beyond inference with per-channel statistics
// (spatial=0, training) on hand-computed cases; the ONNX node tests run
// them too.
func TestAddedOps(t *testing.T) {
	x4 := f32(sh(1, 2, 1, 2), -2, 3, -4, 5)
	inv := float32(1 / math.Sqrt(1.25))
	bnTrain := func(opset int64, outs []string, attrs ...*onnxpb.AttributeProto) *gb {
		g := newGB(opset).in("x", Float32, 2, 1, 1, 2).init("s", f32(sh(1), 1)).init("b", f32(sh(1), 0)).
			init("m", f32(sh(1), 0)).init("v", f32(sh(1), 1))
		for _, o := range outs {
			if o != "" {
				g.out(o, Float32)
			}
		}
		return g.node("BatchNormalization", []string{"x", "s", "b", "m", "v"}, outs, append(attrs, aFloat("epsilon", 0))...)
	}
	bnX := f32(sh(2, 1, 1, 2), 1, 2, 3, 4)
	bnY := f32(sh(2, 1, 1, 2), -1.5*inv, -0.5*inv, 0.5*inv, 1.5*inv)
	runOpCases(t, []opCase{
		{name: "PRelu per channel", g: newGB(16).in("x", Float32, 1, 2, 1, 2).out("y", Float32).init("s", f32(sh(2, 1, 1), 0.5, 0.25)).
			node("PRelu", []string{"x", "s"}, []string{"y"}),
			inputs: in1("x", x4), want: out1("y", f32(sh(1, 2, 1, 2), -1, 3, -1, 5))},
		{name: "PRelu scalar slope", g: newGB(9).in("x", Float32, 1, 2, 1, 2).out("y", Float32).init("s", f32(sh(1), 0.1)).
			node("PRelu", []string{"x", "s"}, []string{"y"}),
			inputs: in1("x", x4), want: out1("y", f32(sh(1, 2, 1, 2), -0.2, 3, -0.4, 5))},
		{name: "PRelu slope larger than X", g: newGB(16).in("x", Float32, 2).out("y", Float32).init("s", f32(sh(2, 2), 1, 2, 3, 4)).
			node("PRelu", []string{"x", "s"}, []string{"y"}),
			inputs: in1("x", f32(sh(2), 1, 2)), err: "does not broadcast to X's shape"},
		{name: "Expand to a higher rank", g: newGB(13).in("x", Float32, 3, 1).out("y", Float32).init("s", i64(sh(3), 2, 1, 2)).
			node("Expand", []string{"x", "s"}, []string{"y"}),
			inputs: in1("x", f32(sh(3, 1), 1, 2, 3)), want: out1("y", f32(sh(2, 3, 2), 1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3))},
		{name: "Expand with ones keeps larger dims", g: newGB(13).in("x", Int64, 2, 3).out("y", Int64).init("s", i64(sh(2), 1, 1)).
			node("Expand", []string{"x", "s"}, []string{"y"}),
			inputs: in1("x", i64(sh(2, 3), 1, 2, 3, 4, 5, 6)), want: out1("y", i64(sh(2, 3), 1, 2, 3, 4, 5, 6))},
		{name: "Expand incompatible", g: newGB(13).in("x", Float32, 3).out("y", Float32).init("s", i64(sh(1), 2)).
			node("Expand", []string{"x", "s"}, []string{"y"}),
			inputs: in1("x", f32(sh(3), 1, 2, 3)), err: "cannot be broadcast"},
		{name: "Expand negative dimension", g: newGB(13).in("x", Float32, 3).out("y", Float32).init("s", i64(sh(1), -3)).
			node("Expand", []string{"x", "s"}, []string{"y"}),
			inputs: in1("x", f32(sh(3), 1, 2, 3)), err: "out of range"},
		{name: "Expand shape at the int64 limit", g: newGB(13).in("x", Float32, 1).out("y", Float32).init("s", i64(sh(1), math.MaxInt64)).
			node("Expand", []string{"x", "s"}, []string{"y"}),
			inputs: in1("x", f32(sh(1), 1)), err: "out of range"},
		{name: "ArgMax axis 1 keepdims, last index", g: newGB(13).in("x", Float32, 2, 3).out("y", Int64).
			node("ArgMax", []string{"x"}, []string{"y"}, aInt("axis", 1), aInt("select_last_index", 1)),
			inputs: in1("x", f32(sh(2, 3), 1, 5, 5, 7, 2, 7)), want: out1("y", i64(sh(2, 1), 2, 2))},
		{name: "ArgMax axis -2 no keepdims, int64", g: newGB(13).in("x", Int64, 2, 3).out("y", Int64).
			node("ArgMax", []string{"x"}, []string{"y"}, aInt("axis", -2), aInt("keepdims", 0)),
			inputs: in1("x", i64(sh(2, 3), 1, 5, 5, 7, 2, 7)), want: out1("y", i64(sh(3), 1, 0, 1))},
		{name: "ArgMax over an empty axis", g: newGB(13).in("x", Float32, 2, 0).out("y", Int64).
			node("ArgMax", []string{"x"}, []string{"y"}, aInt("axis", 1)),
			inputs: in1("x", f32(sh(2, 0))), err: "empty axis"},
		{name: "InstanceNormalization", g: newGB(13).in("x", Float32, 1, 2, 1, 2).out("y", Float32).
			init("s", f32(sh(2), 1, 2)).init("b", f32(sh(2), 0, 10)).
			node("InstanceNormalization", []string{"x", "s", "b"}, []string{"y"}, aFloat("epsilon", 0)),
			inputs: in1("x", x4), want: out1("y", f32(sh(1, 2, 1, 2), -1, 1, 8, 12))},
		{name: "InstanceNormalization rank 2", g: newGB(13).in("x", Float32, 1, 2).out("y", Float32).
			init("s", f32(sh(2), 1, 2)).init("b", f32(sh(2), 0, 10)).
			node("InstanceNormalization", []string{"x", "s", "b"}, []string{"y"}),
			inputs: in1("x", f32(sh(1, 2), 1, 2)), err: "rank 3 or more"},
		{name: "BatchNormalization spatial=0, per element", g: newGB(7).in("x", Float32, 2, 2, 1, 1).out("y", Float32).
			init("s", f32(sh(2, 1, 1), 1, 2)).init("b", f32(sh(2, 1, 1), 0, 1)).init("m", f32(sh(2, 1, 1), 1, -1)).init("v", f32(sh(2, 1, 1), 1, 1)).
			node("BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y"}, aInt("spatial", 0), aFloat("epsilon", 0)),
			inputs: in1("x", f32(sh(2, 2, 1, 1), 1, 2, 3, 4)), want: out1("y", f32(sh(2, 2, 1, 1), 0, 7, 2, 11))},
		{name: "BatchNormalization spatial=0, rank 2 with [C]", g: newGB(8).in("x", Float32, 2, 2).out("y", Float32).
			init("s", f32(sh(2), 1, 2)).init("b", f32(sh(2), 0, 1)).init("m", f32(sh(2), 1, -1)).init("v", f32(sh(2), 1, 1)).
			node("BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y"}, aInt("spatial", 0), aFloat("epsilon", 0)),
			inputs: in1("x", f32(sh(2, 2), 1, 2, 3, 4)), want: out1("y", f32(sh(2, 2), 0, 7, 2, 11))},
		{name: "BatchNormalization spatial=0 with [C] on images (ORT refuses too)", g: newGB(7).in("x", Float32, 1, 2, 1, 2).out("y", Float32).
			init("s", f32(sh(2), 1, 2)).init("b", f32(sh(2), 0, 1)).init("m", f32(sh(2), 1, -1)).init("v", f32(sh(2), 1, 1)).
			node("BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y"}, aInt("spatial", 0)),
			inputs: in1("x", x4), err: "with spatial=0 it must be X's shape without the batch, [2 1 2]"},
		{name: "BatchNormalization training_mode=1, running statistics", g: bnTrain(15, []string{"y", "rm", "rv"}, aInt("training_mode", 1)),
			inputs: in1("x", bnX), want: map[string]*Tensor{"y": bnY, "rm": f32(sh(1), 0.25), "rv": f32(sh(1), 1.025)}},
		{name: "BatchNormalization training_mode=1, Y only", g: bnTrain(14, []string{"y"}, aInt("training_mode", 1)),
			inputs: in1("x", bnX), want: out1("y", bnY)},
		{name: "BatchNormalization-9 training (five outputs, as ORT)", g: bnTrain(9, []string{"y", "rm", "rv", "sm", "sv"}),
			inputs: in1("x", bnX), want: map[string]*Tensor{"y": bnY, "rm": f32(sh(1), 0.25), "rv": f32(sh(1), 1.025), "sm": f32(sh(1), 2.5), "sv": f32(sh(1), inv)}},
		{name: "BatchNormalization-15 extra outputs without training_mode", g: bnTrain(15, []string{"y", "rm", "rv"}),
			err: "has one when training_mode=0"},
	})
}

// TestEqualWhere covers the shape arithmetic PyTorch writes for
// x.expand(n, -1, h, w): Where(Equal(shape, -1), ones, shape).
func TestEqualWhere(t *testing.T) {
	bools := func(shape []int, v ...bool) *Tensor { return &Tensor{Shape: shape, DType: Bool, Bool: v} }
	runOpCases(t, []opCase{
		{name: "Equal int64 broadcast", g: newGB(13).in("a", Int64, 4).out("y", Bool).init("b", i64(sh(), -1)).
			node("Equal", []string{"a", "b"}, []string{"y"}),
			inputs: in1("a", i64(sh(4), 2, -1, 8, -1)), want: out1("y", bools(sh(4), false, true, false, true))},
		{name: "Equal float32 2-D", g: newGB(19).in("a", Float32, 2, 1).in("b", Float32, 3).out("y", Bool).
			node("Equal", []string{"a", "b"}, []string{"y"}),
			inputs: map[string]*Tensor{"a": f32(sh(2, 1), 1, 2), "b": f32(sh(3), 1, 2, 3)},
			want:   out1("y", bools(sh(2, 3), true, false, false, false, true, false))},
		{name: "Equal mixed types", g: newGB(13).in("a", Int64, 2).in("b", Float32, 2).out("y", Bool).
			node("Equal", []string{"a", "b"}, []string{"y"}), err: "different element types"},
		{name: "Where broadcast", g: newGB(16).in("c", Bool, 2, 1).in("x", Float32, 3).out("y", Float32).init("z", f32(sh(), -1)).
			node("Where", []string{"c", "x", "z"}, []string{"y"}),
			inputs: map[string]*Tensor{"c": bools(sh(2, 1), true, false), "x": f32(sh(3), 1, 2, 3)},
			want:   out1("y", f32(sh(2, 3), 1, 2, 3, -1, -1, -1))},
		{name: "Where condition not bool", g: newGB(16).in("c", Float32, 2).in("x", Float32, 2).in("z", Float32, 2).out("y", Float32).
			node("Where", []string{"c", "x", "z"}, []string{"y"}), err: "input 0 (condition) is float32"},
		{name: "Equal and Where feeding Expand, as torch exports x.expand(n, -1, h, w)", g: newGB(13).in("x", Float32, 2, 3, 1, 1).out("y", Float32).
			init("p", f32(sh(1, 3, 1, 1), 1, 2, 3)).init("m1", i64(sh(), -1)).init("one", i64(sh(4), 1, 1, 1, 1)).
			node("Shape", []string{"x"}, []string{"s"}).
			init("want", i64(sh(4), 2, -1, 2, 2)).
			node("Equal", []string{"want", "m1"}, []string{"eq"}).
			node("Where", []string{"eq", "one", "want"}, []string{"shape"}).
			node("Expand", []string{"p", "shape"}, []string{"e"}).
			node("ReduceMean", []string{"e"}, []string{"m"}, aInts("axes", 2, 3)).
			node("Add", []string{"x", "m"}, []string{"y"}),
			inputs: in1("x", f32(sh(2, 3, 1, 1), 0, 0, 0, 1, 1, 1)), want: out1("y", f32(sh(2, 3, 1, 1), 1, 2, 3, 2, 3, 4))},
	})
}

// TestHalfConversion: every float16 bit pattern survives float32 and back
// exactly; values between two float16s round to the nearer, ties to even;
// overflow goes to infinity.
func TestHalfConversion(t *testing.T) {
	for h := range 1 << 16 {
		f := halfToFloat32(uint16(h))
		if f != f {
			if got := halfFromFloat64(float64(f)); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, got)
			}
			continue
		}
		if got := halfFromFloat64(float64(f)); got != uint16(h) {
			t.Fatalf("%#04x (%g) came back as %#04x", h, f, got)
		}
	}
	for _, c := range []struct {
		in   float64
		want uint16
	}{
		{1 + 0x1p-11, 0x3c00},        // tie: to even (1)
		{1 + 3*0x1p-11, 0x3c02},      // tie: to even (1+2^-9)
		{1 + 0x1p-11 + 1e-9, 0x3c01}, // above the tie
		{65504, 0x7bff}, {65519.9, 0x7bff}, {65520, 0x7c00}, {1e9, 0x7c00}, {-1e9, 0xfc00},
		{0x1p-24, 0x0001}, {0x1p-25, 0x0000}, {0x1p-25 * 3, 0x0002}, {-0x1p-14, 0x8400},
		{math.Inf(1), 0x7c00},
	} {
		if got := halfFromFloat64(c.in); got != c.want {
			t.Errorf("halfFromFloat64(%g) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
}

// TestEdgeTypes: uint8 and int8 inputs cast in the graph (image bytes
// preprocessed inside the model), float16 weights, inputs and outputs
// computed in float32, casts to the edge types, and what is refused.
func TestEdgeTypes(t *testing.T) {
	u8 := func(shape []int, v ...uint8) *Tensor { return &Tensor{Shape: shape, DType: Uint8, Uint8: v} }
	i8 := func(shape []int, v ...int8) *Tensor { return &Tensor{Shape: shape, DType: Int8, Int8: v} }
	f16 := func(shape []int, v ...float32) *Tensor {
		t := &Tensor{Shape: shape, DType: Float16}
		for _, x := range v {
			t.Float16 = append(t.Float16, halfFromFloat64(float64(x)))
		}
		return t
	}
	f16init := func(shape []int, v ...float32) *Tensor { return f16(shape, v...) }
	runOpCases(t, []opCase{
		{name: "uint8 NHWC image cast, scaled and transposed", g: newGB(13).in("x", Uint8, 1, 1, 2, 3).out("y", Float32).
			init("s", f32(sh(), 1.0/255)).
			node("Cast", []string{"x"}, []string{"f"}, aInt("to", int64(Float32))).
			node("Mul", []string{"f", "s"}, []string{"m"}).
			node("Transpose", []string{"m"}, []string{"y"}, aInts("perm", 0, 3, 1, 2)),
			inputs: in1("x", u8(sh(1, 1, 2, 3), 0, 255, 51, 102, 204, 153)),
			want:   out1("y", f32(sh(1, 3, 1, 2), 0, 0.4, 1, 0.8, 0.2, 0.6))},
		{name: "int8 input to float", g: newGB(13).in("x", Int8, 3).out("y", Float32).
			node("Cast", []string{"x"}, []string{"y"}, aInt("to", int64(Float32))),
			inputs: in1("x", i8(sh(3), -128, 0, 127)), want: out1("y", f32(sh(3), -128, 0, 127))},
		{name: "float to uint8 truncates and wraps", g: newGB(13).in("x", Float32, 4).out("y", Uint8).
			node("Cast", []string{"x"}, []string{"y"}, aInt("to", int64(Uint8))),
			inputs: in1("x", f32(sh(4), 1.9, 255, 256, 300)), want: out1("y", u8(sh(4), 1, 255, 0, 44))},
		{name: "uint8 to int8 wraps", g: newGB(13).in("x", Uint8, 2).out("y", Int8).
			node("Cast", []string{"x"}, []string{"y"}, aInt("to", int64(Int8))),
			inputs: in1("x", u8(sh(2), 127, 200)), want: out1("y", i8(sh(2), 127, -56))},
		{name: "uint8 moved (Reshape, Identity) stays uint8", g: newGB(13).in("x", Uint8, 2, 2).out("y", Uint8).init("s", i64(sh(1), 4)).
			node("Reshape", []string{"x", "s"}, []string{"r"}).node("Identity", []string{"r"}, []string{"y"}),
			inputs: in1("x", u8(sh(2, 2), 1, 2, 3, 250)), want: out1("y", u8(sh(4), 1, 2, 3, 250))},
		{name: "uint8 arithmetic refused", g: newGB(14).in("a", Uint8, 2).in("b", Uint8, 2).out("y", Uint8).
			node("Add", []string{"a", "b"}, []string{"y"}), err: "input 0 (A) is uint8"},
		{name: "float16 input, weights and output computed in float32", g: newGB(13).in("x", Float16, 1, 1, 2, 2).out("y", Float16).
			init("w", f16init(sh(1, 1, 1, 1), 0.5)).init("b", f16init(sh(1), 0.25)).
			node("Conv", []string{"x", "w", "b"}, []string{"c"}).node("Relu", []string{"c"}, []string{"y"}),
			inputs: in1("x", f16(sh(1, 1, 2, 2), 1, -2, 3, 0.1)), want: out1("y", f16(sh(1, 1, 2, 2), 0.75, 0, 1.75, 0.3))},
		{name: "float16 weights cast from float32 input, float32 output", g: newGB(13).in("x", Float32, 2).out("y", Float32).
			init("w", f16init(sh(2), 1.5, -2)).
			node("Cast", []string{"x"}, []string{"h"}, aInt("to", int64(Float16))).
			node("Mul", []string{"h", "w"}, []string{"m"}).
			node("Cast", []string{"m"}, []string{"y"}, aInt("to", int64(Float32))),
			inputs: in1("x", f32(sh(2), 1.0001, 3)), want: out1("y", f32(sh(2), 1.5, -6))},
		{name: "float16 output of a constant", g: newGB(13).in("x", Float32, 1).out("y", Float16).out("z", Float32).
			init("c", f16init(sh(2), 0.5, 65504)).node("Identity", []string{"c"}, []string{"y"}).node("Identity", []string{"x"}, []string{"z"}),
			inputs: in1("x", f32(sh(1), 1)), want: map[string]*Tensor{"y": f16(sh(2), 0.5, 65504), "z": f32(sh(1), 1)}},
		{name: "float16 and float32 mixed refused", g: newGB(14).in("a", Float16, 2).in("b", Float32, 2).out("y", Float16).
			node("Add", []string{"a", "b"}, []string{"y"}), err: "different element types"},
		{name: "float16 input given as float32 refused", g: newGB(13).in("x", Float16, 2).out("y", Float16).
			node("Relu", []string{"x"}, []string{"y"}),
			inputs: in1("x", f32(sh(2), 1, 2)), err: "input \"x\" is float32, the model wants float16"},
	})
}

// TestResize covers the Resize forms the node tests do not: linear with
// asymmetric and pytorch_half_pixel coordinates at a size of 1, nearest
// on a non-image rank, and what is refused.
func TestResize(t *testing.T) {
	x := f32(sh(1, 1, 2, 2), 1, 2, 3, 4)
	resize := func(attrs ...*onnxpb.AttributeProto) *gb {
		return newGB(13).in("x", Float32, 1, 1, 2, 2).out("y", Float32).init("s", f32(sh(4), 1, 1, 2, 2)).
			node("Resize", []string{"x", "", "s"}, []string{"y"}, attrs...)
	}
	runOpCases(t, []opCase{
		{name: "linear asymmetric x2", g: resize(aStr("mode", "linear"), aStr("coordinate_transformation_mode", "asymmetric")),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 1, 4, 4), 1, 1.5, 2, 2, 2, 2.5, 3, 3, 3, 3.5, 4, 4, 3, 3.5, 4, 4))},
		{name: "nearest asymmetric floor x2", g: resize(aStr("coordinate_transformation_mode", "asymmetric"), aStr("nearest_mode", "floor")),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 1, 4, 4), 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4))},
		{name: "linear pytorch_half_pixel to one pixel", g: newGB(13).in("x", Float32, 1, 1, 2, 2).out("y", Float32).init("z", i64(sh(4), 1, 1, 1, 1)).
			node("Resize", []string{"x", "", "", "z"}, []string{"y"}, aStr("mode", "linear"), aStr("coordinate_transformation_mode", "pytorch_half_pixel")),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 1, 1, 1), 1))},
		{name: "nearest rank 1 by sizes", g: newGB(13).in("x", Float32, 3).out("y", Float32).init("z", i64(sh(1), 6)).
			node("Resize", []string{"x", "", "", "z"}, []string{"y"}),
			inputs: in1("x", f32(sh(3), 1, 2, 3)), want: out1("y", f32(sh(6), 1, 1, 2, 2, 3, 3))},
		{name: "linear over channels refused", g: newGB(13).in("x", Float32, 1, 1, 2, 2).out("y", Float32).init("s", f32(sh(4), 1, 2, 2, 2)).
			node("Resize", []string{"x", "", "s"}, []string{"y"}, aStr("mode", "linear")),
			inputs: in1("x", x), err: "only the last two dimensions can change"},
		{name: "tf_crop_and_resize refused", g: resize(aStr("mode", "linear"), aStr("coordinate_transformation_mode", "tf_crop_and_resize")),
			err: "tf_crop_and_resize is not supported"},
		{name: "scales and sizes both", g: newGB(13).in("x", Float32, 1, 1, 2, 2).out("y", Float32).init("s", f32(sh(4), 1, 1, 2, 2)).init("z", i64(sh(4), 1, 1, 4, 4)).
			node("Resize", []string{"x", "", "s", "z"}, []string{"y"}),
			inputs: in1("x", x), err: "scales and sizes are both given"},
		{name: "zero scale", g: newGB(13).in("x", Float32, 1, 1, 2, 2).out("y", Float32).init("s", f32(sh(4), 1, 1, 0, 2)).
			node("Resize", []string{"x", "", "s"}, []string{"y"}),
			inputs: in1("x", x), err: "is not a positive scale"},
		{name: "huge scale", g: newGB(13).in("x", Float32, 1, 1, 2, 2).out("y", Float32).init("s", f32(sh(4), 1, 1, 1e30, 2)).
			node("Resize", []string{"x", "", "s"}, []string{"y"}),
			inputs: in1("x", x), err: "is not a positive scale within the size limit"},
		{name: "Resize-10 nearest x2 (Upsample's semantics)", g: newGB(10).in("x", Float32, 1, 1, 2, 2).out("y", Float32).init("s", f32(sh(4), 1, 1, 2, 2)).
			node("Resize", []string{"x", "s"}, []string{"y"}),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 1, 4, 4), 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4))},
		{name: "Upsample-7 bilinear x2 (asymmetric)", g: newGB(8).in("x", Float32, 1, 1, 2, 2).out("y", Float32).
			node("Upsample", []string{"x"}, []string{"y"}, aStr("mode", "linear"), aFloats("scales", 1, 1, 2, 2)),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 1, 4, 4), 1, 1.5, 2, 2, 2, 2.5, 3, 3, 3, 3.5, 4, 4, 3, 3.5, 4, 4))},
		{name: "Resize-10 nearest downsampling by 0.6 takes the ceiling (ONNX Runtime)", g: newGB(10).in("x", Float32, 5).out("y", Float32).init("s", f32(sh(1), 0.6)).
			node("Resize", []string{"x", "s"}, []string{"y"}),
			inputs: in1("x", f32(sh(5), 0, 1, 2, 3, 4)), want: out1("y", f32(sh(3), 0, 2, 4))},
		{name: "Upsample-9 scale below 1 refused (as ONNX Runtime)", g: newGB(9).in("x", Float32, 5).out("y", Float32).init("s", f32(sh(1), 0.6)).
			node("Upsample", []string{"x", "s"}, []string{"y"}),
			inputs: in1("x", f32(sh(5), 0, 1, 2, 3, 4)), err: "Upsample scales must be at least 1"},
		{name: "Upsample at opset 10 refused", g: newGB(10).in("x", Float32, 1, 1, 2, 2).out("y", Float32).init("s", f32(sh(4), 1, 1, 2, 2)).
			node("Upsample", []string{"x", "s"}, []string{"y"}), err: "Upsample is deprecated from opset 10"},
	})
}

// TestSliceInt64Limits: the "to the end" idioms exporters write, with
// steps and bounds at the int64 limits on several axes of an image
// tensor (x[:, :, ::2, ::2] as torch writes it, and a step of INT64_MAX,
// which takes the first element), run without overflow.
func TestSliceInt64Limits(t *testing.T) {
	x := f32(sh(1, 2, 3, 4), seq(24, 1, 0)...)
	slice := func(starts, ends, axes, steps []int64) *gb {
		return newGB(13).in("x", Float32, 1, 2, 3, 4).out("y", Float32).
			init("s", i64(sh(len(starts)), starts...)).init("e", i64(sh(len(ends)), ends...)).
			init("a", i64(sh(len(axes)), axes...)).init("st", i64(sh(len(steps)), steps...)).
			node("Slice", []string{"x", "s", "e", "a", "st"}, []string{"y"})
	}
	runOpCases(t, []opCase{
		{name: "x[:, :, ::2, ::2] with ends INT64_MAX", g: slice([]int64{0, 0}, []int64{math.MaxInt64, math.MaxInt64}, []int64{2, 3}, []int64{2, 2}),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 2, 2, 2), 0, 2, 8, 10, 12, 14, 20, 22))},
		{name: "step INT64_MAX on two axes", g: slice([]int64{0, 1}, []int64{math.MaxInt64, math.MaxInt64}, []int64{-2, -1}, []int64{math.MaxInt64, math.MaxInt64}),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 2, 1, 1), 1, 13))},
		{name: "reversed from INT64_MAX to INT64_MIN with step INT64_MIN", g: slice([]int64{math.MaxInt64}, []int64{math.MinInt64}, []int64{3}, []int64{math.MinInt64}),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 2, 3, 1), 3, 7, 11, 15, 19, 23))},
	})
}
