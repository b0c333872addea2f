package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// InstallPyTorch tells how to install PyTorch for [Tools.PyTorch].
const InstallPyTorch = "make setup  (or: apt-get install -y python3-torch python3-torchvision python3-onnx)"

// TorchJob asks PyTorch to run the weights of an exported (unfolded)
// resnetctl model on one NCHW input.
type TorchJob struct {
	Model string
	Input Tensor
}

// TorchResult is PyTorch's answer to one [TorchJob]: the logits, or Err.
type TorchResult struct {
	Logits Tensor
	Err    string
}

// PyTorchAvailable returns nil if [Tools.PyTorch] can run.
func (t Tools) PyTorchAvailable(ctx context.Context) error {
	if _, err := exec.LookPath(t.Python); err != nil {
		return fmt.Errorf("python: %w", err)
	}
	out, err := exec.CommandContext(ctx, t.Python, "-c", "import torch, torchvision, onnx").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s cannot import torch, torchvision and onnx: %v: %s", t.Python, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// RequirePyTorch is [RequireORT] for PyTorch.
func RequirePyTorch(t testing.TB) {
	t.Helper()
	tools, err := DefaultTools()
	if err == nil {
		err = tools.PyTorchAvailable(context.Background())
	}
	require(t, "PyTorch (python3-torch, python3-torchvision)", InstallPyTorch, err)
}

// PyTorch runs every job in one Python process with
// tools/pytorch/run_onnx.py, which rebuilds each model's architecture (from
// its metadata) in PyTorch, loads the ONNX initializers by name and returns
// the logits. A failing job sets its Err and does not stop the others.
func (t Tools) PyTorch(ctx context.Context, jobs []TorchJob) ([]TorchResult, error) {
	dir, err := os.MkdirTemp("", "resnetctl-torch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	type reqJob struct {
		Model  string `json:"model"`
		Input  string `json:"input"`
		Dims   []int  `json:"dims"`
		Output string `json:"output"`
	}
	var req struct {
		Jobs []reqJob `json:"jobs"`
	}
	for i, j := range jobs {
		in := filepath.Join(dir, fmt.Sprintf("in%d.f32", i))
		if err := writeFloat32s(in, j.Input.Data); err != nil {
			return nil, err
		}
		model, err := filepath.Abs(j.Model)
		if err != nil {
			return nil, err
		}
		req.Jobs = append(req.Jobs, reqJob{Model: model, Input: in, Dims: j.Input.Dims, Output: filepath.Join(dir, fmt.Sprintf("out%d.f32", i))})
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, t.Python, filepath.Join(t.Root, "tools", "pytorch", "run_onnx.py"))
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("run_onnx.py: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var resp struct {
		Results []struct {
			Dims  []int  `json:"dims"`
			Error string `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("run_onnx.py answered %q: %w", stdout.String(), err)
	}
	if len(resp.Results) != len(jobs) {
		return nil, fmt.Errorf("run_onnx.py answered %d of %d jobs", len(resp.Results), len(jobs))
	}
	out := make([]TorchResult, len(jobs))
	for i, r := range resp.Results {
		if r.Error != "" {
			out[i].Err = r.Error
			continue
		}
		data, err := readFloat32s(req.Jobs[i].Output, r.Dims)
		if err != nil {
			return nil, err
		}
		out[i].Logits = Tensor{Dims: r.Dims, Data: data}
	}
	return out, nil
}

// TorchExport is one file written by tools/pytorch/export_torch_models.py.
type TorchExport struct {
	Name  string `json:"name"`  // resnet18, resnet50, resnet20A, resnet20B
	Opset int    `json:"opset"` // 9, 11, 13 or 17
	BN    string `json:"bn"`    // "kept" or "folded"
	Path  string `json:"path"`  // file name inside the folder
	Input []int  `json:"input"` // C, H, W
}

// ExportTorchModels runs tools/pytorch/export_torch_models.py into dir
// (only the CIFAR models when small) and returns its manifest: files
// written by PyTorch's own ONNX exporter, for tests of the runtime and the
// importer.
func (t Tools) ExportTorchModels(ctx context.Context, dir string, small bool) ([]TorchExport, error) {
	args := []string{filepath.Join(t.Root, "tools", "pytorch", "export_torch_models.py"), dir}
	if small {
		args = append(args, "--small")
	}
	if out, err := exec.CommandContext(ctx, t.Python, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("export_torch_models.py: %v\n%.2000s", err, out)
	}
	var manifest struct {
		Models []TorchExport `json:"models"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		return nil, fmt.Errorf("export_torch_models.py manifest: %w", err)
	}
	want := 30 // 4 models x 4 opsets x 2 BN forms, less option A at opset 9
	if small {
		want = 14
	}
	if len(manifest.Models) != want {
		return nil, fmt.Errorf("export_torch_models.py listed %d files, want %d", len(manifest.Models), want)
	}
	return manifest.Models, nil
}
