package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary run resnetctl's main instead of the tests
// (TestMain), so that tests can signal a real resnetctl process.
const childEnv = "RESNETCTL_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(os.Args[1:], defaultStreams()))
	}
	os.Exit(m.Run())
}

// TestTrainCtrlC sends SIGINT to a running `resnetctl train` in its second
// epoch: it must save a checkpoint of the unfinished epoch, say where, exit
// with 130 and leave no temporary files; `--resume` then finishes the run.
// (That the resumed weights equal an uninterrupted run's is asserted bit
// for bit in train.TestInterruptMidEpochResumesExactly.)
func TestTrainCtrlC(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(os.Args[0], "train", "--model", "resnet8", "--data", "sample", "--limit", "512",
		"--batch", "16", "--epochs", "100", "--threads", "1", "--out", out)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "epoch 1:") {
			time.Sleep(100 * time.Millisecond) // into epoch 2, which is far from the last
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if code != exitInt {
		t.Fatalf("exit %d (%v), want %d; stdout %q stderr %q", code, err, exitInt, lines, stderr.String())
	}
	msg := stderr.String()
	if !strings.Contains(msg, "resnetctl: interrupted") || !strings.Contains(msg, "--resume") {
		t.Errorf("stderr %q", msg)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s", e.Name())
		}
	}
	if strings.Contains(msg, "saved ") {
		partial := ""
		for _, n := range names {
			if strings.Contains(n, "-batch-") {
				partial = n
			}
		}
		if partial == "" || !strings.Contains(msg, partial) {
			t.Errorf("stderr %q names no saved checkpoint of %v", msg, names)
		}
	} else {
		t.Logf("the signal landed between epochs (stderr %q); no partial checkpoint needed", msg)
	}
	// Resume and stop after epoch 2 (the interrupted one).
	code, so, se := runCLI("train", "--out", out, "--resume", "--epochs", "2", "--data", "sample", "--limit", "512", "--threads", "1")
	if code != 0 || !strings.Contains(so, "epoch 2:") || !strings.Contains(se, "resuming") {
		t.Fatalf("resume: exit %d %q %q", code, so, se)
	}
	if _, err := os.Stat(filepath.Join(out, "epoch-0002", "model.onnx")); err != nil {
		t.Error(err)
	}
}
