package imgproc

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/resnetctl/resnetctl/internal/memcap"
	"github.com/resnetctl/resnetctl/internal/regularfile"
	"github.com/resnetctl/resnetctl/internal/regularfile/fifotest"
)

// TestDecodeFileRefusesNonRegular: a FIFO named x.png (which blocked
// DecodeFile forever: opening a FIFO waits for a writer) and a folder named
// y.jpg are refused at once, with one line naming the file.
func TestDecodeFileRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "x.png")
	fifotest.Make(t, fifo)
	for _, tt := range []struct{ path, want string }{
		{fifo, "open " + fifo + ": not a regular file (a named pipe)"},
		{dir, "open " + dir + ": not a regular file (a directory)"},
	} {
		var err error
		alloc := memcap.Allocated(func() {
			err = fifotest.Prompt(t, "DecodeFile", func() error {
				_, err := DecodeFile(tt.path)
				return err
			})
		})
		if err == nil || err.Error() != tt.want || !errors.Is(err, regularfile.ErrNotRegular) {
			t.Errorf("DecodeFile(%s): %v, want %q", tt.path, err, tt.want)
		}
		memcap.Check(t, alloc, memcap.Limit(64<<20, 0), "refusing %s", tt.path)
	}
}
