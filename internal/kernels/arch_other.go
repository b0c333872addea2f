//go:build !amd64

package kernels

// archKernels returns the assembly paths usable on this CPU: none off amd64.
func archKernels() []*kernelImpl { return nil }

// dotVec returns sum x[i]*y[i] over len(x) (len(y) >= len(x)).
func dotVec(x, y []float32) float32 { return dotGo(x, y) }

// axpyVec computes y[i] += a*x[i] over len(y) (len(x) >= len(y)).
func axpyVec(a float32, x, y []float32) { axpyGo(a, x, y) }

// maxAcc sets dst[i] = max(dst[i], src[i]), NaN if either is NaN.
func maxAcc(dst, src []float32) { maxAccGo(dst, src) }

func sumAndSquares(x []float32) (s, s2 float64) { return sumAndSquaresGo(x) }

func affinePlane(out, x, res []float32, scale, shift float32, relu bool) {
	affinePlaneGo(out, x, res, scale, shift, relu)
}

func writeMask(words []uint64, out []float32) { writeMaskGo(words, out) }

func maskedSums(dy, x []float32, words []uint64, scratch []float32) (s, sx float64) {
	return maskedSumsGo(dy, x, words, scratch)
}

func gradApplyBits(dx, dy, x []float32, words []uint64, acc []float32, k0, k1, k2 float32) {
	gradApplyBitsGo(dx, dy, x, words, acc, k0, k1, k2)
}

func fakeQuant(dst, src []float32, s, lo, hi float32) { fakeQuantGo(dst, src, s, lo, hi) }

func hasQConv() bool { return false }

func qgemmTile(kg int, a []int8, b []byte, offs []int32, ep *qEpilogue) {
	qgemmTileGo(kg, a, b, offs, ep)
}

func qpack32(panel, src []byte, offs []int32, pix *[32]int32) bool { return false }

func quant4(dst []byte, s0, s1, s2, s3 []float32, n int, inv float32, z int32) {
	quant4Go(dst, s0, s1, s2, s3, n, inv, z)
}

func hasAMX() bool { return false }

func qamxTile(n int, a []int8, b []byte, boffs []int32, bstride int, acc []int32, cfg *[64]byte, nb int) {
}

func qepi8(acc []int32, ep *qEpilogue, groups int) {}

func qamxTile16(n int, a []int8, b []byte, boffs []int32, bstride int, acc []int32, cfg *[64]byte, nb int) {
}

func copyRows(dst, src []byte, rows, n, dstStride, srcStride int) {
	copyRowsGo(dst, src, rows, n, dstStride, srcStride)
}
