package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// trDot is the float64 dot product.
func trDot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// trAdjoint checks <f(x), dy> = <x, g(dy)> for a linear map f and its
// claimed transpose g.
func trAdjoint(t *testing.T, what string, x, fx, dy, gdy []float32) {
	t.Helper()
	a, b := trDot(fx, dy), trDot(x, gdy)
	if math.Abs(a-b) > 1e-5*(1+math.Abs(a)) {
		t.Errorf("%s: <f(x), dy> = %g but <x, g(dy)> = %g", what, a, b)
	}
}

func TestPoolingBackwardIsAdjoint(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(7, 8))
	const n, c, h, w = 3, 4, 9, 8
	for _, prm := range []Pool2DParams{
		{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{KH: 2, KW: 2, StrideH: 2, StrideW: 2},
		{KH: 3, KW: 2, StrideH: 1, StrideW: 2, PadTop: 1, PadBottom: 1, CountIncludePad: true},
		{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, CeilMode: true},
	} {
		oh, ow := prm.OutSize(h, w)
		x := trRand(r, n*c*h*w)
		dy := trRand(r, n*c*oh*ow)
		out := make([]float32, len(dy))
		ref := make([]float32, len(dy))
		idx := make([]int32, len(dy))
		dx := make([]float32, len(x))

		MaxPool2DArgmax(pool, prm, n, c, h, w, x, out, idx)
		MaxPool2D(pool, prm, n, c, h, w, x, ref)
		for i := range ref {
			if out[i] != ref[i] || x[(i/(oh*ow))*h*w+int(idx[i])] != out[i] {
				t.Fatalf("max pool %+v: output %d = %g (index %d), MaxPool2D gives %g", prm, i, out[i], idx[i], ref[i])
			}
		}
		MaxPool2DBackward(pool, prm, n, c, h, w, idx, dy, dx)
		trAdjoint(t, "max pool", x, out, dy, dx)

		AvgPool2D(pool, prm, n, c, h, w, x, out)
		AvgPool2DBackward(pool, prm, n, c, h, w, dy, dx)
		trAdjoint(t, "avg pool", x, out, dy, dx)
	}

	x := trRand(r, n*c*h*w)
	dy := trRand(r, n*c)
	out := make([]float32, n*c)
	dx := make([]float32, len(x))
	GlobalAvgPool(pool, n, c, h*w, x, out)
	GlobalAvgPoolBackward(pool, n, c, h*w, dy, dx)
	trAdjoint(t, "global avg pool", x, out, dy, dx)
}

func TestMaxPoolTiesAndNaN(t *testing.T) {
	prm := Pool2DParams{KH: 2, KW: 2, StrideH: 2, StrideW: 2}
	x := []float32{1, 1, trNaN(), 2, 1, 0, 0, 3}
	out := make([]float32, 2)
	idx := make([]int32, 2)
	MaxPool2DArgmax(nil, prm, 1, 1, 2, 4, x, out, idx)
	if idx[0] != 0 || out[0] != 1 {
		t.Errorf("tie: got %g at %d, want 1 at 0 (first tap)", out[0], idx[0])
	}
	if idx[1] != 2 || out[1] == out[1] {
		t.Errorf("NaN: got %g at %d, want NaN at 2", out[1], idx[1])
	}
}

func trNaN() float32 { return float32(math.NaN()) }

func TestChannelPadAndReLUBackward(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(9, 10))
	for _, k := range []struct{ n, c, h, w, stride, before, after int }{
		{2, 4, 8, 8, 2, 2, 2}, {3, 3, 7, 5, 2, 1, 2}, {2, 5, 4, 4, 1, 0, 3},
	} {
		oh, ow := (k.h+k.stride-1)/k.stride, (k.w+k.stride-1)/k.stride
		cout := k.before + k.c + k.after
		x := trRand(r, k.n*k.c*k.h*k.w)
		dy := trRand(r, k.n*cout*oh*ow)
		out := make([]float32, len(dy))
		dx := trRand(r, len(x)) // must be overwritten
		ChannelPad(pool, k.n, k.c, k.h, k.w, k.stride, k.before, k.after, x, out)
		ChannelPadBackward(pool, k.n, k.c, k.h, k.w, k.stride, k.before, k.after, dy, dx)
		trAdjoint(t, "channel pad", x, out, dy, dx)
		if v := out[(0*cout+k.before)*oh*ow+ow-1]; v != x[(ow-1)*k.stride] {
			t.Errorf("channel pad: out[0, %d, 0, %d] = %g, want x[0, 0, 0, %d] = %g", k.before, ow-1, v, (ow-1)*k.stride, x[(ow-1)*k.stride])
		}
	}

	y := trRand(r, 50000)
	dy := trRand(r, len(y))
	acc := trRand(r, len(y))
	dx := make([]float32, len(y))
	ReLUBackward(pool, y, dy, nil, dx)
	for i := range y {
		want := dy[i]
		if !(y[i] > 0) {
			want = 0
		}
		if dx[i] != want {
			t.Fatalf("ReLUBackward[%d] = %g, want %g", i, dx[i], want)
		}
	}
	want := make([]float32, len(y))
	for i := range want {
		want[i] = acc[i] + dx[i]
	}
	ReLUBackward(pool, y, dy, acc, acc)
	AddTo(pool, dx, dx)
	for i := range y {
		if acc[i] != want[i] {
			t.Fatalf("ReLUBackward with accumulation [%d] = %g, want %g", i, acc[i], want[i])
		}
	}
}

func TestReluMask(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, y := range []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-45, 1, -1, inf, -inf, trNaN(), -trNaN(), math.MaxFloat32, -math.MaxFloat32} {
		want := float32(0)
		if y > 0 {
			want = 3
		}
		if got := reluMask(3, y); got != want || math.Signbit(float64(got)) {
			t.Errorf("reluMask(3, %g) = %g, want %g", y, got, want)
		}
	}
}
