package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/models"
)

// fuzzCheckpointFiles is a real checkpoint of a tiny ResNet (two one-block
// stages of 2 and 4 channels on 3×4×4 inputs), written by the package's own
// encoder with a momentum buffer, a best metric and some history, as Fit
// writes it.
func fuzzCheckpointFiles(t testing.TB) map[string][]byte {
	t.Helper()
	spec := models.Spec{
		Name: "tiny", Family: models.CIFAR, Block: models.Basic, Depths: []int{1, 1}, Widths: []int{2, 4},
		StemWidth: 2, Shortcut: models.ShortcutA, Groups: 1, WidthPerGroup: 64, Widen: 1, Classes: 3,
		Input:      models.Shape{C: 3, H: 4, W: 4},
		Preprocess: models.Preprocess{Scale: 1, Mean: []float32{0, 0, 0}, Std: []float32{1, 1, 1}},
	}
	g, err := build.New(spec, build.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	optim := map[string][]float32{}
	for _, p := range g.Params {
		if p.Trainable {
			optim["momentum."+p.Name] = make([]float32, p.Size())
		}
	}
	rng, err := rand.NewPCG(1, 2).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	recipe := Recipe{Name: "test", Epochs: 3, Batch: 4, Loss: SparseCategoricalCrossentropy, Augment: "none",
		Optimizer: OptimizerConfig{Name: SGD, LR: 0.1, Momentum: 0.9}, Schedule: ScheduleConfig{Kind: Constant}}
	st := &TrainerState{Format: checkpointFormat, Recipe: recipe, Graph: g, Epoch: 2, Step: 8, RNG: rng,
		History:   []EpochMetrics{{Epoch: 1, LR: 0.1, Loss: 1.1, Accuracy: 0.5}, {Epoch: 2, LR: 0.1, Loss: 0.9, Accuracy: 0.6}},
		Best:      &Best{Monitor: "loss", Value: 0.9, Epoch: 2},
		BadEpochs: 0}
	files, err := encodeCheckpoint(st, g, optim, nil, g)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// withSums returns trainer with its "files" member replaced by the SHA-256
// of model and state, so that mutated state files get past the checksum
// to the parser; trainer is returned as it is when it is no JSON object.
func withSums(trainer, model, state []byte) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(trainer, &obj) != nil || obj == nil {
		return trainer
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	files, _ := json.Marshal(map[string]string{ModelFile: sum(model), StateFile: sum(state)})
	obj["files"] = files
	out, err := json.Marshal(obj)
	if err != nil {
		return trainer
	}
	return out
}

// checkLoaded checks what LoadCheckpoint returned: an error wrapping
// ErrCheckpoint (or a file system error), or a checkpoint whose graph
// passes Check and whose parameters all hold data of their shape.
func checkLoaded(t *testing.T, c *Checkpoint, err error) {
	t.Helper()
	if err != nil {
		if c != nil {
			t.Fatal("a checkpoint and an error")
		}
		if !errors.Is(err, ErrCheckpoint) {
			t.Fatalf("error does not wrap ErrCheckpoint: %v", err)
		}
		return
	}
	if err := c.Graph.Check(); err != nil {
		t.Fatalf("loaded graph fails Check: %v", err)
	}
	for _, p := range c.Graph.Params {
		if int64(len(p.Data)) != p.Size() || p.Size() < 0 {
			t.Fatalf("parameter %s has %d values for shape %v", p.Name, len(p.Data), p.Shape)
		}
	}
}

// FuzzLoadCheckpoint writes fuzzed trainer.json and state.safetensors
// files beside a real model.onnx and loads the directory: errors are
// fine, panics and inconsistent checkpoints are not. With fixSums the
// trainer.json checksums are recomputed, so that the safetensors parser
// and the graph checks see the fuzzed state file.
func FuzzLoadCheckpoint(f *testing.F) {
	files := fuzzCheckpointFiles(f)
	trainer, model, state := files[TrainerFile], files[ModelFile], files[StateFile]
	f.Add(trainer, state, false)
	f.Add(trainer, state, true)
	f.Add(trainer, state[:len(state)/2], true)
	f.Add([]byte(`{"format":1,"graph":{"input":"x","output":"x","params":[null]}}`), state, true)
	f.Add([]byte(`{"format":1}`), []byte{}, true)
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ModelFile), model, 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, trainer, state []byte, fixSums bool) {
		if fixSums {
			trainer = withSums(trainer, model, state)
		}
		if err := os.WriteFile(filepath.Join(dir, TrainerFile), trainer, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, StateFile), state, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := LoadCheckpoint(dir)
		checkLoaded(t, c, err)
	})
}

