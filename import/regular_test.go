package onnximport

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/resnetctl/resnetctl/internal/memcap"
	"github.com/resnetctl/resnetctl/internal/regularfile"
	"github.com/resnetctl/resnetctl/internal/regularfile/fifotest"
)

// TestFIFOsRefused: a FIFO as the model file or as a checkpoint's
// manifest (which blocked forever) is refused at once, naming it.
func TestFIFOsRefused(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "model.onnx")
	fifotest.Make(t, model)
	fifotest.Make(t, filepath.Join(dir, CheckpointManifest))
	for _, tt := range []struct {
		name string
		call func() error
		want string
	}{
		{"Load", func() error { _, _, err := Load(model); return err },
			"onnximport: open " + model + ": not a regular file (a named pipe)"},
		{"ReadManifest", func() error { _, err := ReadManifest(dir); return err },
			"checkpoint " + dir + ": open " + filepath.Join(dir, CheckpointManifest) + ": not a regular file (a named pipe)"},
	} {
		var err error
		alloc := memcap.Allocated(func() { err = fifotest.Prompt(t, tt.name, tt.call) })
		if err == nil || err.Error() != tt.want || !errors.Is(err, regularfile.ErrNotRegular) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
		memcap.Check(t, alloc, memcap.Limit(64<<20, 0), "refusing a FIFO (%s)", tt.name)
	}
}
