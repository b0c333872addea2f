//go:build unix

package train

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment of the child processes TestKillAndResume starts: the run's
// checkpoint folder (its presence makes TestCrashChild train) and how long
// the child pauses before each checkpoint file and before each rename, so
// that a kill can land in the middle of a checkpoint write.
const (
	crashDirEnv   = "RESNETCTL_CRASH_CHILD_DIR"
	crashPauseEnv = "RESNETCTL_CRASH_CHILD_PAUSE"
	// crashSeedEnv overrides the seed of the kill schedule (to explore or
	// to reproduce a failure).
	crashSeedEnv = "RESNETCTL_CRASH_SEED"
)

// The killed run: a narrow ResNet-8 on 256 images of the embedded sample,
// batches of 32 (8 steps an epoch), 8 epochs, one kernel thread, SGD with
// Nesterov momentum on a warm-up + cosine schedule, keeping the last 2
// epoch checkpoints (so that pruning is killed too).
const (
	crashImages = 256
	crashEpochs = 8
)

func crashFitOptions(dir string) FitOptions {
	return FitOptions{Epochs: crashEpochs, Batch: 32, Seed: 21, CheckpointDir: dir, KeepLast: 2,
		RecipeName: "crash-test", Augment: "none"}
}

// crashModel is the killed run's model before its first epoch.
func crashModel(t *testing.T) *Model {
	t.Helper()
	m, err := NewModel(smallSpec(), 5)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Compile(CompileOptions{Optimizer: OptimizerConfig{Name: SGD, LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4},
		Schedule: ScheduleConfig{Kind: Cosine, WarmupEpochs: 1}, Metrics: []string{"accuracy"}, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// leftovers lists the hidden entries of a checkpoint folder: temporary
// checkpoint directories and pruned ones not yet deleted.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestCrashChild is the training process TestKillAndResume kills: it
// resumes from the newest epoch checkpoint in $RESNETCTL_CRASH_CHILD_DIR
// (or starts afresh) and trains to the end, printing a line per stage of
// every checkpoint write ("stage NAME", then pausing) and per epoch. It
// fails if a temporary leftover of an earlier, killed process survives
// Fit's start. Without the variable it skips.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child process of TestKillAndResume")
	}
	pause, err := time.ParseDuration(os.Getenv(crashPauseEnv))
	if err != nil {
		t.Fatalf("%s: %v", crashPauseEnv, err)
	}
	data, _ := sources(t, sample(t, "train", crashImages), smallSpec().Preprocess)
	latest, err := LatestCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	var m *Model
	if latest == "" {
		m = crashModel(t)
		fmt.Println("start fresh")
	} else {
		var r Recipe
		if m, r, err = Resume(latest, 1); err != nil {
			t.Fatalf("resume from %s: %v", latest, err)
		}
		defer m.Close()
		if r.Name != "crash-test" {
			t.Fatalf("%s recorded recipe %q", latest, r.Name)
		}
		fmt.Printf("start %s\n", filepath.Base(latest))
	}
	fo := crashFitOptions(dir)
	fo.checkpointFault = func(stage string) error {
		fmt.Printf("stage %s\n", stage)
		time.Sleep(pause)
		return nil
	}
	fo.Callbacks = []Callback{CallbackFuncs{
		BatchEnd: func(b BatchInfo) {
			// Checkpoints are written between epochs, synchronously: during
			// a batch, nothing of an earlier process may be left.
			if l := leftovers(t, dir); len(l) > 0 {
				t.Fatalf("step %d: temporary leftovers not cleaned at start: %v", b.Step, l)
			}
		},
		EpochEnd: func(e EpochInfo) { fmt.Printf("epoch %d\n", e.Metrics.Epoch) },
	}}
	if _, err := m.Fit(context.Background(), data, fo); err != nil {
		t.Fatal(err)
	}
	fmt.Println("done")
}

// crashChild is a started TestCrashChild process.
type crashChild struct {
	cmd    *exec.Cmd
	lines  chan string // its stdout, line by line; closed at EOF
	mu     sync.Mutex
	output bytes.Buffer // everything it printed, for failure messages
}

func startCrashChild(t *testing.T, dir string, pause time.Duration) *crashChild {
	t.Helper()
	c := &crashChild{lines: make(chan string, 64)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=5m")
	c.cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashPauseEnv+"="+pause.String())
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.output.Write(b)
	})
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.output.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			c.lines <- sc.Text()
		}
	}()
	return c
}

