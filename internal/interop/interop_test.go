package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The models and reference outputs in testdata/ come from
// testdata/make_models.py (float64 numpy, rounded to float32).

// testCase is one entry of testdata/cases.json.
type testCase struct {
	Model   string             `json:"model"`
	Batch   int                `json:"batch"`
	Inputs  map[string]ortFile `json:"inputs"`
	Outputs map[string]ortFile `json:"outputs"`
}

// loadCases reads testdata/cases.json and returns its cases with their
// tensors loaded: the jobs to run and the expected outputs per job.
func loadCases(t *testing.T) ([]testCase, []Job, []map[string]Tensor) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []testCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	load := func(f ortFile) Tensor {
		data, err := readFloat32s(filepath.Join("testdata", f.File), f.Dims)
		if err != nil {
			t.Fatal(err)
		}
		return Tensor{Dims: f.Dims, Data: data}
	}
	var jobs []Job
	var want []map[string]Tensor
	for _, c := range doc.Cases {
		j := Job{Model: filepath.Join("testdata", c.Model), Inputs: map[string]Tensor{}}
		for name, f := range c.Inputs {
			j.Inputs[name] = load(f)
		}
		w := map[string]Tensor{}
		for name, f := range c.Outputs {
			w[name] = load(f)
		}
		jobs = append(jobs, j)
		want = append(want, w)
	}
	if len(doc.Cases) == 0 {
		t.Fatal("testdata/cases.json has no cases")
	}
	return doc.Cases, jobs, want
}

