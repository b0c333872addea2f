package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/train"
)

// writeJPEGArchive writes a .tar.gz laid out as the shared CIFAR-10 JPEG
// archive (cifar10/{train,test}/<class>/NNNN.jpg, classes in order, so
// that the first N training files are all of one class), with perClass
// training and testPer test images of each class.
func writeJPEGArchive(t *testing.T, path string, classes []string, perClass, testPer int, seed uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	r := rand.New(rand.NewPCG(seed, 1))
	add := func(name string) {
		img := image.NewRGBA(image.Rect(0, 0, 32, 32))
		base := color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255}
		for y := 0; y < 32; y++ {
			for x := 0; x < 32; x++ {
				img.Set(x, y, color.RGBA{base.R + uint8(r.IntN(32)), base.G + uint8(x), base.B + uint8(y), 255})
			}
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 75}); err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(b.Len()), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b.Bytes())
	}
	for _, split := range []struct {
		name string
		n    int
	}{{"train", perClass}, {"test", testPer}} {
		for _, c := range classes {
			for i := 0; i < split.n; i++ {
				add(fmt.Sprintf("cifar10/%s/%s/%04d.jpg", split.name, c, i))
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
}

var tenClasses = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// dirState is a folder's files with their contents' hashes, to show that a
// refused command changed nothing.
func dirState(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	st := map[string][32]byte{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			st[p] = sha256.Sum256(b)
		}
		return nil
	})
	return st
}

func sameDirState(t *testing.T, what string, a, b map[string][32]byte) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("%s: %d files before, %d after", what, len(a), len(b))
	}
	for p, h := range a {
		if b[p] != h {
			t.Errorf("%s changed %s", what, p)
		}
	}
}

func trainerState(t *testing.T, ckpt string) train.TrainerState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ckpt, train.TrainerFile))
	if err != nil {
		t.Fatal(err)
	}
	var st train.TrainerState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestTrainRunFolderRules: a folder holding a run is not trained into
// again without --resume or --force; the refusal changes nothing; --force
// leaves nothing of the old run; --out is checked before anything loads.
func TestTrainRunFolderRules(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	base := []string{"train", "--model", "resnet8", "--data", "sample", "--limit", "64", "--batch", "32", "--threads", "1", "--out", out}
	if code, _, errOut := runCLI(append(base, "--epochs", "2")...); code != 0 {
		t.Fatal(errOut)
	}
	before := dirState(t, out)
	code, _, errOut := runCLI(append(base, "--epochs", "1")...)
	if code != exitError || !strings.Contains(errOut, "--resume") || !strings.Contains(errOut, "--force") || !strings.Contains(errOut, "epoch-0002") {
		t.Errorf("a second run into %s: exit %d %q", out, code, errOut)
	}
	if strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("the refusal is not one line: %q", errOut)
	}
	sameDirState(t, "the refused run", before, dirState(t, out))

	if code, _, errOut := runCLI(append(base, "--resume", "--force")...); code != exitUsage {
		t.Errorf("--resume --force: exit %d %q", code, errOut)
	}
	code, stdout, errOut := runCLI(append(base, "--epochs", "1", "--force")...)
	if code != 0 || !strings.Contains(errOut, "--force: removed") {
		t.Fatalf("--force: exit %d %q %q", code, stdout, errOut)
	}
	for _, gone := range []string{"epoch-0002"} {
		if _, err := os.Stat(filepath.Join(out, gone)); !os.IsNotExist(err) {
			t.Errorf("--force left %s of the old run (%v)", gone, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "metrics.csv"))
	if n := strings.Count(strings.TrimSpace(string(b)), "\n"); n != 1 {
		t.Errorf("metrics.csv after --force has %d epochs:\n%s", n, b)
	}
	if st := trainerState(t, filepath.Join(out, "best")); st.Epoch != 1 {
		t.Errorf("best after --force is from epoch %d", st.Epoch)
	}

	// An --out that cannot be written is refused before the data is read.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	code, _, errOut = runCLI("train", "--model", "resnet8", "--data", filepath.Join(t.TempDir(), "no-such-data"), "--out", filepath.Join(file, "run"))
	if code != exitError || !strings.Contains(errOut, "--out") || !strings.Contains(errOut, "not writable") {
		t.Errorf("unwritable --out: exit %d %q", code, errOut)
	}

	// Without --out, each run gets a folder of its own.
	wd, _ := os.Getwd()
	tmp := t.TempDir()
	if err := os.Chdir(tmp); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	for i, want := range []string{"runs/resnet8", "runs/resnet8-2"} {
		code, _, errOut := runCLI("train", "--model", "resnet8", "--data", "sample", "--limit", "32", "--batch", "16", "--epochs", "1", "--threads", "1")
		if code != 0 || !strings.Contains(errOut, "checkpoints in "+want) {
			t.Fatalf("default --out, run %d: exit %d %q", i+1, code, errOut)
		}
	}
	if code, _, errOut := runCLI("train", "--resume"); code != exitUsage || !strings.Contains(errOut, "--out") {
		t.Errorf("--resume without --out: exit %d %q", code, errOut)
	}
}

