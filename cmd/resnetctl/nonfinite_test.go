package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/models"
	"google.golang.org/protobuf/proto"
)

// poisonedModel exports a ResNet-8 after poison changed its graph, then
// lets edit change the ONNX protobuf, and returns the file's path.
func poisonedModel(t *testing.T, poison func(*build.Graph), edit func(*onnxpb.ModelProto)) string {
	t.Helper()
	spec, err := models.Lookup("resnet8")
	if err != nil {
		t.Fatal(err)
	}
	g, err := build.New(spec, build.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if poison != nil {
		poison(g)
	}
	b, err := export.Marshal(g, export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		mp := &onnxpb.ModelProto{}
		if err := proto.Unmarshal(b, mp); err != nil {
			t.Fatal(err)
		}
		edit(mp)
		if b, err = proto.Marshal(mp); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "poisoned.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func setParam(name string, v float32) func(*build.Graph) {
	return func(g *build.Graph) { g.Param(name).Data[0] = v }
}

// TestNonFiniteModels: a model whose weights hold NaN or ±Inf loads with a
// warning naming them (a graph may hold infinities on purpose, and a
// weight may not reach the output, so it is not refused), and predict and
// evaluate fail, naming the image, as soon as an output is not finite —
// ranking NaN scores would print nonsense, and counting them would score
// NaN as a correct answer. A model with an unused infinite initializer
// warns and still predicts.
func TestNonFiniteModels(t *testing.T) {
	_, bin, images := sampleFiles(t)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	unused := func(mp *onnxpb.ModelProto) {
		g := mp.GetGraph()
		g.Initializer = append(g.Initializer, &onnxpb.TensorProto{Name: "unused_mask", Dims: []int64{2},
			DataType: int32(onnxpb.TensorProto_FLOAT), FloatData: []float32{float32(math.Inf(-1)), 0}})
	}
	tests := []struct {
		name    string
		poison  func(*build.Graph)
		edit    func(*onnxpb.ModelProto)
		command string // predict or evaluate
		code    int
		stderr  []string
	}{
		{"NaN bias/predict", setParam("fc.bias", nan), nil, "predict", exitError, []string{
			"warning: ", "fc.bias (1 NaN of 10 values)",
			"the model's output for image " + images[0] + " contains NaN: the model's weights are not finite: fc.bias"}},
		{"NaN bias/evaluate", setParam("fc.bias", nan), nil, "evaluate", exitError, []string{
			"fc.bias (1 NaN of 10 values)", "the model's output for image ", "contains NaN"}},
		{"Inf conv weight/predict", setParam("conv1.weight", inf), nil, "predict", exitError, []string{
			"conv1.weight (1 infinite of 432 values)", "the model's output for image " + images[0] + " contains ", "weights are not finite: conv1.weight"}},
		{"NaN running variance/evaluate", setParam("layer1.0.bn1.running_var", nan), nil, "evaluate", exitError, []string{
			"layer1.0.bn1.running_var (1 NaN of 16 values)", "contains NaN"}},
		{"unused infinite initializer/predict", nil, unused, "predict", exitOK, []string{
			"warning: ", "unused_mask (1 infinite of 2 values)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model := poisonedModel(t, tt.poison, tt.edit)
			args := append([]string{"predict", model}, images...)
			if tt.command == "evaluate" {
				args = []string{"evaluate", model, "--data", bin, "--batch", "50"}
			}
			code, out, errOut := runCLI(args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, errOut)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
			if tt.code != exitOK && out != "" {
				t.Errorf("stdout on error: %q", out)
			}
			if tt.code == exitOK && !strings.Contains(out, "  1. ") {
				t.Errorf("no predictions: %q", out)
			}
			t.Logf("%s", strings.TrimSpace(errOut))
		})
	}
}
