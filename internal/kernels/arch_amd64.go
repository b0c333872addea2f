//go:build amd64

package kernels

import (
	"sync"
	"syscall"

	"golang.org/x/sys/cpu"
)

//go:generate python3 gen_amd64.py

// Assembly micro-kernels and packing routines (arch_amd64.s). See
// kernelImpl for their contracts.

//go:noescape
func gemmKernel8x32AVX512(kc int, a, b, c *float32, ldc, mr, nr int, flags uintptr, bias, res *float32)

//go:noescape
func gemmKernel4x32AVX512(kc int, a, b, c *float32, ldc, mr, nr int, flags uintptr, bias, res *float32)

//go:noescape
func gemmKernel8x16AVX512(kc int, a, b, c *float32, ldc, mr, nr int, flags uintptr, bias, res *float32)

//go:noescape
func gemmKernel8xNAVX512(kc int, a, b, tile *float32, ncols int)

//go:noescape
func gemmKernel8x8SeqAVX512(kc int, a, b, tile *float32)

//go:noescape
func transpose16AVX512(dst, src *float32, ld, blocks int)

//go:noescape
func packPanels32AVX512(dst, src *float32, ld, rows, cols, panelStride int)

//go:noescape
func gatherRows32AVX512(dst, plane *float32, idx *int32, desc *uint64, rows, r0, khw, planeStride, idxStride int)

//go:noescape
func gemmKernel6x16AVX2(kc int, a, b, c *float32, ldc, mr, nr int, flags uintptr, bias, res *float32)

//go:noescape
func winoInput16AVX512(v, x *float32, inOff *int32, inMask *uint16, w, plane, inC, xiStride, icStride int, tmp *float32)

//go:noescape
func winoOutput16AVX512(out, m *float32, xiStride int, outOff *int32, outMask *uint16, ow, ohw, nOC, block int, flags uintptr, bias, res, tmp *float32)

//go:noescape
func winoGradOut16AVX512(m, dy *float32, xiStride int, outOff *int32, outMask *uint16, ow, ohw, nOC, ocStride int, tmp *float32)

//go:noescape
func winoInputRows16AVX512(v, x *float32, slot *int32, idx *int32, masks uintptr, inC, plane, xiStride, icStride int, tmp *float32)

//go:noescape
func winoGradOutRows16AVX512(m, dy *float32, slot *int32, idx *int32, xiStride, ohw, nOC, ocStride int, tmp *float32)

//go:noescape
func winoOutputRows16AVX512(out, m *float32, xiStride int, slot *int32, idx *int32, ohw, nOC, block int, flags uintptr, bias, res, tmp *float32)

//go:noescape
func dot4x4AVX512(c *float32, ldc int, a, b *float32, ld, k int)

//go:noescape
func dotAVX2(x, y *float32, n int) float32

//go:noescape
func maxAccAVX2(dst, src *float32, n int)

//go:noescape
func axpyAVX2(a float32, x, y *float32, n int)

//go:noescape
func bnSumSqAVX2(x *float32, n int) (s, s2 float32)

//go:noescape
func bnAffineAVX2(out, x, res *float32, n int, scale, shift float32, flags int)

//go:noescape
func bnWriteMaskAVX2(words *uint64, out *float32, nw int)

//go:noescape
func bnMaskedSumsAVX2(dy, x *float32, words *uint64, nw int, scratch *float32) (s, sx float32)

//go:noescape
func bnGradApplyBitsAVX2(dx, dy, x *float32, words *uint64, nw int, acc *float32, k0, k1, k2 float32)

// hasFMA256 enables the AVX2+FMA vector helpers (dot, axpy).
var hasFMA256 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dotVec returns sum x[i]*y[i] over len(x) (len(y) >= len(x)).
func dotVec(x, y []float32) float32 {
	n := len(x) &^ 31
	var s float32
	if hasFMA256 && n > 0 && useAsmVec() {
		s = dotAVX2(&x[0], &y[0], n)
	} else {
		n = 0
	}
	return s + dotGo(x[n:], y[n:len(x)])
}

