package train

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInterruptMidEpochResumesExactly: cancelling the context in the
// middle of an epoch (what Ctrl-C does in resnetctl train) saves a
// checkpoint of the unfinished epoch; resuming from it replays the same
// augmented batches and ends bit-identical to an uninterrupted run
// (weights, running statistics, optimiser state and per-epoch metrics).
// Once the interrupted epoch completes, its partial checkpoint is removed.
func TestInterruptMidEpochResumesExactly(t *testing.T) {
	ds := sample(t, "train", 96)
	spec := smallSpec()
	opt := OptimizerConfig{Name: SGD, LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4}
	sched := ScheduleConfig{Kind: Cosine, WarmupEpochs: 1}
	src, err := NewAugmentedSource(ds, "paper", spec.Preprocess, 0)
	if err != nil {
		t.Fatal(err)
	}
	base := FitOptions{Epochs: 3, Batch: 16, Seed: 5, RecipeName: "test", Augment: "paper"}

	full := compiled(t, spec, opt, sched)
	fo := base
	fullDir := filepath.Join(t.TempDir(), "full")
	fo.CheckpointDir = fullDir
	hFull, err := full.Fit(context.Background(), src, fo)
	if err != nil {
		t.Fatal(err)
	}

	for _, stopAt := range []struct{ epoch, batch int }{{2, 3}, {1, 1}, {3, 5}} {
		part := compiled(t, spec, opt, sched)
		ctx, cancel := context.WithCancel(context.Background())
		fo = base
		fo.CheckpointDir = filepath.Join(t.TempDir(), "part")
		fo.Callbacks = []Callback{CallbackFuncs{BatchEnd: func(b BatchInfo) {
			if b.Epoch == stopAt.epoch && b.Batch == stopAt.batch {
				cancel()
			}
		}}}
		h, err := part.Fit(ctx, src, fo)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: %v, want context.Canceled", err)
		}
		want := partialName(stopAt.epoch-1, stopAt.batch)
		if !strings.Contains(h.Stopped, want) {
			t.Errorf("History.Stopped = %q, want it to name %s", h.Stopped, want)
		}
		latest, err := LatestCheckpoint(fo.CheckpointDir)
		if err != nil || filepath.Base(latest) != want {
			t.Fatalf("latest checkpoint %q (%v), want %s", latest, err, want)
		}
		resumed, r, err := Resume(latest, 2)
		if err != nil {
			t.Fatal(err)
		}
		fo = r.FitOptions()
		fo.CheckpointDir = filepath.Dir(latest)
		hRes, err := resumed.Fit(context.Background(), src, fo)
		if err != nil {
			t.Fatal(err)
		}
		sameParams(t, full, resumed)
		if len(hRes.Epochs) != len(hFull.Epochs) {
			t.Fatalf("histories of %d and %d epochs", len(hFull.Epochs), len(hRes.Epochs))
		}
		for i := range hFull.Epochs {
			a, b := hFull.Epochs[i], hRes.Epochs[i]
			if a.Loss != b.Loss || a.Accuracy != b.Accuracy || a.Step != b.Step || a.LR != b.LR || a.ValAccuracy != b.ValAccuracy {
				t.Errorf("stop at %v: epoch %d: %+v vs %+v", stopAt, i+1, a, b)
			}
		}
		if _, err := os.Stat(latest); !os.IsNotExist(err) {
			t.Errorf("the partial checkpoint %s is still there after its epoch completed (%v)", latest, err)
		}
		a, err := LoadCheckpoint(filepath.Join(fullDir, "epoch-0003"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := LoadCheckpoint(filepath.Join(fo.CheckpointDir, "epoch-0003"))
		if err != nil {
			t.Fatal(err)
		}
		if a.State.Files[StateFile] != b.State.Files[StateFile] {
			t.Errorf("stop at %v: final state files differ (optimiser buffers or statistics)", stopAt)
		}
		resumed.Close()
	}
}
