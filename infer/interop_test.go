package infer

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/interop"
)

// ortTolerance is DESIGN.md's bound for direct kernels against ONNX
// Runtime on logits: |ours-ORT| <= 1e-4 * (1 + max|ORT|).
const ortTolerance = 1e-4

// ortCases are our exports checked against ONNX Runtime: both CIFAR
// shortcut options across the opset range (attribute and input forms of
// Pad, Slice, Unsqueeze …), folded and unfolded BatchNorm, an ImageNet
// ResNet, a pre-activation ResNet and a ResNeXt (grouped convolutions).
func ortCases() []exportCase {
	return []exportCase{
		{name: "resnet20A/opset9", model: "resnet20", opts: export.Options{Opset: 9}},
		{name: "resnet20A/opset11", model: "resnet20", opts: export.Options{Opset: 11}},
		{name: "resnet20A/opset17", model: "resnet20", opts: export.Options{Opset: 17}},
		{name: "resnet20A/opset21/fold", model: "resnet20", opts: export.Options{Opset: 21, FoldBN: true, Softmax: true}},
		{name: "resnet20B/opset13", model: "resnet20", mutate: shortcutB, opts: export.Options{Opset: 13}},
		{name: "resnet20B/opset9/fold", model: "resnet20", mutate: shortcutB, opts: export.Options{Opset: 9, FoldBN: true}},
		{name: "resnet18/opset17", model: "resnet18", opts: export.Options{Opset: 17, Softmax: true}},
		{name: "preact_resnet164/opset11", model: "preact_resnet164", opts: export.Options{Opset: 11}},
		{name: "resnext50_32x4d/opset17", model: "resnext50_32x4d", opts: export.Options{Opset: 17}},
	}
}

// TestAgainstORT runs our exports in this runtime and in ONNX Runtime at
// batch 1 and 3 and compares every output.
func TestAgainstORT(t *testing.T) {
	interop.RequireORT(t)
	if testing.Short() {
		t.Skip("slow: exports and runs ImageNet-size models")
	}
	ctx := context.Background()
	dir := t.TempDir()
	type run struct {
		c      exportCase
		path   string
		inputs [2]*Tensor
	}
	var runs []run
	var jobs []interop.Job
	for i, c := range ortCases() {
		s, g := buildExport(t, c, uint64(i+1))
		path := filepath.Join(dir, strings.ReplaceAll(c.name, "/", "_")+".onnx")
		if _, err := export.WriteFile(path, g, c.opts); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		three := randomInput(uint64(i+1), s, 3)
		one := NewFloat32([]int{1, s.Input.C, s.Input.H, s.Input.W}, three.Float32[:len(three.Float32)/3])
		r := run{c: c, path: path, inputs: [2]*Tensor{one, three}}
		runs = append(runs, r)
		for _, in := range r.inputs {
			jobs = append(jobs, interop.Job{Model: path, Inputs: map[string]interop.Tensor{
				export.InputName: {Dims: in.Shape, Data: in.Float32}}})
		}
	}
	results, err := interop.ORT(ctx, jobs)
	if err != nil {
		t.Fatal(err)
	}
	var report []string
	for i, r := range runs {
		s, err := Load(r.path, Options{Threads: 2})
		if err != nil {
			t.Errorf("%s: %v", r.c.name, err)
			continue
		}
		for b, in := range r.inputs {
			res := results[2*i+b]
			if res.Err != "" {
				t.Errorf("%s: ONNX Runtime: %s", r.c.name, res.Err)
				continue
			}
			got, err := s.Run(ctx, map[string]*Tensor{export.InputName: in})
			if err != nil {
				t.Errorf("%s batch %d: %v", r.c.name, in.Shape[0], err)
				continue
			}
			for _, name := range res.OutputNames {
				want := res.Outputs[name]
				g := got[name]
				if g == nil || !slices.Equal(g.Shape, want.Dims) {
					t.Errorf("%s batch %d: output %q: got %v, ONNX Runtime %v", r.c.name, in.Shape[0], name, g, want.Dims)
					continue
				}
				e, m := agreement(g.Float32, want.Data)
				rel := e / (1 + m)
				report = append(report, fmt.Sprintf("%-28s b%d %-13s max|err| %.2e  max|ref| %8.3g  err/(1+ref) %.2e", r.c.name, in.Shape[0], name, e, m, rel))
				if !(e <= ortTolerance*(1+m)) {
					t.Errorf("%s batch %d: output %q differs from ONNX Runtime by %.3g (max |ref| %.3g; allowed %.3g)", r.c.name, in.Shape[0], name, e, m, ortTolerance*(1+m))
				}
			}
		}
		s.Close()
	}
	t.Logf("agreement with ONNX Runtime (tolerance 1e-4·(1+max|ref|)):\n%s", strings.Join(report, "\n"))
}
