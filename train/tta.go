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

// logSumExp returns log Σ_j e^{z_j}, in float64, without overflow.
func logSumExp(z []float32) float64 {
	best := math.Inf(-1)
	for _, v := range z {
		best = math.Max(best, float64(v))
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v) - best)
	}
	return best + math.Log(s)
}

// logSoftmax64 writes the log-softmax of logits z into lp, in float64.
func logSoftmax64(lp []float64, z []float32) {
	lse := logSumExp(z)
	for j, v := range z {
		lp[j] = float64(v) - lse
	}
}

// logMeanExp2 returns log((e^a + e^b)/2) without leaving log space, so
// that a class both views give a vanishing probability keeps a finite
// log-probability (exp underflows below e^-745 in float64).
func logMeanExp2(a, b float64) float64 {
	hi, lo := math.Max(a, b), math.Min(a, b)
	return hi + math.Log1p(math.Exp(lo-hi)) - math.Ln2
}

// flipAverage writes into lp the log of the average of the softmax
// probabilities of logits z and fz (an image and its mirror image).
func flipAverage(lp, tmp []float64, z, fz []float32) {
	logSoftmax64(lp, z)
	logSoftmax64(tmp, fz)
	for j := range lp {
		lp[j] = logMeanExp2(lp[j], tmp[j])
	}
}

// crossEntropyLogProbs is crossEntropy computed from log-probabilities lp
// (of an average of softmax outputs, say): (1−ε)·(−lp_y) + ε·mean_j(−lp_j),
// and whether lp's top-1 class (the first of equals) is y.
func crossEntropyLogProbs(lp []float64, y int, eps float64) (float64, bool) {
	arg := 0
	var sum float64
	for j, v := range lp {
		if v > lp[arg] {
			arg = j
		}
		sum += v
	}
	l := -(1 - eps) * lp[y]
	if eps != 0 {
		l -= eps * sum / float64(len(lp))
	}
	return l, arg == y
}
