package regularfile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/resnetctl/resnetctl/internal/memcap"
	"github.com/resnetctl/resnetctl/internal/regularfile/fifotest"
)

// TestReadFile: regular files (and symlinks to them) are read; a FIFO, a
// directory, a device and a symlink to a FIFO are refused at once with one
// line naming the path and what it is, and a file over the limit is refused
// before it is read, each allocating under the corpus bound.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(file, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "x.png")
	fifotest.Make(t, fifo)
	link := filepath.Join(dir, "link.png")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	fifoLink := filepath.Join(dir, "fifolink.png")
	if err := os.Symlink(fifo, fifoLink); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		maxBytes int64
		want     string // the error, "" to read the file
		is       error
	}{
		{"regular", file, 0, "", nil},
		{"regular at the limit", file, 10, "", nil},
		{"symlink to a regular file", link, 0, "", nil},
		{"FIFO", fifo, 0, "open " + fifo + ": not a regular file (a named pipe)", ErrNotRegular},
		{"symlink to a FIFO", fifoLink, 0, "open " + fifoLink + ": not a regular file (a named pipe)", ErrNotRegular},
		{"directory", dir, 0, "open " + dir + ": not a regular file (a directory)", ErrNotRegular},
		{"over the limit", file, 9, "read " + file + ": file too large: 10 bytes, over the limit of 9", ErrTooLarge},
	}
	if runtime.GOOS == "linux" {
		tests = append(tests, struct {
			name     string
			path     string
			maxBytes int64
			want     string
			is       error
		}{"character device", "/dev/zero", 0, "open /dev/zero: not a regular file (a device)", ErrNotRegular})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b []byte
			var err error
			alloc := memcap.Allocated(func() {
				err = fifotest.Prompt(t, "ReadFile "+tt.path, func() error {
					var err error
					b, err = ReadFile(tt.path, tt.maxBytes)
					return err
				})
			})
			if tt.want == "" {
				if err != nil || string(b) != "0123456789" {
					t.Fatalf("ReadFile = %q, %v", b, err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %q (matching %v)", err, tt.want, tt.is)
			}
			memcap.Check(t, alloc, memcap.Limit(64<<20, 0), "refusing %s", tt.name)
		})
	}
}

// TestOpen: Open refuses a FIFO at once, as ReadFile does.
func TestOpen(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "data.tar.gz")
	fifotest.Make(t, fifo)
	err := fifotest.Prompt(t, "Open", func() error {
		f, err := Open(fifo)
		if err == nil {
			f.Close()
		}
		return err
	})
	if want := "open " + fifo + ": not a regular file (a named pipe)"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}
