package train

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/internal/memcap"
)

// TestCheckpointOrderIsNumeric: from epoch 10000 on, checkpoint names no
// longer sort as strings ("epoch-10000" < "epoch-9999"); Resume and
// --keep-last must order them by their numbers.
func TestCheckpointOrderIsNumeric(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dirs     []string
		latest   string
		keepLast int
		kept     []string
	}{
		{"past 9999", []string{"epoch-9998", "epoch-9999", "epoch-10000", "epoch-10001"}, "epoch-10001", 2, []string{"epoch-10000", "epoch-10001"}},
		{"partial after its epoch", []string{"epoch-9999", "epoch-10000", "epoch-10000-batch-000007"}, "epoch-10000-batch-000007", 1, []string{"epoch-10000", "epoch-10000-batch-000007"}},
		{"wide batch numbers", []string{"epoch-0002", "epoch-0002-batch-999999", "epoch-0002-batch-1000000"}, "epoch-0002-batch-1000000", 5, []string{"epoch-0002", "epoch-0002-batch-1000000", "epoch-0002-batch-999999"}},
		{"names that are not checkpoints", []string{"epoch-0003", "epoch-x", "epoch-0004-batch-", "best", "epoch-00a1"}, "epoch-0003", 1, []string{"best", "epoch-0003", "epoch-0004-batch-", "epoch-00a1", "epoch-x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range tc.dirs {
				if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			latest, err := LatestCheckpoint(root)
			if err != nil || filepath.Base(latest) != tc.latest {
				t.Errorf("LatestCheckpoint = %q (%v), want %s", latest, err, tc.latest)
			}
			(&checkpointer{root: root, keepLast: tc.keepLast}).prune()
			entries, _ := os.ReadDir(root)
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.kept) {
				t.Errorf("after prune(keep %d): %v, want %v", tc.keepLast, got, tc.kept)
			}
		})
	}
}

