package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/internal/kernels"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// TestQuantizeCommand quantizes ResNet-20 on the embedded sample, then
// evaluates and benchmarks the int8 file as any other.
func TestQuantizeCommand(t *testing.T) {
	model, bin, _ := sampleFiles(t)
	out := filepath.Join(t.TempDir(), "r20.int8.onnx")
	code, stdout, stderr := runCLI("quantize", model, "--calibrate", bin, "--images", "20", "--method", "entropy", "--out", out)
	if code != 0 {
		t.Fatalf("quantize: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"20 weights (19 Conv, 1 Gemm) int8 per channel", "20 int32 biases", "calibrated (entropy) on 20 images", "wrote " + out} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output %q lacks %q", stdout, want)
		}
	}
	if code, stdout, stderr = runCLI("evaluate", out, "--data", bin, "--json"); code != 0 {
		t.Fatalf("evaluate: exit %d: %s", code, stderr)
	}
	var ev struct{ Top1 float64 }
	if err := json.Unmarshal([]byte(stdout), &ev); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr = runCLI("bench", out, "--iters", "1", "--warmup", "0", "--batch", "2", "--json"); code != 0 {
		t.Fatalf("bench: exit %d: %s", code, stderr)
	}
	var b struct {
		Int8 *struct {
			Convolutions int    `json:"convolutions"`
			Kernel       string `json:"kernel"`
			FloatQDQ     int    `json:"float_qdq"`
		} `json:"int8"`
	}
	if err := json.Unmarshal([]byte(stdout), &b); err != nil {
		t.Fatal(err)
	}
	if b.Int8 == nil {
		t.Fatalf("bench --json of an int8 file has no int8 field: %s", stdout)
	}
	if kernels.QConvSupported() && (b.Int8.Convolutions != 19 || b.Int8.Kernel == "") {
		t.Errorf("bench int8 %+v, want the 19 convolutions on int8 kernels", *b.Int8)
	}
}

// TestQuantizeBadInput: each refused with one line naming the flag or
// the problem, and nothing written.
func TestQuantizeBadInput(t *testing.T) {
	model, bin, _ := sampleFiles(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.MkdirAll(filepath.Join(empty, "cat"), 0o755); err != nil {
		t.Fatal(err)
	}
	reluOnly := filepath.Join(dir, "relu.onnx")
	writeProto(t, reluOnly, &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: &onnxpb.GraphProto{
		Name:   "g",
		Node:   []*onnxpb.NodeProto{{Name: "r", OpType: "Relu", Input: []string{"input"}, Output: []string{"y"}}},
		Input:  []*onnxpb.ValueInfoProto{tensorVI("input", 1, 3, 32, 32)},
		Output: []*onnxpb.ValueInfoProto{tensorVI("y", 1, 3, 32, 32)},
	}})
	vector := filepath.Join(dir, "gemm.onnx")
	writeProto(t, vector, &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: &onnxpb.GraphProto{
		Name:        "g",
		Node:        []*onnxpb.NodeProto{{Name: "fc", OpType: "Gemm", Input: []string{"input", "w"}, Output: []string{"y"}}},
		Initializer: []*onnxpb.TensorProto{{Name: "w", DataType: int32(onnxpb.TensorProto_FLOAT), Dims: []int64{10, 4}, FloatData: make([]float32, 40)}},
		Input:       []*onnxpb.ValueInfoProto{tensorVI("input", 1, 10)},
		Output:      []*onnxpb.ValueInfoProto{tensorVI("y", 1, 4)},
	}})
	out := filepath.Join(dir, "out.onnx")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no data", []string{"quantize", model}, exitUsage, "--calibrate is required"},
		{"zero images", []string{"quantize", model, "--calibrate", bin, "--images", "0"}, exitUsage, "--images 0: must be between 1 and"},
		{"unknown method", []string{"quantize", model, "--calibrate", bin, "--method", "median"}, exitUsage, `--method "median": want minmax, percentile, entropy`},
		{"percentile 0", []string{"quantize", model, "--calibrate", bin, "--method", "percentile", "--percentile", "0"}, exitUsage, "--percentile 0: must be in (0, 100]"},
		{"int16 activations", []string{"quantize", model, "--calibrate", bin, "--activations", "int16"}, exitUsage, `--activations "int16": want uint8 or int8`},
		{"empty data", []string{"quantize", model, "--calibrate", empty, "--split", ""}, exitError, "empty: no images (.jpg, .jpeg, .png, .gif, .bmp, .webp) found"},
		{"nothing to quantize", []string{"quantize", reluOnly, "--calibrate", bin}, exitError, "nothing to quantize: the model has no Conv, Gemm or MatMul with constant float weights"},
		{"not an image model", []string{"quantize", vector, "--calibrate", bin}, exitError, "input input has shape [1 10], not an image"},
		{"missing model", []string{"quantize", filepath.Join(dir, "nope.onnx"), "--calibrate", bin}, exitError, "nope.onnx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--out", out)
			code, _, stderr := runCLI(args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.want)
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n"); tc.code == exitError && lines > 0 {
				t.Errorf("error spans %d lines: %q", lines+1, stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("an output file was written")
			}
		})
	}
}

func tensorVI(name string, dims ...int64) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(onnxpb.TensorProto_FLOAT), Shape: shape}}}}
}

func writeProto(t *testing.T, path string, m *onnxpb.ModelProto) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