// startTrainChild starts `resnetctl train args…` as a child process and
// returns it with a channel of its stdout lines.
func startTrainChild(t *testing.T, args ...string) (*exec.Cmd, <-chan string, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"train"}, args...)...)
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
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return cmd, lines, &stderr
}

func waitLine(t *testing.T, lines <-chan string, prefix string) {
	t.Helper()
	deadline := time.After(5 * time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the child ended before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q after 5 minutes", prefix)
		}
	}
}

// TestTrainSecondProcessRefused: while one resnetctl train runs in a
// folder, a second one on the same --out is refused (even with --resume
// or --force) and changes nothing.
func TestTrainSecondProcessRefused(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cmd, lines, _ := startTrainChild(t, "--model", "resnet8", "--data", "sample", "--limit", "256", "--batch", "16", "--epochs", "100", "--threads", "1", "--out", out)
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	waitLine(t, lines, "epoch 1:")
	for _, extra := range [][]string{{"--resume"}, {"--force"}} {
		args := append([]string{"train", "--model", "resnet8", "--data", "sample", "--limit", "64", "--epochs", "1", "--out", out}, extra...)
		code, _, errOut := runCLI(args...)
		if code != exitError || !strings.Contains(errOut, "in use by another resnetctl train") || !strings.Contains(errOut, fmt.Sprintf("pid %d", cmd.Process.Pid)) {
			t.Errorf("second process %v: exit %d %q", extra, code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "epoch-0001")); err != nil {
		t.Errorf("the --force attempt touched the running run: %v", err)
	}
}

// TestTrainSignalResumesExactly: SIGTERM (what kill, timeout, docker and
// Kubernetes send) and SIGINT (Ctrl-C) mid-epoch both save the unfinished
// epoch and exit with 128+signal; `--resume` alone (no other flag) then
// ends bit-identical to a run that was never stopped.
func TestTrainSignalResumesExactly(t *testing.T) {
	common := []string{"--model", "resnet8", "--data", "sample", "--limit", "512", "--batch", "16", "--threads", "1", "--seed", "4"}
	ref := filepath.Join(t.TempDir(), "ref")
	if code, _, errOut := runCLI(append(append([]string{"train"}, common...), "--epochs", "2", "--out", ref)...); code != 0 {
		t.Fatal(errOut)
	}
	want := trainerState(t, filepath.Join(ref, "epoch-0002")).Files[train.StateFile]
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
		word string
	}{{syscall.SIGTERM, 143, "terminated"}, {syscall.SIGINT, 130, "interrupted"}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			cmd, lines, stderr := startTrainChild(t, append(common, "--epochs", "2", "--out", out)...)
			waitLine(t, lines, "epoch 1:")
			time.Sleep(150 * time.Millisecond) // into epoch 2
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			for range lines {
			}
			cmd.Wait()
			if got := cmd.ProcessState.ExitCode(); got != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", got, tc.code, stderr.String())
			}
			msg := stderr.String()
			if !strings.Contains(msg, "resnetctl: "+tc.word) || !strings.Contains(msg, "--resume") {
				t.Errorf("stderr %q", msg)
			}
			if !strings.Contains(msg, "saved ") {
				t.Logf("the signal landed between epochs: %q", msg)
			}
			for _, e := range mustReadDir(t, out) {
				if strings.HasPrefix(e, ".") && e != train.LockName {
					t.Errorf("leftover %s", e)
				}
			}
			code, so, se := runCLI("train", "--out", out, "--resume")
			if code != 0 || !strings.Contains(so, "epoch 2:") || !strings.Contains(se, "resuming") {
				t.Fatalf("resume: exit %d %q %q", code, so, se)
			}
			if got := trainerState(t, filepath.Join(out, "epoch-0002")).Files[train.StateFile]; got != want {
				t.Errorf("after %s and --resume the state differs from the uninterrupted run's", tc.sig)
			}
		})
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestTrainResumeRecordedData: --resume with no flags reads the archive
// the run trained on again (not the embedded sample), with the same
// --limit; moved data is found by --data and recognised by its
// fingerprint; other data, and flags that contradict the record, are
// refused naming both values, changing nothing.
func TestTrainResumeRecordedData(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "jpeg.tar.gz")
	writeJPEGArchive(t, archive, tenClasses, 12, 3, 1)
	out := filepath.Join(dir, "run")
	code, _, errOut := runCLI("train", "--model", "resnet8", "--data", archive, "--limit", "60", "--batch", "10", "--epochs", "1", "--threads", "1", "--out", out)
	if code != 0 || !strings.Contains(errOut, "6 images of each of 10 classes") {
		t.Fatalf("exit %d %q", code, errOut)
	}
	rec := trainerState(t, filepath.Join(out, "epoch-0001")).Data
	if rec == nil || rec.Source != archive || rec.Limit != 60 || rec.Validation != "test" || rec.TrainImages != 60 || rec.ValImages != 30 {
		t.Fatalf("data record %+v", rec)
	}

	before := dirState(t, out)
	other := filepath.Join(dir, "other.tar.gz")
	writeJPEGArchive(t, other, tenClasses, 12, 3, 2)
	for _, tc := range []struct {
		args []string
		code int
		says []string
	}{
		{[]string{"--batch", "20"}, exitUsage, []string{"--batch 20", "batch 10"}},
		{[]string{"--model", "resnet20"}, exitUsage, []string{"--model resnet20", "model resnet8"}},
		{[]string{"--limit", "100"}, exitUsage, []string{"--limit 100", "limit 60"}},
		{[]string{"--val-split", "0.2"}, exitUsage, []string{"--val-split 0.2", "val-split 0"}},
		{[]string{"--seed", "7"}, exitUsage, []string{"--seed 7", "seed 1"}},
		{[]string{"--lr", "0.5"}, exitUsage, []string{"--lr 0.5", "lr 0.1"}},
		{[]string{"--recipe", "tutorial"}, exitUsage, []string{"--recipe tutorial", "recipe fast"}},
		{[]string{"--classes", "100"}, exitUsage, []string{"--classes 100", "classes 10"}},
		{[]string{"--data", other}, exitError, []string{other, archive, "fingerprints"}},
		{[]string{"--data", "sample"}, exitError, []string{"sample", archive}},
		{[]string{"--epochs", "0"}, exitUsage, []string{"epochs 0"}},
		{[]string{"--ema-decay", "0.9"}, exitUsage, []string{"--ema-decay 0.9", "ema-decay 0"}},
		{[]string{"--validation-tta", "flip"}, exitUsage, []string{"--validation-tta flip", "validation-tta none"}},
	} {
		args := append([]string{"train", "--out", out, "--resume", "--epochs", "2"}, tc.args...)
		code, _, errOut := runCLI(args...)
		ok := code == tc.code
		for _, s := range tc.says {
			ok = ok && strings.Contains(errOut, s)
		}
		if !ok {
			t.Errorf("%v: exit %d %q, want exit %d naming %q", tc.args, code, errOut, tc.code, tc.says)
		}
	}
	sameDirState(t, "the refused resumes", before, dirState(t, out))

	// The same values again are no contradiction.
	code, stdout, errOut := runCLI("train", "--out", out, "--resume", "--epochs", "2", "--batch", "10", "--limit", "60", "--model", "resnet8")
	if code != 0 || !strings.Contains(errOut, "on "+archive) || !strings.Contains(stdout, "epoch 2:") {
		t.Fatalf("resume with no data flag: exit %d %q %q", code, stdout, errOut)
	}
	moved := filepath.Join(dir, "moved.tar.gz")
	if err := os.Rename(archive, moved); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI("train", "--out", out, "--resume", "--epochs", "3")
	if code != exitError || !strings.Contains(errOut, archive) || !strings.Contains(errOut, "--data") {
		t.Errorf("resume after the data moved: exit %d %q", code, errOut)
	}
	code, _, errOut = runCLI("train", "--out", out, "--resume", "--epochs", "3", "--data", moved)
	if code != 0 || !strings.Contains(errOut, "reading the same images from "+moved) {
		t.Errorf("resume with --data at the new place: exit %d %q", code, errOut)
	}
	if rec := trainerState(t, filepath.Join(out, "epoch-0003")).Data; rec == nil || rec.Source != moved {
		t.Errorf("the record after the move: %+v", rec)
	}
}