// maxAcc sets dst[i] = max(dst[i], src[i]) over len(dst) (len(src) >=
// len(dst)), NaN if either is NaN.
func maxAcc(dst, src []float32) {
	n := len(dst) &^ 7
	if hasFMA256 && n > 0 && useAsmVec() {
		maxAccAVX2(&dst[0], &src[0], n)
	} else {
		n = 0
	}
	maxAccGo(dst[n:], src[n:len(dst)])
}

// axpyVec computes y[i] += a*x[i] over len(y) (len(x) >= len(y)).
func axpyVec(a float32, x, y []float32) {
	n := len(y) &^ 15
	if hasFMA256 && n > 0 && useAsmVec() {
		axpyAVX2(a, &x[0], &y[0], n)
	} else {
		n = 0
	}
	axpyGo(a, x[n:len(y)], y[n:])
}

// useAsmVec reports whether the vector helpers may use assembly: not when
// the generic path is forced (so that tests cover the pure-Go code).
func useAsmVec() bool { return activeKernel.Load() != genericKernel }

// avx512Kernel: 8x32 register tile (16 ZMM accumulators), M and N edges
// handled in the kernel, im2col panels built with masked loads (stride-1
// windows) or VGATHERDPS.
var avx512Kernel = &kernelImpl{
	name: "avx512", mr: 8, nr: 32,
	full: gemmKernel8x32AVX512, maskedM: true, maskedN: true,
	half:        gemmKernel8x16AVX512,
	short:       gemmKernel4x32AVX512,
	narrow:      gemmKernel8xNAVX512,
	narrowSeq:   gemmKernel8x8SeqAVX512,
	packPanels:  packPanels32AVX512,
	transpose16: transpose16AVX512,
	gatherRows:  gatherRows32AVX512,
	winoIn:      winoInput16AVX512,
	winoOut:     winoOutput16AVX512,
	winoGradOut: winoGradOut16AVX512,
	dot4x4:      dot4x4AVX512,

	winoInRows:      winoInputRows16AVX512,
	winoGradOutRows: winoGradOutRows16AVX512,
	winoOutRows:     winoOutputRows16AVX512,
}

// avx2Kernel: 6x16 register tile (12 YMM accumulators); edge tiles go
// through the scratch tile, packing is in Go.
var avx2Kernel = &kernelImpl{
	name: "avx2", mr: 6, nr: 16,
	full: gemmKernel6x16AVX2,
}

// archKernels returns the assembly paths usable on this CPU, best first.
func archKernels() []*kernelImpl {
	var ks []*kernelImpl
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernel)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernel)
	}
	return ks
}

// bnBlock is how many values the BatchNorm helpers sum in float32 before
// adding into float64 (16 lanes, so 64 terms a lane, as sumAndSquaresGo's
// blocks).
const bnBlock = 1024

// sumAndSquares returns the sums of x and x².
func sumAndSquares(x []float32) (s, s2 float64) {
	if !hasFMA256 || !useAsmVec() {
		return sumAndSquaresGo(x)
	}
	for len(x) >= 16 {
		n := min(bnBlock, len(x)&^15)
		a, b := bnSumSqAVX2(&x[0], n)
		s += float64(a)
		s2 += float64(b)
		x = x[n:]
	}
	a, b := sumAndSquaresGo(x)
	return s + a, s2 + b
}

// affinePlane computes out = act(x·scale + shift + res) (res may be nil).
// ReLU keeps NaN, as ReLU does.
func affinePlane(out, x, res []float32, scale, shift float32, relu bool) {
	n := len(out) &^ 7
	if !hasFMA256 || !useAsmVec() || n == 0 {
		affinePlaneGo(out, x, res, scale, shift, relu)
		return
	}
	x = x[:len(out)]
	flags := 0
	var rp *float32
	if res != nil {
		res = res[:len(out)]
		rp, flags = &res[0], 1
	}
	if relu {
		flags |= 2
	}
	bnAffineAVX2(&out[0], &x[0], rp, n, scale, shift, flags)
	if res != nil {
		res = res[n:]
	}
	affinePlaneGo(out[n:], x[n:], res, scale, shift, relu)
}

