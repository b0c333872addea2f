package infer

import (
	"context"
	"strings"
	"testing"
	"time"
)

// manyAxesModel is Unsqueeze-13 of a [1, 2, 1, 1] input with n axes
// (0 … n-1, all distinct: a valid, absurd model), as an initializer: a
// file of about 1.6 MB for n = 200,000.
func manyAxesModel(t testing.TB, n int) []byte {
	axes := make([]int64, n)
	for i := range axes {
		axes[i] = int64(i)
	}
	return newGB(13).in("x", Float32, 1, 2, 1, 1).out("y", Float32).init("axes", i64(sh(n), axes...)).
		node("Unsqueeze", []string{"x", "axes"}, []string{"y"}).bytes(t)
}

// BenchmarkUnsqueezeManyAxes loads (validates and plans) and runs a model
// whose Unsqueeze lists 200,000 axes. Axis handling was quadratic (a
// search of the axes seen so far for each axis): 11 to 15 s per load.
func BenchmarkUnsqueezeManyAxes(b *testing.B) {
	m := manyAxesModel(b, 200000)
	b.SetBytes(int64(len(m)))
	for b.Loop() {
		loadRunManyAxes(b, m)
	}
}

func loadRunManyAxes(tb testing.TB, m []byte) {
	s, err := LoadBytes(m, Options{Threads: 1})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(context.Background(), map[string]*Tensor{"x": f32(sh(1, 2, 1, 1), 1, 2)})
	if err != nil {
		tb.Fatal(err)
	}
	if y := out["y"]; len(y.Shape) != 200004 || y.Float32[1] != 2 {
		tb.Fatalf("output of rank %d, %v", len(y.Shape), y.Float32)
	}
}

// TestUnsqueezeManyAxes runs the benchmark's body once (a regression
// guard that is quick now; the time is reported, not asserted), and checks
// that a repeated axis among them is found with a bounded message.
func TestUnsqueezeManyAxes(t *testing.T) {
	m := manyAxesModel(t, 200000)
	start := time.Now()
	loadRunManyAxes(t, m)
	t.Logf("200,000 axes (a %d-byte file): loaded, planned and run in %v", len(m), time.Since(start))
	axes := make([]int64, 200000)
	for i := range axes {
		axes[i] = int64(i)
	}
	axes[len(axes)-1] = 7
	m = newGB(13).in("x", Float32, 1, 2, 1, 1).out("y", Float32).init("axes", i64(sh(len(axes)), axes...)).
		node("Unsqueeze", []string{"x", "axes"}, []string{"y"}).bytes(t)
	_, err := LoadBytes(m, Options{Threads: 1})
	const want = `node "Unsqueeze:y" (Unsqueeze): axis 7 is repeated in [0 1 2 3 4 5 6 7 … 199992 199993 199994 199995 199996 199997 199998 7] (200000 values) (planning input shapes [[1 2 1 1]])`
	if err == nil || !strings.Contains(err.Error(), want) || strings.Count(err.Error(), "\n") > 1 {
		t.Errorf("error %v\nwant %s", err, want)
	}
}
