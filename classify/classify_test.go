package classify

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/infer"
)

func TestTopK(t *testing.T) {
	classes := []string{"a", "b", "c", "d"}
	got := TopK([]float32{1, 3, 2, 0}, 3, false, classes)
	if len(got) != 3 || got[0].Label != "b" || got[1].Label != "c" || got[2].Label != "a" || got[0].Rank != 1 {
		t.Fatalf("%+v", got)
	}
	// softmax of 1,3,2,0: e^3 / (e^0+e^1+e^2+e^3)
	want := math.Exp(3) / (1 + math.E + math.Exp(2) + math.Exp(3))
	if math.Abs(got[0].Prob-want) > 1e-12 {
		t.Errorf("probability %g, want %g", got[0].Prob, want)
	}
	p := TopK([]float32{0.1, 0.7, 0.2}, 5, true, nil)
	if len(p) != 3 || p[0].Label != "class 1" || math.Abs(p[0].Prob-0.7) > 1e-6 {
		t.Errorf("%+v", p)
	}
	// Large logits must not overflow.
	if s := Softmax([]float32{1000, 999}); math.IsNaN(s[0]) || math.Abs(s[0]+s[1]-1) > 1e-12 {
		t.Errorf("softmax %v", s)
	}
}

func TestEval(t *testing.T) {
	e := NewEval([]string{"x", "y", "z"}, 3)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.Add(0, []float32{3, 1, 0})) // right
	must(e.Add(1, []float32{3, 1, 0})) // wrong, rank 2
	must(e.Add(2, []float32{1, 1, 1})) // all tied: counts as wrong
	must(e.Add(2, []float32{0, 0, 5})) // right
	if e.Total != 4 || e.Top1 != 2 || e.Top5 != 4 || e.Confusion[1][0] != 1 || e.Confusion[2][2] != 1 {
		t.Fatalf("%+v", e)
	}
	acc, count := e.PerClass()
	if acc[0] != 1 || acc[1] != 0 || acc[2] != 0.5 || count[2] != 2 {
		t.Errorf("per class %v %v", acc, count)
	}
	if e.Add(3, []float32{1, 2, 3}) == nil || e.Add(0, []float32{1}) == nil {
		t.Error("bad label or score count accepted")
	}
	var text bytes.Buffer
	e.WriteText(&text)
	for _, want := range []string{"top-1 accuracy: 50.00%", "top-5 accuracy: 100.00%", "z        50.00%       2", "confusion matrix"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	var img bytes.Buffer
	if err := e.WritePNG(&img); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&img); err != nil {
		t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	md := infer.Metadata{
		Inputs:  []infer.ValueInfo{{Name: "input", DType: infer.Float32, Shape: []int{-1, 3, 224, 224}}},
		Outputs: []infer.ValueInfo{{Name: "logits", DType: infer.Float32, Shape: []int{-1, 1000}}},
		Props:   map[string]string{},
	}
	s, err := Resolve(md, Flags{})
	if err != nil {
		t.Fatal(err)
	}
	if s.H != 224 || s.Resize != 256 || s.Classes != nil || s.Output != "logits" || s.Probabilities {
		t.Errorf("%+v", s)
	}
	s, err = Resolve(md, Flags{Labels: "imagenet", Preprocess: "caffe"})
	if err != nil || len(s.Classes) != 1000 || s.Norm.Mode() != "caffe" {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := Resolve(md, Flags{Preprocess: "caffe", Mean: []float32{1, 2, 3}}); err == nil {
		t.Error("--mean with caffe accepted")
	}
	md.Inputs[0].Shape = []int{-1, 3, -1, -1}
	if _, err := Resolve(md, Flags{}); err == nil || !strings.Contains(err.Error(), "--size") {
		t.Errorf("dynamic size without --size: %v", err)
	}
	if s, err := Resolve(md, Flags{Size: 32}); err != nil || s.Resize != 0 || s.W != 32 {
		t.Errorf("--size 32: %+v %v", s, err)
	}
	// Layout and channels from the shape (issue #14): gray, NHWC, and
	// what is no image.
	for _, tt := range []struct {
		shape   []int
		flags   Flags
		layout  string
		c, h, b int
		err     string
	}{
		{shape: []int{-1, 1, 28, 28}, layout: NCHW, c: 1, h: 28},
		{shape: []int{1, 224, 224, 3}, layout: NHWC, c: 3, h: 224, b: 1},
		{shape: []int{8, 28, 28, 1}, layout: NHWC, c: 1, h: 28, b: 8},
		{shape: []int{-1, 3, 32, 3}, layout: NCHW, c: 3, h: 32},
		{shape: []int{-1, 3, 32, 3}, flags: Flags{Layout: "nhwc"}, layout: NHWC, c: 3, h: 3},
		{shape: []int{-1, 224, 224, 3}, flags: Flags{Layout: "NCHW"}, err: "has 224 channels in layout NCHW"},
		{shape: []int{-1, 4, 32, 32}, err: "has 4 channels"},
		{shape: []int{-1, 20}, err: "not an image"},
		{shape: []int{-1, 3, 32, 32}, flags: Flags{Layout: "CHW"}, err: `layout "CHW" (--layout)`},
	} {
		md.Inputs[0].Shape = tt.shape
		s, err := Resolve(md, tt.flags)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v %+v: %v, want %q", tt.shape, tt.flags, err, tt.err)
			}
			continue
		}
		if err != nil || s.Layout != tt.layout || s.C != tt.c || s.H != tt.h || s.Batch != tt.b {
			t.Errorf("%v %+v: %+v %v", tt.shape, tt.flags, s, err)
		}
	}
	f := filepath.Join(t.TempDir(), "labels.txt")
	os.WriteFile(f, []byte("cat\ndog\n\n"), 0o644)
	if l, err := LoadLabels(f); err != nil || len(l) != 2 || l[1] != "dog" {
		t.Errorf("labels file: %v %v", l, err)
	}
	if _, err := LoadLabels("no-such-set"); err == nil {
		t.Error("unknown label set accepted")
	}
}
