package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNonFiniteMidRunKeepsLastGoodCheckpoint poisons one value of a
// parameter with NaN or +Inf in the middle of epoch 3 of a checkpointed
// run, through a batch callback, so that each of Fit's checks fires: the
// loss of the next step (a weight), the end-of-epoch parameter scan (a
// weight poisoned after the epoch's last step, and a BatchNorm running
// variance, which batch statistics hide from the loss). Fit fails with an
// error wrapping ErrNonFinite that names the epoch, no checkpoint of
// epoch 3 is written, the newest checkpoint is epoch 2's, and it loads
// with finite weights only.
func TestNonFiniteMidRunKeepsLastGoodCheckpoint(t *testing.T) {
	ds := sample(t, "train", 64)
	spec := smallSpec()
	train, _ := sources(t, ds, spec.Preprocess)
	const batches = 4 // 64 images in batches of 16
	tests := []struct {
		name  string
		param string
		batch int // poisoned after this batch of epoch 3
		value float32
		want  string // in the error
	}{
		{"loss", "conv1.weight", 2, float32(math.NaN()), "loss is not finite"},
		{"loss-inf", "layer1.0.conv2.weight", 1, float32(math.Inf(1)), "loss is not finite"},
		{"epoch-end-scan", "fc.weight", batches, float32(math.NaN()), "parameter fc.weight is not finite"},
		{"running-statistics", "bn1.running_var", 2, float32(math.NaN()), "parameter bn1.running_var is not finite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := compiled(t, spec, OptimizerConfig{Name: SGD, LR: 0.05, Momentum: 0.9}, ScheduleConfig{})
			if m.Graph.Param(tt.param) == nil {
				t.Fatalf("no parameter %s", tt.param)
			}
			dir := t.TempDir()
			poisoned := false
			fo := FitOptions{Epochs: 4, Batch: 16, Seed: 1, CheckpointDir: dir,
				Callbacks: []Callback{CallbackFuncs{BatchEnd: func(b BatchInfo) {
					if b.Epoch == 3 && b.Batch == tt.batch {
						m.Graph.Param(tt.param).Data[0] = tt.value
						poisoned = true
					}
				}}}}
			h, err := m.Fit(context.Background(), train, fo)
			if !poisoned {
				t.Fatalf("never poisoned (Fit: %v)", err)
			}
			if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "epoch 3") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Fit: %v; want ErrNonFinite in epoch 3 with %q", err, tt.want)
			}
			t.Logf("%v", err)
			if h == nil || len(h.Epochs) != 2 {
				t.Errorf("history %+v, want the 2 good epochs", h)
			}
			latest, err := LatestCheckpoint(dir)
			if err != nil || filepath.Base(latest) != "epoch-0002" {
				t.Fatalf("latest checkpoint %q (%v), want epoch-0002", latest, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "epoch-0003")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a checkpoint of the failed epoch exists (%v)", err)
			}
			c, err := LoadCheckpoint(latest)
			if err != nil {
				t.Fatalf("the last good checkpoint does not load: %v", err)
			}
			if c.State.Epoch != 2 {
				t.Errorf("checkpoint at epoch %d", c.State.Epoch)
			}
			for _, p := range c.Graph.Params {
				for j, v := range p.Data {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("%s holds a non-finite %s[%d]", latest, p.Name, j)
					}
				}
			}
			// The run continues from it.
			r, _, err := Resume(latest, 2)
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
		})
	}
}