// TestRunFolder: FindRun sees checkpoints and the caller's files, ClearRun
// removes exactly those, and a second lock on a folder is refused.
func TestRunFolder(t *testing.T) {
	root := t.TempDir()
	if r, err := FindRun(root, []string{"metrics.csv"}); r != nil || err != nil {
		t.Fatalf("empty folder: %+v, %v", r, err)
	}
	if r, err := FindRun(filepath.Join(root, "missing"), nil); r != nil || err != nil {
		t.Fatalf("missing folder: %+v, %v", r, err)
	}
	for _, d := range []string{"epoch-0001", "epoch-0002-batch-000003", "best", ".epoch-0003.tmp-x", "notes"} {
		os.Mkdir(filepath.Join(root, d), 0o755)
	}
	for _, f := range []string{"metrics.csv", "README.txt"} {
		os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644)
	}
	r, err := FindRun(root, []string{"metrics.csv", "curve.png"})
	if err != nil || r == nil {
		t.Fatalf("FindRun: %+v, %v", r, err)
	}
	if filepath.Base(r.Latest) != "epoch-0002-batch-000003" || !slices.Equal(r.Files, []string{"metrics.csv"}) || !strings.Contains(r.Describe(), "epoch-0002-batch-000003") {
		t.Errorf("FindRun = %+v (%s)", r, r.Describe())
	}
	if err := ClearRun(root, []string{"metrics.csv", "curve.png"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(root)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if !slices.Equal(left, []string{"README.txt", "notes"}) {
		t.Errorf("after ClearRun: %v, want the user's files only", left)
	}
	if r, _ := FindRun(root, []string{"metrics.csv"}); r != nil {
		t.Errorf("a cleared folder still holds a run: %+v", r)
	}

	release, err := LockRun(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockRun(root); !errors.Is(err, ErrRunLocked) || !strings.Contains(err.Error(), "pid") {
		t.Errorf("second lock: %v, want ErrRunLocked naming the pid", err)
	}
	release()
	release2, err := LockRun(root)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	release2()
	if err := CheckWritable(filepath.Join(root, "README.txt", "sub")); err == nil {
		t.Error("CheckWritable under a file: no error")
	}
}

// TestTrainerStateFieldsValidated: every field of a hand-edited
// trainer.json is bounded before anything is sized from it; the error
// names the field, and refusing allocates little.
func TestTrainerStateFieldsValidated(t *testing.T) {
	ds := sample(t, "train", 64)
	spec := smallSpec()
	src, err := NewAugmentedSource(ds, "none", spec.Preprocess, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := compiled(t, spec, OptimizerConfig{Name: SGD, LR: 0.05, Momentum: 0.9}, ScheduleConfig{Kind: Cosine})
	defer m.Close()
	root := t.TempDir()
	fo := FitOptions{Epochs: 2, Batch: 16, Seed: 3, CheckpointDir: root, RecipeName: "test", Augment: "none",
		Data: &DataRecord{Source: "sample", Fingerprint: strings.Repeat("ab", 32), Validation: "training", TrainImages: 64}}
	if _, err := m.Fit(context.Background(), src, fo); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(root, "epoch-0002")
	raw, err := os.ReadFile(filepath.Join(ckpt, TrainerFile))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := LoadCheckpoint(ckpt); err != nil || c.State.Data == nil || c.State.Data.Source != "sample" {
		t.Fatalf("the valid checkpoint: %v (data %+v)", err, c)
	}
	for _, tc := range []struct {
		field string // in the error
		edit  func(st map[string]any)
	}{
		{"format", func(st map[string]any) { st["format"] = 7 }},
		{"epoch", func(st map[string]any) { st["epoch"] = -1 }},
		{"epoch", func(st map[string]any) { st["epoch"] = 5 }},
		{"step", func(st map[string]any) { st["step"] = -3 }},
		{"bad_epochs", func(st map[string]any) { st["bad_epochs"] = 9 }},
		{"rng", func(st map[string]any) { delete(st, "rng") }},
		{"recipe.batch", func(st map[string]any) { recipe(st)["batch"] = 100000000 }},
		{"recipe.batch", func(st map[string]any) { recipe(st)["batch"] = 1 }},
		{"recipe.epochs", func(st map[string]any) { recipe(st)["epochs"] = 0 }},
		{"recipe.max_steps", func(st map[string]any) { recipe(st)["max_steps"] = -1 }},
		{"recipe.optimizer.lr", func(st map[string]any) { recipe(st)["optimizer"].(map[string]any)["lr"] = -0.1 }},
		{"recipe", func(st map[string]any) { recipe(st)["optimizer"].(map[string]any)["name"] = "magic" }},
		{"history", func(st map[string]any) { st["history"] = st["history"].([]any)[:1] }},
		{"history[1].epoch", func(st map[string]any) { st["history"].([]any)[1].(map[string]any)["epoch"] = 7 }},
		{"best.epoch", func(st map[string]any) { st["best"].(map[string]any)["epoch"] = 3 }},
		{"best.monitor", func(st map[string]any) { st["best"].(map[string]any)["monitor"] = "vibes" }},
		{"partial.batches", func(st map[string]any) {
			st["epoch"], st["history"] = 1, st["history"].([]any)[:1]
			st["bad_epochs"] = 0
			st["best"].(map[string]any)["epoch"] = 1
			st["partial"] = map[string]any{"batches": -2, "seed": 1}
		}},
		{"partial", func(st map[string]any) { st["partial"] = map[string]any{"batches": 2, "seed": 1, "seen": 32} }},
		{"data.limit", func(st map[string]any) { st["data"].(map[string]any)["limit"] = -5 }},
		{"data.val_split", func(st map[string]any) { st["data"].(map[string]any)["val_split"] = 1.5 }},
		{"data.fingerprint", func(st map[string]any) { st["data"].(map[string]any)["fingerprint"] = "xyz" }},
		{"data.validation", func(st map[string]any) { st["data"].(map[string]any)["validation"] = "vibes" }},
		{"graph", func(st map[string]any) { delete(st, "graph") }},
		{"graph.spec.input", func(st map[string]any) {
			graph(st)["spec"].(map[string]any)["input"] = map[string]any{"c": 3, "h": 31623, "w": 31623}
		}},
		{"graph.spec.classes", func(st map[string]any) { graph(st)["spec"].(map[string]any)["classes"] = 0 }},
		{".shape", func(st map[string]any) { node(st, 0)["shape"] = map[string]any{"c": 1000000, "h": 1000, "w": 1000} }},
		{".conv.stride", func(st map[string]any) { node(st, 0)["conv"].(map[string]any)["stride"] = 0 }},
		{"graph.nodes[0] (conv1).shape", func(st map[string]any) {
			s := node(st, 0)["shape"].(map[string]any)
			s["h"] = s["h"].(float64) + 1
		}},
		{"graph.nodes[0] (conv1).shape", func(st map[string]any) {
			node(st, 0)["conv"].(map[string]any)["stride"] = 2 // the shape no longer follows
		}},
		{".conv.kernel", func(st map[string]any) { node(st, 0)["conv"].(map[string]any)["kernel"] = 1 << 30 }},
		{".conv.groups", func(st map[string]any) { node(st, 0)["conv"].(map[string]any)["groups"] = 0 }},
		{".bn", func(st map[string]any) { firstNode(st, "BatchNorm")["bn"].(map[string]any)["epsilon"] = -1 }},
		{"graph.nodes", func(st map[string]any) { graph(st)["nodes"] = append(graph(st)["nodes"].([]any), nil) }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			var st map[string]any
			if err := json.Unmarshal(raw, &st); err != nil {
				t.Fatal(err)
			}
			tc.edit(st)
			b, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "ckpt")
			os.Mkdir(dir, 0o755)
			for _, f := range []string{ModelFile, StateFile} {
				data, _ := os.ReadFile(filepath.Join(ckpt, f))
				os.WriteFile(filepath.Join(dir, f), data, 0o644)
			}
			os.WriteFile(filepath.Join(dir, TrainerFile), b, 0o644)
			var lerr error
			alloc := memcap.Allocated(func() { _, _, lerr = Resume(dir, 1) })
			if !errors.Is(lerr, ErrCheckpoint) || !strings.Contains(lerr.Error(), tc.field) {
				t.Fatalf("Resume: %v, want ErrCheckpoint naming %s", lerr, tc.field)
			}
			if !strings.Contains(lerr.Error(), TrainerFile) {
				t.Errorf("%v does not name %s", lerr, TrainerFile)
			}
			if limit := memcap.Limit(64<<20, len(b)); alloc > limit {
				t.Errorf("refusing allocated %d bytes (limit %d)", alloc, limit)
			}
		})
	}
}

func recipe(st map[string]any) map[string]any { return st["recipe"].(map[string]any) }
func graph(st map[string]any) map[string]any  { return st["graph"].(map[string]any) }
func node(st map[string]any, i int) map[string]any {
	return graph(st)["nodes"].([]any)[i].(map[string]any)
}
func firstNode(st map[string]any, kind string) map[string]any {
	for _, n := range graph(st)["nodes"].([]any) {
		if n.(map[string]any)["kind"] == kind {
			return n.(map[string]any)
		}
	}
	return nil
}

// TestInterruptDuringValidationKeepsEpoch: a signal during an epoch's
// validation (after all its training) must not lose the epoch: it is saved
// as an interrupted epoch with every batch done, and a resume validates it
// and ends bit-identical to an uninterrupted run.
func TestInterruptDuringValidationKeepsEpoch(t *testing.T) {
	ds := sample(t, "train", 64)
	spec := smallSpec()
	opt := OptimizerConfig{Name: SGD, LR: 0.05, Momentum: 0.9, Nesterov: true}
	sched := ScheduleConfig{Kind: Cosine}
	src, err := NewAugmentedSource(ds, "paper", spec.Preprocess, 0)
	if err != nil {
		t.Fatal(err)
	}
	val, err := NewDatasetSource(sample(t, "test", 48), spec.Preprocess, false)
	if err != nil {
		t.Fatal(err)
	}
	base := FitOptions{Epochs: 3, Batch: 16, Seed: 9, Validation: val, EvalBatch: 16, RecipeName: "test", Augment: "paper"}
	full := compiled(t, spec, opt, sched)
	defer full.Close()
	fo := base
	fo.CheckpointDir = filepath.Join(t.TempDir(), "full")
	hFull, err := full.Fit(context.Background(), src, fo)
	if err != nil {
		t.Fatal(err)
	}

	part := compiled(t, spec, opt, sched)
	defer part.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var progress []ValidationInfo
	fo = base
	fo.CheckpointDir = filepath.Join(t.TempDir(), "part")
	fo.Callbacks = []Callback{CallbackFuncs{ValidationBatch: func(v ValidationInfo) {
		progress = append(progress, v)
		if v.Epoch == 2 && v.Done == 16 {
			cancel()
		}
	}}}
	h, err := part.Fit(ctx, src, fo)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	want := partialName(1, 4) // epoch 2's 4 batches all done
	if !strings.Contains(h.Stopped, want) || !strings.Contains(h.Stopped, "validat") {
		t.Errorf("Stopped = %q, want it to name %s and the validation", h.Stopped, want)
	}
	if len(progress) < 3 || progress[0].Done != 0 || progress[0].Total != 48 || progress[len(progress)-1].ETA <= 0 {
		t.Errorf("validation progress %+v", progress)
	}
	latest, err := LatestCheckpoint(fo.CheckpointDir)
	if err != nil || filepath.Base(latest) != want {
		t.Fatalf("latest %q (%v), want %s", latest, err, want)
	}
	resumed, r, err := Resume(latest, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	fo = r.FitOptions()
	fo.Validation, fo.EvalBatch, fo.CheckpointDir = val, 16, filepath.Dir(latest)
	hRes, err := resumed.Fit(context.Background(), src, fo)
	if err != nil {
		t.Fatal(err)
	}
	sameParams(t, full, resumed)
	for i := range hFull.Epochs {
		a, b := hFull.Epochs[i], hRes.Epochs[i]
		if a.Loss != b.Loss || a.Accuracy != b.Accuracy || a.ValLoss != b.ValLoss || a.ValAccuracy != b.ValAccuracy {
			t.Errorf("epoch %d: %+v vs %+v", i+1, a, b)
		}
	}
}