// writeMask sets bit i of words (bit i%64 of word i/64) when out[i] > 0
// (or is NaN); out is a ReLU output.
func writeMask(words []uint64, out []float32) {
	full := min(len(words), len(out)/64)
	if hasFMA256 && useAsmVec() && full > 0 {
		bnWriteMaskAVX2(&words[0], &out[0], full)
	} else {
		full = 0
	}
	writeMaskGo(words[full:], out[full*64:])
}

// maskedSums returns the sums of dy' and dy'·x, dy' being dy masked by the
// bits; dy' is stored in scratch if it is not nil.
func maskedSums(dy, x []float32, words []uint64, scratch []float32) (s, sx float64) {
	if !hasFMA256 || !useAsmVec() {
		return maskedSumsGo(dy, x, words, scratch)
	}
	n := len(dy)
	x = x[:n]
	full := min(len(words), n/64)
	for w0 := 0; w0 < full; w0 += bnBlock / 64 {
		nw := min(bnBlock/64, full-w0)
		var sp *float32
		if scratch != nil {
			sp = &scratch[w0*64]
		}
		a, b := bnMaskedSumsAVX2(&dy[w0*64], &x[w0*64], &words[w0], nw, sp)
		s += float64(a)
		sx += float64(b)
	}
	if full*64 < n {
		var sc []float32
		if scratch != nil {
			sc = scratch[full*64:]
		}
		a, b := maskedSumsGo(dy[full*64:], x[full*64:], words[full:], sc)
		s += a
		sx += b
	}
	return s, sx
}

// gradApplyBits computes dx = k0·dy' + k1·x + k2 (+ acc), dy' being dy
// masked by the bits.
func gradApplyBits(dx, dy, x []float32, words []uint64, acc []float32, k0, k1, k2 float32) {
	n := len(dx)
	full := min(len(words), n/64)
	if !hasFMA256 || !useAsmVec() || full == 0 {
		gradApplyBitsGo(dx, dy, x, words, acc, k0, k1, k2)
		return
	}
	dy, x = dy[:n], x[:n]
	var ap *float32
	if acc != nil {
		acc = acc[:n]
		ap = &acc[0]
	}
	bnGradApplyBitsAVX2(&dx[0], &dy[0], &x[0], &words[0], full, ap, k0, k1, k2)
	if acc != nil {
		acc = acc[full*64:]
	}
	gradApplyBitsGo(dx[full*64:], dy[full*64:], x[full*64:], words[full:], acc, k0, k1, k2)
}

//go:noescape
func fakeQuantAVX2(dst, src *float32, n int, s, lo, hi float32)

func fakeQuant(dst, src []float32, s, lo, hi float32) {
	n := len(src) &^ 7
	if n > 0 && hasFMA256 && useAsmVec() {
		fakeQuantAVX2(&dst[0], &src[0], n, s, lo, hi)
		dst, src = dst[n:], src[n:]
	}
	fakeQuantGo(dst, src, s, lo, hi)
}

//go:noescape
func qgemm8x32VNNI(kg int, a *int8, b *uint8, offs *int32, ep *qEpilogue)

//go:noescape
func qpack32AVX512(panel, src *uint8, offs *int32, kg int, pix *int32)

//go:noescape
func quant4VNNI(dst *uint8, s0, s1, s2, s3 *float32, n int, inv float32, z int32)

// hasVNNI512 reports AVX-512 VNNI (and the AVX-512 F/BW the int8 kernels
// also use).
var hasVNNI512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI

func hasQConv() bool { return hasVNNI512 && cpu.X86.HasBMI2 && useAsmVec() }

// qgemmTile computes and stores one 8x32 tile (see qgemm8x32VNNI).
func qgemmTile(kg int, a []int8, b []byte, offs []int32, ep *qEpilogue) {
	if hasQConv() {
		qgemm8x32VNNI(kg, &a[0], &b[0], &offs[0], ep)
		return
	}
	qgemmTileGo(kg, a, b, offs, ep)
}

