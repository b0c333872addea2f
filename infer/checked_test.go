package infer

import (
	"math"
	"testing"
)

// TestCheckedWindowAndShapeArithmetic: window and shape computations with
// values at the int64 limits are refused (or computed right), never
// wrapped into a plausible wrong geometry: the dilated window of a
// convolution whose kernel is only known when planning, pooling pads not
// smaller than the kernel (ONNX Runtime's rule), Slice steps and starts
// at the limits, Pad crops that overflow, Reshape products.
func TestCheckedWindowAndShapeArithmetic(t *testing.T) {
	const big = 1 << 62
	x5 := f32(sh(5), 0, 1, 2, 3, 4)
	slice := func(start, end, step int64) *gb {
		return newGB(13).in("x", Float32, 5).out("y", Float32).
			init("s", i64(sh(1), start)).init("e", i64(sh(1), end)).init("a", i64(sh(1), 0)).init("st", i64(sh(1), step)).
			node("Slice", []string{"x", "s", "e", "a", "st"}, []string{"y"})
	}
	runOpCases(t, []opCase{
		{name: "conv weight at run time, dilation 2^62", g: newGB(13).in("x", Float32, 1, 1, 4, 4).in("w", Float32, 1, 1, 3, 3).out("y", Float32).
			node("Conv", []string{"x", "w"}, []string{"y"}, aInts("dilations", big, 1), aInts("pads", big, 0, big, 0)),
			err: `node "Conv:y" (Conv): kernel 3 with dilation 4611686018427387904: the dilated window overflows`},
		{name: "conv pads overflow the padded size", g: newGB(13).in("x", Float32, 1, 1, 4, 4).in("w", Float32, 1, 1, 3, 3).out("y", Float32).
			node("Conv", []string{"x", "w"}, []string{"y"}, aInts("pads", math.MaxInt64, 0, math.MaxInt64, 0)),
			err: `the padded size overflows`},
		{name: "averagepool pad equal to kernel", g: newGB(19).in("x", Float32, 1, 1, 4, 4).out("y", Float32).
			node("AveragePool", []string{"x"}, []string{"y"}, aInts("kernel_shape", 2, 2), aInts("pads", 0, 2, 0, 0)),
			err: `pads [0 2 0 0]: pads must be smaller than the kernel (kernel_shape [2 2]), as in ONNX Runtime`},
		{name: "maxpool auto_pad SAME, stride 2^62", g: newGB(13).in("x", Float32, 1, 1, 5, 5).out("y", Float32).
			node("MaxPool", []string{"x"}, []string{"y"}, aInts("kernel_shape", 2, 2), aInts("strides", big, big), aStr("auto_pad", "SAME_UPPER")),
			inputs: in1("x", f32(sh(1, 1, 5, 5), seq(25, 1, 0)...)), want: out1("y", f32(sh(1, 1, 1, 1), 6))},
		{name: "maxpool ceil_mode, stride near the limit", g: newGB(13).in("x", Float32, 1, 1, 1, 5).out("y", Float32).
			node("MaxPool", []string{"x"}, []string{"y"}, aInts("kernel_shape", 1, 2), aInts("strides", 1, math.MaxInt64-1), aInt("ceil_mode", 1)),
			inputs: in1("x", f32(sh(1, 1, 1, 5), 0, 1, 2, 3, 4)), want: out1("y", f32(sh(1, 1, 1, 1), 1))},
		{name: "slice step MaxInt64", g: slice(0, 5, math.MaxInt64), inputs: in1("x", x5), want: out1("y", f32(sh(1), 0))},
		{name: "slice step MinInt64", g: slice(-1, math.MinInt64, math.MinInt64), inputs: in1("x", x5), want: out1("y", f32(sh(1), 4))},
		{name: "slice start MinInt64, end MaxInt64, step 2", g: slice(math.MinInt64, math.MaxInt64, 2), inputs: in1("x", x5), want: out1("y", f32(sh(3), 0, 2, 4))},
		{name: "slice backwards from MaxInt64", g: slice(math.MaxInt64, math.MinInt64, -2), inputs: in1("x", x5), want: out1("y", f32(sh(3), 4, 2, 0))},
		{name: "pad crops of MinInt64", g: newGB(13).in("x", Float32, 5).out("y", Float32).init("p", i64(sh(2), math.MinInt64, math.MinInt64)).
			node("Pad", []string{"x", "p"}, []string{"y"}), err: `pads [-9223372036854775808 -9223372036854775808] crop more than shape [5]`},
		// Found by random mutation (FuzzPlanAndRun's): an empty pads
		// attribute read as nil made Pad-2 look for a pads input, and
		// loading panicked.
		{name: "pad-2 with empty pads", g: newGB(9).in("x", Float32, 5).out("y", Float32).
			node("Pad", []string{"x"}, []string{"y"}, aInts("pads")), err: `pads [] do not fit rank 1`},
		{name: "reshape product overflows", g: newGB(13).in("x", Float32, 5).out("y", Float32).init("s", i64(sh(4), 1<<31, 1<<31, 1<<31, -1)).
			node("Reshape", []string{"x", "s"}, []string{"y"}), err: `shape [2147483648 2147483648 2147483648 -1] is too large`},
	})
}
