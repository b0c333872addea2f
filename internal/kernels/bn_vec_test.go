package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestBNVectorHelpers compares the BatchNorm helpers the CPU path uses
// (AVX2 assembly on amd64) with their pure-Go versions on random planes of
// awkward sizes, with ReLU zeros and NaNs: masks and element-wise results
// bit for bit where the arithmetic is the same (one rounding of x·s+b may
// differ by FMA: 1 ulp), sums within 1e-6 relative to the sum of
// magnitudes (float32 blocks of 64 terms a lane either way).
func TestBNVectorHelpers(t *testing.T) {
	t.Logf("kernel path %s", activeKernel.Load().name)
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 7, 8, 15, 16, 63, 64, 65, 200, 1024, 1100, 3136, 12544} {
		x := make([]float32, n)
		dy := make([]float32, n)
		res := make([]float32, n)
		var mag, magx float64
		for i := range x {
			x[i] = float32(r.NormFloat64())
			dy[i] = float32(r.NormFloat64())
			res[i] = float32(r.NormFloat64())
			mag += math.Abs(float64(x[i]))
			magx += math.Abs(float64(dy[i] * x[i]))
		}
		s, s2 := sumAndSquares(x)
		gs, gs2 := sumAndSquaresGo(x)
		if math.Abs(s-gs) > 1e-6*mag || math.Abs(s2-gs2) > 1e-6*float64(n)*4 {
			t.Errorf("n=%d sumAndSquares %g %g, Go %g %g", n, s, s2, gs, gs2)
		}
		for _, tc := range []struct {
			res  []float32
			relu bool
		}{{nil, false}, {nil, true}, {res, false}, {res, true}} {
			a, b := make([]float32, n), make([]float32, n)
			affinePlane(a, x, tc.res, 0.7, -0.1, tc.relu)
			affinePlaneGo(b, x, tc.res, 0.7, -0.1, tc.relu)
			for i := range a {
				if d := math.Abs(float64(a[i] - b[i])); d > 4e-7*(1+math.Abs(float64(b[i]))) {
					t.Fatalf("n=%d res=%v relu=%v affine[%d] = %g, Go %g", n, tc.res != nil, tc.relu, i, a[i], b[i])
				}
			}
		}
		out := make([]float32, n)
		affinePlaneGo(out, x, nil, 1, 0, true)
		if n > 5 {
			out[3] = float32(math.NaN())
		}
		words := make([]uint64, (n+63)/64)
		want := make([]uint64, len(words))
		writeMask(words, out)
		writeMaskGo(want, out)
		for i := range words {
			if words[i] != want[i] {
				t.Fatalf("n=%d mask word %d = %x, Go %x", n, i, words[i], want[i])
			}
		}
		for _, scr := range []bool{false, true} {
			var sa, sb []float32
			if scr {
				sa, sb = make([]float32, n), make([]float32, n)
			}
			ms, msx := maskedSums(dy, x, words, sa)
			gms, gmsx := maskedSumsGo(dy, x, words, sb)
			if math.Abs(ms-gms) > 1e-6*mag || math.Abs(msx-gmsx) > 1e-6*magx {
				t.Errorf("n=%d maskedSums %g %g, Go %g %g", n, ms, msx, gms, gmsx)
			}
			for i := range sa {
				if math.Float32bits(sa[i]) != math.Float32bits(sb[i]) {
					t.Fatalf("n=%d masked dy[%d] = %g, Go %g", n, i, sa[i], sb[i])
				}
			}
		}
		for _, acc := range [][]float32{nil, res} {
			a, b := make([]float32, n), make([]float32, n)
			gradApplyBits(a, dy, x, words, acc, 0.3, -0.2, 0.05)
			gradApplyBitsGo(b, dy, x, words, acc, 0.3, -0.2, 0.05)
			for i := range a {
				if d := math.Abs(float64(a[i] - b[i])); d > 1e-6*(1+math.Abs(float64(b[i]))) {
					t.Fatalf("n=%d acc=%v gradApply[%d] = %g, Go %g", n, acc != nil, i, a[i], b[i])
				}
			}
		}
	}
}
