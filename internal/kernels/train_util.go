package kernels

import "fmt"

// Helpers of the training kernels. They are deliberately separate from the
// inference kernels' own helpers, so that the training files depend only on
// the package's exported API (Pool, Gemm, Conv, the pooling kernels) and
// ConvParams/Pool2DParams, and keep building while those files change.

// trCheck panics with a clear message if s is shorter than want.
func trCheck(op, name string, s []float32, want int) {
	if len(s) < want {
		panic(fmt.Sprintf("kernels.%s: %s has %d values, want at least %d", op, name, len(s), want))
	}
}

// trGrow returns s resliced to n, reallocated if too small.
func trGrow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// trSplit returns the i-th of parts contiguous, nearly equal sub-ranges of
// [0, n).
func trSplit(n, parts, i int) (lo, hi int) {
	return i * n / parts, (i + 1) * n / parts
}

// trParallelMin is the work (elements touched) below which a training
// kernel runs on the calling goroutine.
const trParallelMin = 1 << 15

// trConvNorm returns c with the zero-means-one fields set to 1.
func trConvNorm(c ConvParams) ConvParams {
	for _, v := range []*int{&c.StrideH, &c.StrideW, &c.DilationH, &c.DilationW, &c.Group} {
		if *v == 0 {
			*v = 1
		}
	}
	return c
}

// trPoolNorm returns p with zero strides and dilations set to 1.
func trPoolNorm(p Pool2DParams) Pool2DParams {
	for _, v := range []*int{&p.StrideH, &p.StrideW, &p.DilationH, &p.DilationW} {
		if *v == 0 {
			*v = 1
		}
	}
	return p
}

// trWinograd reports whether NewConvAlgo accepts AlgoWinograd for c
// (normalized): 3x3, stride 1, undilated, ungrouped.
func trWinograd(c ConvParams) bool {
	return c.KH == 3 && c.KW == 3 && c.StrideH == 1 && c.StrideW == 1 && c.DilationH == 1 && c.DilationW == 1 && c.Group == 1
}

// trTaps returns the taps [k0, k1) of a window starting at start with the
// given dilation and k taps whose positions start+t*dil lie in [0, size).
func trTaps(start, dil, k, size int) (k0, k1 int) {
	if start < 0 {
		k0 = (-start + dil - 1) / dil
	}
	k1 = k
	if last := start + (k-1)*dil; last >= size {
		k1 = k - (last-size)/dil - 1
	}
	if k1 < k0 {
		k1 = k0
	}
	return k0, k1
}