func quant4(dst []byte, s0, s1, s2, s3 []float32, n int, inv float32, z int32) {
	if hasQConv() && n > 0 {
		_ = dst[4*n-1]
		_, _, _, _ = s0[n-1], s1[n-1], s2[n-1], s3[n-1]
		quant4VNNI(&dst[0], &s0[0], &s1[0], &s2[0], &s3[0], n, inv, z)
		return
	}
	quant4Go(dst, s0, s1, s2, s3, n, inv, z)
}

// qpack32 gathers a tile's panel with qpack32AVX512 when the CPU has it.
func qpack32(panel, src []byte, offs []int32, pix *[32]int32) bool {
	if !hasQConv() {
		return false
	}
	_ = panel[len(offs)*128-1]
	qpack32AVX512(&panel[0], &src[0], &offs[0], len(offs), &pix[0])
	return true
}

//go:noescape
func qepi8AVX512(acc *int32, ep *qEpilogue, groups int)

//go:noescape
func qamx32x32(n int, a *int8, b *uint8, boffs *int32, bstride int, acc *int32, cfg *byte, nb, astep, bstep int)

// hasAMX reports whether QConv may use AMX tiles (AMX-INT8 and the
// kernel's permission for the tile data, asked once).
func hasAMX() bool {
	if !cpu.X86.HasAMXTile || !cpu.X86.HasAMXInt8 || !hasQConv() {
		return false
	}
	amxOnce.Do(func() {
		// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): Linux keeps
		// AMX state off until a process asks.
		_, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, 0x1023, 18, 0)
		amxOK = errno == 0
	})
	return amxOK
}

var (
	amxOnce sync.Once
	amxOK   bool
)

// qamxTile runs qamx32x32 over nb blocks: weights astep bytes apart,
// inputs bstep bytes apart (consecutive blocks of 32 channels: astep
// n*2048, bstep 0; of 32 pixels: astep 0, bstep 128).
func qamxTile(n int, a []int8, b []byte, boffs []int32, bstride int, acc []int32, cfg *[64]byte, nb, astep, bstep int) {
	_ = a[(nb-1)*astep+n*2048-1]
	_ = acc[nb*1024-1]
	qamx32x32(n, &a[0], &b[0], &boffs[0], bstride, &acc[0], &cfg[0], nb, astep, bstep)
}

// qepi8 runs the epilogue over groups groups of 8 rows of acc (see
// qepi8AVX512).
func qepi8(acc []int32, ep *qEpilogue, groups int) {
	_ = acc[groups*256-1]
	qepi8AVX512(&acc[0], ep, groups)
}

//go:noescape
func qamx16x64(n int, a *int8, b *uint8, boffs *int32, bstride int, acc *int32, cfg *byte, nb int)

// qamxTile16 runs qamx16x64 over nb consecutive blocks of 64 pixels.
func qamxTile16(n int, a []int8, b []byte, boffs []int32, bstride int, acc []int32, cfg *[64]byte, nb int) {
	_ = acc[nb*1024-1]
	qamx16x64(n, &a[0], &b[0], &boffs[0], bstride, &acc[0], &cfg[0], nb)
}

//go:noescape
func copyRowsAVX512(dst, src *byte, rows, n, dstStride, srcStride int)

// copyRows copies rows rows of n bytes, src rows srcStride apart, dst
// rows dstStride apart.
func copyRows(dst, src []byte, rows, n, dstStride, srcStride int) {
	if rows == 0 || n == 0 {
		return
	}
	_ = dst[(rows-1)*dstStride+n-1]
	_ = src[(rows-1)*srcStride+n-1]
	if hasQConv() {
		copyRowsAVX512(&dst[0], &src[0], rows, n, dstStride, srcStride)
		return
	}
	copyRowsGo(dst, src, rows, n, dstStride, srcStride)
}
