package train

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/resnetctl/resnetctl/internal/memcap"
	"github.com/resnetctl/resnetctl/internal/regularfile"
	"github.com/resnetctl/resnetctl/internal/regularfile/fifotest"
)

// TestLoadCheckpointFIFO: a checkpoint file replaced by a FIFO (which
// blocked LoadCheckpoint forever) is refused at once, naming it.
func TestLoadCheckpointFIFO(t *testing.T) {
	files := fuzzCheckpointFiles(t)
	for _, fifo := range []string{TrainerFile, ModelFile, StateFile} {
		t.Run(fifo, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range files {
				if name == fifo {
					fifotest.Make(t, filepath.Join(dir, name))
				} else if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			alloc := memcap.Allocated(func() {
				err = fifotest.Prompt(t, "LoadCheckpoint", func() error { _, err := LoadCheckpoint(dir); return err })
			})
			want := "checkpoint: open " + filepath.Join(dir, fifo) + ": not a regular file (a named pipe)"
			if err == nil || err.Error() != want || !errors.Is(err, regularfile.ErrNotRegular) {
				t.Fatalf("error %v, want %q", err, want)
			}
			memcap.Check(t, alloc, memcap.Limit(64<<20, len(files[TrainerFile])), "refusing a FIFO %s", fifo)
		})
	}
}
