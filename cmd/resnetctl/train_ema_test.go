package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainEMAFlags: --ema-decay and --validation-tta set the recipe's
// fields (recorded in trainer.json, the average saved in
// state.safetensors), a resume continues with them, and invalid values
// are refused naming the field.
func TestTrainEMAFlags(t *testing.T) {
	dir, archive := tinyTrainArchive(t)
	refusedTrainFlags(t, archive, filepath.Join(dir, "refused"), []refusedFlags{
		{[]string{"--ema-decay", "1"}, "ema_decay 1"},
		{[]string{"--ema-decay", "-0.5"}, "ema_decay -0.5"},
		{[]string{"--validation-tta", "crop"}, "validation_tta \"crop\""},
	})
	out := filepath.Join(dir, "run")
	code, _, errOut := runCLI("train", "--model", "resnet8", "--data", archive, "--batch", "10", "--epochs", "1", "--threads", "1",
		"--ema-decay", "0.9", "--validation-tta", "flip", "--out", out)
	if code != 0 || !strings.Contains(errOut, "ema decay 0.9") {
		t.Fatalf("exit %d %q", code, errOut)
	}
	st := trainerState(t, filepath.Join(out, "epoch-0001"))
	if st.Recipe.EMADecay != 0.9 || st.Recipe.ValidationTTA != "flip" {
		t.Fatalf("recorded recipe: ema_decay %g, validation_tta %q", st.Recipe.EMADecay, st.Recipe.ValidationTTA)
	}
	b, err := os.ReadFile(filepath.Join(out, "epoch-0001", "state.safetensors"))
	if err != nil || !strings.Contains(string(b), `"ema.`) {
		t.Fatalf("state.safetensors holds no EMA tensors (%v)", err)
	}
	code, stdout, errOut := runCLI("train", "--out", out, "--resume", "--epochs", "2", "--ema-decay", "0.9")
	if code != 0 || !strings.Contains(stdout, "epoch 2:") {
		t.Fatalf("resume: exit %d %q %q", code, stdout, errOut)
	}
	if st := trainerState(t, filepath.Join(out, "epoch-0002")); st.Recipe.EMADecay != 0.9 || st.Recipe.ValidationTTA != "flip" {
		t.Errorf("resumed recipe: ema_decay %g, validation_tta %q", st.Recipe.EMADecay, st.Recipe.ValidationTTA)
	}
}

// refusedFlags is a train flag set that must be refused, and what the
// message must say.
type refusedFlags struct {
	args []string
	says string
}

// refusedTrainFlags trains ResNet-8 on archive with each flag set and
// checks for a usage error naming the problem.
func refusedTrainFlags(t *testing.T, archive, out string, cases []refusedFlags) {
	t.Helper()
	for _, tc := range cases {
		args := append([]string{"train", "--model", "resnet8", "--data", archive, "--out", out}, tc.args...)
		if code, _, errOut := runCLI(args...); code != exitUsage || !strings.Contains(errOut, tc.says) {
			t.Errorf("%v: exit %d %q, want a usage error naming %q", tc.args, code, errOut, tc.says)
		}
	}
}

// tinyTrainArchive writes a JPEG archive of ten classes, four training
// and one test image each, into a new temporary folder, and returns both.
func tinyTrainArchive(t *testing.T) (dir, archive string) {
	t.Helper()
	dir = t.TempDir()
	archive = filepath.Join(dir, "jpeg.tar.gz")
	writeJPEGArchive(t, archive, tenClasses, 4, 1, 1)
	return dir, archive
}
