package train

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A run folder belongs to one run: its epoch checkpoints, the best one, the
// checkpoints of interrupted epochs, and whatever files the caller keeps
// beside them (the CLI's metrics.csv, metrics.jsonl and curve.png). A new
// run must not start in a folder that holds another one, or a later resume
// would mix the two; FindRun tells, ClearRun empties the folder of the old
// run when the user asks for a fresh start, and LockRun keeps a second
// process out while a run trains.

// ErrRunExists is wrapped by the error a caller returns when a folder
// already holds a run.
var ErrRunExists = errors.New("the folder holds a run")

// ErrRunLocked is wrapped by LockRun's error when another process holds
// the folder's lock.
var ErrRunLocked = errors.New("the run folder is in use")

// LockName is the lock file LockRun keeps in a run folder.
const LockName = ".resnetctl-train.lock"

// ExistingRun is what a folder holds of a run.
type ExistingRun struct {
	// Checkpoints are the checkpoint directories (epochs, interrupted
	// epochs and best), oldest first; Latest the newest one Resume would
	// pick ("" if there is none).
	Checkpoints []string
	Latest      string
	// Files are the caller's files (of those it named) that exist.
	Files []string
}

// Describe says in a few words what the folder holds.
func (r *ExistingRun) Describe() string {
	var parts []string
	if r.Latest != "" {
		parts = append(parts, "checkpoints up to "+filepath.Base(r.Latest))
	} else if len(r.Checkpoints) > 0 {
		parts = append(parts, strings.Join(r.Checkpoints, ", "))
	}
	if len(r.Files) > 0 {
		parts = append(parts, strings.Join(r.Files, ", "))
	}
	return strings.Join(parts, "; ")
}

// FindRun reports what dir holds of a run: checkpoints, and those of the
// files named in extra that exist. It returns nil when dir holds none of
// them (or does not exist).
func FindRun(dir string, extra []string) (*ExistingRun, error) {
	names, err := checkpointNames(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r := &ExistingRun{Checkpoints: names}
	if len(names) > 0 {
		r.Latest = filepath.Join(dir, names[len(names)-1])
	}
	if st, err := os.Stat(filepath.Join(dir, BestName)); err == nil && st.IsDir() {
		r.Checkpoints = append(r.Checkpoints, BestName)
	}
	for _, f := range extra {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			r.Files = append(r.Files, f)
		}
	}
	if len(r.Checkpoints) == 0 && len(r.Files) == 0 {
		return nil, nil
	}
	return r, nil
}

// ClearRun removes from dir everything of a run that a later resume could
// pick up: every checkpoint directory (epochs, interrupted epochs, best),
// temporary directories of interrupted writes, and the files named in
// extra. Other files are left alone. Each directory is renamed away before
// it is deleted, so a crash part-way leaves no half-deleted checkpoint
// under a name Resume would read.
func ClearRun(dir string, extra []string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		_, _, isCkpt := parseCheckpointName(n)
		temp := strings.HasPrefix(n, ".") && (strings.Contains(n, ".tmp-") || strings.HasSuffix(n, ".removed"))
		switch {
		case e.IsDir() && (isCkpt || n == BestName):
			gone := filepath.Join(dir, "."+n+".removed")
			if err := os.Rename(filepath.Join(dir, n), gone); err != nil {
				return fmt.Errorf("clearing %s: %w", dir, err)
			}
			if err := os.RemoveAll(gone); err != nil {
				return fmt.Errorf("clearing %s: %w", dir, err)
			}
		case temp:
			if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
				return fmt.Errorf("clearing %s: %w", dir, err)
			}
		case slices.Contains(extra, n):
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return fmt.Errorf("clearing %s: %w", dir, err)
			}
		}
	}
	return syncDir(dir)
}

// CheckWritable creates dir if needed and checks that files can be
// created, written and removed in it, so that a run into a read-only or
// full folder fails before it trains rather than after its first epoch.
func CheckWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".write-check-")
	if err != nil {
		return err
	}
	name := f.Name()
	_, err = f.Write(make([]byte, 4096))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	return err
}
