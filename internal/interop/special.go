package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// SpecialExport is one file written by tools/pytorch/export_special_models.py:
// a small ResNet-ish model exported by PyTorch with something ordinary
// ResNet exports do not have (a fixed batch and a Softmax head, PRelu,
// Expand, InstanceNormalization, BatchNormalization in training mode,
// uint8 image preprocessing and Resize in the graph, float16 weights and
// activations).
type SpecialExport struct {
	Name    string `json:"name"`
	Opset   int    `json:"opset"`
	Path    string `json:"path"`    // file name inside the folder
	Input   []int  `json:"input"`   // C, H, W
	Batches []int  `json:"batches"` // the batch sizes the file runs at
	Output  string `json:"output"`  // the graph output to compare
	// Pixels: the input holds pixel values (integers 0-255), not
	// normalised data.
	Pixels bool `json:"pixels"`
	// InputType is the graph input's element type, "float32" or "uint8".
	InputType string `json:"input_type"`
	// Ref, when set, is the file ONNX Runtime runs instead (the same
	// model with a float32 input holding the same values), for inputs its
	// harness cannot feed.
	Ref string `json:"ref"`
	// Float16: the network computes in float16 inside (float32 input and
	// output), so agreement is within one float16 step.
	Float16 bool `json:"float16"`
}

// ExportSpecialModels runs tools/pytorch/export_special_models.py into dir
// and returns its manifest.
func (t Tools) ExportSpecialModels(ctx context.Context, dir string) ([]SpecialExport, error) {
	script := filepath.Join(t.Root, "tools", "pytorch", "export_special_models.py")
	if out, err := exec.CommandContext(ctx, t.Python, script, dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("export_special_models.py: %v\n%.2000s", err, out)
	}
	var manifest struct {
		Models []SpecialExport `json:"models"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		return nil, fmt.Errorf("export_special_models.py manifest: %w", err)
	}
	if len(manifest.Models) == 0 {
		return nil, fmt.Errorf("export_special_models.py listed no files")
	}
	return manifest.Models, nil
}
