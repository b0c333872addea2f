package main

import (
	"encoding/json"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBenchPeakRSS: bench reports the process's peak resident memory
// (VmHWM) in --json and in its text, as bench --train does.
func TestBenchPeakRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("VmHWM is Linux's")
	}
	model := filepath.Join(t.TempDir(), "r20.onnx")
	if code, _, errOut := runCLI("export", model); code != 0 {
		t.Fatal(errOut)
	}
	code, out, errOut := runCLI("bench", model, "--iters", "2", "--warmup", "0", "--json")
	if code != 0 {
		t.Fatal(errOut)
	}
	var b map[string]any
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatal(err)
	}
	if v, ok := b["peak_rss_mib"].(float64); !ok || v <= 0 {
		t.Errorf("peak_rss_mib = %v in %s", b["peak_rss_mib"], out)
	}
	code, out, errOut = runCLI("bench", model, "--iters", "2", "--warmup", "0")
	if code != 0 {
		t.Fatal(errOut)
	}
	if !strings.Contains(out, "peak resident memory: ") {
		t.Errorf("no peak resident memory in\n%s", out)
	}
}
