package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/internal/interop"
)

// TestSpecialFiles runs every file of tools/pytorch/export_special_models.py
// (fixed batch 1 and 2 with a Softmax head, PRelu, Expand,
// InstanceNormalization, training-mode BatchNormalization, uint8+Resize
// preprocessing in the graph, a uint8 graph input, float16) through
// `predict` on two images and `bench --batch 2`, as a user would: each must
// exit 0 with one result per image and a bench result. The files whose
// input holds pixel values (an NHWC 40x40 image, float32 or uint8) are
// predicted with --preprocess raw; the others need no flags. (That their
// numbers agree with ONNX Runtime is infer's TestPyTorchSpecialExports.)
// Without PyTorch the test is skipped, or fails when CI is set.
func TestSpecialFiles(t *testing.T) {
	interop.RequirePyTorch(t)
	tools, err := interop.DefaultTools()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := tools.ExportSpecialModels(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	_, _, images := sampleFiles(t)
	if len(images) != 2 {
		t.Fatalf("sampleFiles wrote %d images, want 2", len(images))
	}
	for _, m := range files {
		t.Run(strings.TrimSuffix(m.Path, ".onnx"), func(t *testing.T) {
			model := filepath.Join(dir, m.Path)
			var flags []string
			if m.Pixels {
				// The graph normalises the pixel values itself.
				flags = append(flags, "--preprocess", "raw")
			}
			args := append(append([]string{"predict", "--json", "--top", "3"}, flags...), model)
			code, out, errOut := runCLI(append(args, images...)...)
			if code != 0 {
				t.Fatalf("predict: exit %d\n%s", code, errOut)
			}
			preds := checkTwoPredictions(t, out)

			benchLine := checkBench(t, model)
			shown := strings.Join(flags, " ")
			if shown == "" {
				shown = "(no flags)"
			}
			t.Logf("predict %s: %s %s; bench: %s", shown, preds[0].Predictions[0].Label, preds[1].Predictions[0].Label, benchLine)
		})
	}
}

// checkTwoPredictions checks predict --json --top 3 output for two images:
// two JSON Lines records of three probabilities each, summing to at most 1.
func checkTwoPredictions(t *testing.T, out string) []predictResult {
	t.Helper()
	preds := decodeLines(t, out) // JSON Lines: one object per image
	if len(preds) != 2 {
		t.Fatalf("predict: %d records, want 2:\n%s", len(preds), out)
	}
	for i, p := range preds {
		if len(p.Predictions) != 3 {
			t.Errorf("predict image %d: %d predictions, want 3: %+v", i, len(p.Predictions), p)
		}
		sum := 0.0
		for _, q := range p.Predictions {
			if !(q.Prob >= 0 && q.Prob <= 1) {
				t.Errorf("predict image %d: probability %v", i, q.Prob)
			}
			sum += q.Prob
		}
		if sum > 1+1e-6 {
			t.Errorf("predict image %d: top-3 probabilities sum to %v", i, sum)
		}
	}
	return preds
}

// checkBench runs bench on model at batch 2 and checks that it printed a
// finite, non-zero result; it returns the last line printed. bench times
// steps in nanoseconds, so even tiny graphs never measure 0 (it used whole
// microseconds, and printed +Inf images/s for resize_opset10 now and then).
func checkBench(t *testing.T, model string) string {
	t.Helper()
	code, out, errOut := runCLI("bench", model, "--batch", "2", "--iters", "2", "--warmup", "1", "--threads", "2")
	if code != 0 {
		t.Fatalf("bench: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out, "latency per batch: median ") || !strings.Contains(out, "throughput: ") {
		t.Fatalf("bench printed no result:\n%s", out)
	}
	if strings.Contains(out, "throughput: 0.0 ") || strings.Contains(out, "NaN") || strings.Contains(out, "Inf") {
		t.Errorf("bench result:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}
