package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/models"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

func TestExitCodesAndErrors(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"summary", "--model", "resnet21"}, exitError, "depth 21 is not 6n+2"},
		{[]string{"summary", "--model", "resnet18", "--groups", "32"}, exitError, "basic blocks support only groups=1"},
		{[]string{"summary", "--classes", "0"}, exitError, "classes must be at least 1, got 0"},
		{[]string{"summary", "--model", "nope"}, exitError, `unknown model "nope"`},
		{[]string{"summary", "--input", "3x32"}, exitUsage, "--input"},
		{[]string{"summary", "--shortcut", "C"}, exitError, `shortcut "C"`},
		{[]string{"summary", "--bogus"}, exitUsage, "unknown flag: --bogus"},
		{[]string{"summary", "resnet20"}, exitUsage, "use --model"},
		{[]string{"models", "extra"}, exitUsage, "takes no arguments"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, tt.code, tt.stderr)
			}
			if out != "" {
				t.Errorf("stdout on error: %q", out)
			}
			if first, _, _ := strings.Cut(errOut, "\n"); !strings.HasPrefix(first, "resnetctl: ") {
				t.Errorf("error line %q", first)
			}
		})
	}
}

func TestSummaryJSON(t *testing.T) {
	tests := []struct {
		args             []string
		params, nonTrain int64
		macs             int64
		classes          int
		labels           string
	}{
		{[]string{"--model", "resnet20"}, 269722, 1376, 40551040, 10, "cifar10"},
		{[]string{"--model", "resnet56", "--shortcut", "b"}, 855770, 4256, 125747840, 10, "cifar10"},
		{[]string{"--model", "resnet20", "--classes", "100"}, 275572, 1376, 40556800, 100, "cifar100"},
		{[]string{"--model", "resnet20", "--classes", "7"}, 269722 - 650 + 7*65, 1376, 40551040 - 640 + 7*64, 7, ""},
		{[]string{"--model", "resnet50", "--groups", "32", "--width-per-group", "4"}, 25028904, 68224, 4230479872, 1000, "imagenet"},
		{[]string{"--model", "resnet50", "--width-per-group", "128"}, 68883240, 68224, 11398021120, 1000, "imagenet"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(append([]string{"summary", "--json"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var s summaryJSON
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatal(err)
			}
			if s.Totals.Trainable != tt.params || s.Totals.NonTrainable != tt.nonTrain || s.Totals.MACs != tt.macs {
				t.Errorf("totals %+v, want %d/%d/%d", s.Totals, tt.params, tt.nonTrain, tt.macs)
			}
			if s.Model.Classes != tt.classes || s.Model.Labels != tt.labels {
				t.Errorf("classes %d labels %q", s.Model.Classes, s.Model.Labels)
			}
			var sum int64
			for _, l := range s.Layers {
				sum += l.Params
			}
			if sum != s.Totals.Params || s.Totals.Bytes != 4*s.Totals.Params {
				t.Errorf("layers add up to %d params, totals say %d", sum, s.Totals.Params)
			}
			if last := s.Layers[len(s.Layers)-1]; last.Name != "fc" || len(last.OutputShape) != 1 || last.OutputShape[0] != tt.classes {
				t.Errorf("last layer %+v", last)
			}
		})
	}
}

func TestSummaryInputChannels(t *testing.T) {
	code, out, errOut := runCLI("summary", "--json", "--model", "resnet20", "--input", "1x28x28")
	if code != 0 {
		t.Fatal(errOut)
	}
	var s summaryJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Model.Input.C != 1 || len(s.Model.Preprocess.Mean) != 1 || s.Layers[0].Params != 16*9 {
		t.Errorf("input %v mean %v conv1 params %d", s.Model.Input, s.Model.Preprocess.Mean, s.Layers[0].Params)
	}
	if got := s.Layers[len(s.Layers)-4].OutputShape; got[1] != 7 || got[2] != 7 {
		t.Errorf("last stage at 28x28 input: %v, want 64x7x7", got)
	}
}

// TestGolden compares the human-readable output with testdata/*.golden;
// run `go test ./cmd/resnetctl -update` after an intended change.
func TestGolden(t *testing.T) {
	for name, args := range map[string][]string{
		"summary_resnet20.golden":   {"summary", "--model", "resnet20"},
		"summary_resnet50.golden":   {"summary", "--model", "resnet50"},
		"models.golden":             {"models"},
		"summary_preact_wrn.golden": {"summary", "--model", "resnet20", "--preact", "--widen", "2", "--shortcut", "B"},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runCLI(args...)
			if code != 0 {
				t.Fatal(errOut)
			}
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("output differs from %s; run with -update if the change is intended\n%s", path, out)
			}
		})
	}
}

