package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/interop"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/models"
	"github.com/resnetctl/resnetctl/train"
	"google.golang.org/protobuf/proto"
)

// importPreprocessing is what `resnetctl import` says about a file's
// preprocessing (its "preprocessing: " line).
func importPreprocessing(t *testing.T, model string) string {
	t.Helper()
	code, out, errOut := runCLI("import", model, "--out", filepath.Join(t.TempDir(), "ck"))
	if code != 0 {
		t.Fatalf("import %s: exit %d %q", model, code, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		if what, ok := strings.CutPrefix(line, "preprocessing: "); ok {
			return what
		}
	}
	t.Fatalf("import %s names no preprocessing: %q", model, out)
	return ""
}

// TestTrainInitResNet18AtCIFARSize fine-tunes torchvision's ResNet-18, as
// PyTorch's own exporter writes it (3x224x224, 1000 classes, no metadata),
// at CIFAR's 3x32x32 with a 10-class head: the run ends, its checkpoint
// takes [N, 3, 32, 32] and gives 10 scores for a CIFAR image, and it
// trains with the preprocessing `resnetctl import` reports for the file
// (ImageNet's, the catalog preset), saying so.
func TestTrainInitResNet18AtCIFARSize(t *testing.T) {
	interop.RequirePyTorch(t)
	if testing.Short() {
		t.Skip("needs torchvision resnet18, which ExportTorchModels leaves out with -short")
	}
	tools, err := interop.DefaultTools()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := tools.ExportTorchModels(context.Background(), dir, false)
	if err != nil {
		t.Fatal(err)
	}
	r18 := ""
	for _, f := range files {
		if f.Name == "resnet18" && f.Opset == 17 && f.BN == "kept" {
			r18 = filepath.Join(dir, f.Path)
		}
	}
	if r18 == "" {
		t.Fatal("PyTorch exported no resnet18 (opset 17, BN kept)")
	}
	pre := importPreprocessing(t, r18)
	if !strings.Contains(pre, "imagenet preset") {
		t.Errorf("import assumes %q for torchvision's resnet18, want the imagenet preset", pre)
	}

	out := filepath.Join(t.TempDir(), "r18")
	code, _, errOut := runCLI("train", "--init", r18, "--input", "3x32x32", "--classes", "10", "--data", "sample",
		"--epochs", "1", "--batch", "8", "--limit", "64", "--threads", "2", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d %q", code, errOut)
	}
	for _, want := range []string{"training at 3x32x32 (the file's input is 3x224x224; its graph pools globally)", "training with " + pre, "new 10-class head on resnet18"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}

	model := filepath.Join(out, "epoch-0001", "model.onnx")
	sess, err := infer.Load(model, infer.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if in := sess.Metadata().Inputs; len(in) != 1 || !slices.Equal(in[0].Shape, []int{-1, 3, 32, 32}) {
		t.Fatalf("inputs %+v, want one [N, 3, 32, 32]", in)
	}
	setup, err := classify.Resolve(sess.Metadata(), classify.Flags{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(setup.Describe, "; "), "preprocessing from metadata (imagenet)") {
		t.Errorf("the checkpoint's preprocessing: %v", setup.Describe)
	}
	ds, err := cifar.EmbeddedSample("test")
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 3*32*32)
	if err := setup.Preprocessor().Write(x, 0, ds.Image(0)); err != nil {
		t.Fatal(err)
	}
	res, err := sess.Run(context.Background(), map[string]*infer.Tensor{setup.Input: infer.NewFloat32([]int{1, 3, 32, 32}, x)})
	if err != nil {
		t.Fatal(err)
	}
	if y := res[setup.Output]; y == nil || !slices.Equal(y.Shape, []int{1, 10}) {
		t.Fatalf("output %+v, want [1, 10] scores", y)
	}
}

// writeModel exports g to dir/name, without resnetctl's metadata when
// stranger is set (as someone else's file).
func writeModel(t *testing.T, dir, name string, g *build.Graph, stranger bool) string {
	t.Helper()
	b, err := export.Marshal(g, export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if stranger {
		m := &onnxpb.ModelProto{}
		if err := proto.Unmarshal(b, m); err != nil {
			t.Fatal(err)
		}
		m.MetadataProps, m.ProducerName = nil, "someone"
		if b, err = proto.Marshal(m); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestGraph(t *testing.T, s models.Spec) *build.Graph {
	t.Helper()
	g, err := build.New(s, build.Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestTrainInitSizeRefused: a graph tied to its input size (a fixed 5x5
// average pool before Flatten) is refused at another --input with one
// line naming the pool, before any data is read; data of another size than
// the --init model's without --input is refused with the --input to give;
// and the flags are checked.
func TestTrainInitSizeRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := models.Lookup("resnet8")
	if err != nil {
		t.Fatal(err)
	}
	g := newTestGraph(t, s)
	for _, n := range g.Nodes {
		if n.Kind == build.GlobalAvgPool {
			n.Kind, n.Pool = build.AvgPool, &build.PoolAttrs{Kernel: 5, Stride: 5}
		}
	}
	fixed := writeModel(t, dir, "fixed.onnx", g, true)
	code, _, errOut := runCLI("train", "--init", fixed, "--input", "3x64x64", "--data", "sample", "--out", filepath.Join(dir, "f"))
	var errLine string
	for _, l := range strings.Split(errOut, "\n") {
		if strings.HasPrefix(l, "resnetctl: ") {
			errLine = l
		}
	}
	if code != exitError || strings.Count(errOut, "resnetctl: ") != 1 ||
		!strings.Contains(errLine, "avgpool (AvgPool, a fixed 5x5 window) outputs a 64x3x3 map") || !strings.Contains(errLine, "tied to its input size") {
		t.Errorf("fixed window at 3x64x64: exit %d %q", code, errOut)
	}

	s.Input = models.Shape{C: 3, H: 64, W: 64}
	big := writeModel(t, dir, "r8at64.onnx", newTestGraph(t, s), false)
	code, _, errOut = runCLI("train", "--init", big, "--data", "sample", "--out", filepath.Join(dir, "b"))
	if code != exitError || !strings.Contains(errOut, "takes 3x64x64 images and the data's are 3x32x32: give --input 3x32x32") {
		t.Errorf("another size without --input: exit %d %q", code, errOut)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--preprocess", "torch"}, "--preprocess goes with --init"},
		{[]string{"train", "--init", big, "--preprocess", "caffe"}, "BGR"},
		{[]string{"train", "--init", big, "--preprocess", "imagenet"}, "want torch, tf, raw, cifar10 or cifar100"},
		{[]string{"train", "--init", big, "--input", "3x32"}, "--input"},
		{[]string{"train", "--init", big, "--model", "resnet20"}, "--model does not go with --init"},
	} {
		if code, _, errOut := runCLI(c.args...); code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d %q, want a usage error with %q", c.args, code, errOut, c.want)
		}
	}
}

// TestImportAndTrainInitAgreeOnPreprocessing: for files without metadata,
// `resnetctl import` and `train --init` name the same preprocessing (a
// catalog architecture's preset); where import knows none (a ResNet
// outside the catalog), train takes it from the data; --preprocess
// overrides both and the checkpoint records it.
func TestImportAndTrainInitAgreeOnPreprocessing(t *testing.T) {
	dir := t.TempDir()
	s, err := models.Lookup("resnet8")
	if err != nil {
		t.Fatal(err)
	}
	catalog := writeModel(t, dir, "r8.onnx", newTestGraph(t, s), true)
	s.Name, s.StemWidth, s.Widths = "narrow8", 8, []int{8, 16, 32}
	outside := writeModel(t, dir, "narrow8.onnx", newTestGraph(t, s), true)

	common := []string{"--data", "sample", "--epochs", "1", "--batch", "32", "--limit", "64", "--threads", "2"}
	for _, c := range []struct {
		name, model string
		flags       []string
		imp, train  string // in import's preprocessing line, in train's stderr
		preset      string // the checkpoint's preprocessing
	}{
		{name: "catalog", model: catalog, imp: "the cifar10 preset (assumed: resnet8's catalog preset)", preset: "cifar10"},
		{name: "outside the catalog", model: outside, imp: "unknown", train: "training with the cifar10 preset (the data has cifar10's classes) (from --data)", preset: "cifar10"},
		{name: "--preprocess", model: outside, flags: []string{"--preprocess", "tf"}, imp: "unknown", train: "preprocessing: the tf preset (--preprocess tf)", preset: "tf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			imp := importPreprocessing(t, c.model)
			if !strings.HasPrefix(imp, c.imp) {
				t.Errorf("import: preprocessing %q, want %q", imp, c.imp)
			}
			if c.train == "" {
				c.train = "training with " + imp // the very words import used
			}
			out := filepath.Join(t.TempDir(), "run")
			code, _, errOut := runCLI(append(append([]string{"train", "--init", c.model, "--out", out}, c.flags...), common...)...)
			if code != 0 || !strings.Contains(errOut, c.train) {
				t.Fatalf("train: exit %d %q, want %q", code, errOut, c.train)
			}
			ck, err := train.LoadCheckpoint(filepath.Join(out, "epoch-0001"))
			if err != nil {
				t.Fatal(err)
			}
			if p := ck.Graph.Spec.Preprocess; p.Name != c.preset {
				t.Errorf("the checkpoint records preprocessing %+v, want %s", p, c.preset)
			}
		})
	}
}
