package train

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/models"
)

// sample returns the first n images of the embedded CIFAR-10 sample split.
func sample(t *testing.T, split string, n int) *cifar.Dataset {
	t.Helper()
	ds, err := cifar.EmbeddedSample(split)
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, min(n, ds.Len()))
	for i := range idx {
		idx[i] = i
	}
	sub, err := ds.Subset(idx)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// smallSpec is a narrow CIFAR ResNet-8 (widths 8, 16, 16) for fast tests.
func smallSpec() models.Spec {
	s, _ := models.CIFARDepth(8, models.Basic)
	s.Name = "resnet8-small"
	s.Widths, s.StemWidth = []int{8, 16, 16}, 8
	return s
}

func sources(t *testing.T, ds *cifar.Dataset, pre models.Preprocess) (shuffled, ordered *DatasetSource) {
	t.Helper()
	a, err := NewDatasetSource(ds, pre, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewDatasetSource(ds, pre, false)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func compiled(t *testing.T, spec models.Spec, opt OptimizerConfig, sched ScheduleConfig) *Model {
	t.Helper()
	m, err := NewModel(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Compile(CompileOptions{Optimizer: opt, Schedule: sched, Metrics: []string{"accuracy"}, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// sameParams reports the first parameter whose values differ in any bit.
func sameParams(t *testing.T, a, b *Model) {
	t.Helper()
	for i, p := range a.Graph.Params {
		q := b.Graph.Params[i]
		for j := range p.Data {
			if math.Float32bits(p.Data[j]) != math.Float32bits(q.Data[j]) {
				t.Fatalf("%s[%d]: %g vs %g", p.Name, j, p.Data[j], q.Data[j])
			}
		}
	}
}

// TestResumeIsExact: a run stopped after epoch 2 (its context cancelled)
// and resumed from the epoch-2 checkpoint is bit-identical to an
// uninterrupted run at epoch 3 (weights and running statistics) and at the
// end (weights, history), for SGD with Nesterov momentum and for AdamW,
// both on a warm-up + cosine schedule.
// fitUntil fits m with fo, cancelled at the end of epoch stop, into a new
// checkpoint folder, and returns the latest checkpoint there (which must
// be that epoch's).
func fitUntil(t *testing.T, m *Model, train Source, fo FitOptions, stop int) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fo.CheckpointDir = filepath.Join(t.TempDir(), "part")
	fo.Callbacks = []Callback{CallbackFuncs{EpochEnd: func(e EpochInfo) {
		if e.Metrics.Epoch == stop {
			cancel()
		}
	}}}
	if _, err := m.Fit(ctx, train, fo); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v, want context.Canceled", err)
	}
	latest, err := LatestCheckpoint(fo.CheckpointDir)
	if want := fmt.Sprintf("epoch-%04d", stop); err != nil || filepath.Base(latest) != want {
		t.Fatalf("latest checkpoint %q (%v), want %s", latest, err, want)
	}
	return latest
}

func TestResumeIsExact(t *testing.T) {
	ds := sample(t, "train", 96)
	spec := smallSpec()
	for _, opt := range []OptimizerConfig{
		{Name: SGD, LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4},
		{Name: AdamW, LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-7, WeightDecay: 0.01},
	} {
		t.Run(opt.Name, func(t *testing.T) {
			sched := ScheduleConfig{Kind: Cosine, WarmupEpochs: 1}
			train, _ := sources(t, ds, spec.Preprocess)
			base := FitOptions{Epochs: 4, Batch: 16, Seed: 11, RecipeName: "test", Augment: "none"}

			full := compiled(t, spec, opt, sched)
			fullDir := filepath.Join(t.TempDir(), "full")
			fo := base
			fo.CheckpointDir = fullDir
			hFull, err := full.Fit(context.Background(), train, fo)
			if err != nil {
				t.Fatal(err)
			}

			latest := fitUntil(t, compiled(t, spec, opt, sched), train, base, 2)

			resumed, r, err := Resume(latest, 2)
			if err != nil {
				t.Fatal(err)
			}
			defer resumed.Close()
			if r.Name != "test" || r.Augment != "none" || r.Epochs != 4 || r.Optimizer != opt {
				t.Errorf("recorded recipe %+v", r)
			}
			fo = r.FitOptions()
			fo.CheckpointDir = filepath.Join(t.TempDir(), "resumed")
			hRes, err := resumed.Fit(context.Background(), train, fo)
			if err != nil {
				t.Fatal(err)
			}
			for _, epoch := range []string{"epoch-0003", "epoch-0004"} {
				a, err := LoadCheckpoint(filepath.Join(fullDir, epoch))
				if err != nil {
					t.Fatal(err)
				}
				b, err := LoadCheckpoint(filepath.Join(fo.CheckpointDir, epoch))
				if err != nil {
					t.Fatal(err)
				}
				sameParams(t, FromGraph(a.Graph), FromGraph(b.Graph))
				if a.State.Files[StateFile] != b.State.Files[StateFile] {
					t.Errorf("%s: state files differ (optimiser buffers)", epoch)
				}
			}
			sameParams(t, full, resumed)
			if len(hRes.Epochs) != 4 || len(hFull.Epochs) != 4 {
				t.Fatalf("histories of %d and %d epochs", len(hFull.Epochs), len(hRes.Epochs))
			}
			for i := range hFull.Epochs {
				a, b := hFull.Epochs[i], hRes.Epochs[i]
				if a.Loss != b.Loss || a.Accuracy != b.Accuracy || a.Step != b.Step || a.LR != b.LR {
					t.Errorf("epoch %d: %+v vs %+v", i+1, a, b)
				}
			}
			t.Logf("%s: epochs 3 and 4 after resuming at epoch 2 are bit-identical (final loss %.6f)", opt.Name, hRes.Epochs[3].Loss)
		})
	}
}

// TestConvergence: a small ResNet-8 trained for 12 epochs on 256 images of
// the embedded CIFAR-10 sample fits them far above chance (10%): the
// exported model, run by the inference runtime, classifies at least 45%
// of them correctly and the training loss falls by at least 0.5.
func TestConvergence(t *testing.T) {
	ds := sample(t, "train", 256)
	spec, _ := models.CIFARDepth(8, models.Basic)
	train, ordered := sources(t, ds, spec.Preprocess)
	m := compiled(t, spec, OptimizerConfig{Name: SGD, LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4},
		ScheduleConfig{Kind: Cosine, WarmupEpochs: 1})
	h, err := m.Fit(context.Background(), train, FitOptions{Epochs: 12, Batch: 32, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Evaluate(context.Background(), ordered, 0)
	if err != nil {
		t.Fatal(err)
	}
	test, _ := sources(t, sample(t, "test", 200), spec.Preprocess)
	held, err := m.Evaluate(context.Background(), test, 0)
	if err != nil {
		t.Fatal(err)
	}
	first, last := h.Epochs[0].Loss, h.Epochs[len(h.Epochs)-1].Loss
	t.Logf("training loss %.3f → %.3f; accuracy on the 256 training images %.1f%% (loss %.3f); on 200 unseen test images %.1f%%",
		first, last, 100*res.Accuracy, res.Loss, 100*held.Accuracy)
	if res.Accuracy < 0.45 || last > first-0.5 {
		t.Errorf("did not converge: accuracy %.3f, loss %.3f → %.3f", res.Accuracy, first, last)
	}
}

// TestEvalModeMatchesInference: the training graph in eval mode (BatchNorm
// on running statistics) computes the logits the exported model computes
// in the inference runtime, after some training moved the statistics.
func TestEvalModeMatchesInference(t *testing.T) {
	ds := sample(t, "train", 64)
	spec := smallSpec()
	spec.Shortcut = models.ShortcutB
	train, _ := sources(t, ds, spec.Preprocess)
	m := compiled(t, spec, OptimizerConfig{Name: SGD, LR: 0.05, Momentum: 0.9}, ScheduleConfig{})
	if _, err := m.Fit(context.Background(), train, FitOptions{Epochs: 2, Batch: 16, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 16*3*32*32)
	labels := make([]int, 16)
	b, _ := train.Epoch(0, 1, 16)
	if _, err := b.Next(x, labels); err != nil {
		t.Fatal(err)
	}
	m.net.SetTraining(false)
	defer m.net.SetTraining(true)
	before := append([]float32(nil), m.Graph.Param("bn1.running_mean").Data...)
	if _, err := m.net.Step(x, labels); err != nil {
		t.Fatal(err)
	}
	got := m.net.Logits()
	if after := m.Graph.Param("bn1.running_mean").Data; after[0] != before[0] {
		t.Error("eval mode changed the running statistics")
	}
	want, err := m.Predict(context.Background(), x, 16)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
	}
	if worst > 1e-4 {
		t.Errorf("eval-mode logits differ from the inference runtime's by %.3g", worst)
	}
	t.Logf("eval-mode logits vs inference runtime: max |diff| %.2g", worst)
}

// TestNonFiniteLossStops: a learning rate that makes training diverge
// stops Fit with ErrNonFinite; the model is as it was before the failing
// step and the last checkpoint on disk stays the last good one.
func TestNonFiniteLossStops(t *testing.T) {
	ds := sample(t, "train", 64)
	spec := smallSpec()
	train, _ := sources(t, ds, spec.Preprocess)
	m := compiled(t, spec, OptimizerConfig{Name: SGD, LR: 0.01}, ScheduleConfig{})
	dir := t.TempDir()
	if _, err := m.Fit(context.Background(), train, FitOptions{Epochs: 1, Batch: 16, Seed: 1, CheckpointDir: dir}); err != nil {
		t.Fatal(err)
	}
	// Blow up the weights' scale with an absurd learning rate.
	if err := m.Compile(CompileOptions{Optimizer: OptimizerConfig{Name: SGD, LR: 1e30}, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	var snapshot [][]float32
	lastStep := 0
	_, err := m.Fit(context.Background(), train, FitOptions{Epochs: 5, Batch: 16, Seed: 1, CheckpointDir: dir,
		Callbacks: []Callback{CallbackFuncs{BatchEnd: func(b BatchInfo) {
			snapshot = snapshot[:0]
			for _, p := range m.Graph.Params {
				snapshot = append(snapshot, append([]float32(nil), p.Data...))
			}
			lastStep = b.Step
		}}}})
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("Fit: %v, want ErrNonFinite", err)
	}
	t.Logf("%v", err)
	if snapshot != nil {
		for i, p := range m.Graph.Params {
			for j, v := range p.Data {
				if math.Float32bits(v) != math.Float32bits(snapshot[i][j]) {
					t.Fatalf("%s[%d] changed by the failing step (after step %d)", p.Name, j, lastStep)
				}
			}
		}
	}
	latest, _ := LatestCheckpoint(dir)
	c, err := LoadCheckpoint(latest)
	if err != nil {
		t.Fatalf("the last checkpoint does not load: %v", err)
	}
	for _, p := range c.Graph.Params {
		for j, v := range p.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("checkpoint %s holds a non-finite %s[%d]", latest, p.Name, j)
			}
		}
	}
}

// TestEarlyStopping stops when the monitored metric stops improving.
func TestEarlyStopping(t *testing.T) {
	ds := sample(t, "train", 32)
	spec := smallSpec()
	train, _ := sources(t, ds, spec.Preprocess)
	// A zero learning rate: the loss never improves after epoch 1.
	m := compiled(t, spec, OptimizerConfig{Name: SGD, LR: 0}, ScheduleConfig{})
	h, err := m.Fit(context.Background(), train, FitOptions{Epochs: 10, Batch: 16, Seed: 1, Monitor: "loss",
		EarlyStopping: EarlyStopping{Patience: 2, MinDelta: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Epochs) != 3 || !strings.HasPrefix(h.Stopped, "early stopping") {
		t.Errorf("%d epochs, stopped %q; want 3 and early stopping", len(h.Epochs), h.Stopped)
	}
}

// TestCheckpointIsDeployable: model.onnx of a checkpoint is a complete
// model the inference runtime runs, with the trained weights.
func TestCheckpointIsDeployable(t *testing.T) {
	ds := sample(t, "train", 32)
	spec := smallSpec()
	train, ordered := sources(t, ds, spec.Preprocess)
	m := compiled(t, spec, OptimizerConfig{Name: SGD, LR: 0.05, Momentum: 0.9}, ScheduleConfig{})
	dir := t.TempDir()
	if _, err := m.Fit(context.Background(), train, FitOptions{Epochs: 2, Batch: 16, Seed: 1, CheckpointDir: dir, Validation: ordered}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"epoch-0002", BestName} {
		s, err := infer.Load(filepath.Join(dir, name, ModelFile), infer.Options{Threads: 2})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cls, _ := s.Metadata().Classes(); len(cls) != 10 {
			t.Errorf("%s: %d class names in the model metadata", name, len(cls))
		}
		s.Close()
	}
	want, _ := export.Marshal(m.Graph, export.Options{})
	got, err := os.ReadFile(filepath.Join(dir, "epoch-0002", ModelFile))
	if err != nil || string(got) != string(want) {
		t.Errorf("epoch-0002/model.onnx is not the trained model (%v)", err)
	}
}

// TestCheckpointWriteFailureKeepsPrevious: when a checkpoint cannot be
// written — the directory made read-only, the disk full (ENOSPC, injected
// while writing the state file), or a failure injected before each file or
// before the final rename — Fit fails with an error that wraps the cause
// and names the epoch and checkpoint, the previous checkpoints are intact
// and load, and no half-written checkpoint exists under a final name.
func TestCheckpointWriteFailureKeepsPrevious(t *testing.T) {
	ds := sample(t, "train", 32)
	spec := smallSpec()
	train, ordered := sources(t, ds, spec.Preprocess)
	stages := []string{"read-only", "disk-full", ModelFile, StateFile, TrainerFile, "rename"}
	for _, stage := range stages {
		t.Run(stage, func(t *testing.T) {
			m := compiled(t, spec, OptimizerConfig{Name: SGD, LR: 0.05, Momentum: 0.9}, ScheduleConfig{})
			dir := filepath.Join(t.TempDir(), "run")
			fo := FitOptions{Epochs: 1, Batch: 16, Seed: 1, CheckpointDir: dir, Validation: ordered}
			if _, err := m.Fit(context.Background(), train, fo); err != nil {
				t.Fatal(err)
			}
			before := snapshotDir(t, dir)
			fo.Epochs = 2
			if stage == "read-only" {
				undo, ok := makeReadOnly(t, dir)
				if !ok {
					t.Skip("cannot make a directory read-only here (root without chattr)")
				}
				defer undo()
				_, err := m.Fit(context.Background(), train, fo)
				if err == nil {
					t.Fatal("Fit succeeded in a read-only directory")
				}
				t.Logf("read-only: %v", err)
				if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "epoch-0002") {
					t.Errorf("the error does not say which checkpoint, where, and that permission is denied: %v", err)
				}
				undo()
			} else if stage == "disk-full" {
				fo.checkpointFault = func(stage string) error {
					if stage == StateFile {
						return &fs.PathError{Op: "write", Path: filepath.Join(dir, StateFile), Err: syscall.ENOSPC}
					}
					return nil
				}
				_, err := m.Fit(context.Background(), train, fo)
				t.Logf("disk full: %v", err)
				if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "epoch-0002") {
					t.Fatalf("Fit: %v, want ENOSPC naming epoch-0002", err)
				}
			} else {
				failing := &failingFit{stage: stage}
				fo.checkpointFault = failing.hook
				_, err := m.Fit(context.Background(), train, fo)
				if err == nil || !strings.Contains(err.Error(), "injected") {
					t.Fatalf("Fit: %v, want the injected failure", err)
				}
			}
			after := snapshotDir(t, dir)
			for name, sum := range before {
				if after[name] != sum {
					t.Errorf("%s changed", name)
				}
			}
			for name := range after {
				if _, ok := before[name]; !ok {
					t.Errorf("%s appeared", name)
				}
			}
			for _, ck := range []string{"epoch-0001", BestName} {
				if _, err := LoadCheckpoint(filepath.Join(dir, ck)); err != nil {
					t.Errorf("%s: %v", ck, err)
				}
			}
		})
	}
}

// failingFit injects a checkpoint write failure at one stage.
type failingFit struct{ stage string }

func (f *failingFit) hook(stage string) error {
	if stage == f.stage {
		return errors.New("injected failure at " + stage)
	}
	return nil
}

// snapshotDir maps every path under dir to its contents.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// makeReadOnly makes dir unwritable: chmod for ordinary users, chattr +i
// for root (who ignores permission bits). It reports false if neither
// works.
func makeReadOnly(t *testing.T, dir string) (undo func(), ok bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			return nil, false
		}
		return func() { os.Chmod(dir, 0o755) }, true
	}
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		return nil, false
	}
	if exec.Command(chattr, "+i", dir).Run() != nil {
		return nil, false
	}
	done := false
	return func() {
		if !done {
			exec.Command(chattr, "-i", dir).Run()
			done = true
		}
	}, true
}

// TestCheckpointKeepsGraphStructure: a graph that build.New would not make
// from its spec (here conv1 with a bias, as a folded-BatchNorm import has)
// trains, checkpoints and resumes with its own structure.
func TestCheckpointKeepsGraphStructure(t *testing.T) {
	ds := sample(t, "train", 32)
	spec := smallSpec()
	g, err := build.New(spec, build.Options{Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	conv1 := g.Nodes[0]
	conv1.Conv.Bias = true
	conv1.Params = append(conv1.Params, "conv1.bias")
	g.Params = append(g.Params, &build.Param{Name: "conv1.bias", Shape: []int{spec.StemWidth}, Data: make([]float32, spec.StemWidth), Trainable: true})
	g.Reindex()
	m := FromGraph(g)
	defer m.Close()
	if err := m.Compile(CompileOptions{Optimizer: OptimizerConfig{Name: SGD, LR: 0.1}, Threads: 2}); err != nil {
		t.Fatal(err)
	}
	train, _ := sources(t, ds, spec.Preprocess)
	dir := t.TempDir()
	if _, err := m.Fit(context.Background(), train, FitOptions{Epochs: 1, Batch: 16, Seed: 1, CheckpointDir: dir}); err != nil {
		t.Fatal(err)
	}
	bias := g.Param("conv1.bias").Data
	if bias[0] == 0 && bias[1] == 0 {
		t.Error("conv1.bias did not train")
	}
	r, _, err := Resume(filepath.Join(dir, "epoch-0001"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if p := r.Graph.Param("conv1.bias"); p == nil || p.Data[0] != bias[0] {
		t.Errorf("resumed graph lost conv1.bias (%v)", p)
	}
}
