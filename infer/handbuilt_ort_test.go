package infer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/resnetctl/resnetctl/internal/interop"
	"github.com/resnetctl/resnetctl/internal/testmodel"
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
	models, err := testmodel.ConverterStyleModels(0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var jobs []interop.Job
	var inputs []*Tensor
	for i, c := range models {
		path := filepath.Join(dir, c.Name+".onnx")
		if err := os.WriteFile(path, c.ONNX, 0o644); err != nil {
			t.Fatal(err)
		}
		dims := make([]int, len(c.Shape)-1)
		for j, d := range c.Shape[1:] {
			dims[j] = int(d)
		}
		for _, n := range []int{1, 2} {
			x := randT(uint64(100+10*i+n), append([]int{n}, dims...)...)
			inputs = append(inputs, x)
			jobs = append(jobs, interop.Job{Model: path, Inputs: map[string]interop.Tensor{c.Input: {Dims: x.Shape, Data: x.Float32}}})
		}
	}
	results, err := interop.ORT(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	for k, res := range results {
		c := models[k/2]
		if res.Err != "" {
			t.Errorf("%s: ONNX Runtime: %s", c.Name, res.Err)
			continue
		}
		s, err := LoadBytes(c.ONNX, Options{Threads: 2})
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		got, err := s.Run(context.Background(), map[string]*Tensor{c.Input: inputs[k]})
		s.Close()
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		want, g := res.Outputs[c.Output], got[c.Output]
		if g == nil || !slices.Equal(g.Shape, want.Dims) {
			t.Errorf("%s: output %v, ONNX Runtime's has shape %v", c.Name, g, want.Dims)
			continue
		}
		e, m := agreement(g.Float32, want.Data)
		t.Logf("%s batch %d: max|err| %.2e, max|ref| %.6g, err/(1+ref) %.2e", c.Name, inputs[k].Shape[0], e, m, e/(1+m))
		if !(e <= ortTolerance*(1+m)) {
			t.Errorf("%s batch %d: differs from ONNX Runtime by %.3g (max |ref| %.3g)", c.Name, inputs[k].Shape[0], e, m)
		}
	}
}
