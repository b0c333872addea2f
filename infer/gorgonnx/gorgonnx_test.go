package gorgonnx_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/infer/gorgonnx"
	"github.com/resnetctl/resnetctl/internal/testmodel"
	"github.com/resnetctl/resnetctl/models"
)

// modelFile exports a catalog model with trained-looking BatchNorm
// statistics into a temporary folder.
func modelFile(t testing.TB, name string, opts export.Options, mutate func(*models.Spec)) string {
	t.Helper()
	s, err := models.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&s)
	}
	g, err := build.New(s, build.Options{Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	testmodel.PerturbBN(g, 42)
	path := filepath.Join(t.TempDir(), name+".onnx")
	if _, err := export.WriteFile(path, g, opts); err != nil {
		t.Fatal(err)
	}
	return path
}

func shortcutB(s *models.Spec) { s.Shortcut = models.ShortcutB }

// cifarInput is a batch of standard-normal 32×32 images.
func cifarInput(seed uint64, batch int) *infer.Tensor {
	r := rand.New(rand.NewPCG(seed, 11))
	data := make([]float32, batch*3*32*32)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	return infer.NewFloat32([]int{batch, 3, 32, 32}, data)
}

// maxDiff returns max|got-ref| and max|ref|.
func maxDiff(got, ref []float32) (maxErr, maxRef float64) {
	if len(got) != len(ref) {
		return math.Inf(1), 0
	}
	for i := range ref {
		maxRef = math.Max(maxRef, math.Abs(float64(ref[i])))
		d := math.Abs(float64(got[i] - ref[i]))
		if math.IsNaN(d) {
			return math.NaN(), maxRef
		}
		maxErr = math.Max(maxErr, d)
	}
	return maxErr, maxRef
}

func TestEngine(t *testing.T) {
	if got := infer.Engines(); !slices.Equal(got, []string{infer.EngineNative, infer.EngineGorgonnx}) {
		t.Errorf("Engines() = %v", got)
	}
	path := modelFile(t, "resnet20", export.Options{Opset: 13, FoldBN: true}, shortcutB)
	native, err := infer.Load(path, infer.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer native.Close()
	gx, err := infer.Load(path, infer.Options{Engine: infer.EngineGorgonnx})
	if err != nil {
		t.Fatal(err)
	}
	defer gx.Close()
	if gx.Engine() != infer.EngineGorgonnx || gx.Metadata().Opset != 13 {
		t.Errorf("engine %s, metadata %+v", gx.Engine(), gx.Metadata())
	}
	in := map[string]*infer.Tensor{"input": cifarInput(5, 2)}
	want, err := native.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := gx.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	e, m := maxDiff(got["logits"].Float32, want["logits"].Float32)
	t.Logf("gorgonnx vs native: max|err| %.3g, max|ref| %.3g", e, m)
	if !(e <= 1e-4*(1+m)) {
		t.Errorf("gorgonnx and native differ by %g (max |ref| %g)", e, m)
	}
	// Option A needs Pad/Slice, which onnx-go lacks: refused with ErrUnsupported.
	a, err := infer.Load(modelFile(t, "resnet20", export.Options{Opset: 13}, nil), infer.Options{Engine: infer.EngineGorgonnx})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Run(context.Background(), in); !errors.Is(err, infer.ErrUnsupported) || !errors.Is(err, gorgonnx.ErrUnsupported) {
		t.Errorf("option A on gorgonnx: %v", err)
	}
	// Refused at load: not ONNX.
	if _, err := infer.LoadBytes([]byte("not onnx"), infer.Options{Engine: infer.EngineGorgonnx}); !errors.Is(err, infer.ErrInvalidModel) {
		t.Errorf("garbage: %v", err)
	}
}

// TestConcurrentRuns: a few goroutines share one session, alternating Run
// and RunInto (reusing outputs); every answer is bit-identical to the
// serial run of the same input. Each run builds an onnx-go graph in a
// child process (about 2 s under the race detector): a few runs suffice.
func TestConcurrentRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("slow under -race; runs without -short")
	}
	s, err := infer.Load(modelFile(t, "resnet8", export.Options{Softmax: true}, shortcutB), infer.Options{Engine: infer.EngineGorgonnx})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const goroutines, iters = 4, 2
	inputs := make([]*infer.Tensor, goroutines)
	want := make([]map[string]*infer.Tensor, goroutines)
	for i := range inputs {
		inputs[i] = cifarInput(uint64(100+i), 1+i%3)
		if want[i], err = s.Run(ctx, map[string]*infer.Tensor{"input": inputs[i]}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := map[string]*infer.Tensor{"input": inputs[i]}
			into := map[string]*infer.Tensor{}
			for k := range iters {
				got := into
				var err error
				if k%2 == 0 {
					got, err = s.Run(ctx, in)
				} else {
					err = s.RunInto(ctx, in, into)
				}
				if err == nil {
					err = same(got, want[i])
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d, run %d: %w", i, k+1, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// same reports the first output of got that differs from want in shape or
// in any bit.
func same(got, want map[string]*infer.Tensor) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d outputs, want %d", len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if g == nil {
			return fmt.Errorf("output %s missing", name)
		}
		if !slices.Equal(g.Shape, w.Shape) || len(g.Float32) != len(w.Float32) {
			return fmt.Errorf("output %s: shape %v, want %v", name, g.Shape, w.Shape)
		}
		for i := range w.Float32 {
			if math.Float32bits(g.Float32[i]) != math.Float32bits(w.Float32[i]) {
				return fmt.Errorf("output %s[%d] = %v, want %v", name, i, g.Float32[i], w.Float32[i])
			}
		}
	}
	return nil
}
