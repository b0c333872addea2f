package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/pbtext"
	"google.golang.org/protobuf/proto"
)

// tritonConfigField returns the single value of a top-level field of a
// config.pbtxt, parsed as protobuf text format.
func tritonConfigField(t *testing.T, path, field string) pbtext.Value {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := pbtext.Parse(string(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	v := m.Values(field)
	if len(v) != 1 {
		t.Fatalf("%s: field %s has %d values, want 1:\n%s", path, field, len(v), b)
	}
	return v[0]
}

// tritonDims is the dims of the first entry of list (input or output).
func tritonDims(t *testing.T, path, list string) []string {
	t.Helper()
	v := tritonConfigField(t, path, list)
	var dims []string
	for _, d := range v.Msg.Values("dims") {
		dims = append(dims, d.Text)
	}
	return dims
}

// TestExportTriton: `export --triton` from the catalog, from a checkpoint
// and from an existing file (fixed batch), with the flag checks.
func TestExportTriton(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")

	// A catalog model: the same file `export` writes, in DIR/NAME/1.
	code, out, errOut := runCLI("export", "--model", "resnet20", "--triton", repo)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{`wrote Triton model "resnet20"`, "max_batch_size 32, dynamic batching", "10 classes",
		"input:  input TYPE_FP32 dims [3 32 32] FORMAT_NCHW", "output: logits TYPE_FP32 dims [10] label_filename labels.txt",
		"tritonserver --model-repository=" + repo} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	cfg := filepath.Join(repo, "resnet20", "config.pbtxt")
	if v := tritonConfigField(t, cfg, "max_batch_size"); v.Text != "32" {
		t.Errorf("max_batch_size %s", v.Text)
	}
	plain := filepath.Join(dir, "r20.onnx")
	if code, _, errOut := runCLI("export", "--model", "resnet20", plain); code != 0 {
		t.Fatal(errOut)
	}
	a, _ := os.ReadFile(plain)
	b, err := os.ReadFile(filepath.Join(repo, "resnet20", "1", "model.onnx"))
	if err != nil || !slices.Equal(a, b) {
		t.Errorf("the repository's model.onnx differs from `export`'s file (%v)", err)
	}

	// Again: refused without --force, replaced with it (and --max-batch).
	if code, _, errOut := runCLI("export", "--model", "resnet20", "--triton", repo); code == 0 || !strings.Contains(errOut, "--force") {
		t.Errorf("overwrite without --force: exit %d, %q", code, errOut)
	}
	if code, out, errOut := runCLI("export", "--model", "resnet20", "--triton", repo, "--force", "--max-batch", "8"); code != 0 || !strings.Contains(out, "replaced") {
		t.Errorf("--force: exit %d %q %q", code, out, errOut)
	}
	if v := tritonConfigField(t, cfg, "max_batch_size"); v.Text != "8" {
		t.Errorf("max_batch_size %s after --max-batch 8", v.Text)
	}

	// A checkpoint directory (here one `import` wrote), --json, a name.
	r8 := filepath.Join(dir, "r8.onnx")
	if code, _, errOut := runCLI("export", "--model", "resnet8", "--seed", "5", r8); code != 0 {
		t.Fatal(errOut)
	}
	ck := filepath.Join(dir, "ck")
	if code, _, errOut := runCLI("import", r8, "--out", ck); code != 0 {
		t.Fatal(errOut)
	}
	code, out, errOut = runCLI("export", "--checkpoint", ck, "--triton", repo, "--triton-name", "r8_ck", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var info export.TritonInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if info.Spec.Name != "r8_ck" || info.Classes != 10 || info.Spec.MaxBatchSize != 32 || info.Model != filepath.Join(repo, "r8_ck", "1", "model.onnx") {
		t.Errorf("--json info %+v", info)
	}
	if v := tritonConfigField(t, info.Config, "name"); v.Text != "r8_ck" {
		t.Errorf("name %q", v.Text)
	}
	x := make([]float32, 2*3*32*32)
	for i := range x {
		x[i] = float32(i%17) / 17
	}
	y1, y2 := tritonLogits(t, filepath.Join(ck, "model.onnx"), x), tritonLogits(t, info.Model, x)
	if !slices.Equal(y1, y2) {
		t.Errorf("the repository's model computes other logits than the checkpoint's:\n%v\n%v", y1, y2)
	}

	// An existing file with a fixed batch dimension, as it is.
	m := &onnxpb.ModelProto{}
	raw, _ := os.ReadFile(r8)
	if err := proto.Unmarshal(raw, m); err != nil {
		t.Fatal(err)
	}
	for _, v := range append(m.Graph.Input, m.Graph.Output...) {
		v.GetType().GetTensorType().GetShape().Dim[0].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 2}
	}
	fixed := filepath.Join(dir, "fixed-2.onnx")
	raw, _ = proto.Marshal(m)
	if err := os.WriteFile(fixed, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI("export", "--from", fixed, "--triton", repo)
	if code != 0 {
		t.Fatalf("--from: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "max_batch_size 0 (fixed batch dimension") {
		t.Errorf("--from fixed: %s", out)
	}
	fcfg := filepath.Join(repo, "fixed-2", "config.pbtxt")
	if v := tritonConfigField(t, fcfg, "max_batch_size"); v.Text != "0" {
		t.Errorf("max_batch_size %s for a fixed batch", v.Text)
	}
	if d := tritonDims(t, fcfg, "input"); !slices.Equal(d, []string{"2", "3", "32", "32"}) {
		t.Errorf("input dims %v, want the full [2 3 32 32]", d)
	}
	if d := tritonDims(t, fcfg, "output"); !slices.Equal(d, []string{"2", "10"}) {
		t.Errorf("output dims %v, want the full [2 10]", d)
	}
	if _, err := os.Stat(filepath.Join(repo, "fixed-2", "labels.txt")); !os.IsNotExist(err) || !strings.Contains(out, "no labels file") {
		t.Errorf("a fixed batch of 2 got a labels file, which Triton would apply to both rows' scores at once (%v)", err)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "fixed-2", "1", "model.onnx")); !slices.Equal(b, raw) {
		t.Error("--from did not copy the file as it is")
	}
	if got := tritonLogits(t, filepath.Join(repo, "fixed-2", "1", "model.onnx"), x); !slices.Equal(got, y1) {
		t.Errorf("fixed-batch copy: other logits")
	}

	// Class names for a file without them (and a dynamic batch).
	m.MetadataProps = nil
	for _, v := range append(m.Graph.Input, m.Graph.Output...) {
		v.GetType().GetTensorType().GetShape().Dim[0].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}
	}
	stranger := filepath.Join(dir, "stranger.onnx")
	raw, _ = proto.Marshal(m)
	if err := os.WriteFile(stranger, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI("export", "--from", stranger, "--triton", repo, "--triton-name", "f2l", "--labels", "cifar10"); code != 0 || !strings.Contains(out, "10 classes") {
		t.Errorf("--from --labels: exit %d %q %q", code, out, errOut)
	}
	if v := tritonConfigField(t, filepath.Join(repo, "f2l", "config.pbtxt"), "output"); len(v.Msg.Values("label_filename")) != 1 {
		t.Errorf("--labels: output %+v has no label_filename", v.Msg)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--from", fixed, "--triton", repo, "--triton-name", "f2", "--max-batch", "4"}, exitError, "batch dimension is fixed"},
		{[]string{"--from", fixed, "--triton", repo, "--opset", "13"}, exitUsage, "--opset does not go with --from"},
		{[]string{"--from", fixed, "--triton", repo, "--checkpoint", ck}, exitUsage, "--checkpoint does not go with --from"},
		{[]string{"--model", "resnet20", "--triton", repo, "out.onnx"}, exitUsage, "give no output path"},
		{[]string{"--model", "resnet20", "--max-batch", "4", "out.onnx"}, exitUsage, "--max-batch goes with --triton"},
		{[]string{"--from", fixed, "out.onnx"}, exitUsage, "--from goes with --triton"},
		{[]string{"--model", "resnet20", "--triton", repo, "--max-batch", "0"}, exitUsage, "at least 1"},
		{[]string{"--model", "resnet20", "--triton", repo, "--triton-name", "../x"}, exitError, "model name"},
		{[]string{"--from", filepath.Join(dir, "missing.onnx"), "--triton", repo}, exitError, "missing.onnx"},
		{[]string{"--from", stranger, "--triton", repo, "--triton-name", "f3", "--labels", "cifar100"}, exitError, "100 class names, but no output"},
		{[]string{"--from", fixed, "--triton", repo, "--triton-name", "f4", "--labels", "cifar10"}, exitError, "10 class names, but no output"},
	} {
		code, _, errOut := runCLI(append([]string{"export"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("export %v: exit %d %q; want exit %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	entries, _ := os.ReadDir(repo)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"f2l", "fixed-2", "r8_ck", "resnet20"}) {
		t.Errorf("the repository holds %v", names)
	}
}

// tritonLogits runs x (a batch of 3x32x32 images) through model.
func tritonLogits(t *testing.T, model string, x []float32) []float32 {
	t.Helper()
	sess, err := infer.Load(model, infer.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	res, err := sess.Run(context.Background(), map[string]*infer.Tensor{"input": infer.NewFloat32([]int{len(x) / (3 * 32 * 32), 3, 32, 32}, x)})
	if err != nil {
		t.Fatal(err)
	}
	return res["logits"].Float32
}