// TestTrainResumeCorruptTrainerJSON: a hand-edited trainer.json is
// refused before anything trains or is written, naming the field.
func TestTrainResumeCorruptTrainerJSON(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	if code, _, errOut := runCLI("train", "--model", "resnet8", "--data", "sample", "--limit", "32", "--batch", "16", "--epochs", "1", "--threads", "1", "--out", out); code != 0 {
		t.Fatal(errOut)
	}
	path := filepath.Join(out, "epoch-0001", train.TrainerFile)
	raw, _ := os.ReadFile(path)
	for _, tc := range []struct{ from, to, field string }{
		{`"batch": 16`, `"batch": 1000000000`, "recipe.batch"},
		{`"epoch": 1,`, `"epoch": -1,`, "epoch"},
		{`"stride": 1`, `"stride": 0`, "conv.stride"},
	} {
		if !bytes.Contains(raw, []byte(tc.from)) {
			t.Fatalf("trainer.json has no %s", tc.from)
		}
		os.WriteFile(path, bytes.Replace(raw, []byte(tc.from), []byte(tc.to), 1), 0o644)
		before := dirState(t, out)
		start := time.Now()
		code, _, errOut := runCLI("train", "--out", out, "--resume", "--epochs", "3")
		if code != exitError || !strings.Contains(errOut, tc.field) || !strings.Contains(errOut, "trainer.json") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%s: exit %d %q", tc.to, code, errOut)
		}
		sameDirState(t, "resuming a corrupt checkpoint", before, dirState(t, out))
		t.Logf("%s refused in %v", tc.field, time.Since(start))
	}
}

