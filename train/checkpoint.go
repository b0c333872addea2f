package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/regularfile"
	"github.com/resnetctl/resnetctl/models"
)

// A checkpoint is a directory:
//
//	model.onnx          the model (BatchNorm kept, opset export.DefaultOpset):
//	                    complete and deployable, and re-importable for training;
//	                    with Recipe.EMADecay, the moving average of the weights
//	state.safetensors   every parameter exactly ("param.<name>", running
//	                    statistics included) and the optimiser buffers
//	                    ("optim.<buffer>.<name>"), and with Recipe.EMADecay
//	                    the moving average of every parameter ("ema.<name>")
//	trainer.json        TrainerState: recipe, epoch, step, RNG state,
//	                    history, best metric, and the SHA-256 of both files
//
// It is written into a temporary directory next to its final name, every
// file synced, then renamed into place (an existing checkpoint of that name
// is swapped out atomically where the OS allows, else renamed away first),
// so a crash or a failed write never leaves a half-written checkpoint under
// the final name. Fit writes "epoch-NNNN" after every epoch and "best"
// (hard links to the same files) when the monitored metric improves.
const (
	ModelFile   = "model.onnx"
	StateFile   = "state.safetensors"
	TrainerFile = "trainer.json"
	BestName    = "best"

	checkpointFormat = 1
)

// TrainerState is trainer.json.
type TrainerState struct {
	Format int    `json:"format"`
	Recipe Recipe `json:"recipe"`
	// Graph is the model's structure (spec, nodes, parameter names and
	// shapes; the values are in StateFile), so that any trainable graph,
	// imported ones included, is rebuilt exactly.
	Graph *build.Graph `json:"graph"`
	// Epoch is the number of completed epochs; Step the optimiser steps
	// taken (the schedule's position).
	Epoch int `json:"epoch"`
	Step  int `json:"step"`
	// RNG is the state of the generator that draws each epoch's data seed
	// (math/rand/v2 PCG, MarshalBinary).
	RNG       []byte         `json:"rng"`
	History   []EpochMetrics `json:"history"`
	Best      *Best          `json:"best,omitempty"`
	BadEpochs int            `json:"bad_epochs"` // epochs since the monitored metric last improved
	// Partial is set in a checkpoint saved in the middle of an epoch (an
	// interrupted run, e.g. Ctrl-C): Fit continues that epoch where it
	// stopped, with the same batches, instead of starting the next one.
	Partial *Partial `json:"partial,omitempty"`
	// Data records what the run trains and validates on (FitOptions.Data),
	// so that resuming reads the same data; nil in checkpoints of older
	// versions and of runs whose caller did not say.
	Data *DataRecord `json:"data,omitempty"`
	// Files maps ModelFile and StateFile to their SHA-256 (hex).
	Files map[string]string `json:"files"`
}

// Partial is the progress of an interrupted epoch: number Epoch+1 of the
// run (TrainerState.Epoch epochs are complete).
type Partial struct {
	// Batches is the number of optimiser steps taken in the epoch; Seed
	// the epoch's data seed, already drawn from the run's generator.
	Batches int    `json:"batches"`
	Seed    uint64 `json:"seed"`
	// The epoch's running sums, so its metrics come out as if it had not
	// been interrupted.
	SumLoss float64 `json:"sum_loss"`
	Correct int     `json:"correct"`
	Seen    int     `json:"seen"`
	Seconds float64 `json:"seconds"`
}

// DataRecord is what a run trains and validates on, as the data pipeline
// (the CLI) describes it: the train package records it in every checkpoint
// and bounds its fields when a checkpoint is read, and does not otherwise
// interpret it.
type DataRecord struct {
	// Source names the data as given: an absolute path, "sample", or a
	// cached release's name ("cifar10").
	Source string `json:"source"`
	// Fingerprint is the SHA-256 (hex) of the training split as read
	// (class names, labels and pixels, before any subset), so that data
	// moved elsewhere is recognised and other data is not taken for it.
	Fingerprint string `json:"fingerprint"`
	// Limit, if positive, is the size of the seeded, class-balanced
	// subset of the training images trained on.
	Limit int `json:"limit,omitempty"`
	// ValSplit, if positive, is the fraction of the training images held
	// out (seeded, stratified) for validation.
	ValSplit float64 `json:"val_split,omitempty"`
	// Validation says what the run validates on: "test" (the data's test
	// split), "held-out" (ValSplit of the training images) or "training"
	// (the training images themselves).
	Validation string `json:"validation,omitempty"`
	// TrainImages and ValImages count the images of each part.
	TrainImages int `json:"train_images"`
	ValImages   int `json:"val_images"`
}

