package export_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/gorgonnx"
	"github.com/resnetctl/resnetctl/internal/interop"
	"github.com/resnetctl/resnetctl/internal/testmodel"
	"github.com/resnetctl/resnetctl/models"
)

// tolerance is the agreement asked of two engines on the same file:
// |a-b| <= 1e-4 * (1 + max|ref|). float32 convolutions summed in different
// orders differ by a few ulps per layer; over ~150 layers and logits of
// order 1–100 that stays well under 1e-5 relative, while a real mistake
// (wrong padding, a lost shortcut, a swapped BN parameter) moves logits by
// more than 1e-2 relative.
const tolerance = 1e-4

// interopCase is one exported file and what to run on it.
type interopCase struct {
	name    string
	model   string
	mutate  func(*models.Spec)
	opts    export.Options
	twin    string // name of the unfolded case a folded one must agree with
	path    string
	spec    models.Spec
	inputs  [2]interop.Tensor // batch 1 (the first sample of batch 3) and batch 3
	onnxgo  bool              // onnx-go can run it (no option-A shortcut, no groups)
	pytorch bool              // unfolded weights PyTorch can load
}

func interopCases() []*interopCase {
	var cases []*interopCase
	for _, name := range models.Names() {
		cases = append(cases, &interopCase{name: name + "/default", model: name, opts: export.Options{}})
	}
	for _, m := range []struct {
		name, model string
		mutate      func(*models.Spec)
	}{
		{"resnet20A", "resnet20", nil},
		{"resnet20B", "resnet20", shortcutB},
		{"resnet56", "resnet56", nil},
		{"resnet18", "resnet18", nil},
	} {
		for _, opset := range []int{9, 11, 13, 17, 21} {
			base := fmt.Sprintf("%s/opset%d", m.name, opset)
			cases = append(cases,
				&interopCase{name: base, model: m.model, mutate: m.mutate, opts: export.Options{Opset: opset}},
				&interopCase{name: base + "/fold", model: m.model, mutate: m.mutate, twin: base,
					opts: export.Options{Opset: opset, FoldBN: true, Softmax: true}})
		}
	}
	return cases
}

func randomInput(seed uint64, s models.Spec, batch int) interop.Tensor {
	r := rand.New(rand.NewPCG(seed, 11))
	n := batch * s.Input.C * s.Input.H * s.Input.W
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	return interop.Tensor{Dims: []int{batch, s.Input.C, s.Input.H, s.Input.W}, Data: data}
}

// agree reports whether got matches ref within tolerance, and the error.
func agree(got, ref []float32) (bool, float64, float64) {
	if len(got) != len(ref) {
		return false, math.Inf(1), 0
	}
	maxRef, maxErr := 0.0, 0.0
	for i := range ref {
		maxRef = math.Max(maxRef, math.Abs(float64(ref[i])))
		maxErr = math.Max(maxErr, math.Abs(float64(got[i]-ref[i])))
	}
	if math.IsNaN(maxErr) {
		return false, maxErr, maxRef
	}
	return maxErr <= tolerance*(1+maxRef), maxErr, maxRef
}

