package cifar

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/resnetctl/resnetctl/internal/memcap"
	"github.com/resnetctl/resnetctl/internal/regularfile"
	"github.com/resnetctl/resnetctl/internal/regularfile/fifotest"
)

// TestDuplicateArchiveMembers: an archive holding a file name twice (it
// was counted twice) is refused, naming the member; a folder listed twice
// is not data and is accepted. The attempt allocates under the corpus
// bound.
func TestDuplicateArchiveMembers(t *testing.T) {
	good := imageTree(t, "set", map[string]map[string]int{"test": {"a": 2, "b": 1}})
	jpg := good[1] // set/test/a/0000.jpg
	bin := records(FormatCIFAR10, 3, 1, mod(10))
	tests := []struct {
		name  string
		files []file
		opts  Options
		want  string // "" loads
	}{
		{"image twice", append(append([]file(nil), good...), jpg), Options{Split: "test"},
			`x.tar.gz: duplicate member: "set/test/a/0000.jpg" appears twice in the archive`},
		{"image twice, once as ./", append(append([]file(nil), good...), file{"./" + jpg.name, jpg.data}), Options{Split: "test"},
			`x.tar.gz: duplicate member: "set/test/a/0000.jpg" appears twice in the archive`},
		{"bin file twice", []file{{"data/test_part.bin", bin}, {"data/test_part.bin", bin}}, Options{Split: "test"},
			`x.tar.gz: duplicate member: "data/test_part.bin" appears twice in the archive`},
		{"folder twice", append(append([]file(nil), good...), dirEntry("set/test/a")), Options{Split: "test"}, ""},
		{"bin file once", []file{{"data/test_part.bin", bin}}, Options{Split: "test"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			archive := tarGz(t, tt.files)
			p := writeFile(t, filepath.Join(t.TempDir(), "x.tar.gz"), archive)
			var err error
			alloc := memcap.Allocated(func() { _, err = Open(context.Background(), p, tt.opts) })
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || !errors.Is(err, ErrDuplicateMember) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			memcap.Check(t, alloc, memcap.Limit(64<<20, len(archive)), "refusing %s", tt.name)
		})
	}
}

// TestNonRegularFiles: a FIFO given as the data set (whatever its name),
// or reached through a symlink in an image folder, is refused at once
// with one line naming it, where it blocked forever; a FIFO in the place of
// a release's label file is skipped as an unreadable label file is.
func TestNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := func(name string) string {
		p := filepath.Join(dir, name)
		fifotest.Make(t, p)
		return p
	}
	notRegular := func(p string) string { return "open " + p + ": not a regular file (a named pipe)" }

	// An image folder whose image is a symlink to a FIFO.
	imgDir := filepath.Join(dir, "images")
	writeTree(t, imgDir, imageTree(t, "", map[string]map[string]int{"test": {"a": 1, "b": 1}}))
	linked := fifo("linked.png")
	if err := os.Symlink(linked, filepath.Join(imgDir, "test", "a", "0001.png")); err != nil {
		t.Fatal(err)
	}
	// A .bin file beside a FIFO named like the release's label file.
	binDir := filepath.Join(dir, "bins")
	writeFile(t, filepath.Join(binDir, "test_part.bin"), records(FormatCIFAR10, 3, 1, mod(10)))
	fifotest.Make(t, filepath.Join(binDir, "batches.meta.txt"))

	tests := []struct {
		name, path string
		opts       Options
		want       string // "" loads
	}{
		{"archive name", fifo("data.tar.gz"), Options{}, notRegular(filepath.Join(dir, "data.tar.gz"))},
		{"bin name", fifo("test_batch.bin"), Options{}, notRegular(filepath.Join(dir, "test_batch.bin"))},
		{"no extension (sniffed)", fifo("data"), Options{}, notRegular(filepath.Join(dir, "data"))},
		{"image folder, symlink to a FIFO", imgDir, Options{Split: "test"}, notRegular(filepath.Join(imgDir, "test", "a", "0001.png"))},
		{"FIFO label file beside a .bin file", filepath.Join(binDir, "test_part.bin"), Options{}, ""},
		{"FIFO label file in a .bin folder", binDir, Options{Split: "test"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			alloc := memcap.Allocated(func() {
				err = fifotest.Prompt(t, "Load "+tt.path, func() error {
					_, err := Load(context.Background(), tt.path, tt.opts)
					return err
				})
			})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || !errors.Is(err, regularfile.ErrNotRegular) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			memcap.Check(t, alloc, memcap.Limit(64<<20, 0), "refusing %s", tt.name)
		})
	}
}
