package onnxmodel

import "github.com/resnetctl/resnetctl/internal/kernels"

// FoldConvBN folds a BatchNormalization into the convolution (or dense
// layer) before it: with kernels.FoldBatchNorm's per-channel scale and
// shift (the one place their formula is written), W'[o] = W[o]·scale[o]
// and b'[o] = b[o]·scale[o] + shift[o], in float64. w holds len(gamma)
// rows of output channels; bias may be nil (zero).
func FoldConvBN(w, bias, gamma, beta, mean, variance []float32, eps float32) (wf, bf []float32) {
	outC := len(gamma)
	scale, shift := make([]float32, outC), make([]float32, outC)
	kernels.FoldBatchNorm(gamma, beta, mean, variance, eps, scale, shift)
	per := len(w) / max(outC, 1)
	wf, bf = make([]float32, len(w)), make([]float32, outC)
	for o := range outC {
		s := float64(scale[o])
		for i := o * per; i < (o+1)*per; i++ {
			wf[i] = float32(float64(w[i]) * s)
		}
		b := 0.0
		if bias != nil {
			b = float64(bias[o])
		}
		bf[o] = float32(b*s + float64(shift[o]))
	}
	return wf, bf
}
