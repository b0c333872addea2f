package infer

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/resnetctl/resnetctl/export"
)

// TestConcurrentRunsAreBitIdentical: 16 goroutines share one session (two
// kernel threads, at most 2 cached plans for 3 batch sizes, so plans are
// built and evicted while others run) and each runs its own input
// repeatedly, alternating Run and RunInto (reusing its outputs). Every
// answer, logits and probabilities, is bit-identical to the serial run of
// the same input. ResNet-8 with option-B shortcuts exercises the folded
// and fused convolutions, the 1×1 projections, pooling and Gemm. The
// gorgonnx engine, documented as concurrent-safe too, is checked alike in
// package infer/gorgonnx.
func TestConcurrentRunsAreBitIdentical(t *testing.T) {
	c := exportCase{name: "resnet8-B", model: "resnet8", mutate: shortcutB, opts: export.Options{Softmax: true}}
	_, g := buildExport(t, c, 7)
	b, err := export.Marshal(g, c.opts)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		engine            string
		goroutines, iters int
	}{
		{EngineNative, 16, 8},
	}
	for _, tt := range tests {
		t.Run(tt.engine, func(t *testing.T) {
			s, err := LoadBytes(b, Options{Engine: tt.engine, Threads: 2, MaxPlans: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			iters := tt.iters
			if testing.Short() {
				iters = max(2, iters/4)
			}
			runConcurrently(t, s, tt.goroutines, iters)
		})
	}
}

// runConcurrently runs one input per goroutine (batches of 1 to 3) iters
// times, alternating Run and RunInto, and checks every answer against the
// input's serial run.
func runConcurrently(t *testing.T, s *Session, goroutines, iters int) {
	t.Helper()
	ctx := context.Background()
	inputs := make([]*Tensor, goroutines)
	want := make([]map[string]*Tensor, goroutines)
	for i := range inputs {
		inputs[i] = cifarInput(uint64(100+i), 1+i%3)
		out, err := s.Run(ctx, map[string]*Tensor{"input": inputs[i]})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = out
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	start := make(chan struct{})
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			in := map[string]*Tensor{"input": inputs[i]}
			into := map[string]*Tensor{}
			for k := range iters {
				var got map[string]*Tensor
				var err error
				if k%2 == 0 {
					got, err = s.Run(ctx, in)
				} else {
					err = s.RunInto(ctx, in, into)
					got = into
				}
				if err == nil {
					err = sameOutputs(got, want[i])
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d (batch %d), run %d: %w", i, inputs[i].Shape[0], k+1, err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// sameOutputs reports the first output of got that differs from want in
// any bit.
func sameOutputs(got, want map[string]*Tensor) error {
	for name, w := range want {
		g := got[name]
		if g == nil || len(g.Float32) != len(w.Float32) {
			return fmt.Errorf("output %s missing or of another size", name)
		}
		for j := range w.Float32 {
			if math.Float32bits(g.Float32[j]) != math.Float32bits(w.Float32[j]) {
				return fmt.Errorf("%s[%d] = %g, serially %g", name, j, g.Float32[j], w.Float32[j])
			}
		}
	}
	return nil
}
