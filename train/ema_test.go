package train

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
)

// TestEMAArithmetic: constant weights leave the average exactly as it
// is; a weight moved by δ moves its average by (1−d)·δ; parameters the
// Net does not train (running statistics) are copied.
func TestEMAArithmetic(t *testing.T) {
	for _, d := range []float64{0.5, 0.9, 0.999} {
		w := &build.Param{Name: "w", Shape: []int{3}, Data: []float32{1, -2, 0.25}, Trainable: true}
		stat := &build.Param{Name: "bn.mean", Shape: []int{2}, Data: []float32{0.5, 7}}
		g := &build.Graph{Params: []*build.Param{w, stat}}
		e := newEMA(g, d, map[*build.Param]bool{w: true})
		for range 10 {
			e.update()
		}
		for j, v := range w.Data {
			if e.avg[0][j] != v {
				t.Fatalf("d %g: constant weight %g averaged to %g", d, v, e.avg[0][j])
			}
		}
		delta := []float32{1, 0.5, -4}
		for j := range w.Data {
			w.Data[j] += delta[j]
		}
		stat.Data[0], stat.Data[1] = 3, -1
		before := append([]float32(nil), e.avg[0]...)
		e.update()
		for j := range w.Data {
			want := float64(before[j]) + (1-d)*float64(delta[j])
			if got := float64(e.avg[0][j]); math.Abs(got-want) > 1e-6 {
				t.Errorf("d %g: weight %d: average %g after a step of %g from %g, want %g", d, j, got, delta[j], before[j], want)
			}
		}
		if e.avg[1][0] != 3 || e.avg[1][1] != -1 {
			t.Errorf("d %g: running statistics %v, want them copied (3, -1)", d, e.avg[1])
		}
		eg := e.graph(g)
		if eg.Param("w").Data[0] != e.avg[0][0] || g.Param("w").Data[0] != w.Data[0] || eg.Params[0] == w {
			t.Errorf("d %g: the EMA graph does not hold the average apart from the model's weights", d)
		}
		if n := testing.AllocsPerRun(5, e.update); n != 0 {
			t.Errorf("d %g: update allocates %v times", d, n)
		}
	}
}

// TestEMAValidate: Recipe.Validate takes ema_decay 0 or in (0, 1) and
// validation_tta "" or "flip", and names the field otherwise.
func TestEMAValidate(t *testing.T) {
	for _, name := range RecipeNames() {
		r, err := LookupRecipe(name)
		if err != nil {
			t.Fatal(err)
		}
		if r.EMADecay != 0 {
			t.Errorf("recipe %s turns on EMA (%g): it is off in the named recipes", name, r.EMADecay)
		}
		if want := map[bool]string{true: TTAFlip}[name == "quick"]; r.ValidationTTA != want {
			t.Errorf("recipe %s validates with TTA %q, want %q (only quick uses flip TTA)", name, r.ValidationTTA, want)
		}
	}
	r, err := LookupRecipe("fast")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		decay float64
		tta   string
		bad   bool
	}{{0, "", false}, {0.999, "flip", false}, {1, "", true}, {-0.1, "", true}, {math.NaN(), "", true}, {0, "crop", true}, {0, "Flip", true}} {
		r.EMADecay, r.ValidationTTA = tc.decay, tc.tta
		err := r.Validate()
		if (err != nil) != tc.bad {
			t.Errorf("ema_decay %g, validation_tta %q: %v", tc.decay, tc.tta, err)
		}
		field := "validation_tta"
		if tc.decay != 0 {
			field = "ema_decay"
		}
		if err != nil && (!strings.Contains(err.Error(), field) || strings.Contains(err.Error(), "\n")) {
			t.Errorf("error %q does not name %s on one line", err, field)
		}
	}
}

// TestEMAResumeIsExact: with EMA on (and flip-TTA validation), a run
// stopped after epoch 1 and resumed from its checkpoint is bit-identical
// to an uninterrupted one: weights, optimiser state, moving average
// (state.safetensors) and the deployed model.onnx, which holds the
// average, not the raw weights.
func TestEMAResumeIsExact(t *testing.T) {
	ds := sample(t, "train", 64)
	vds := sample(t, "test", 16)
	spec := smallSpec()
	opt := OptimizerConfig{Name: SGD, LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4}
	sched := ScheduleConfig{Kind: Cosine}
	train, _ := sources(t, ds, spec.Preprocess)
	_, val := sources(t, vds, spec.Preprocess)
	mk := func() *Model {
		m, err := NewModel(spec, 3)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Compile(CompileOptions{Optimizer: opt, Schedule: sched, Threads: 2, EMADecay: 0.9}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	base := FitOptions{Epochs: 3, Batch: 16, Seed: 11, RecipeName: "test", Augment: "none", Validation: val, ValidationTTA: TTAFlip}

	full := mk()
	fullDir := filepath.Join(t.TempDir(), "full")
	fo := base
	fo.CheckpointDir = fullDir
	hFull, err := full.Fit(context.Background(), train, fo)
	if err != nil {
		t.Fatal(err)
	}

	latest := fitUntil(t, mk(), train, base, 1)
	resumed, r, err := Resume(latest, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	if r.EMADecay != 0.9 || r.ValidationTTA != TTAFlip {
		t.Fatalf("recorded recipe: ema_decay %g, validation_tta %q", r.EMADecay, r.ValidationTTA)
	}
	fo = r.FitOptions()
	fo.Validation = val
	fo.CheckpointDir = filepath.Join(t.TempDir(), "resumed")
	hRes, err := resumed.Fit(context.Background(), train, fo)
	if err != nil {
		t.Fatal(err)
	}
	for _, epoch := range []string{"epoch-0002", "epoch-0003"} {
		a, err := LoadCheckpoint(filepath.Join(fullDir, epoch))
		if err != nil {
			t.Fatal(err)
		}
		b, err := LoadCheckpoint(filepath.Join(fo.CheckpointDir, epoch))
		if err != nil {
			t.Fatal(err)
		}
		if len(a.ema) != len(a.Graph.Params) {
			t.Fatalf("%s: %d EMA tensors for %d parameters", epoch, len(a.ema), len(a.Graph.Params))
		}
		for _, f := range []string{StateFile, ModelFile} {
			if a.State.Files[f] != b.State.Files[f] {
				t.Errorf("%s: %s differs after resuming", epoch, f)
			}
		}
	}
	sameParams(t, full, resumed)
	for i := range hFull.Epochs {
		a, b := hFull.Epochs[i], hRes.Epochs[i]
		if a.Loss != b.Loss || a.ValLoss != b.ValLoss || a.ValAccuracy != b.ValAccuracy {
			t.Errorf("epoch %d: %+v vs %+v", i+1, a, b)
		}
	}
	// The deployed model is the average: its validation matches
	// EvaluateTTA, which differs from the raw weights'.
	last := hFull.Epochs[len(hFull.Epochs)-1]
	got, err := full.EvaluateTTA(context.Background(), val, 0, TTAFlip)
	if err != nil {
		t.Fatal(err)
	}
	if got.Loss != last.ValLoss || got.Accuracy != last.ValAccuracy {
		t.Errorf("EvaluateTTA %+v, last validation %+v", got, last)
	}
	raw := FromGraph(full.Graph)
	if err := raw.Compile(CompileOptions{Optimizer: opt, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	rawRes, err := raw.EvaluateTTA(context.Background(), val, 0, TTAFlip)
	if err != nil {
		t.Fatal(err)
	}
	if rawRes.Loss == got.Loss {
		t.Errorf("the raw weights validate exactly as the average (loss %g): is the average used?", got.Loss)
	}
}
