package infer_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/interop"
)

// TestPyTorchSpecialExports runs the files of
// tools/pytorch/export_special_models.py (small ResNet-ish models exported
// by PyTorch with a fixed batch and a Softmax head, PRelu, Expand,
// InstanceNormalization, BatchNormalization in training mode, uint8 image
// preprocessing and Resize in the graph, a uint8 graph input) in our
// runtime and in ONNX Runtime, at each batch the file allows (1 and 2, or
// its fixed batch), on random normal inputs (random pixel values 0-255 for
// the image inputs). Outputs must agree within 1e-4 × (1 + max|ref|) and
// the top-1 class must be identical; for the float16 files (float16
// weights and activations inside, float32 input and output) within one
// float16 step, 2^-10 × (1 + max|ref|): ONNX Runtime rounds to float16
// between ops, we compute them in float32 and round where float16 values
// leave the network. ONNX Runtime's harness feeds float32
// only: a uint8-input file is compared with ONNX Runtime running its float
// twin (the manifest's ref) on the same pixel values.
func TestPyTorchSpecialExports(t *testing.T) {
	interop.RequirePyTorch(t)
	interop.RequireORT(t)
	tools, err := interop.DefaultTools()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := tools.ExportSpecialModels(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	type run struct {
		file int
		in   interop.Tensor
	}
	var runs []run
	var jobs []interop.Job
	for i, m := range files {
		for _, n := range m.Batches {
			dims := append([]int{n}, m.Input...)
			data := make([]float32, n*m.Input[0]*m.Input[1]*m.Input[2])
			for k := range data {
				if m.Pixels {
					data[k] = float32(r.IntN(256))
				} else {
					data[k] = float32(r.NormFloat64())
				}
			}
			in := interop.Tensor{Dims: dims, Data: data}
			runs = append(runs, run{file: i, in: in})
			ref := m.Path
			if m.Ref != "" {
				ref = m.Ref
			}
			jobs = append(jobs, interop.Job{Model: filepath.Join(dir, ref), Inputs: map[string]interop.Tensor{"input": in}})
		}
	}
	results, err := tools.ORT(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	worst := map[string]float64{}
	for k, rn := range runs {
		m := files[rn.file]
		res := results[k]
		if res.Err != "" {
			t.Errorf("%s: ONNX Runtime: %s", m.Path, res.Err)
			continue
		}
		sess, err := infer.Load(filepath.Join(dir, m.Path), infer.Options{})
		if err != nil {
			t.Errorf("%s: %v", m.Path, err)
			continue
		}
		input := infer.NewFloat32(rn.in.Dims, rn.in.Data)
		if m.InputType == "uint8" {
			input = &infer.Tensor{Shape: rn.in.Dims, DType: infer.Uint8, Uint8: make([]uint8, len(rn.in.Data))}
			for j, v := range rn.in.Data {
				input.Uint8[j] = uint8(v)
			}
		}
		out, err := sess.Run(context.Background(), map[string]*infer.Tensor{"input": input})
		sess.Close()
		if err != nil {
			t.Errorf("%s batch %d: %v", m.Path, rn.in.Dims[0], err)
			continue
		}
		got, ref := out[m.Output], res.Outputs[m.Output]
		if got == nil || !slices.Equal(got.Shape, ref.Dims) {
			t.Errorf("%s: output %q is %v, ONNX Runtime's has shape %v", m.Path, m.Output, got, ref.Dims)
			continue
		}
		maxRef, maxErr := 0.0, 0.0
		for j := range ref.Data {
			maxRef = math.Max(maxRef, math.Abs(float64(ref.Data[j])))
			maxErr = math.Max(maxErr, math.Abs(float64(got.Float32[j]-ref.Data[j])))
		}
		rel := maxErr / (1 + maxRef)
		worst[m.Name] = math.Max(worst[m.Name], rel)
		tol := 1e-4
		if m.Float16 {
			tol = 0x1p-10
		}
		if !(maxErr <= tol*(1+maxRef)) {
			t.Errorf("%s batch %d: differs from ONNX Runtime by %.3g (max |ref| %.3g)", m.Path, rn.in.Dims[0], maxErr, maxRef)
		}
		classes := ref.Dims[1]
		for row := 0; row < ref.Dims[0]; row++ {
			if a, b := argmax(got.Float32[row*classes:(row+1)*classes]), argmax(ref.Data[row*classes:(row+1)*classes]); a != b {
				t.Errorf("%s image %d: top-1 %d, ONNX Runtime %d", m.Path, row, a, b)
			}
		}
	}
	names := make([]string, 0, len(worst))
	for n := range worst {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		t.Logf("%s: worst difference from ONNX Runtime %.3g × (1+max|ref|)", n, worst[n])
	}
}
