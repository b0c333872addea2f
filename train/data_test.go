package train

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/resnetctl/resnetctl/models"
)

func TestDatasetSource(t *testing.T) {
	ds := sample(t, "train", 50)
	spec := smallSpec()
	shuffled, ordered := sources(t, ds, spec.Preprocess)
	if shuffled.Len() != 50 || shuffled.Shape() != spec.Input {
		t.Fatalf("len %d shape %s", shuffled.Len(), shuffled.Shape())
	}
	pass := func(s Source, epoch int, seed uint64) []int {
		b, err := s.Epoch(epoch, seed, 16)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, 16*3*32*32)
		labels := make([]int, 16)
		var all, sizes []int
		for {
			n, err := b.Next(x, labels)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			sizes = append(sizes, n)
			all = append(all, labels[:n]...)
		}
		if !slices.Equal(sizes, []int{16, 16, 16, 2}) {
			t.Errorf("batch sizes %v, want 16 16 16 2", sizes)
		}
		return all
	}
	if got := pass(ordered, 3, 99); !slices.Equal(got, ds.Labels) {
		t.Error("an ordered pass is not the data set in order")
	}
	a, b := pass(shuffled, 1, 7), pass(shuffled, 1, 7)
	if !slices.Equal(a, b) {
		t.Error("the same epoch and seed gave different orders")
	}
	if c := pass(shuffled, 2, 7); slices.Equal(a, c) {
		t.Error("different epochs gave the same order")
	}
	s1, s2 := slices.Clone(a), slices.Clone(ds.Labels)
	slices.Sort(s1)
	slices.Sort(s2)
	if !slices.Equal(s1, s2) {
		t.Error("a shuffled pass is not a permutation")
	}
}

func TestFitErrors(t *testing.T) {
	ds := sample(t, "train", 20)
	spec := smallSpec()
	train, _ := sources(t, ds, spec.Preprocess)
	m, _ := NewModel(spec, 1)
	defer m.Close()
	ctx := context.Background()
	if _, err := m.Fit(ctx, train, FitOptions{Epochs: 1, Batch: 4}); err == nil {
		t.Error("Fit before Compile: no error")
	}
	if err := m.Compile(CompileOptions{Optimizer: OptimizerConfig{Name: SGD, LR: 0.1}, Metrics: []string{"mae"}}); err == nil {
		t.Error("unknown metric accepted")
	}
	if err := m.Compile(CompileOptions{Optimizer: OptimizerConfig{Name: SGD, LR: 0.1}, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []FitOptions{
		{Epochs: 1, Batch: 32},                         // no full batch
		{Epochs: 0, Batch: 4},                          // no epochs
		{Epochs: 1, Batch: 1},                          // batch of one
		{Epochs: 1, Batch: 4, Monitor: "val_accuracy"}, // no validation data
		{Epochs: 1, Batch: 4, Monitor: "val_loss"},     // no validation data
	} {
		if _, err := m.Fit(ctx, train, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	other := smallSpec()
	other.Input = models.Shape{C: 3, H: 16, W: 16}
	m2, _ := NewModel(other, 1)
	defer m2.Close()
	_ = m2.Compile(CompileOptions{Optimizer: OptimizerConfig{Name: SGD, LR: 0.1}})
	if _, err := m2.Fit(ctx, train, FitOptions{Epochs: 1, Batch: 4}); err == nil {
		t.Error("32x32 data for a 16x16 model: no error")
	}
}

// TestCheckpointIntegrity: a damaged checkpoint file is refused; pruning
// keeps the newest epochs and the best one; the trainer state is JSON
// with the recipe.
func TestCheckpointIntegrity(t *testing.T) {
	ds := sample(t, "train", 32)
	spec := smallSpec()
	train, ordered := sources(t, ds, spec.Preprocess)
	m := compiled(t, spec, OptimizerConfig{Name: SGD, LR: 0.05, Momentum: 0.9}, ScheduleConfig{})
	dir := t.TempDir()
	if _, err := m.Fit(context.Background(), train, FitOptions{Epochs: 4, Batch: 16, Seed: 1, CheckpointDir: dir, KeepLast: 2,
		Validation: ordered, RecipeName: "custom", Augment: "paper"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"best", "epoch-0003", "epoch-0004"}) {
		t.Errorf("checkpoints %v, want best epoch-0003 epoch-0004", names)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "epoch-0004", TrainerFile))
	if err != nil {
		t.Fatal(err)
	}
	var st TrainerState
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.Epoch != 4 || st.Recipe.Name != "custom" || st.Recipe.Augment != "paper" || len(st.History) != 4 || st.Best == nil || len(st.RNG) == 0 {
		t.Errorf("trainer state %+v", st)
	}
	// Flip one byte of the weights.
	sf := filepath.Join(dir, "epoch-0004", StateFile)
	b, _ := os.ReadFile(sf)
	b[len(b)-1] ^= 1
	if err := os.WriteFile(sf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCheckpoint(filepath.Join(dir, "epoch-0004")); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("damaged checkpoint: %v, want ErrCheckpoint", err)
	}
	if _, _, err := Resume(filepath.Join(dir, "epoch-0004"), 2); err == nil {
		t.Error("resumed from a damaged checkpoint")
	}
}

func TestProbabilities(t *testing.T) {
	p := Probabilities([]float32{0, 0, 1000, 1, 2, 3}, 3)
	if p[2] != 1 || p[0] != 0 || p[3] > p[4] || p[4] > p[5] {
		t.Errorf("%v", p)
	}
	s := p[3] + p[4] + p[5]
	if s < 0.9999 || s > 1.0001 {
		t.Errorf("row sums to %g", s)
	}
}