func (c *crashChild) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.output.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestKillAndResume kills a training process with SIGKILL at seeded random
// moments, alternately after a random delay and while it pauses inside a
// checkpoint write (before one of its files, or before the rename), and
// restarts it each time from the newest epoch checkpoint. After every kill
// each checkpoint under a final name (epoch-NNNN, best) loads and
// verifies, so LatestCheckpoint never picks a half-written one; a
// restarted process finds the temporary leftovers gone once Fit has
// started (TestCrashChild checks); and the run, finished by a last
// process, ends with weights, optimiser state and per-epoch losses
// bit-identical to an uninterrupted run's.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a training process several times (about 10 s)")
	}
	const kills = 6
	const pause = 150 * time.Millisecond
	seed := uint64(8)
	if s := os.Getenv(crashSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", crashSeedEnv, err)
		}
	}
	t.Logf("kill schedule seed %d (set %s to change)", seed, crashSeedEnv)

	// The uninterrupted run, in this process.
	data, _ := sources(t, sample(t, "train", crashImages), smallSpec().Preprocess)
	refDir := filepath.Join(t.TempDir(), "reference")
	ref := crashModel(t)
	t0 := time.Now()
	refHist, err := ref.Fit(context.Background(), data, crashFitOptions(refDir))
	if err != nil {
		t.Fatal(err)
	}
	epochTime := time.Since(t0) / crashEpochs
	t.Logf("uninterrupted run: %d epochs, %v an epoch", crashEpochs, epochTime.Round(time.Millisecond))

	dir := filepath.Join(t.TempDir(), "killed")
	rng := rand.New(rand.NewPCG(seed, 0x6b696c6c)) // "kill"
	killed, midWrite, done := 0, 0, false
	for k := 1; k <= kills && !done; k++ {
		// Odd kills: a random delay of 0.25 to 2 epochs after the process
		// has resumed, which trains at full speed: the kill lands wherever
		// it is (a step, a checkpoint write, pruning). Even kills: at a
		// random stage of its first or second checkpoint write (before a
		// file or before the rename), while it pauses there. A process
		// saves at most two epochs, so at least 4 kills land before the
		// run is over.
		var timer <-chan time.Time
		var delay, childPause time.Duration
		stageTarget := 0
		plan := ""
		if k%2 == 1 {
			delay = epochTime/4 + time.Duration(rng.Int64N(int64(7*epochTime/4)))
			plan = fmt.Sprintf("%v after resuming", delay.Round(time.Millisecond))
		} else {
			stageTarget = 1 + rng.IntN(8)
			childPause = pause
			plan = fmt.Sprintf("at checkpoint stage #%d", stageTarget)
		}
		c := startCrashChild(t, dir, childPause)
		stages, last, finished := 0, "", false
	wait:
		for {
			select {
			case <-timer:
				break wait
			case line, ok := <-c.lines:
				if !ok {
					finished = true
					break wait
				}
				if strings.HasPrefix(line, "start ") && delay > 0 {
					timer = time.After(delay)
				}
				if s, ok := strings.CutPrefix(line, "stage "); ok {
					stages++
					last = s
					if stages == stageTarget {
						plan += " (" + s + ")"
						break wait
					}
				}
			case <-time.After(2 * time.Minute):
				c.cmd.Process.Kill()
				c.cmd.Wait()
				t.Fatalf("kill %d: the child hangs:\n%s", k, c.text())
			}
		}
		if finished {
			// The process ended by itself before its kill: it must have
			// finished the run.
			if err := c.cmd.Wait(); err != nil || !strings.Contains(c.text(), "done") {
				t.Fatalf("kill %d: the child exited before being killed (%v):\n%s", k, err, c.text())
			}
			t.Logf("process %d finished the run before its kill (%s)", k, plan)
			done = true
			break
		}
		killed++
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := c.cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("kill %d: wait: %v\n%s", k, err, c.text())
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d: the child did not die by SIGKILL (%v):\n%s", k, err, c.text())
		}
		left := leftovers(t, dir)
		if len(left) > 0 {
			midWrite++
		}
		latest, err := LatestCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		// Every checkpoint under a final name is complete.
		entries, _ := os.ReadDir(dir)
		var complete []string
		for _, e := range entries {
			if e.IsDir() && (strings.HasPrefix(e.Name(), "epoch-") || e.Name() == BestName) {
				if _, err := LoadCheckpoint(filepath.Join(dir, e.Name())); err != nil {
					t.Fatalf("kill %d (%s): %s does not load: %v", k, plan, e.Name(), err)
				}
				complete = append(complete, e.Name())
			}
		}
		if latest == "" {
			latest = "none"
		}
		t.Logf("kill %d %s, last stage %q: latest %s, checkpoints %v, leftovers %v", k, plan, last, filepath.Base(latest), complete, left)
	}
	if killed < 4 || midWrite == 0 {
		t.Errorf("%d kills landed, %d inside a checkpoint write; want at least 4 and 1", killed, midWrite)
	}
	if !done {
		c := startCrashChild(t, dir, 0)
		for range c.lines {
		}
		if err := c.cmd.Wait(); err != nil || !strings.Contains(c.text(), "done") {
			t.Fatalf("the last process: %v\n%s", err, c.text())
		}
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("leftovers after the run: %v", l)
	}

	final := epochName(crashEpochs)
	got, err := LoadCheckpoint(filepath.Join(dir, final))
	if err != nil {
		t.Fatal(err)
	}
	want, err := LoadCheckpoint(filepath.Join(refDir, final))
	if err != nil {
		t.Fatal(err)
	}
	sameParams(t, ref, FromGraph(got.Graph))
	for _, f := range []string{ModelFile, StateFile} {
		if got.State.Files[f] != want.State.Files[f] {
			t.Errorf("%s differs from the uninterrupted run's", f)
		}
	}
	if got.State.Step != want.State.Step || len(got.State.History) != len(refHist.Epochs) {
		t.Fatalf("step %d, %d epochs; want %d, %d", got.State.Step, len(got.State.History), want.State.Step, len(refHist.Epochs))
	}
	for i, e := range got.State.History {
		r := refHist.Epochs[i]
		if e.Loss != r.Loss || e.Accuracy != r.Accuracy || e.LR != r.LR || e.Step != r.Step {
			t.Errorf("epoch %d: %+v, uninterrupted %+v", i+1, e, r)
		}
	}
	t.Logf("%d kills (%d inside a checkpoint write); final weights bit-identical (loss %.6f)", killed, midWrite, refHist.Epochs[crashEpochs-1].Loss)
}
