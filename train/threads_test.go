package train

import (
	"context"
	"testing"

	"github.com/resnetctl/resnetctl/models"
)

// TestThreadCountDoesNotChangeResults: training with 1 and with 3 kernel
// threads gives bit-identical weights (reductions are summed in an order
// fixed by the batch size alone). ResNet-8's 32- and 64-channel layers
// run by Winograd.
func TestThreadCountDoesNotChangeResults(t *testing.T) {
	ds := sample(t, "train", 64)
	spec, _ := models.CIFARDepth(8, models.Basic)
	train, _ := sources(t, ds, spec.Preprocess)
	var runs []*Model
	for _, threads := range []int{1, 3} {
		m, err := NewModel(spec, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Compile(CompileOptions{Optimizer: OptimizerConfig{Name: SGD, LR: 0.05, Momentum: 0.9, WeightDecay: 5e-4}, Threads: threads}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Fit(context.Background(), train, FitOptions{Epochs: 2, Batch: 32, Seed: 4}); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, m)
	}
	sameParams(t, runs[0], runs[1])
}
