package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFakeQuant checks the vector path against the scalar definition
// (float64 RoundToEven of the float32 quotient), at ties, at the bounds,
// for NaN and infinities, and at every length around the vector width.
func TestFakeQuant(t *testing.T) {
	ref := func(v, s, lo, hi float32) float32 {
		q := v / s
		if q != q {
			return lo * s
		}
		r := math.RoundToEven(float64(q))
		return float32(min(max(r, float64(lo)), float64(hi))) * s
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name      string
		s, lo, hi float32
	}{{"uint8 zp 0", 0.05, 0, 255}, {"uint8 zp 128", 0.02, -128, 127}, {"int8 zp 0", 0.1, -128, 127}, {"uint8 zp 255", 0.5, -255, 0}} {
		for n := range 40 {
			src := make([]float32, n)
			for i := range src {
				switch i % 7 {
				case 0: // ties: k+0.5 steps
					src[i] = (float32(r.IntN(600)-300) + 0.5) * tc.s
				case 1:
					src[i] = float32(math.NaN())
				case 2:
					src[i] = float32(math.Inf(1 - 2*(i%2)))
				default:
					src[i] = float32(r.NormFloat64()) * tc.s * 100
				}
			}
			for _, asm := range []bool{true, false} {
				dst := make([]float32, n)
				if asm {
					FakeQuant(dst, src, tc.s, tc.lo, tc.hi)
				} else {
					fakeQuantGo(dst, src, tc.s, tc.lo, tc.hi)
				}
				for i, v := range src {
					if want := ref(v, tc.s, tc.lo, tc.hi); dst[i] != want {
						t.Fatalf("%s, n %d, asm %v: %g -> %g, want %g", tc.name, n, asm, v, dst[i], want)
					}
				}
			}
		}
	}
}
