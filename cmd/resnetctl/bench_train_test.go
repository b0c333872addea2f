package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// runBenchFlags parses a bench command line with the run function replaced,
// returning the options it would have run with.
func runBenchFlags(t *testing.T, args ...string) (*BenchOptions, error) {
	t.Helper()
	var got *BenchOptions
	var out, errOut bytes.Buffer
	s := &Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	c := NewCmdBench(s, func(o *BenchOptions) error { got = o; return nil })
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&errOut)
	c.SilenceUsage, c.SilenceErrors = true, true
	err := c.Execute()
	return got, err
}

func TestBenchTrainFlags(t *testing.T) {
	tests := []struct {
		args    []string
		err     string // "" for success
		usage   bool   // the error is a usage error
		train   bool
		model   string
		batch   int
		steps   int
		warmup  int
		threads int
	}{
		{args: []string{"--train", "--model", "resnet20"}, train: true, model: "resnet20", batch: 128, steps: 20, warmup: 3},
		{args: []string{"--train", "-m", "resnet56", "--batch", "64", "--steps", "5", "--warmup", "0", "--threads", "1", "--json"},
			train: true, model: "resnet56", batch: 64, steps: 5, warmup: 0, threads: 1},
		{args: []string{"--train", "--model", "resnet8", "--shortcut", "B"}, train: true, model: "resnet8", batch: 128, steps: 20, warmup: 3},
		{args: []string{"m.onnx"}, model: "m.onnx", batch: 1, steps: 20, warmup: 3},
		{args: []string{"m.onnx", "--batch", "16", "--iters", "4"}, model: "m.onnx", batch: 16, steps: 20, warmup: 3},

		{args: []string{"--train"}, err: "needs --model", usage: true},
		{args: []string{"--train", "--model", "resnet20", "m.onnx"}, err: "takes no MODEL.onnx", usage: true},
		{args: []string{"--train", "--model", "resnet20", "--iters", "5"}, err: "--iters is for inference", usage: true},
		{args: []string{"--train", "--model", "resnet20", "--engine", "gorgonnx"}, err: "--engine is for inference", usage: true},
		{args: []string{"--train", "--model", "resnet20", "--size", "64"}, err: "--size is for inference", usage: true},
		{args: []string{"--train", "--model", "resnet20", "--batch", "1"}, err: "--batch must be at least 2", usage: true},
		{args: []string{"--train", "--model", "resnet20", "--steps", "0"}, err: "--steps at least 1", usage: true},
		{args: []string{"--train", "--model", "resnet20", "--warmup", "-1"}, err: "not negative", usage: true},
		{args: []string{"--train", "--model", "resnet20", "--threads", "-2"}, err: "not negative", usage: true},
		{args: []string{"--train", "--model", "resnet21"}, err: "depth 21 is not 6n+2"},
		{args: []string{"--train", "--model", "nope"}, err: `unknown model "nope"`},
		{args: []string{}, err: "bench takes one model (got 0 arguments)", usage: true},
		{args: []string{"m.onnx", "--model", "resnet20"}, err: "--model needs --train", usage: true},
		{args: []string{"m.onnx", "--steps", "3"}, err: "--steps needs --train", usage: true},
		{args: []string{"m.onnx", "--iters", "0"}, err: "--iters must be at least 1", usage: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			o, err := runBenchFlags(t, tt.args...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				var ue *usageError
				if isUsage := errors.As(err, &ue); isUsage != tt.usage {
					t.Errorf("usage error %t, want %t (%v)", isUsage, tt.usage, err)
				}
				if o != nil {
					t.Errorf("ran with %+v", o)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Train != tt.train || o.Model != tt.model || o.Batch != tt.batch || o.Steps != tt.steps || o.Warmup != tt.warmup || o.Threads != tt.threads {
				t.Errorf("options %+v", o)
			}
			if tt.train && o.Spec.Name == "" {
				t.Errorf("no spec resolved: %+v", o.Spec)
			}
		})
	}
	// The spec flags reach the spec.
	o, err := runBenchFlags(t, "--train", "--model", "resnet8", "--shortcut", "b", "--classes", "100")
	if err != nil || o.Spec.Shortcut != "B" || o.Spec.Classes != 100 {
		t.Errorf("spec %+v, %v", o.Spec, err)
	}
}

func TestBenchTrainRun(t *testing.T) {
	code, out, errOut := runCLI("bench", "--train", "--model", "resnet8", "--batch", "8", "--steps", "2", "--warmup", "1", "--threads", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if res["mode"] != "train" || res["framework"] != "resnetctl" || res["model"] != "resnet8" {
		t.Errorf("result %v", res)
	}
	for k, want := range map[string]float64{"batch": 8, "steps": 2, "warmup": 1, "threads": 2} {
		if res[k] != want {
			t.Errorf("%s = %v, want %v", k, res[k], want)
		}
	}
	for _, k := range []string{"images_per_s", "overall_images_per_s", "median_ms", "min_ms", "max_ms", "mean_ms",
		"cpu_ms_per_step", "peak_rss_mib", "allocs_per_step", "bytes_per_step", "params"} {
		if k == "peak_rss_mib" && runtime.GOOS != "linux" {
			continue // VmHWM comes from /proc
		}
		if v, ok := res[k].(float64); !ok || !(v > 0) {
			t.Errorf("%s = %v, want a positive number", k, res[k])
		}
	}
	if in, _ := res["input"].([]any); len(in) != 4 || in[0] != 8.0 || in[1] != 3.0 || in[2] != 32.0 {
		t.Errorf("input %v", res["input"])
	}
	if mn, md, mx := res["min_ms"].(float64), res["median_ms"].(float64), res["max_ms"].(float64); mn > md || md > mx {
		t.Errorf("min %g, median %g, max %g", mn, md, mx)
	}

	// The human form.
	code, out, errOut = runCLI("bench", "--train", "--model", "resnet8", "--batch", "4", "--steps", "1", "--warmup", "0", "--threads", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"training resnet8", "images/s", "peak RSS", "per step"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
