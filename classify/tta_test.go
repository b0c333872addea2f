package classify

import (
	"math"
	"testing"
)

// TestFlipW: both layouts reverse the W axis only, and twice is the
// identity.
func TestFlipW(t *testing.T) {
	// Two samples, 2 channels, 2 rows, 3 columns; value = sample·1000 +
	// channel·100 + row·10 + column.
	const n, c, h, w = 2, 2, 2, 3
	val := func(i, ch, y, x int) float32 { return float32(i*1000 + ch*100 + y*10 + x) }
	for _, layout := range []string{NCHW, NHWC} {
		src := make([]float32, n*c*h*w)
		at := func(i, ch, y, x int) int {
			if layout == NHWC {
				return ((i*h+y)*w+x)*c + ch
			}
			return ((i*c+ch)*h+y)*w + x
		}
		for i := 0; i < n; i++ {
			for ch := 0; ch < c; ch++ {
				for y := 0; y < h; y++ {
					for x := 0; x < w; x++ {
						src[at(i, ch, y, x)] = val(i, ch, y, x)
					}
				}
			}
		}
		dst := make([]float32, len(src))
		FlipW(dst, src, n, c, h, w, layout)
		for i := 0; i < n; i++ {
			for ch := 0; ch < c; ch++ {
				for y := 0; y < h; y++ {
					for x := 0; x < w; x++ {
						if got, want := dst[at(i, ch, y, x)], val(i, ch, y, w-1-x); got != want {
							t.Fatalf("%s: [%d,%d,%d,%d] = %g, want %g", layout, i, ch, y, x, got, want)
						}
					}
				}
			}
		}
		back := make([]float32, len(src))
		FlipW(back, dst, n, c, h, w, layout)
		for j := range src {
			if back[j] != src[j] {
				t.Fatalf("%s: flipping twice changed value %d", layout, j)
			}
		}
	}
}

// TestAverageProbs: logits are averaged as probabilities, and
// probabilities as themselves.
func TestAverageProbs(t *testing.T) {
	a, b := []float32{0, 0}, []float32{float32(math.Log(3)), 0}
	if p := AverageProbs(false, a, b); math.Abs(p[0]-0.625) > 1e-7 || math.Abs(p[1]-0.375) > 1e-7 {
		t.Errorf("softmax average %v, want [0.625 0.375]", p)
	}
	if p := AverageProbs(true, []float32{1, 0}, []float32{0.5, 0.5}); p[0] != 0.75 || p[1] != 0.25 {
		t.Errorf("probability average %v, want [0.75 0.25]", p)
	}
	if l := NLL([]float64{0.25, 0.75}, 1); math.Abs(l+math.Log(0.75)) > 1e-15 {
		t.Errorf("NLL %g", l)
	}
}