// TestInterop exports the catalog and the opset matrix and checks every
// file with the ONNX checker (opset <= 17, the newest onnx 1.12 knows), runs
// it in ONNX Runtime at batch 1 and 3, and compares ONNX Runtime with
// PyTorch (the same weights loaded by name into torchvision / the PyTorch
// CIFAR modules), with resnetctl's own runtime (infer), with onnx-go where
// its ops allow, with the unfolded twin
// of a folded export, and batch 1 with the first row of batch 3.
func TestInterop(t *testing.T) {
	interop.RequireORT(t)
	interop.RequireChecker(t)
	interop.RequirePyTorch(t)
	tools, err := interop.DefaultTools()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	cases := interopCases()
	byName := map[string]*interopCase{}
	start := time.Now()
	for i, c := range cases {
		byName[c.name] = c
		s, err := models.Lookup(c.model)
		if err != nil {
			t.Fatal(err)
		}
		if c.mutate != nil {
			c.mutate(&s)
		}
		seed := uint64(i + 1)
		if c.twin != "" { // the same weights and inputs as the unfolded twin
			seed = uint64(slices.Index(cases, byName[c.twin]) + 1)
		}
		g, err := build.New(s, build.Options{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		testmodel.PerturbBN(g, seed)
		c.spec = s
		c.path = filepath.Join(dir, strings.ReplaceAll(c.name, "/", "_")+".onnx")
		if _, err := export.WriteFile(c.path, g, c.opts); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		three := randomInput(seed, s, 3)
		one := interop.Tensor{Dims: []int{1, s.Input.C, s.Input.H, s.Input.W}, Data: three.Data[:len(three.Data)/3]}
		c.inputs = [2]interop.Tensor{one, three}
		c.onnxgo = s.Shortcut == models.ShortcutB && s.Groups == 1
		c.pytorch = !c.opts.FoldBN
	}
	t.Logf("exported %d files in %v", len(cases), time.Since(start).Round(time.Millisecond))

	// The ONNX checker, one process for every file it can judge.
	var checkable []string
	for _, c := range cases {
		if c.opts.Opset == 0 || c.opts.Opset <= 17 {
			checkable = append(checkable, c.path)
		}
	}
	start = time.Now()
	if err := tools.CheckONNX(ctx, checkable...); err != nil {
		t.Errorf("ONNX checker: %v", err)
	}
	t.Logf("onnx.checker (full_check) accepted %d files in %v", len(checkable), time.Since(start).Round(time.Millisecond))

	// ONNX Runtime, one process for every run.
	var jobs []interop.Job
	for _, c := range cases {
		for _, in := range c.inputs {
			jobs = append(jobs, interop.Job{Model: c.path, Inputs: map[string]interop.Tensor{export.InputName: in}})
		}
	}
	start = time.Now()
	results, err := tools.ORT(ctx, jobs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ONNX Runtime ran %d jobs in %v", len(jobs), time.Since(start).Round(time.Millisecond))
	ort := map[string][2]interop.Result{}
	for i, c := range cases {
		var pair [2]interop.Result
		for b := range 2 {
			r := results[2*i+b]
			if r.Err != "" {
				t.Errorf("%s batch %d: ONNX Runtime: %s", c.name, c.inputs[b].Dims[0], r.Err)
				continue
			}
			pair[b] = r
			want := []string{export.LogitsName}
			if c.opts.Softmax {
				want = append(want, export.ProbabilitiesName)
			}
			if !slices.Equal(r.OutputNames, want) || !slices.Equal(r.InputNames, []string{export.InputName}) {
				t.Errorf("%s: ONNX Runtime sees inputs %v outputs %v", c.name, r.InputNames, r.OutputNames)
			}
			if len(r.InputInfo) == 1 && (len(r.InputInfo[0].Shape) != 4 || r.InputInfo[0].Shape[0] != export.BatchDim) {
				t.Errorf("%s: input shape %v is not dynamic in N", c.name, r.InputInfo[0].Shape)
			}
			logits := r.Outputs[export.LogitsName]
			if !slices.Equal(logits.Dims, []int{c.inputs[b].Dims[0], c.spec.Classes}) {
				t.Errorf("%s: logits dims %v", c.name, logits.Dims)
			}
			if c.opts.Softmax {
				checkSoftmax(t, c.name, logits, r.Outputs[export.ProbabilitiesName])
			}
		}
		ort[c.name] = pair
		// Dynamic batch: batch 1 equals the first row of batch 3.
		one, three := pair[0].Outputs[export.LogitsName], pair[1].Outputs[export.LogitsName]
		if len(three.Data) > 0 && len(one.Data) > 0 {
			if ok, e, m := agree(one.Data, three.Data[:len(one.Data)]); !ok {
				t.Errorf("%s: batch 1 and row 0 of batch 3 differ by %.3g (max |ref| %.3g)", c.name, e, m)
			}
		}
	}

	// A folded export agrees with its unfolded twin (same weights, same input).
	for _, c := range cases {
		if c.twin == "" {
			continue
		}
		for b := range 2 {
			got, ref := ort[c.name][b].Outputs[export.LogitsName].Data, ort[c.twin][b].Outputs[export.LogitsName].Data
			if ok, e, m := agree(got, ref); !ok {
				t.Errorf("%s: folded and unfolded differ by %.3g (max |ref| %.3g)", c.name, e, m)
			}
		}
	}

	// PyTorch on the same weights, one process for every run.
	var tjobs []interop.TorchJob
	var tcases []*interopCase
	for _, c := range cases {
		if c.pytorch {
			for _, in := range c.inputs {
				tjobs = append(tjobs, interop.TorchJob{Model: c.path, Input: in})
			}
			tcases = append(tcases, c)
		}
	}
	start = time.Now()
	tres, err := tools.PyTorch(ctx, tjobs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PyTorch ran %d jobs in %v", len(tjobs), time.Since(start).Round(time.Millisecond))
	compared := 0
	for i, c := range tcases {
		for b := range 2 {
			r := tres[2*i+b]
			if r.Err != "" {
				t.Errorf("%s: PyTorch: %s", c.name, r.Err)
				continue
			}
			got := ort[c.name][b].Outputs[export.LogitsName].Data
			if ok, e, m := agree(got, r.Logits.Data); !ok {
				t.Errorf("%s batch %d: ONNX Runtime and PyTorch differ by %.3g (max |ref| %.3g)", c.name, c.inputs[b].Dims[0], e, m)
			}
			compared++
		}
	}

	// Our runtime (infer, native engine) on every file.
	start = time.Now()
	for _, c := range cases {
		sess, err := infer.Load(c.path, infer.Options{})
		if err != nil {
			t.Errorf("%s: resnetctl runtime: %v", c.name, err)
			continue
		}
		for k, in := range c.inputs {
			out, err := sess.Run(ctx, map[string]*infer.Tensor{export.InputName: infer.NewFloat32(in.Dims, in.Data)})
			if err != nil {
				t.Errorf("%s batch %d: resnetctl runtime: %v", c.name, in.Dims[0], err)
				continue
			}
			for _, name := range ort[c.name][k].OutputNames {
				ref := ort[c.name][k].Outputs[name]
				got := out[name]
				if got == nil || !slices.Equal(got.Shape, ref.Dims) {
					t.Errorf("%s batch %d: output %s missing or of the wrong shape", c.name, in.Dims[0], name)
					continue
				}
				if ok, e, m := agree(got.Float32, ref.Data); !ok {
					t.Errorf("%s batch %d: %s of resnetctl's runtime and ONNX Runtime differ by %.3g (max |ref| %.3g)", c.name, in.Dims[0], name, e, m)
				}
			}
		}
		sess.Close()
	}
	t.Logf("resnetctl's runtime ran %d files at batch 1 and 3 in %v", len(cases), time.Since(start).Round(time.Millisecond))

	// onnx-go (gorgonia backend) where it can run the file. The wrapper
	// refuses inputs onnx-go would get wrong (at batch 1 its BatchNorm
	// writes into an input that a pre-activation shortcut still reads);
	// every eligible file must run at one batch size at least.
	start = time.Now()
	ran := 0
	for _, c := range cases {
		if !c.onnxgo {
			continue
		}
		b, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		ranHere := 0
		for k, in := range c.inputs {
			out, err := gorgonnx.Run(ctx, b, in.Data, in.Dims)
			// onnx-go is not deterministic: rarely (seen twice across the
			// project's full runs, on different ResNets) its graph feeds a
			// node the wrong input and gorgonia fails on a shape mismatch,
			// e.g. a Conv weight Reshape fed the activation. Each Run is a fresh process, so
			// a failed execution is retried twice; results are still
			// compared in full, and three failures in a row fail the test.
			for retry := 1; retry <= 2 && err != nil && !errors.Is(err, gorgonnx.ErrUnsupported) && ctx.Err() == nil; retry++ {
				t.Logf("%s batch %d: onnx-go failed (%.160s); retry %d in a fresh process", c.name, in.Dims[0], err, retry)
				out, err = gorgonnx.Run(ctx, b, in.Data, in.Dims)
			}
			if errors.Is(err, gorgonnx.ErrUnsupported) {
				t.Logf("%s batch %d: onnx-go cannot run it: %.200s", c.name, in.Dims[0], err)
				continue
			}
			if err != nil {
				t.Errorf("%s batch %d: onnx-go: %v", c.name, in.Dims[0], err)
				continue
			}
			ref := ort[c.name][k].Outputs[export.LogitsName].Data
			ok, e, m := agree(out[export.LogitsName].Data, ref)
			// The same non-determinism can also compute a wrong value
			// without failing (seen once: preact_resnet164 at batch 3,
			// 0.0113 off, right on the rerun): a disagreement is rerun
			// twice in fresh processes, and fails if it persists.
			for retry := 1; retry <= 2 && !ok && ctx.Err() == nil; retry++ {
				t.Logf("%s batch %d: onnx-go and ONNX Runtime differ by %.3g (max |ref| %.3g); retry %d in a fresh process", c.name, in.Dims[0], e, m, retry)
				again, err := gorgonnx.Run(ctx, b, in.Data, in.Dims)
				if err != nil {
					t.Logf("%s batch %d: onnx-go failed on the retry: %.160s", c.name, in.Dims[0], err)
					continue
				}
				ok, e, m = agree(again[export.LogitsName].Data, ref)
			}
			if !ok {
				t.Errorf("%s batch %d: onnx-go and ONNX Runtime differ by %.3g (max |ref| %.3g), three runs in a row", c.name, in.Dims[0], e, m)
			}
			ranHere++
		}
		if ranHere == 0 {
			t.Errorf("%s: onnx-go ran it at no batch size", c.name)
		}
		ran += ranHere
	}
	t.Logf("onnx-go ran %d inputs in %v; PyTorch compared %d", ran, time.Since(start).Round(time.Millisecond), compared)
}

func checkSoftmax(t *testing.T, name string, logits, probs interop.Tensor) {
	t.Helper()
	if !slices.Equal(logits.Dims, probs.Dims) {
		t.Errorf("%s: probabilities dims %v, logits %v", name, probs.Dims, logits.Dims)
		return
	}
	classes := logits.Dims[1]
	for row := 0; row < logits.Dims[0]; row++ {
		l := logits.Data[row*classes : (row+1)*classes]
		mx := slices.Max(l)
		sum := 0.0
		for _, v := range l {
			sum += math.Exp(float64(v - mx))
		}
		total := 0.0
		for j, v := range l {
			want := math.Exp(float64(v-mx)) / sum
			p := float64(probs.Data[row*classes+j])
			total += p
			if math.Abs(p-want) > 1e-5 {
				t.Errorf("%s: probability %g, softmax of the logits %g", name, p, want)
				return
			}
		}
		if math.Abs(total-1) > 1e-4 {
			t.Errorf("%s: probabilities sum to %g", name, total)
		}
	}
}