// Best is the best value of the monitored metric so far.
type Best struct {
	Monitor string  `json:"monitor"`
	Value   float64 `json:"value"`
	Epoch   int     `json:"epoch"`
}

// Checkpoint is a checkpoint read back by LoadCheckpoint.
type Checkpoint struct {
	Dir   string
	State TrainerState
	// Graph is the model with the checkpoint's weights.
	Graph *build.Graph
	optim map[string][]float32
	ema   map[string][]float32 // "ema.<name>" by name, with Recipe.EMADecay
}

// ErrCheckpoint is wrapped by every LoadCheckpoint error about the
// checkpoint's contents.
var ErrCheckpoint = errors.New("invalid checkpoint")

// LoadCheckpoint reads and verifies a checkpoint directory.
func LoadCheckpoint(dir string) (*Checkpoint, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", dir, ErrCheckpoint, fmt.Sprintf(format, args...))
	}
	// Regular files only (a FIFO would block forever). No size bound: the
	// files are as large as the model, and everything sized from them is
	// bounded by validation.
	raw, err := regularfile.ReadFile(filepath.Join(dir, TrainerFile), 0)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var st TrainerState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, bad("%s: %v", TrainerFile, err)
	}
	if st.Format != checkpointFormat {
		return nil, bad("%s: format %d (this version reads %d)", TrainerFile, st.Format, checkpointFormat)
	}
	// A checkpoint is input like any other: every field is bounded before
	// anything is sized from it or trained.
	if err := st.validate(); err != nil {
		return nil, bad("%s: %v", TrainerFile, err)
	}
	files := map[string][]byte{}
	for _, name := range []string{ModelFile, StateFile} {
		b, err := regularfile.ReadFile(filepath.Join(dir, name), 0)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != st.Files[name] {
			return nil, bad("%s has SHA-256 %s, %s records %s", name, got, TrainerFile, st.Files[name])
		}
		files[name] = b
	}
	tensors, _, err := readSafetensors(files[StateFile])
	if err != nil {
		return nil, bad("%s: %v", StateFile, err)
	}
	g := st.Graph
	if g == nil {
		return nil, bad("%s has no graph", TrainerFile)
	}
	for i, n := range g.Nodes {
		if n == nil {
			return nil, bad("%s: graph node %d is null", TrainerFile, i)
		}
	}
	for i, p := range g.Params {
		if p == nil {
			return nil, bad("%s: graph parameter %d is null", TrainerFile, i)
		}
		if _, err := shapeCount(p.Shape, 1<<40); err != nil {
			return nil, bad("%s: parameter %s: %v", TrainerFile, p.Name, err)
		}
		t, ok := tensors["param."+p.Name]
		if !ok || t.F32 == nil || !slices.Equal(t.Shape, p.Shape) {
			return nil, bad("%s has no parameter %s of shape %v", StateFile, p.Name, p.Shape)
		}
		p.Data = t.F32
		delete(tensors, "param."+p.Name)
	}
	g.Reindex()
	if err := g.Check(); err != nil {
		return nil, bad("%v", err)
	}
	// The shapes trainer.json states must be the ones the weights and
	// attributes give: Net sizes its buffers from them.
	stated := make([]models.Shape, len(g.Nodes))
	for i, n := range g.Nodes {
		stated[i] = n.Shape
	}
	ref := g.Spec.Reference
	if err := g.WithInput(g.Spec.Input); err != nil {
		return nil, bad("%s: graph: %v", TrainerFile, err)
	}
	g.Spec.Reference = ref
	for i, n := range g.Nodes {
		if n.Shape != stated[i] {
			return nil, bad("%s: graph.nodes[%d] (%s).shape: %s, but its inputs and weights give %s", TrainerFile, i, n.Name, stated[i], n.Shape)
		}
	}
	c := &Checkpoint{Dir: dir, State: st, Graph: g, optim: map[string][]float32{}, ema: map[string][]float32{}}
	for name, t := range tensors {
		if k, ok := strings.CutPrefix(name, emaPrefix); ok && t.F32 != nil {
			c.ema[k] = t.F32
			continue
		}
		k, ok := strings.CutPrefix(name, "optim.")
		if !ok || t.F32 == nil {
			return nil, bad("%s: unexpected tensor %s", StateFile, name)
		}
		c.optim[k] = t.F32
	}
	return c, nil
}

