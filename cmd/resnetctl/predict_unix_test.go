//go:build unix

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/resnetctl/resnetctl/export"
)

// TestPredictStreamsBoundedMemory is issue #14's must-show: 1,000 images
// in a folder, one corrupt: 999 results, the bad file named, exit 1, and
// the peak RSS of the process independent of the image count (each image
// decodes to 110 KB: 1,000 held at once would add 110 MB).
func TestPredictStreamsBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs predict on 1,100 images in child processes")
	}
	model := exportedModel(t, "r8.onnx", export.Options{}, nil)
	dir := t.TempDir()
	small, large := filepath.Join(dir, "small"), filepath.Join(dir, "large")
	writeImages(t, small, 100, 192)
	writeImages(t, large, 999, 192)
	os.WriteFile(filepath.Join(large, "img0500-corrupt.jpg"), []byte("\xff\xd8\xff\xe0 truncated"), 0o644)
	peak := func(folder string) (results int, stderr string, code int, rssKB int64) {
		cmd := exec.Command(os.Args[0], "predict", "--json", "--threads", "1", model, folder)
		cmd.Env = append(os.Environ(), childEnv+"=1")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatal(err)
		}
		return len(decodeLines(t, out.String())), errOut.String(), cmd.ProcessState.ExitCode(), cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	}
	n, errOut, code, rss100 := peak(small)
	if n != 100 || code != 0 {
		t.Fatalf("100 images: %d results, exit %d: %s", n, code, errOut)
	}
	n, errOut, code, rss1000 := peak(large)
	if n != 999 || code != exitError || !strings.Contains(errOut, "img0500-corrupt.jpg") || !strings.Contains(errOut, "1 of 1000 images") {
		t.Errorf("1,000 images, one corrupt: %d results, exit %d, stderr %q", n, code, errOut)
	}
	t.Logf("peak RSS: %d KB for 100 images, %d KB for 1,000", rss100, rss1000)
	if float64(rss1000) > 1.3*float64(rss100)+20<<10 {
		t.Errorf("peak RSS grows with the image count: %d KB for 100 images, %d KB for 1,000", rss100, rss1000)
	}
}
