package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.onnx")
	if err := WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	err := Write(p, 0o644, func(w io.Writer) error {
		w.Write([]byte("half of the new con"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("failed write changed the file to %q", b)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Fatalf("temporary files left behind: %v", got)
	}
	if err := WriteFile(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Fatalf("got %q", b)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	roFile := filepath.Join(dir, "ro.onnx")
	os.WriteFile(roFile, []byte("keep"), 0o444)
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o555)
	tests := []struct {
		path, want string
	}{
		{filepath.Join(dir, "missing", "m.onnx"), "does not exist"},
		{filepath.Join(file, "m.onnx"), "is not a directory"},
		{dir, "is a directory"},
		{roFile, "the file is read-only"},
		{"/proc/m.onnx", "/proc/m.onnx"}, // a read-only file system, refused even to root
	}
	if os.Geteuid() != 0 { // root writes anywhere
		tests = append(tests, struct{ path, want string }{filepath.Join(ro, "m.onnx"), "permission denied"})
	}
	for _, tt := range tests {
		err := WriteFile(tt.path, []byte("x"), 0o644)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.path, err, tt.want)
		}
	}
	if b, _ := os.ReadFile(roFile); string(b) != "keep" {
		t.Errorf("read-only file changed to %q", b)
	}
	if got := entries(t, ro); len(got) != 0 {
		t.Errorf("left %v in the read-only directory", got)
	}
}