func TestHelpHasExamples(t *testing.T) {
	for _, c := range NewCmdRoot(&Streams{}).Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if c.Example == "" || c.Long == "" {
			t.Errorf("%s: --help lacks a long description or examples", c.Name())
		}
	}
	code, out, _ := runCLI("summary", "--help")
	if code != 0 || !strings.Contains(out, "--classes") || !strings.Contains(out, "Examples:") {
		t.Errorf("summary --help: %d %q", code, out)
	}
}

func TestExportCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "r20.onnx")
	code, stdout, errOut := runCLI("export", "--model", "resnet20", "--shortcut", "B", "--opset", "13", "--fold-bn", "--softmax", "--json", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var info struct {
		Path      string   `json:"path"`
		Opset     int      `json:"opset"`
		IRVersion int      `json:"ir_version"`
		Outputs   []string `json:"outputs"`
		Bytes     int64    `json:"bytes"`
		Params    int64    `json:"params"`
	}
	if err := json.Unmarshal([]byte(stdout), &info); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil || st.Size() != info.Bytes || info.Opset != 13 || info.IRVersion != 7 || len(info.Outputs) != 2 {
		t.Fatalf("info %+v, file %v", info, err)
	}
	// Folded: BN weights and running stats are gone, conv biases added.
	if info.Params >= 272474+1568 {
		t.Errorf("folded export holds %d parameters", info.Params)
	}
	code, stdout, _ = runCLI("export", filepath.Join(dir, "plain.onnx"))
	if code != 0 || !strings.Contains(stdout, "opset:   17 (IR version 8)") || !strings.Contains(stdout, "output:  logits [N, 10]") {
		t.Errorf("human output: %q", stdout)
	}

	readOnly := filepath.Join(dir, "ro.onnx")
	os.WriteFile(readOnly, []byte("keep me"), 0o444)
	for _, tt := range []struct {
		args []string
		code int
		want string
		path string
	}{
		{[]string{"export", filepath.Join(dir, "no", "such", "dir", "m.onnx")}, exitError, "does not exist", filepath.Join(dir, "no")},
		{[]string{"export", readOnly}, exitError, "read-only", ""},
		{[]string{"export", "/proc/m.onnx"}, exitError, "/proc/m.onnx", "/proc/m.onnx"},
		{[]string{"export", "--model", "resnet19", filepath.Join(dir, "bad.onnx")}, exitError, "depth 19 is not 6n+2", filepath.Join(dir, "bad.onnx")},
		{[]string{"export", "--model", "alexnet", filepath.Join(dir, "bad.onnx")}, exitError, `unknown model "alexnet"`, filepath.Join(dir, "bad.onnx")},
		{[]string{"export", "--opset", "22", filepath.Join(dir, "bad.onnx")}, exitUsage, "--opset 22: choose 9 to 21", filepath.Join(dir, "bad.onnx")},
		{[]string{"export"}, exitUsage, "one argument", ""},
	} {
		code, _, errOut := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") > 2 {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, errOut, tt.code, tt.want)
		}
		if tt.path != "" {
			if _, err := os.Stat(tt.path); err == nil {
				t.Errorf("%v: %s exists after a failed export", tt.args, tt.path)
			}
		}
	}
	if b, _ := os.ReadFile(readOnly); string(b) != "keep me" {
		t.Errorf("read-only file changed")
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "plain.onnx r20.onnx ro.onnx" {
		t.Errorf("directory holds %v: a partial or temporary file was left", names)
	}
}

// sampleFiles exports an untrained resnet20 and writes the embedded CIFAR-10
// test sample as a binary .bin file and its first two images as PNGs.
func sampleFiles(t *testing.T) (model, bin string, images []string) {
	t.Helper()
	dir := t.TempDir()
	model = filepath.Join(dir, "r20.onnx")
	if code, _, errOut := runCLI("export", model); code != 0 {
		t.Fatal(errOut)
	}
	ds, err := cifar.EmbeddedSample("test")
	if err != nil {
		t.Fatal(err)
	}
	var rec []byte
	for i := 0; i < ds.Len(); i++ {
		rec = append(rec, byte(ds.Labels[i]))
		rec = append(rec, ds.Image(i).Pix...)
	}
	bin = filepath.Join(dir, "test_sample.bin")
	if err := os.WriteFile(bin, rec, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		img := ds.Image(i)
		rgba := image.NewRGBA(image.Rect(0, 0, img.W, img.H))
		for y := 0; y < img.H; y++ {
			for x := 0; x < img.W; x++ {
				o := y*img.W + x
				rgba.Set(x, y, color.RGBA{img.Pix[o], img.Pix[img.W*img.H+o], img.Pix[2*img.W*img.H+o], 255})
			}
		}
		var buf bytes.Buffer
		png.Encode(&buf, rgba)
		p := filepath.Join(dir, fmt.Sprintf("img%d.png", i))
		os.WriteFile(p, buf.Bytes(), 0o644)
		images = append(images, p)
	}
	return model, bin, images
}

