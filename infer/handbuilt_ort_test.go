package infer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/resnetctl/resnetctl/internal/interop"
)

// TestHandBuiltAgainstORT runs graphs written in the style of tools whose
// files we have no exporter for, in this runtime and in ONNX Runtime at
// batch 1 and 2, within 1e-4·(1+max|ref|):
//   - old MXNet (opset 8): BatchNormalization spatial=0 with per-element
//     parameters [C, H, W] after a convolution, and with [C] on the
//     rank-2 output of a fully connected layer (ArcFace's fc1);
//   - tf2onnx (opset 13): an NHWC input transposed to NCHW and back,
//     ReduceMean pooling, MatMul + Add and a Softmax head;
//   - an insightface-style block (opset 11): PRelu per channel and a
//     nearest Resize by scales;
//   - opset-9 Upsample (PyTorch's F.interpolate at opset 9), nearest by 3
//     and linear by 2, and opset-10 Resize: nearest downsampling by 0.6
//     (where ONNX Runtime takes the ceiling) and linear upsampling by 2;
//   - bicubic Resize as TensorFlow exports write it (opset 13,
//     cubic_coeff_a -0.5, exclude_outside, half_pixel; by sizes, down
//     then up) and as PyTorch does (-0.75, align_corners, by scales).
func TestHandBuiltAgainstORT(t *testing.T) {
	interop.RequireORT(t)
	pos := func(seed uint64, shape ...int) *Tensor {
		return mapT(randT(seed, shape...), func(_ int, v float32) float32 { return 0.5 + v*v })
	}
	bn := func(g *gb, name string, seed uint64, shape ...int) *gb {
		return g.init(name+".s", mapT(randT(seed, shape...), func(_ int, v float32) float32 { return 1 + 0.2*v })).
			init(name+".b", mapT(randT(seed+1, shape...), func(_ int, v float32) float32 { return 0.2 * v })).
			init(name+".m", mapT(randT(seed+2, shape...), func(_ int, v float32) float32 { return 0.2 * v })).
			init(name+".v", pos(seed+3, shape...))
	}
	mx := newGB(8).in("data", Float32, -1, 3, 8, 8).out("fc1", Float32).
		init("w0", randT(1, 4, 3, 3, 3)).
		node("Conv", []string{"data", "w0"}, []string{"c0"}, aInts("kernel_shape", 3, 3), aInts("pads", 1, 1, 1, 1))
	mx = bn(mx, "bn0", 10, 4, 8, 8).
		node("BatchNormalization", []string{"c0", "bn0.s", "bn0.b", "bn0.m", "bn0.v"}, []string{"n0"}, aInt("spatial", 0), aFloat("epsilon", 2e-5)).
		node("Relu", []string{"n0"}, []string{"r0"}).
		node("Flatten", []string{"r0"}, []string{"f0"}).
		init("wfc", mapT(randT(2, 16, 256), func(_ int, v float32) float32 { return 0.1 * v })).init("bfc", randT(3, 16)).
		node("Gemm", []string{"f0", "wfc", "bfc"}, []string{"pre"}, aInt("transB", 1))
	mx = bn(mx, "fc1bn", 20, 16).
		node("BatchNormalization", []string{"pre", "fc1bn.s", "fc1bn.b", "fc1bn.m", "fc1bn.v"}, []string{"fc1"}, aInt("spatial", 0), aFloat("epsilon", 2e-5))
	mx.ir = 4 // ONNX Runtime wants IR-3 initializers listed as inputs

	tf := newGB(13).in("input_1", Float32, -1, 8, 8, 3).out("probs", Float32).
		node("Transpose", []string{"input_1"}, []string{"nchw"}, aInts("perm", 0, 3, 1, 2)).
		init("w", randT(4, 6, 3, 3, 3)).init("b", randT(5, 6)).
		node("Conv", []string{"nchw", "w", "b"}, []string{"c"}, aInts("strides", 2, 2), aStr("auto_pad", "SAME_UPPER")).
		node("Relu", []string{"c"}, []string{"r"}).
		node("Transpose", []string{"r"}, []string{"nhwc"}, aInts("perm", 0, 2, 3, 1)).
		node("ReduceMean", []string{"nhwc"}, []string{"gap"}, aInts("axes", 1, 2), aInt("keepdims", 0)).
		init("k", randT(6, 6, 5)).init("kb", randT(7, 5)).
		node("MatMul", []string{"gap", "k"}, []string{"mm"}).
		node("Add", []string{"mm", "kb"}, []string{"logits"}).
		node("Softmax", []string{"logits"}, []string{"probs"}, aInt("axis", -1))

	ins := newGB(11).in("x", Float32, -1, 4, 6, 6).out("y", Float32).
		init("w", randT(8, 4, 4, 3, 3)).
		node("Conv", []string{"x", "w"}, []string{"c"}, aInts("pads", 1, 1, 1, 1)).
		init("slope", mapT(randT(9, 4, 1, 1), func(_ int, v float32) float32 { return 0.25 + 0.1*v })).
		node("PRelu", []string{"c", "slope"}, []string{"p"}).
		init("roi", f32(sh(0))).init("scales", f32(sh(4), 1, 1, 2, 2)).
		node("Resize", []string{"p", "roi", "scales"}, []string{"y"}, aStr("coordinate_transformation_mode", "asymmetric"), aStr("nearest_mode", "floor"))

	up := newGB(9).in("x", Float32, -1, 2, 5, 5).out("y", Float32).
		init("s3", f32(sh(4), 1, 1, 3, 3)).init("up", f32(sh(4), 1, 1, 2, 2)).
		node("Upsample", []string{"x", "s3"}, []string{"d"}).
		node("Upsample", []string{"d", "up"}, []string{"y"}, aStr("mode", "linear"))
	r10 := newGB(10).in("x", Float32, -1, 2, 5, 5).out("y", Float32).
		init("down", f32(sh(4), 1, 1, 0.6, 0.6)).init("up", f32(sh(4), 1, 1, 2, 2)).
		node("Resize", []string{"x", "down"}, []string{"d"}).
		node("Resize", []string{"d", "up"}, []string{"y"}, aStr("mode", "linear"))

	cub := newGB(13).in("x", Float32, -1, 2, 9, 7).out("y", Float32).
		init("roi", f32(sh(0))).init("none", f32(sh(0))).init("up", f32(sh(4), 1, 1, 2.5, 3)).
		node("Shape", []string{"x"}, []string{"shp"}).init("i0", i64(sh(1), 0)).
		node("Gather", []string{"shp", "i0"}, []string{"n"}).init("rest", i64(sh(3), 2, 5, 4)).
		node("Concat", []string{"n", "rest"}, []string{"sizes"}, aInt("axis", 0)).
		node("Resize", []string{"x", "roi", "none", "sizes"}, []string{"d"}, aStr("mode", "cubic"), aFloat("cubic_coeff_a", -0.5),
			aInt("exclude_outside", 1), aStr("coordinate_transformation_mode", "half_pixel")).
		node("Resize", []string{"d", "roi", "up"}, []string{"y"}, aStr("mode", "cubic"), aStr("coordinate_transformation_mode", "align_corners"))

	cases := []struct {
		name, in, out string
		g             *gb
		dims          []int
	}{
		{"mxnet_bn_spatial0_opset8", "data", "fc1", mx, []int{3, 8, 8}},
		{"tf2onnx_nhwc_opset13", "input_1", "probs", tf, []int{8, 8, 3}},
		{"insightface_prelu_resize_opset11", "x", "y", ins, []int{4, 6, 6}},
		{"upsample_opset9", "x", "y", up, []int{2, 5, 5}},
		{"resize_opset10", "x", "y", r10, []int{2, 5, 5}},
		{"resize_bicubic_opset13", "x", "y", cub, []int{2, 9, 7}},
	}
	dir := t.TempDir()
	var jobs []interop.Job
	var inputs []*Tensor
	for i, c := range cases {
		path := filepath.Join(dir, c.name+".onnx")
		if err := os.WriteFile(path, c.g.bytes(t), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 2} {
			x := randT(uint64(100+10*i+n), append([]int{n}, c.dims...)...)
			inputs = append(inputs, x)
			jobs = append(jobs, interop.Job{Model: path, Inputs: map[string]interop.Tensor{c.in: {Dims: x.Shape, Data: x.Float32}}})
		}
	}
	results, err := interop.ORT(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	for k, res := range results {
		c := cases[k/2]
		if res.Err != "" {
			t.Errorf("%s: ONNX Runtime: %s", c.name, res.Err)
			continue
		}
		s, err := LoadBytes(c.g.bytes(t), Options{Threads: 2})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		got, err := s.Run(context.Background(), map[string]*Tensor{c.in: inputs[k]})
		s.Close()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		want, g := res.Outputs[c.out], got[c.out]
		if g == nil || !slices.Equal(g.Shape, want.Dims) {
			t.Errorf("%s: output %v, ONNX Runtime's has shape %v", c.name, g, want.Dims)
			continue
		}
		e, m := agreement(g.Float32, want.Data)
		t.Logf("%s batch %d: max|err| %.2e, max|ref| %.6g, err/(1+ref) %.2e", c.name, inputs[k].Shape[0], e, m, e/(1+m))
		if !(e <= ortTolerance*(1+m)) {
			t.Errorf("%s batch %d: differs from ONNX Runtime by %.3g (max |ref| %.3g)", c.name, inputs[k].Shape[0], e, m)
		}
	}
}
