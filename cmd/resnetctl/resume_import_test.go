package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainResumeImported: `train --resume` on a directory written by
// `resnetctl import` trains from the imported weights (the import is a
// checkpoint ready for --resume), then continues its own checkpoints.
func TestTrainResumeImported(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "r8.onnx")
	if code, _, errOut := runCLI("export", "--model", "resnet8", model); code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	ck := filepath.Join(dir, "ck")
	if code, _, errOut := runCLI("import", model, "--out", ck); code != 0 {
		t.Fatalf("import: %s", errOut)
	}
	args := []string{"train", "--out", ck, "--resume", "--data", "sample", "--limit", "64", "--batch", "32", "--threads", "1"}
	code, stdout, errOut := runCLI(append(args, "--epochs", "1")...)
	if code != 0 || !strings.Contains(errOut, "holds an imported model") || !strings.Contains(stdout, "epoch 1:") {
		t.Fatalf("resume of an import: exit %d, stdout %q, stderr %q", code, stdout, errOut)
	}
	code, stdout, errOut = runCLI(append(args, "--epochs", "2")...)
	if code != 0 || !strings.Contains(errOut, "resuming") || !strings.Contains(stdout, "epoch 2:") {
		t.Fatalf("second resume: exit %d, stdout %q, stderr %q", code, stdout, errOut)
	}
	if _, err := os.Stat(filepath.Join(ck, "epoch-0002", "model.onnx")); err != nil {
		t.Error(err)
	}
}
