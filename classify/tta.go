package classify

import "math"

// TTA kinds of test-time augmentation (evaluate --tta).
const (
	TTANone = "none"
	// TTAFlip evaluates every image as itself and mirrored left-right
	// (after preprocessing: the W axis of the input reversed), and
	// averages the two softmax probability vectors.
	TTAFlip = "flip"
)

// FlipW writes the n preprocessed samples of src, in the setup's layout
// (NCHW or NHWC), mirrored left-right into dst.
func (s *Setup) FlipW(dst, src []float32, n int) {
	FlipW(dst, src, n, s.C, s.H, s.W, s.Layout)
}

// FlipW writes n samples of c×h×w values (layout NHWC, else NCHW) from
// src mirrored left-right into dst: the W axis reversed.
func FlipW(dst, src []float32, n, c, h, w int, layout string) {
	if layout == NHWC {
		rows := n * h
		for r := 0; r < rows; r++ {
			s, d := src[r*w*c:(r+1)*w*c], dst[r*w*c:(r+1)*w*c]
			for x := 0; x < w; x++ {
				copy(d[(w-1-x)*c:(w-x)*c], s[x*c:(x+1)*c])
			}
		}
		return
	}
	rows := n * c * h
	for r := 0; r < rows; r++ {
		s, d := src[r*w:(r+1)*w], dst[r*w:(r+1)*w]
		for x, v := range s {
			d[w-1-x] = v
		}
	}
}

// Probs returns a row of scores as probabilities: the scores themselves
// when probs (the model outputs probabilities), else their softmax.
func Probs(scores []float32, probs bool) []float64 {
	if !probs {
		return Softmax(scores)
	}
	p := make([]float64, len(scores))
	for i, v := range scores {
		p[i] = float64(v)
	}
	return p
}

// AverageProbs returns the mean of the probability vectors of rows of
// scores (Probs of each), the TTA average.
func AverageProbs(probs bool, rows ...[]float32) []float64 {
	var avg []float64
	for _, r := range rows {
		p := Probs(r, probs)
		if avg == nil {
			avg = p
			continue
		}
		for i := range avg {
			avg[i] += p[i]
		}
	}
	for i := range avg {
		avg[i] /= float64(len(rows))
	}
	return avg
}

// NLL is the cross-entropy loss of probabilities p for the true class y,
// −log p[y], with p[y] taken as at least 1e-12 (a model that outputs
// probabilities can give exactly 0).
func NLL(p []float64, y int) float64 {
	return -math.Log(math.Max(p[y], 1e-12))
}