// compare checks got against the float64-derived reference want with the
// tolerance 1e-5*(1+max|want|). ONNX Runtime accumulates the 27-term
// convolution sums in float32 in its own order, so it differs from the
// correctly rounded reference by a few float32 ulps of the largest values
// (measured: about 2.4e-7 for values up to 3, i.e. 1e-7 relative). 1e-5
// relative to the tensor's scale leaves ~50x headroom for other CPUs' kernels
// (FMA or not, different blocking) yet is far below what a real bug gives (a
// wrong padding, layout or bias is off by ~0.1 or more); the "1+" keeps an
// absolute floor for tensors whose values are all near zero.
func compare(t *testing.T, label string, got, want Tensor) {
	t.Helper()
	if !slices.Equal(got.Dims, want.Dims) {
		t.Errorf("%s: dims %v, want %v", label, got.Dims, want.Dims)
		return
	}
	scale := 0.0
	for _, v := range want.Data {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	tol := 1e-5 * (1 + scale)
	worst, at := 0.0, -1
	for i := range want.Data {
		d := math.Abs(float64(got.Data[i]) - float64(want.Data[i]))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("%s: max |got-want| = %g at flat index %d (got %g, want %g), tolerance %g",
			label, worst, at, got.Data[at], want.Data[at], tol)
	}
}

// TestORTMatchesNumpy runs the Conv+Relu+GlobalAveragePool model at batch 1
// and 3 in one call (one shared session) and compares with numpy.
func TestORTMatchesNumpy(t *testing.T) {
	RequireORT(t)
	cases, jobs, want := loadCases(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := ORT(ctx, jobs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		label := fmt.Sprintf("%s batch %d", cases[i].Model, cases[i].Batch)
		if r.Err != "" {
			t.Errorf("%s: %s", label, r.Err)
			continue
		}
		if !slices.Equal(r.InputNames, []string{"input"}) || !slices.Equal(r.OutputNames, []string{"relu", "pooled"}) {
			t.Errorf("%s: session names %v -> %v, want [input] -> [relu pooled]", label, r.InputNames, r.OutputNames)
		}
		if len(r.Outputs) != len(want[i]) {
			t.Errorf("%s: %d outputs, want %d", label, len(r.Outputs), len(want[i]))
		}
		for name, w := range want[i] {
			compare(t, label+" output "+name, r.Outputs[name], w)
		}
		if len(r.InputInfo) != 1 || r.InputInfo[0].Type != "float32" ||
			!slices.Equal(r.InputInfo[0].Shape, []string{"N", "3", "7", "9"}) {
			t.Errorf("%s: input info %+v, want float32 [N 3 7 9]", label, r.InputInfo)
		}
		if i == 0 && r.SessionTime <= 0 {
			t.Errorf("%s: first job on the model has no session time", label)
		}
		if i > 0 && r.SessionTime != 0 {
			t.Errorf("%s: session time %v on a later job: the session was not shared", label, r.SessionTime)
		}
		t.Logf("%s: session %v, run %v", label, r.SessionTime, r.RunTime)
	}
}

// TestORTPerJobErrors checks that a missing model, an invalid model and a
// wrong input name fail only their own jobs.
func TestORTPerJobErrors(t *testing.T) {
	RequireORT(t)
	_, good, want := loadCases(t)
	wrongName := Job{Model: good[0].Model, Inputs: map[string]Tensor{"not_an_input": good[0].Inputs["input"]}}
	jobs := []Job{
		good[0],
		{Model: filepath.Join("testdata", "does_not_exist.onnx")},
		{Model: filepath.Join("testdata", "invalid_undefined_input.onnx")},
		wrongName,
		good[1],
	}
	res, err := ORT(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(jobs) {
		t.Fatalf("%d results for %d jobs", len(res), len(jobs))
	}
	for _, i := range []int{0, 4} {
		if res[i].Err != "" {
			t.Errorf("job %d: unexpected error %s", i, res[i].Err)
			continue
		}
		for name, w := range want[i/4] {
			compare(t, fmt.Sprintf("job %d output %s", i, name), res[i].Outputs[name], w)
		}
	}
	for i, frag := range map[int]string{
		1: "does_not_exist.onnx",
		2: "'missing'", // the undefined value the Relu reads
		3: "input",     // ORT: input 'input' is missing in 'feeds'
	} {
		if res[i].Err == "" || !strings.Contains(res[i].Err, frag) {
			t.Errorf("job %d: error %q, want one mentioning %s", i, res[i].Err, frag)
		}
		if len(res[i].Outputs) != 0 {
			t.Errorf("job %d: failed but has outputs %v", i, res[i].Outputs)
		}
		t.Logf("job %d error: %s", i, res[i].Err)
	}
	if !slices.Equal(res[3].InputNames, []string{"input"}) {
		t.Errorf("job 3: the model loaded, so input names should be reported; got %v", res[3].InputNames)
	}
}

// TestORTRejectsMalformedJob checks the argument checks made before node is
// started; it needs no tools.
func TestORTRejectsMalformedJob(t *testing.T) {
	_, err := ORT(context.Background(), []Job{{
		Model:  "m.onnx",
		Inputs: map[string]Tensor{"x": {Dims: []int{2, 3}, Data: make([]float32, 5)}},
	}})
	if err == nil || !strings.Contains(err.Error(), "need 6 values, have 5") {
		t.Fatalf("got %v, want a dims/data mismatch error", err)
	}
	if res, err := ORT(context.Background(), nil); res != nil || err != nil {
		t.Fatalf("no jobs: got %v, %v; want nil, nil", res, err)
	}
}

// TestCheckONNX checks that the checker accepts the valid model and rejects
// the invalid and the missing one, naming each with its reason.
func TestCheckONNX(t *testing.T) {
	RequireChecker(t)
	ctx := context.Background()
	valid := filepath.Join("testdata", "conv_relu_gap.onnx")
	invalid := filepath.Join("testdata", "invalid_undefined_input.onnx")
	missing := filepath.Join("testdata", "does_not_exist.onnx")

	if err := CheckONNX(ctx, valid); err != nil {
		t.Fatalf("valid model rejected: %v", err)
	}
	err := CheckONNX(ctx, valid, invalid, missing)
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *CheckError", err)
	}
	t.Logf("%v", err)
	if len(ce.Failures) != 2 || ce.Failures[0].Path != invalid || ce.Failures[1].Path != missing {
		t.Fatalf("failures %+v, want %s then %s", ce.Failures, invalid, missing)
	}
	if r := ce.Failures[0].Reason; !strings.Contains(r, "ValidationError") || !strings.Contains(r, "'missing'") {
		t.Errorf("reason %q should be a ValidationError naming the undefined input 'missing'", r)
	}
	if msg := err.Error(); !strings.Contains(msg, invalid+": ") || !strings.Contains(msg, missing+": ") ||
		strings.Contains(msg, valid+": ") {
		t.Errorf("error text should list exactly the failing paths:\n%s", msg)
	}
}

// fakeTB records Skipf and Fatalf instead of acting on them.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

// Helper does nothing.
func (f *fakeTB) Helper() {}

// Skipf records the skip message.
func (f *fakeTB) Skipf(format string, args ...any) { f.skipped = fmt.Sprintf(format, args...) }

// Fatalf records the failure message.
func (f *fakeTB) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

// TestRequireSkipsOrFailsWhenToolMissing points the Require helpers at
// missing tools and checks they skip without CI and fail with it, telling
// how to install.
func TestRequireSkipsOrFailsWhenToolMissing(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// An ORT dir with run.js and package.json but no node_modules.
	ortDir := t.TempDir()
	for _, f := range []string{"run.js", "package.json"} {
		b, err := os.ReadFile(filepath.Join(root, "tools", "ort", f))
		if err == nil {
			err = os.WriteFile(filepath.Join(ortDir, f), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// A "python" that exists but cannot import onnx.
	noOnnx := filepath.Join(t.TempDir(), "python3")
	script := "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'onnx'\" >&2\nexit 1\n"
	if err := os.WriteFile(noOnnx, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, env, value, hint string
		require                func(testing.TB)
	}{
		{"no-node", EnvNode, "/nonexistent/node", "npm ci", RequireORT},
		{"no-node_modules", EnvORTDir, ortDir, "npm ci", RequireORT},
		{"no-python", EnvPython, "/nonexistent/python3", "apt-get install -y python3-onnx", RequireChecker},
		{"no-onnx-module", EnvPython, noOnnx, "apt-get install -y python3-onnx", RequireChecker},
	} {
		for _, ci := range []string{"", "true"} {
			t.Run(tc.name+"/CI="+ci, func(t *testing.T) {
				t.Setenv(tc.env, tc.value)
				t.Setenv("CI", ci)
				f := &fakeTB{TB: t}
				tc.require(f)
				got, other, want := f.skipped, f.failed, "skip"
				if ci != "" {
					got, other, want = f.failed, f.skipped, "failure"
				}
				if got == "" || other != "" {
					t.Fatalf("CI=%q: skipped=%q failed=%q; want exactly one %s", ci, f.skipped, f.failed, want)
				}
				if !strings.Contains(got, tc.hint) || !strings.Contains(got, "make setup") {
					t.Errorf("message lacks install instructions (%q, make setup):\n%s", tc.hint, got)
				}
				t.Logf("message: %s", got)
			})
		}
	}
}
