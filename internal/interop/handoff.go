package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// CheckpointJob asks PyTorch to load a resnetctl training checkpoint
// (model.onnx, state.safetensors, trainer.json) with
// tools/pytorch/load_checkpoint.py: the parameters of state.safetensors by
// torchvision's names into torchvision / tools/pytorch/resnets.py modules,
// load_state_dict(strict=True), then Input run in eval mode. With
// TrainSteps, that many SGD steps on seeded random data come first (a
// stand-in for training elsewhere); with ExportONNX, PyTorch's own
// exporter writes the (trained) model there, BatchNorm kept, batch axis
// dynamic.
type CheckpointJob struct {
	Checkpoint string
	Input      Tensor
	TrainSteps int
	ExportONNX string
	StateDict  string // if set, torch.save the state dict here
}

// CheckpointResult is PyTorch's answer to a [CheckpointJob].
type CheckpointResult struct {
	// Logits are the model's outputs on the job's input (after the
	// training steps, if any).
	Logits Tensor
	// Module says which PyTorch module the weights went into
	// ("torchvision.models.resnet18(num_classes=1000)" …).
	Module string
	// Loaded counts the state-dict entries read from state.safetensors;
	// NumBatchesTracked the BatchNorm counters the script filled in.
	Loaded, NumBatchesTracked int
	// TrainLosses are the losses of the training steps.
	TrainLosses []float64
	Torch       string
}

// TorchCheckpoint runs one [CheckpointJob] in one Python process.
func (t Tools) TorchCheckpoint(ctx context.Context, job CheckpointJob) (*CheckpointResult, error) {
	dir, err := os.MkdirTemp("", "resnetctl-handoff-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "in.f32"), filepath.Join(dir, "out.f32")
	if n := handoffElems(job.Input.Dims); n != len(job.Input.Data) || len(job.Input.Dims) != 4 {
		return nil, fmt.Errorf("interop: checkpoint job input: dims %v need %d values, have %d (want NCHW)", job.Input.Dims, n, len(job.Input.Data))
	}
	if err := writeFloat32s(in, job.Input.Data); err != nil {
		return nil, err
	}
	dims := make([]string, len(job.Input.Dims))
	for i, d := range job.Input.Dims {
		dims[i] = strconv.Itoa(d)
	}
	script := filepath.Join(t.Root, "tools", "pytorch", "load_checkpoint.py")
	args := []string{script, job.Checkpoint, "--input", in, "--dims", strings.Join(dims, ","), "--output", out}
	if job.TrainSteps > 0 {
		args = append(args, "--train-steps", strconv.Itoa(job.TrainSteps))
	}
	if job.ExportONNX != "" {
		args = append(args, "--export-onnx", job.ExportONNX)
	}
	if job.StateDict != "" {
		args = append(args, "--state-dict", job.StateDict)
	}
	cmd := exec.CommandContext(ctx, t.Python, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("load_checkpoint.py %s: %v%s", job.Checkpoint, err, stderrTail(stderr.Bytes()))
	}
	var resp struct {
		Module            string    `json:"module"`
		Loaded            int       `json:"loaded"`
		NumBatchesTracked int       `json:"num_batches_tracked"`
		Dims              []int     `json:"dims"`
		TrainLosses       []float64 `json:"train_losses"`
		Torch             string    `json:"torch"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("load_checkpoint.py answered %q: %w", stdout.String(), err)
	}
	data, err := readFloat32s(out, resp.Dims)
	if err != nil {
		return nil, err
	}
	return &CheckpointResult{
		Logits: Tensor{Dims: resp.Dims, Data: data}, Module: resp.Module, Loaded: resp.Loaded,
		NumBatchesTracked: resp.NumBatchesTracked, TrainLosses: resp.TrainLosses, Torch: resp.Torch,
	}, nil
}

// handoffElems is the element count of dims (1 for none).
func handoffElems(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}
