package gorgonnx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// skewedBLAS is gonum's BLAS with a wrong float32 GEMM, standing in for any
// process-wide onnx-go/gorgonia/tensor state an earlier run (or anything
// else in the process) left behind.
type skewedBLAS struct{ gonum.Implementation }

func (b skewedBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, x []float32, ldb int, beta float32, c []float32, ldc int) {
	b.Implementation.Sgemm(tA, tB, m, n, k, 1.5*alpha, a, lda, x, ldb, beta, c, ldc)
}

// runFusedGolden runs tiny_op13_fused (Conv with bias, then Softmax: the
// shape of the BN-folded exports that went wrong in export's TestInterop)
// at batch 3 and compares both outputs with PyTorch.
func runFusedGolden(t *testing.T) {
	t.Helper()
	g, x := loadGolden(t)
	in, shape := firstImages(g, x, 3)
	want := g.Models["tiny_op13_fused.onnx"]
	outs, err := Run(context.Background(), readModel(t, "tiny_op13_fused.onnx"), in, shape)
	if err != nil {
		t.Fatalf("Run: %.300s", err)
	}
	for name, w := range want.Outputs {
		compare(t, name, outs[name], w.Shape, w.Data, 3)
	}
}

// TestRunIndependentOfProcessState checks that Run's results do not depend
// on onnx-go/gorgonia/tensor global state in the calling process. In
// export's TestInterop, onnx-go's outputs for conv-with-bias + Softmax
// models were seen to drift by about the size of the logits after many
// other models had run in the same process; onnx-go and gorgonia keep much
// process-wide mutable state (an unsynchronised node-name counter, sync.Pools of shapes,
// types and nodes that some paths refill while the objects are still in
// use, a channel pool of *tensor.Dense, finalizers that return slices to a
// pool, the BLAS in use). Each case below leaves such state corrupted, as a
// bad earlier run would, then checks Run against PyTorch.
func TestRunIndependentOfProcessState(t *testing.T) {
	t.Run("clean", runFusedGolden)

	t.Run("global BLAS", func(t *testing.T) {
		gorgonia.Use(skewedBLAS{})
		defer gorgonia.Use(gonum.Implementation{})
		runFusedGolden(t)
	})

	t.Run("tensor pool holding a live tensor", func(t *testing.T) {
		// A *Dense returned to tensor's pool while still referenced (here:
		// twice), so that two later tensors share one header.
		live := tensor.New(tensor.WithShape(2), tensor.Of(tensor.Float32))
		tensor.ReturnTensor(live)
		tensor.ReturnTensor(live)
		defer func() {
			// Take both entries back out so no other test sees them.
			tensor.New(tensor.WithShape(1), tensor.Of(tensor.Float32))
			tensor.New(tensor.WithShape(1), tensor.Of(tensor.Float32))
		}()
		runFusedGolden(t)
	})

	t.Run("after a run that panicked inside onnx-go", func(t *testing.T) {
		// badInitModel makes onnx-go panic while decoding (recovered by
		// Run); nothing it leaves behind may affect the next run.
		g, x := loadGolden(t)
		in, shape := firstImages(g, x, 1)
		if _, err := Run(context.Background(), badInitModel(t), in, shape); err == nil {
			t.Fatal("badInitModel ran")
		}
		runFusedGolden(t)
	})
}

// TestCancelStopsRun checks that cancelling a Run that is already running
// returns promptly and that the next Run is unaffected.
func TestCancelStopsRun(t *testing.T) {
	g, x := loadGolden(t)
	in, shape := firstImages(g, x, 3)
	model := readModel(t, "tiny_op13_fused.onnx")
	for _, d := range []time.Duration{time.Microsecond, 2 * time.Millisecond, 5 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		start := time.Now()
		_, err := Run(ctx, model, in, shape)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("timeout %v: err = %v, want nil or context.DeadlineExceeded", d, err)
		}
		el := time.Since(start)
		if el > d+2*time.Second {
			t.Fatalf("timeout %v: Run returned after %v", d, el)
		}
		t.Logf("timeout %v: returned after %v, err = %v", d, el.Round(10*time.Microsecond), err)
	}
	runFusedGolden(t)
}

// TestRequestRoundTrip checks the parent-to-child request encoding.
func TestRequestRoundTrip(t *testing.T) {
	model := []byte("not really a model")
	input := []float32{0, -1.5, float32(math.Inf(1)), 3e-40, float32(math.NaN())}
	shape := []int{1, 5}
	gotModel, gotInput, gotShape, err := readRequest(bufio.NewReader(requestReader(model, input, shape)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotModel, model) || !slices.Equal(gotShape, shape) || len(gotInput) != len(input) {
		t.Fatalf("got %q %v %v", gotModel, gotShape, gotInput)
	}
	for i := range input {
		if math.Float32bits(gotInput[i]) != math.Float32bits(input[i]) {
			t.Fatalf("input[%d] = %v, want %v", i, gotInput[i], input[i])
		}
	}
	if _, _, _, err := readRequest(bufio.NewReader(strings.NewReader("garbage"))); err == nil {
		t.Fatal("garbage request accepted")
	}
}
