package main

import (
	"path/filepath"
	"testing"

	"github.com/resnetctl/resnetctl/train"
)

// TestTrainScheduleFlags: --schedule and --label-smoothing set the
// recipe's schedule and smoothing (recorded in trainer.json), and bad
// values are refused naming the flag or field.
func TestTrainScheduleFlags(t *testing.T) {
	dir, archive := tinyTrainArchive(t)
	refusedTrainFlags(t, archive, filepath.Join(dir, "refused"), []refusedFlags{
		{[]string{"--schedule", "steps"}, `--schedule "steps": want cosine, onecycle or constant`},
		{[]string{"--label-smoothing", "1"}, "label smoothing 1 must be in [0, 1)"},
		{[]string{"--label-smoothing", "-0.1"}, "label smoothing -0.1 must be in [0, 1)"},
	})
	for _, tc := range []struct {
		schedule string
		want     train.ScheduleConfig
	}{
		{"onecycle", train.OneCycleDefaults(0)},
		{"constant", train.ScheduleConfig{Kind: train.Constant}},
	} {
		out := filepath.Join(dir, tc.schedule)
		code, _, errOut := runCLI("train", "--model", "resnet8", "--data", archive, "--batch", "10", "--epochs", "1", "--threads", "1",
			"--schedule", tc.schedule, "--label-smoothing", "0.1", "--lr", "0.2", "--out", out)
		if code != 0 {
			t.Fatalf("%s: exit %d %q", tc.schedule, code, errOut)
		}
		r := trainerState(t, filepath.Join(out, "epoch-0001")).Recipe
		if r.Schedule.Kind != tc.want.Kind || r.Schedule.PctStart != tc.want.PctStart || r.Schedule.DivFactor != tc.want.DivFactor ||
			r.LabelSmoothing != 0.1 || r.Optimizer.LR != 0.2 {
			t.Errorf("%s: recorded schedule %+v, label smoothing %g, lr %g", tc.schedule, r.Schedule, r.LabelSmoothing, r.Optimizer.LR)
		}
	}
}

// TestTrainRecipeQuick: --recipe quick trains (on a tiny archive) with
// its one-cycle schedule, label smoothing and flip-TTA validation, all
// recorded in trainer.json, and a flag still overrides it.
func TestTrainRecipeQuick(t *testing.T) {
	dir, archive := tinyTrainArchive(t)
	out := filepath.Join(dir, "quick")
	code, _, errOut := runCLI("train", "--model", "resnet8", "--data", archive, "--recipe", "quick", "--batch", "10", "--epochs", "1", "--threads", "1",
		"--label-smoothing", "0.05", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d %q", code, errOut)
	}
	r := trainerState(t, filepath.Join(out, "epoch-0001")).Recipe
	if r.Name != "quick" || r.Schedule.Kind != train.OneCycle || r.Optimizer.LR != 0.2 || !r.Optimizer.Nesterov ||
		r.ValidationTTA != train.TTAFlip || r.LabelSmoothing != 0.05 || r.Epochs != 1 {
		t.Errorf("recorded recipe %+v", r)
	}
}