// checkpointer writes a run's checkpoints under root.
type checkpointer struct {
	root     string
	keepLast int
	// fail, if set, is called before each file is written and before the
	// final rename, with the file name or "rename"; an error aborts the
	// write (tests simulate failures with it).
	fail func(stage string) error
}

func epochName(epoch int) string { return fmt.Sprintf("epoch-%04d", epoch) }

// partialName names the checkpoint of an epoch interrupted after batches
// steps, when epoch epochs were complete. It sorts after epochName(epoch)
// and before epochName(epoch+1), so LatestCheckpoint picks it exactly
// while it is the newest state.
func partialName(epoch, batches int) string {
	return fmt.Sprintf("epoch-%04d-batch-%06d", epoch, batches)
}

// isPartial reports whether a checkpoint name is partialName's.
func isPartial(name string) bool {
	_, batches, ok := parseCheckpointName(name)
	return ok && batches > 0
}

// parseCheckpointName reads epochName's and partialName's numbers: the
// completed epochs, and the batches of the next epoch done (0 for an
// epoch's own checkpoint). Checkpoints are ordered by these numbers, never
// by their names as strings: "epoch-10000" sorts before "epoch-9999" as a
// string.
func parseCheckpointName(name string) (epoch, batches int, ok bool) {
	rest, found := strings.CutPrefix(name, "epoch-")
	if !found {
		return 0, 0, false
	}
	ep, bat, partial := strings.Cut(rest, "-batch-")
	epoch, ok = parseDecimal(ep)
	if !ok {
		return 0, 0, false
	}
	if partial {
		if batches, ok = parseDecimal(bat); !ok || batches == 0 {
			return 0, 0, false
		}
	}
	return epoch, batches, true
}

// parseDecimal parses a non-empty string of ASCII digits below 10^12.
func parseDecimal(s string) (int, bool) {
	if s == "" || len(s) > 12 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// checkpointNames lists the checkpoint directories under root (epochs and
// interrupted epochs, not best), oldest first by their parsed numbers.
func checkpointNames(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	type named struct {
		name           string
		epoch, batches int
	}
	var found []named
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if ep, b, ok := parseCheckpointName(e.Name()); ok {
			found = append(found, named{e.Name(), ep, b})
		}
	}
	slices.SortFunc(found, func(a, b named) int {
		if a.epoch != b.epoch {
			return a.epoch - b.epoch
		}
		if a.batches != b.batches {
			return a.batches - b.batches
		}
		return strings.Compare(a.name, b.name)
	})
	names := make([]string, len(found))
	for i, f := range found {
		names[i] = f.name
	}
	return names, nil
}

// encode serialises a model's checkpoint files: g's parameters, the
// optimiser state and the moving average avg (nil without) in StateFile,
// and the graph deployed (g, or the graph of the average) as ModelFile.
func encodeCheckpoint(st *TrainerState, g *build.Graph, optim, avg map[string][]float32, deployed *build.Graph) (map[string][]byte, error) {
	onnx, err := export.Marshal(deployed, export.Options{})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	tensors := map[string]stTensor{}
	var names []string
	for _, p := range g.Params {
		names = append(names, "param."+p.Name)
		tensors["param."+p.Name] = stTensor{Shape: p.Shape, F32: p.Data}
	}
	var on []string
	for k := range optim {
		on = append(on, k)
	}
	sort.Strings(on)
	for _, k := range on {
		names = append(names, "optim."+k)
		tensors["optim."+k] = stTensor{Shape: []int{len(optim[k])}, F32: optim[k]}
	}
	if avg != nil {
		for _, p := range g.Params {
			names = append(names, emaPrefix+p.Name)
			tensors[emaPrefix+p.Name] = stTensor{Shape: p.Shape, F32: avg[p.Name]}
		}
	}
	var sb strings.Builder
	if err := writeSafetensors(&sb, names, tensors, map[string]string{"format": "resnetctl-trainer-state", "model": g.Spec.Name}); err != nil {
		return nil, err
	}
	files := map[string][]byte{ModelFile: onnx, StateFile: []byte(sb.String())}
	st.Files = map[string]string{}
	for name, b := range files {
		sum := sha256.Sum256(b)
		st.Files[name] = hex.EncodeToString(sum[:])
	}
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	files[TrainerFile] = append(js, '\n')
	return files, nil
}

