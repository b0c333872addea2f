package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/interop"
	"github.com/resnetctl/resnetctl/models"
	"github.com/resnetctl/resnetctl/train"
)

// The PyTorch hand-off, for training beyond one machine (DESIGN.md, "Where
// users outgrow one machine"): a training checkpoint's state.safetensors
// loads into torchvision / tools/pytorch/resnets.py modules by name with
// load_state_dict(strict=True) and computes our runtime's logits; what
// PyTorch's exporter writes after PyTorch trained it comes back through
// `resnetctl import` with PyTorch's logits, and trains on with
// `train --resume`. Tolerance as everywhere: 1e-4·(1+max|ref|), the
// reference being PyTorch.

// handoffInput is n seeded N(0, 1) images of shape s.
func handoffInput(n int, s models.Shape, seed uint64) interop.Tensor {
	r := rand.New(rand.NewPCG(seed, 17))
	x := make([]float32, n*s.C*s.H*s.W)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return interop.Tensor{Dims: []int{n, s.C, s.H, s.W}, Data: x}
}

// handoffRun runs x through model.onnx with our runtime.
func handoffRun(t *testing.T, model string, x interop.Tensor) interop.Tensor {
	t.Helper()
	sess, err := infer.Load(model, infer.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	res, err := sess.Run(context.Background(), map[string]*infer.Tensor{"input": infer.NewFloat32(x.Dims, x.Data)})
	if err != nil {
		t.Fatalf("%s: %v", model, err)
	}
	y := res["logits"]
	if y == nil {
		t.Fatalf("%s has no output logits", model)
	}
	return interop.Tensor{Dims: y.Shape, Data: y.Float32}
}

// handoffCompare checks got against PyTorch's want within
// 1e-4·(1+max|want|) and returns the largest difference.
func handoffCompare(t *testing.T, label string, got, want interop.Tensor) float64 {
	t.Helper()
	if !slices.Equal(got.Dims, want.Dims) {
		t.Fatalf("%s: dims %v, PyTorch %v", label, got.Dims, want.Dims)
	}
	scale := 0.0
	for _, v := range want.Data {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	worst := 0.0
	for i := range want.Data {
		d := math.Abs(float64(got.Data[i]) - float64(want.Data[i]))
		if d > worst || math.IsNaN(d) {
			worst = d
		}
	}
	tol := 1e-4 * (1 + scale)
	if !(worst <= tol) {
		t.Errorf("%s: max |ours - PyTorch| = %.3g, tolerance %.3g (max |PyTorch| %.3g)", label, worst, tol, scale)
	} else {
		t.Logf("%s: max |ours - PyTorch| = %.3g (tolerance %.3g, max |logit| %.3g)", label, worst, tol, scale)
	}
	return worst
}

// handoffMaxDiff is the largest elementwise difference of a and b.
func handoffMaxDiff(a, b interop.Tensor) float64 {
	worst := 0.0
	for i := range a.Data {
		worst = math.Max(worst, math.Abs(float64(a.Data[i])-float64(b.Data[i])))
	}
	return worst
}

// handoffParams counts the checkpoint's parameters (running statistics
// included): what the state dict must hold besides num_batches_tracked.
func handoffParams(t *testing.T, dir string) int {
	t.Helper()
	ck, err := train.LoadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ck.Graph.Params)
}

// TestPyTorchHandoffCIFAR: ResNet-8 trained one epoch by `resnetctl train`
// on the embedded sample → PyTorch (strict) → same logits; PyTorch trains
// it three steps and exports ONNX → `resnetctl import` → PyTorch's logits →
// `train --resume` trains the import an epoch (two steps), and that
// checkpoint loads into PyTorch again.
func TestPyTorchHandoffCIFAR(t *testing.T) {
	interop.RequirePyTorch(t)
	tools, err := interop.DefaultTools()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	run := filepath.Join(dir, "r8")
	trainArgs := []string{"--data", "sample", "--limit", "64", "--batch", "32", "--threads", "2"}
	if code, _, errOut := runCLI(append([]string{"train", "--model", "resnet8", "--epochs", "1", "--out", run}, trainArgs...)...); code != 0 {
		t.Fatalf("train: exit %d: %s", code, errOut)
	}
	ckpt := filepath.Join(run, "best")
	spec, _ := models.Lookup("resnet8")
	x := handoffInput(3, spec.Input, 1)

	// Our checkpoint → PyTorch.
	torch, err := tools.TorchCheckpoint(ctx, interop.CheckpointJob{Checkpoint: ckpt, Input: x, StateDict: filepath.Join(dir, "r8.pt")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(torch.Module, "CifarResNet") {
		t.Errorf("module %q, want resnets.py's CifarResNet", torch.Module)
	}
	if n := handoffParams(t, ckpt); torch.Loaded != n || torch.NumBatchesTracked != 7 {
		t.Errorf("PyTorch loaded %d tensors and filled %d num_batches_tracked; the checkpoint has %d parameters and resnet8 7 BatchNorms",
			torch.Loaded, torch.NumBatchesTracked, n)
	}
	if _, err := os.Stat(filepath.Join(dir, "r8.pt")); err != nil {
		t.Errorf("no state dict written: %v", err)
	}
	t.Logf("PyTorch %s: %s, %d tensors by name, strict", torch.Torch, torch.Module, torch.Loaded)
	ours := handoffRun(t, filepath.Join(ckpt, "model.onnx"), x)
	handoffCompare(t, "resnet8 checkpoint in PyTorch", ours, torch.Logits)

	// PyTorch → ONNX → resnetctl import.
	exported := filepath.Join(dir, "r8_torch.onnx")
	trained, err := tools.TorchCheckpoint(ctx, interop.CheckpointJob{Checkpoint: ckpt, Input: x, TrainSteps: 3, ExportONNX: exported})
	if err != nil {
		t.Fatal(err)
	}
	if len(trained.TrainLosses) != 3 {
		t.Fatalf("PyTorch reported %d training steps, want 3", len(trained.TrainLosses))
	}
	if d := handoffMaxDiff(trained.Logits, torch.Logits); d < 1e-3 {
		t.Fatalf("PyTorch's three SGD steps moved the logits by only %g", d)
	}
	back := filepath.Join(dir, "back")
	code, out, errOut := runCLI("import", exported, "--out", back)
	if code != 0 {
		t.Fatalf("import of PyTorch's export: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "by pytorch") {
		t.Errorf("import report does not name PyTorch as the producer:\n%s", out)
	}
	imported := handoffRun(t, filepath.Join(back, "model.onnx"), x)
	handoffCompare(t, "resnet8 trained in PyTorch, imported back", imported, trained.Logits)

	// The import trains on: train --resume on the import folder.
	code, out, errOut = runCLI(append([]string{"train", "--out", back, "--resume", "--epochs", "1"}, trainArgs...)...)
	if code != 0 || !strings.Contains(errOut, "holds an imported model") || !strings.Contains(out, "epoch 1:") {
		t.Fatalf("train --resume on the import: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	next := filepath.Join(back, "epoch-0001")
	after := handoffRun(t, filepath.Join(next, "model.onnx"), x)
	if d := handoffMaxDiff(after, imported); d < 1e-4 {
		t.Errorf("train --resume left the imported model's logits within %g", d)
	}
	// And that checkpoint goes to PyTorch again: round trip closed.
	again, err := tools.TorchCheckpoint(ctx, interop.CheckpointJob{Checkpoint: next, Input: x})
	if err != nil {
		t.Fatal(err)
	}
	handoffCompare(t, "the import's own checkpoint in PyTorch", after, again.Logits)
}

// handoffNoise is a Source of n seeded N(0, 1) images with labels i mod
// classes: enough data for one optimiser step of an ImageNet model.
type handoffNoise struct {
	n, classes int
	shape      models.Shape
}

func (s handoffNoise) Len() int            { return s.n }
func (s handoffNoise) Shape() models.Shape { return s.shape }
func (s handoffNoise) Epoch(epoch int, seed uint64, batch int) (train.Batches, error) {
	return &handoffNoiseBatches{s: s, r: rand.New(rand.NewPCG(seed, uint64(epoch)))}, nil
}

type handoffNoiseBatches struct {
	s    handoffNoise
	r    *rand.Rand
	next int
}

func (b *handoffNoiseBatches) Next(x []float32, labels []int) (int, error) {
	n := min(len(labels), b.s.n-b.next)
	if n <= 0 {
		return 0, nil
	}
	for i := range x[:n*b.s.shape.C*b.s.shape.H*b.s.shape.W] {
		x[i] = float32(b.r.NormFloat64())
	}
	for i := range n {
		labels[i] = (b.next + i) % b.s.classes
	}
	b.next += n
	return n, nil
}

// TestPyTorchHandoffResNet18: an ImageNet ResNet-18 checkpoint (3x224x224,
// 1000 classes) written by the trainer's own checkpoint code after one SGD
// step on two noise images (the cheapest honest one: real training, real
// checkpoint files) loads strictly into torchvision.models.resnet18 and
// gives our runtime's logits; PyTorch trains it one step, exports, and
// `resnetctl import` of that file gives PyTorch's logits.
func TestPyTorchHandoffResNet18(t *testing.T) {
	interop.RequirePyTorch(t)
	if testing.Short() {
		t.Skip("trains and runs ResNet-18 at 224x224 in Go and in PyTorch")
	}
	tools, err := interop.DefaultTools()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	spec, err := models.Lookup("resnet18")
	if err != nil {
		t.Fatal(err)
	}
	m, err := train.NewModel(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Compile(train.CompileOptions{Optimizer: train.OptimizerConfig{Name: train.SGD, LR: 0.01, Momentum: 0.9}, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "r18")
	data := handoffNoise{n: 2, classes: spec.Classes, shape: spec.Input}
	if _, err := m.Fit(ctx, data, train.FitOptions{Epochs: 1, Batch: 2, Seed: 1, CheckpointDir: run}); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(run, "epoch-0001")
	x := handoffInput(2, spec.Input, 2)

	torch, err := tools.TorchCheckpoint(ctx, interop.CheckpointJob{Checkpoint: ckpt, Input: x})
	if err != nil {
		t.Fatal(err)
	}
	if want := "torchvision.models.resnet18(num_classes=1000)"; torch.Module != want {
		t.Errorf("module %q, want %s", torch.Module, want)
	}
	if n := handoffParams(t, ckpt); torch.Loaded != n || torch.NumBatchesTracked != 20 {
		t.Errorf("PyTorch loaded %d tensors and filled %d num_batches_tracked; the checkpoint has %d parameters and resnet18 20 BatchNorms",
			torch.Loaded, torch.NumBatchesTracked, n)
	}
	ours := handoffRun(t, filepath.Join(ckpt, "model.onnx"), x)
	handoffCompare(t, "resnet18 checkpoint in torchvision", ours, torch.Logits)

	exported := filepath.Join(dir, "r18_torch.onnx")
	trained, err := tools.TorchCheckpoint(ctx, interop.CheckpointJob{Checkpoint: ckpt, Input: x, TrainSteps: 1, ExportONNX: exported})
	if err != nil {
		t.Fatal(err)
	}
	if d := handoffMaxDiff(trained.Logits, torch.Logits); d < 1e-4 {
		t.Fatalf("PyTorch's SGD step moved the logits by only %g", d)
	}
	back := filepath.Join(dir, "back")
	if code, _, errOut := runCLI("import", exported, "--out", back); code != 0 {
		t.Fatalf("import of PyTorch's export: exit %d: %s", code, errOut)
	}
	imported := handoffRun(t, filepath.Join(back, "model.onnx"), x)
	handoffCompare(t, fmt.Sprintf("resnet18 trained in PyTorch (loss %.3g), imported back", trained.TrainLosses[0]), imported, trained.Logits)
}
