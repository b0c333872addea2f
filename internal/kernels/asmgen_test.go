package kernels

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestAsmUpToDate regenerates the amd64 assembly with gen_amd64.py and
// checks that arch_amd64.s matches it (skipped where python3 is missing).
func TestAsmUpToDate(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	out := filepath.Join(t.TempDir(), "arch_amd64.s")
	if msg, err := exec.Command(py, "gen_amd64.py", out).CombinedOutput(); err != nil {
		t.Fatalf("gen_amd64.py: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("arch_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("arch_amd64.s is out of date: run `go generate ./internal/kernels/` (python3 gen_amd64.py)")
	}
}