func TestPredictEvaluateBench(t *testing.T) {
	model, bin, images := sampleFiles(t)
	code, out, errOut := runCLI(append([]string{"predict", "--json", "--top", "3", model}, images...)...)
	if code != 0 {
		t.Fatal(errOut)
	}
	preds := decodeLines(t, out) // JSON Lines: one object per image
	cifar10, _ := models.Labels("cifar10")
	if len(preds) != 2 || len(preds[0].Predictions) != 3 {
		t.Fatalf("%+v", preds)
	}
	for _, p := range preds {
		sum := 0.0
		for i, q := range p.Predictions {
			sum += q.Prob
			if q.Label != cifar10[q.Index] || (i > 0 && q.Prob > p.Predictions[i-1].Prob) {
				t.Errorf("prediction %+v", q)
			}
		}
		if sum > 1+1e-9 || sum <= 0.3 {
			t.Errorf("top-3 probabilities sum to %g", sum)
		}
	}
	code, out, _ = runCLI("predict", model, images[0])
	if code != 0 || !strings.Contains(out, "  1. ") || !strings.Contains(out, "%") {
		t.Errorf("human output %q", out)
	}
	bad := filepath.Join(t.TempDir(), "broken.jpg")
	os.WriteFile(bad, []byte("\xff\xd8\xff\xe0 truncated"), 0o644)
	if code, _, errOut := runCLI("predict", model, images[0], bad); code != exitError || !strings.Contains(errOut, "broken.jpg") {
		t.Errorf("broken image: exit %d, %q", code, errOut)
	}

	plot := filepath.Join(t.TempDir(), "confusion.png")
	code, out, errOut = runCLI("evaluate", model, "--data", bin, "--json", "--plot", plot, "--batch", "50")
	if code != 0 {
		t.Fatal(errOut)
	}
	var ev struct {
		Images    int     `json:"images"`
		Top1      float64 `json:"top1"`
		Top5      float64 `json:"top5"`
		Confusion [][]int `json:"confusion"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, row := range ev.Confusion {
		for _, v := range row {
			total += v
		}
	}
	if ev.Images != 200 || total != 200 || ev.Top1 < 0 || ev.Top1 > ev.Top5 || ev.Top5 > 1 {
		t.Errorf("evaluate %+v", ev)
	}
	if f, err := os.Open(plot); err != nil {
		t.Error(err)
	} else if _, err := png.Decode(f); err != nil {
		t.Errorf("plot: %v", err)
	}
	if code, _, errOut := runCLI("evaluate", model, "--data", filepath.Join(t.TempDir(), "none")); code != exitError || errOut == "" {
		t.Errorf("missing data: %d %q", code, errOut)
	}
	if code, _, _ := runCLI("evaluate", model); code != exitUsage {
		t.Errorf("evaluate without --data: exit %d", code)
	}

	code, out, errOut = runCLI("bench", model, "--iters", "3", "--warmup", "1", "--batch", "2", "--json")
	if code != 0 {
		t.Fatal(errOut)
	}
	var b benchResult
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatal(err)
	}
	if b.MedianMS <= 0 || b.ImagesPerS <= 0 || b.MinMS > b.MedianMS || b.MedianMS > b.MaxMS || b.Batch != 2 {
		t.Errorf("bench %+v", b)
	}
}

func TestDataCommands(t *testing.T) {
	_, bin, _ := sampleFiles(t)
	code, out, errOut := runCLI("data", "info", "--json", bin)
	if code != 0 {
		t.Fatal(errOut)
	}
	var info struct {
		Images int   `json:"images"`
		Counts []int `json:"counts"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, n := range info.Counts {
		sum += n
	}
	if info.Images != 200 || sum != 200 || len(info.Counts) != 10 {
		t.Errorf("%+v", info)
	}
	// A server on loopback serving the wrong bytes: the checksum refuses them
	// and nothing lands in the cache under the archive's name.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("not the CIFAR archive"))
	}))
	defer srv.Close()
	cache := t.TempDir()
	code, _, errOut = runCLI("data", "fetch", "cifar10", "--cache", cache, "--url", srv.URL+"/cifar-10-binary.tar.gz")
	if code != exitError || errOut == "" {
		t.Errorf("bad download: exit %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(cache, "cifar-10-binary.tar.gz")); err == nil {
		t.Error("a bad download was placed in the cache")
	}
	if code, _, _ := runCLI("data", "fetch", "mnist"); code != exitUsage {
		t.Errorf("unknown data set: exit %d", code)
	}
}

