package infer_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/interop"
	"github.com/resnetctl/resnetctl/models"
)

// TestPyTorchExports runs files written by PyTorch's own ONNX exporter
// (tools/pytorch/export_torch_models.py: torchvision resnet18 and resnet50,
// CIFAR ResNet-20 with option-A shortcuts written the usual way and with
// option B; random weights, randomised BN; opsets 9, 11, 13, 17; BN kept and
// folded) in our runtime and in ONNX Runtime. Outputs must agree within
// 1e-4 × (1 + max|ref|) — the export tests' tolerance, for the same reason —
// and the top-1 class must be identical, on real CIFAR-10 test images for
// the CIFAR models and random images for the ImageNet ones.
func TestPyTorchExports(t *testing.T) {
	interop.RequirePyTorch(t)
	interop.RequireORT(t)
	tools, err := interop.DefaultTools()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now()
	files, err := tools.ExportTorchModels(context.Background(), dir, testing.Short())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PyTorch exported %d models in %v", len(files), time.Since(start).Round(time.Millisecond))

	// Real CIFAR-10 test images (the embedded exact sample), normalised
	// with the CIFAR-10 statistics; random normal images for ImageNet.
	sample, err := cifar.EmbeddedSample("test")
	if err != nil {
		t.Fatal(err)
	}
	pre, _ := models.PreprocessPreset("cifar10")
	norm, err := imgproc.NewNormalizer(imgproc.Norm{Mode: imgproc.ModeCustom, Scale: pre.Scale, Mean: pre.Mean, Std: pre.Std})
	if err != nil {
		t.Fatal(err)
	}
	const cifarBatch = 16
	real := make([]float32, cifarBatch*3*32*32)
	if err := sample.WriteBatch(real, make([]int, cifarBatch), seq(cifarBatch), norm); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	random := make([]float32, 3*3*224*224)
	for i := range random {
		random[i] = float32(r.NormFloat64())
	}
	inputsFor := func(size int) [2]interop.Tensor {
		if size == 32 {
			return [2]interop.Tensor{{Dims: []int{1, 3, 32, 32}, Data: real[:3*32*32]}, {Dims: []int{cifarBatch, 3, 32, 32}, Data: real}}
		}
		return [2]interop.Tensor{{Dims: []int{1, 3, 224, 224}, Data: random[:3*224*224]}, {Dims: []int{3, 3, 224, 224}, Data: random}}
	}

	var jobs []interop.Job
	for _, m := range files {
		for _, in := range inputsFor(m.Input[1]) {
			jobs = append(jobs, interop.Job{Model: filepath.Join(dir, m.Path), Inputs: map[string]interop.Tensor{"input": in}})
		}
	}
	results, err := tools.ORT(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i, m := range files {
		sess, err := infer.Load(filepath.Join(dir, m.Path), infer.Options{})
		if err != nil {
			t.Errorf("%s: %v", m.Path, err)
			continue
		}
		for k, in := range inputsFor(m.Input[1]) {
			res := results[2*i+k]
			if res.Err != "" {
				t.Errorf("%s: ONNX Runtime: %s", m.Path, res.Err)
				continue
			}
			out, err := sess.Run(context.Background(), map[string]*infer.Tensor{"input": infer.NewFloat32(in.Dims, in.Data)})
			if err != nil {
				t.Errorf("%s batch %d: %v", m.Path, in.Dims[0], err)
				continue
			}
			got, ref := out["logits"], res.Outputs["logits"]
			if got == nil || !slices.Equal(got.Shape, ref.Dims) {
				t.Errorf("%s: logits shape %v, ONNX Runtime %v", m.Path, got, ref.Dims)
				continue
			}
			maxRef, maxErr := 0.0, 0.0
			for j := range ref.Data {
				maxRef = math.Max(maxRef, math.Abs(float64(ref.Data[j])))
				maxErr = math.Max(maxErr, math.Abs(float64(got.Float32[j]-ref.Data[j])))
			}
			worst = math.Max(worst, maxErr/(1+maxRef))
			if !(maxErr <= 1e-4*(1+maxRef)) {
				t.Errorf("%s batch %d: differs from ONNX Runtime by %.3g (max |ref| %.3g)", m.Path, in.Dims[0], maxErr, maxRef)
			}
			classes := ref.Dims[1]
			for row := 0; row < ref.Dims[0]; row++ {
				if a, b := argmax(got.Float32[row*classes:(row+1)*classes]), argmax(ref.Data[row*classes:(row+1)*classes]); a != b {
					t.Errorf("%s image %d: top-1 %d, ONNX Runtime %d", m.Path, row, a, b)
				}
			}
		}
		sess.Close()
	}
	t.Logf("%d PyTorch exports, worst error %.3g × (1+max|ref|)", len(files), worst)
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