// write stores files as checkpoint name, atomically.
func (c *checkpointer) write(name string, files map[string][]byte) (err error) {
	if err := os.MkdirAll(c.root, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	tmp, err := os.MkdirTemp(c.root, "."+name+".tmp-")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	order := make([]string, 0, len(files))
	for n := range files {
		order = append(order, n)
	}
	sort.Strings(order)
	for _, n := range order {
		if err := c.check(n); err != nil {
			return fmt.Errorf("checkpoint %s: %w", name, err)
		}
		if err := writeSynced(filepath.Join(tmp, n), files[n]); err != nil {
			return fmt.Errorf("checkpoint %s: %w", name, err)
		}
	}
	return c.commit(tmp, name)
}

// link stores checkpoint name as hard links to the files of checkpoint
// src (copies where links fail), atomically.
func (c *checkpointer) link(src, name string) (err error) {
	tmp, err := os.MkdirTemp(c.root, "."+name+".tmp-")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for _, n := range []string{ModelFile, StateFile, TrainerFile} {
		if err := c.check(n); err != nil {
			return fmt.Errorf("checkpoint %s: %w", name, err)
		}
		from, to := filepath.Join(c.root, src, n), filepath.Join(tmp, n)
		if os.Link(from, to) != nil {
			b, err := os.ReadFile(from)
			if err != nil {
				return fmt.Errorf("checkpoint %s: %w", name, err)
			}
			if err := writeSynced(to, b); err != nil {
				return fmt.Errorf("checkpoint %s: %w", name, err)
			}
		}
	}
	return c.commit(tmp, name)
}

func (c *checkpointer) check(stage string) error {
	if c.fail != nil {
		return c.fail(stage)
	}
	return nil
}

// commit moves the finished temporary directory tmp to name.
func (c *checkpointer) commit(tmp, name string) error {
	if err := syncDir(tmp); err != nil {
		return fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if err := c.check("rename"); err != nil {
		return fmt.Errorf("checkpoint %s: %w", name, err)
	}
	final := filepath.Join(c.root, name)
	if _, err := os.Lstat(final); err == nil {
		// Replace an existing checkpoint: swap atomically where the OS
		// can, else move the old one aside first (a crash in between
		// leaves the old one under its temporary name, and the new one
		// complete).
		if exchange(tmp, final) == nil {
			os.RemoveAll(tmp)
			return syncDir(c.root)
		}
		old := tmp + ".old"
		if err := os.Rename(final, old); err != nil {
			return fmt.Errorf("checkpoint %s: %w", name, err)
		}
		if err := os.Rename(tmp, final); err != nil {
			os.Rename(old, final)
			return fmt.Errorf("checkpoint %s: %w", name, err)
		}
		os.RemoveAll(old)
		return syncDir(c.root)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("checkpoint %s: %w", name, err)
	}
	return syncDir(c.root)
}

// prune removes epoch checkpoints beyond the newest keepLast (0 keeps
// all), renaming each away before deleting it.
func (c *checkpointer) prune() {
	if c.keepLast <= 0 {
		return
	}
	names, err := checkpointNames(c.root)
	if err != nil {
		return
	}
	var epochs []string
	for _, n := range names {
		if !isPartial(n) {
			epochs = append(epochs, n)
		}
	}
	for len(epochs) > c.keepLast {
		victim := filepath.Join(c.root, epochs[0])
		gone := filepath.Join(c.root, "."+epochs[0]+".removed")
		if os.Rename(victim, gone) == nil {
			os.RemoveAll(gone)
		}
		epochs = epochs[1:]
	}
}

// removePartials removes the checkpoints of interrupted epochs, once a
// complete epoch after them has been written.
func (c *checkpointer) removePartials() {
	entries, err := os.ReadDir(c.root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); e.IsDir() && isPartial(n) {
			gone := filepath.Join(c.root, "."+n+".removed")
			if os.Rename(filepath.Join(c.root, n), gone) == nil {
				os.RemoveAll(gone)
			}
		}
	}
}

// cleanTemp removes temporary directories a crashed run left behind.
func (c *checkpointer) cleanTemp() {
	entries, err := os.ReadDir(c.root)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") && (strings.Contains(n, ".tmp-") || strings.HasSuffix(n, ".removed")) {
			os.RemoveAll(filepath.Join(c.root, n))
		}
	}
}

// LatestCheckpoint returns the newest checkpoint under root (an epoch's,
// or an interrupted epoch's when that is newer), or "" if there is none.
func LatestCheckpoint(root string) (string, error) {
	names, err := checkpointNames(root)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil || len(names) == 0 {
		return "", err
	}
	return filepath.Join(root, names[len(names)-1]), nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, os.ErrInvalid) {
		return nil // some file systems cannot sync directories
	}
	return err
}

var _ io.Writer = (*strings.Builder)(nil)
