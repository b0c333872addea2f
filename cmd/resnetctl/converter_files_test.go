package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/internal/testmodel"
)

// TestConverterFiles runs each hand-built converter-style graph of
// testmodel.ConverterStyleModels (the ones infer's TestHandBuiltAgainstORT
// compares with ONNX Runtime) through `predict` on two images and
// `bench --batch 2`, as a user would. The two whose input is an image
// (MXNet's NCHW 3x8x8 and tf2onnx's NHWC 8x8x3) need no flags and must
// give one JSON Lines record per image; the others take 2 or 4 channels,
// which no image gives, so predict must refuse them with its one-line
// explanation. Every file must bench. Nothing here needs PyTorch or ONNX
// Runtime.
func TestConverterFiles(t *testing.T) {
	models, err := testmodel.ConverterStyleModels(0)
	if err != nil {
		t.Fatal(err)
	}
	_, _, images := sampleFiles(t)
	if len(images) != 2 {
		t.Fatalf("sampleFiles wrote %d images, want 2", len(images))
	}
	cases := map[string]struct {
		flags    []string // predict's flags
		notImage string   // predict's explanation when the input is not an image
	}{
		"mxnet_bn_spatial0_opset8":         {},
		"tf2onnx_nhwc_opset13":             {},
		"insightface_prelu_resize_opset11": {notImage: "input x has 4 channels in layout NCHW; images give 1 (gray) or 3 (RGB)"},
		"upsample_opset9":                  {notImage: "input x has 2 channels in layout NCHW; images give 1 (gray) or 3 (RGB)"},
		"resize_opset10":                   {notImage: "input x has 2 channels in layout NCHW; images give 1 (gray) or 3 (RGB)"},
		"resize_bicubic_opset13":           {notImage: "input x has 2 channels in layout NCHW; images give 1 (gray) or 3 (RGB)"},
	}
	if len(models) != len(cases) {
		t.Errorf("%d converter-style models, %d cases here", len(models), len(cases))
	}
	dir := t.TempDir()
	for _, m := range models {
		t.Run(m.Name, func(t *testing.T) {
			tc, ok := cases[m.Name]
			if !ok {
				t.Fatalf("no case for %s", m.Name)
			}
			model := filepath.Join(dir, m.Name+".onnx")
			if err := os.WriteFile(model, m.ONNX, 0o644); err != nil {
				t.Fatal(err)
			}
			args := append(append([]string{"predict", "--json", "--top", "3"}, tc.flags...), model)
			code, out, errOut := runCLI(append(args, images...)...)
			var shown string
			if tc.notImage != "" {
				if code != exitError || out != "" {
					t.Fatalf("predict: exit %d, stdout %q; want exit %d and nothing\n%s", code, out, exitError, errOut)
				}
				msg := strings.TrimSuffix(errOut, "\n")
				if !strings.Contains(msg, tc.notImage) || strings.Contains(msg, "\n") {
					t.Fatalf("predict: stderr %q, want one line with %q", errOut, tc.notImage)
				}
				shown = "refused: " + tc.notImage
			} else {
				if code != 0 {
					t.Fatalf("predict: exit %d\n%s", code, errOut)
				}
				preds := checkTwoPredictions(t, out)
				if t.Failed() {
					return
				}
				flags := strings.Join(tc.flags, " ")
				if flags == "" {
					flags = "(no flags)"
				}
				shown = flags + ": " + preds[0].Predictions[0].Label + ", " + preds[1].Predictions[0].Label
			}

			t.Logf("predict %s; bench: %s", shown, checkBench(t, model))
		})
	}
}