func TestImportAndExportCheckpoint(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.onnx")
	if code, _, errOut := runCLI("export", "--model", "resnet20", "--shortcut", "B", "--seed", "9", orig); code != 0 {
		t.Fatal(errOut)
	}
	ck := filepath.Join(dir, "ck")
	code, out, errOut := runCLI("import", orig, "--out", ck)
	if code != 0 || !strings.Contains(out, "resnet20") {
		t.Fatalf("import: exit %d %q %q", code, out, errOut)
	}
	again := filepath.Join(dir, "again.onnx")
	if code, _, errOut := runCLI("export", "--checkpoint", ck, again); code != 0 {
		t.Fatal(errOut)
	}
	a, _ := os.ReadFile(orig)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Errorf("export → import → export changed the file (%d vs %d bytes)", len(a), len(b))
	}
	if code, _, _ := runCLI("export", "--checkpoint", ck, "--classes", "5", filepath.Join(dir, "x.onnx")); code != exitUsage {
		t.Errorf("--classes with --checkpoint: exit %d", code)
	}
	if code, _, errOut := runCLI("export", "--checkpoint", filepath.Join(dir, "missing"), filepath.Join(dir, "x.onnx")); code != exitError || !strings.Contains(errOut, "missing") {
		t.Errorf("missing checkpoint: exit %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.onnx")); err == nil {
		t.Error("a failed export left a file")
	}
}

func TestTrainCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"train", "--model", "resnet8", "--data", "sample", "--limit", "256", "--batch", "32", "--epochs", "1", "--out", out}
	code, stdout, errOut := runCLI(args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "epoch 1: loss") || !strings.Contains(errOut, "embedded CIFAR-10 sample") {
		t.Errorf("stdout %q stderr %q", stdout, errOut)
	}
	code, stdout, errOut = runCLI("train", "--out", out, "--resume", "--epochs", "2", "--data", "sample", "--limit", "256")
	if code != 0 || !strings.Contains(stdout, "epoch 2: loss") || !strings.Contains(errOut, "resuming") {
		t.Fatalf("resume: exit %d %q %q", code, stdout, errOut)
	}
	for _, f := range []string{"epoch-0001/model.onnx", "epoch-0002/model.onnx", "best/model.onnx", "metrics.jsonl", "metrics.csv", "curve.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// The checkpoint's model is a deployable file: evaluate reads it.
	_, bin, _ := sampleFiles(t)
	if code, _, errOut := runCLI("evaluate", filepath.Join(out, "best", "model.onnx"), "--data", bin); code != 0 {
		t.Errorf("evaluate the trained model: %s", errOut)
	}
	if code, _, _ := runCLI("train", "--out", filepath.Join(t.TempDir(), "empty"), "--resume"); code != exitError {
		t.Errorf("resume without a checkpoint: exit %d", code)
	}
	if code, _, _ := runCLI("train", "--recipe", "magic"); code != exitUsage {
		t.Errorf("unknown recipe: exit %d", code)
	}
}

func TestTrainHistoryAfterResume(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	base := []string{"train", "--model", "resnet8", "--data", "sample", "--limit", "128", "--batch", "32", "--out", out}
	if code, _, errOut := runCLI(append(base, "--epochs", "2")...); code != 0 {
		t.Fatal(errOut)
	}
	if code, _, errOut := runCLI("train", "--out", out, "--resume", "--epochs", "3", "--data", "sample", "--limit", "128"); code != 0 {
		t.Fatal(errOut)
	}
	b, _ := os.ReadFile(filepath.Join(out, "metrics.csv"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[3], "3,") {
		t.Errorf("metrics.csv after resume:\n%s", b)
	}
	f, err := os.Open(filepath.Join(out, "curve.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Error(err)
	}
}

func TestTrainInit(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.onnx")
	if code, _, errOut := runCLI("export", "--model", "resnet8", "--classes", "4", base); code != 0 {
		t.Fatal(errOut)
	}
	out := filepath.Join(dir, "run")
	code, stdout, errOut := runCLI("train", "--init", base, "--classes", "10", "--data", "sample", "--limit", "128", "--batch", "32", "--epochs", "1", "--out", out)
	if code != 0 || !strings.Contains(errOut, "new 10-class head") || !strings.Contains(stdout, "epoch 1") {
		t.Fatalf("exit %d %q %q", code, stdout, errOut)
	}
	if code, _, _ := runCLI("train", "--init", base, "--model", "resnet20"); code != exitUsage {
		t.Errorf("--init with --model: exit %d", code)
	}
	// Without a new head the class count must fit the data.
	if code, _, errOut := runCLI("train", "--init", base, "--data", "sample", "--limit", "64", "--batch", "32", "--epochs", "1", "--out", filepath.Join(dir, "r2")); code != exitError || !strings.Contains(errOut, "classes") {
		t.Errorf("4-class model on 10-class data: exit %d %q", code, errOut)
	}
}
