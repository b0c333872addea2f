package train

import "math"

// flipW writes src ([n, c, h, w], NCHW) mirrored left-right into dst: the
// W axis reversed.
func flipW(dst, src []float32, n, c, h, w int) {
	rows := n * c * h
	for r := 0; r < rows; r++ {
		s, d := src[r*w:(r+1)*w], dst[r*w:(r+1)*w]
		for j, v := range s {
			d[w-1-j] = v
		}
	}
}

// softmax64 writes the softmax probabilities of logits z into p.
func softmax64(p []float64, z []float32) {
	best := math.Inf(-1)
	for _, v := range z {
		best = math.Max(best, float64(v))
	}
	var s float64
	for j, v := range z {
		p[j] = math.Exp(float64(v) - best)
		s += p[j]
	}
	for j := range p {
		p[j] /= s
	}
}

// crossEntropyProbs is crossEntropy computed from probabilities p (an
// average of softmax outputs, say): (1−ε)·(−log p_y) + ε·mean_j(−log p_j),
// and whether p's top-1 class (the first of equals) is y.
func crossEntropyProbs(p []float64, y int, eps float64) (float64, bool) {
	arg := 0
	var sumLog float64
	for j, v := range p {
		if v > p[arg] {
			arg = j
		}
		sumLog += math.Log(v)
	}
	l := -(1 - eps) * math.Log(p[y])
	if eps != 0 {
		l -= eps * sumLog / float64(len(p))
	}
	return l, arg == y
}