// TestTrainSubsets: --limit takes a seeded class-balanced subset (not the
// first files of an archive sorted by class); data without a test split is
// validated on a stratified held-out part by default, never silently on
// the training images; --val-split 0 says it validates on them.
func TestTrainSubsets(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "jpeg.tar.gz")
	writeJPEGArchive(t, archive, tenClasses, 30, 2, 3)
	run := func(args ...string) (int, string, string) {
		return runCLI(append([]string{"train", "--model", "resnet8", "--batch", "10", "--epochs", "1", "--threads", "1", "--out", filepath.Join(t.TempDir(), "r")}, args...)...)
	}
	out1 := filepath.Join(dir, "limited")
	code, _, errOut := runCLI("train", "--model", "resnet8", "--batch", "10", "--epochs", "1", "--threads", "1", "--out", out1, "--data", archive, "--limit", "100")
	if code != 0 || !strings.Contains(errOut, "10 images of each of 10 classes") {
		t.Errorf("--limit 100: exit %d %q", code, errOut)
	}
	// evaluate --limit chooses the same way.
	code, stdout, errOut := runCLI("evaluate", filepath.Join(out1, "best", "model.onnx"), "--data", archive, "--split", "train", "--limit", "30", "--json")
	var ev struct {
		Images   int `json:"images"`
		PerClass []struct {
			Images int `json:"images"`
		} `json:"per_class"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &ev) != nil || ev.Images != 30 {
		t.Fatalf("evaluate --limit 30: exit %d %q %q", code, stdout, errOut)
	}
	for i, c := range ev.PerClass {
		if c.Images != 3 {
			t.Errorf("evaluate --limit 30: class %d has %d images", i, c.Images)
		}
	}
	// A folder of class folders (no split): 10% of each class held out.
	flat := filepath.Join(dir, "flat")
	for _, c := range tenClasses[:4] {
		os.MkdirAll(filepath.Join(flat, c), 0o755)
		for i := 0; i < 20; i++ {
			img := image.NewRGBA(image.Rect(0, 0, 32, 32))
			img.Set(i, i, color.RGBA{uint8(i * 10), 0, 0, 255})
			var b bytes.Buffer
			jpeg.Encode(&b, img, nil)
			os.WriteFile(filepath.Join(flat, c, fmt.Sprintf("%02d.jpg", i)), b.Bytes(), 0o644)
		}
	}
	out := filepath.Join(dir, "flatrun")
	code, _, errOut = runCLI("train", "--model", "resnet8", "--classes", "4", "--data", flat, "--batch", "8", "--epochs", "1", "--threads", "1", "--out", out)
	if code != 0 || !strings.Contains(errOut, "no test split") || !strings.Contains(errOut, "8 training images held out") {
		t.Errorf("flat folder: exit %d %q", code, errOut)
	}
	if rec := trainerState(t, filepath.Join(out, "epoch-0001")).Data; rec == nil || rec.Validation != "held-out" || rec.ValSplit != 0.1 || rec.TrainImages != 72 || rec.ValImages != 8 {
		t.Errorf("flat folder record %+v", rec)
	}
	code, _, errOut = run("--classes", "4", "--data", flat, "--val-split", "0")
	if code != 0 || !strings.Contains(errOut, "validating on the training images themselves") {
		t.Errorf("--val-split 0 without a test split: exit %d %q", code, errOut)
	}
	// A single .bin file answers every split with itself: no test split.
	_, bin, _ := sampleFiles(t)
	code, _, errOut = run("--data", bin, "--val-split", "0.25")
	if code != 0 || !strings.Contains(errOut, "held out (0.25 of each class") {
		t.Errorf("single .bin with --val-split: exit %d %q", code, errOut)
	}
}

// TestTrainLimitOnSharedArchive: `--limit 2000` on the shared JPEG
// CIFAR-10 archive (its files sorted by class) trains on 200 images of
// each class. Skipped where the team's offline copy is not beside the
// project (a user's clone); CI has it.
func TestTrainLimitOnSharedArchive(t *testing.T) {
	archive := filepath.Join("..", "..", "..", "shared", "data", "cifar10-jpeg.tar.gz")
	if _, err := os.Stat(archive); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI without the shared archive: %v", err)
		}
		t.Skipf("no shared archive: %v", err)
	}
	out := filepath.Join(t.TempDir(), "run")
	code, _, errOut := runCLI("train", "--model", "resnet8", "--data", archive, "--limit", "2000", "--batch", "100", "--epochs", "1", "--out", out)
	if code != 0 || !strings.Contains(errOut, "200 images of each of 10 classes") {
		t.Errorf("--limit 2000: exit %d %q", code, errOut)
	}
	if rec := trainerState(t, filepath.Join(out, "epoch-0001")).Data; rec == nil || rec.TrainImages != 2000 || rec.ValImages != 10000 || rec.Validation != "test" {
		t.Errorf("record %+v", rec)
	}
	// What the old --limit took: the first 2,000 files.
	ds, err := cifar.Load(t.Context(), archive, cifar.Options{Split: "train"})
	if err != nil {
		t.Fatal(err)
	}
	first := ds.Labels[:2000]
	t.Logf("the archive's first 2,000 training files have labels %d..%d", slices.Min(first), slices.Max(first))
}