// FuzzSafetensors feeds arbitrary bytes to the safetensors reader: it
// must never panic, and what it accepts must have values of its shapes.
func FuzzSafetensors(f *testing.F) {
	f.Add(fuzzCheckpointFiles(f)[StateFile])
	var sb strings.Builder
	if err := writeSafetensors(&sb, []string{"a", "b", "s"}, map[string]stTensor{
		"a": {Shape: []int{2, 3}, F32: []float32{1, 2, 3, 4, 5, 6}},
		"b": {Shape: []int{2}, I64: []int64{-1, 1 << 40}},
		"s": {F32: []float32{7}},
	}, map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(sb.String()))
	f.Add([]byte{})
	f.Add([]byte("\x02\x00\x00\x00\x00\x00\x00\x00{}"))
	// Overlapping data ranges (refused; they were accepted).
	f.Add(safetensorsFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12))
	f.Add(safetensorsFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, 8))
	f.Fuzz(func(t *testing.T, b []byte) {
		tensors, _, err := readSafetensors(b)
		if err != nil {
			if !errors.Is(err, errSafetensors) {
				t.Fatalf("error does not wrap errSafetensors: %v", err)
			}
			return
		}
		total := 0 // data bytes of all tensors: no two share a byte
		for name, ts := range tensors {
			n := 1
			for _, d := range ts.Shape {
				n *= d
			}
			if len(ts.F32)+len(ts.I64) != n || n > len(b) {
				t.Fatalf("%s: %d values for shape %v", name, len(ts.F32)+len(ts.I64), ts.Shape)
			}
			total += 4*len(ts.F32) + 8*len(ts.I64)
		}
		if total > len(b) {
			t.Fatalf("%d bytes of values from a file of %d", total, len(b))
		}
	})
}

// TestHostileSafetensors: the inputs that crashed readSafetensors (a
// shape whose value count overflows, offsets in reverse) are refused.
func TestHostileSafetensors(t *testing.T) {
	header := func(h string) []byte {
		for len(h)%8 != 0 {
			h += " "
		}
		b := make([]byte, 8, 8+len(h)+16)
		b[0] = byte(len(h))
		return append(append(b, h...), make([]byte, 16)...)
	}
	for _, c := range []struct {
		name, header, want string
	}{
		// 3 × 6148914691236517205 wraps to -1: -4 bytes from 4 to 0.
		{"count wraps negative", `{"t":{"dtype":"F32","shape":[3,6148914691236517205],"data_offsets":[4,0]}}`, "has more values than the file holds"},
		// 2^62+1 values of 4 bytes wrap to 4 bytes.
		{"size wraps small", `{"t":{"dtype":"F32","shape":[4611686018427387905],"data_offsets":[0,4]}}`, "has more values than the file holds"},
		{"huge shape", `{"t":{"dtype":"I64","shape":[1000000,1000000],"data_offsets":[0,16]}}`, "has more values than the file holds"},
		{"offsets reversed", `{"t":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},"u":{"dtype":"F32","shape":[],"data_offsets":[8,4]}}`, "offsets [8 4]"},
		{"negative dim", `{"t":{"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]}}`, "negative dimension"},
		{"bad dtype", `{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`, "dtype F16"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := readSafetensors(header(c.header))
			if !errors.Is(err, errSafetensors) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

// TestHostileCheckpoints: trainer.json graphs that crashed LoadCheckpoint
// or passed it with parameters of the wrong size are refused.
func TestHostileCheckpoints(t *testing.T) {
	files := fuzzCheckpointFiles(t)
	edit := func(f func(st map[string]any)) []byte {
		var st map[string]any
		if err := json.Unmarshal(files[TrainerFile], &st); err != nil {
			t.Fatal(err)
		}
		f(st)
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	graph := func(st map[string]any) map[string]any { return st["graph"].(map[string]any) }
	firstParam := func(st map[string]any) map[string]any { return graph(st)["params"].([]any)[0].(map[string]any) }
	for _, c := range []struct {
		name    string
		trainer []byte
		want    string
	}{
		{"null parameter", edit(func(st map[string]any) { graph(st)["params"] = append(graph(st)["params"].([]any), nil) }), "graph parameter 27 is null"},
		{"null node", edit(func(st map[string]any) { graph(st)["nodes"] = append([]any{nil}, graph(st)["nodes"].([]any)...) }), "graph.nodes[0]: null"},
		// Size() of [2^32, 2^32] wraps to 0; the data must match the
		// shape, not the wrapped count.
		{"shape wraps", edit(func(st map[string]any) { firstParam(st)["shape"] = []int64{1 << 32, 1 << 32} }), "has more values than the file holds"},
		{"negative dims", edit(func(st map[string]any) { firstParam(st)["shape"] = []int{-2, -27} }), "negative dimension"},
		{"other shape", edit(func(st map[string]any) { firstParam(st)["shape"] = []int{27, 2} }), "has no parameter conv1.weight of shape [27 2]"},
		{"no graph", edit(func(st map[string]any) { delete(st, "graph") }), "graph: missing"},
		{"format 2", edit(func(st map[string]any) { st["format"] = 2 }), "format 2"},
		{"not json", []byte("{\"format\": 1, "), "unexpected end of JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range map[string][]byte{ModelFile: files[ModelFile], StateFile: files[StateFile], TrainerFile: c.trainer} {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c2, err := LoadCheckpoint(dir)
			if c2 != nil || !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want ErrCheckpoint with %q", err, c.want)
			}
		})
	}
	// The unmodified files load.
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := LoadCheckpoint(dir)
	checkLoaded(t, c, err)
	if err != nil {
		t.Fatal(err)
	}
}
