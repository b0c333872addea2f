//go:build amd64

package kernels

import "golang.org/x/sys/cpu"

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
func winoInput16AVX512(v, x *float32, inOff *int32, inMask *uint16, w, plane, inC, xiStride int, tmp *float32)

//go:noescape
func winoOutput16AVX512(out, m *float32, xiStride int, outOff *int32, outMask *uint16, ow, ohw, nOC, block int, flags uintptr, bias, res, tmp *float32)

//go:noescape
func dotAVX2(x, y *float32, n int) float32

//go:noescape
func axpyAVX2(a float32, x, y *float32, n int)

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
