package kernels

import (
	"fmt"
	"sync/atomic"
)

// Flags passed to a micro-kernel; they select what happens to the register
// tile on its way back to C. The steps run in this order.
const (
	flagAccum uintptr = 1 << iota // add the existing C tile (beta = 1)
	flagBias                      // add bias[row] to every element of the row
	flagRes                       // add the residual tile (same layout as C)
	flagReLU                      // max(x, 0), NaN propagates
)

// GEMM cache blocking shared by all paths: a K block of kc rows and an N
// block of nc columns form the packed B panel held in L2 (256*512*4 = 512 KiB);
// the A micro-panel (mr*kc) stays in L1 while the kernel sweeps the B panel.
const (
	blockK = 256
	blockN = 512
)

// kernelImpl is one micro-kernel path: its register-tile shape and the
// functions (assembly or Go) implementing the hot loops.
type kernelImpl struct {
	name   string
	mr, nr int

	// full computes the mr x nr tile from packed A (kc x mr panel) and
	// packed B (kc x nr panel) and writes its first rows x cols to c (row
	// stride ldc), applying flags. rows must be mr unless maskedM and cols
	// must be nr unless maskedN; only the rows x cols elements of C (and
	// of the residual) are touched. With flags == 0 it just stores the raw
	// product. nil means the Go micro-kernel is used via a scratch tile.
	full             func(kc int, a, b, c *float32, ldc, rows, cols int, flags uintptr, bias, res *float32)
	maskedM, maskedN bool

	// half, if set, is a variant of full for tiles of at most nr/2
	// columns (same packed panels), doing half the work.
	half func(kc int, a, b, c *float32, ldc, rows, cols int, flags uintptr, bias, res *float32)

	// short, if set, is a variant of full for tiles of at most mr/2 rows
	// (small convolution groups), doing half the work.
	short func(kc int, a, b, c *float32, ldc, rows, cols int, flags uintptr, bias, res *float32)

	// narrow, if set, computes the raw product of a packed A panel with
	// the first ncols (< 16) columns of a packed B panel into a
	// column-major mr x ncols tile, at about 1/32 of a full tile's cost
	// per column; the tile is then merged by finishTileT.
	narrow func(kc int, a, b, tile *float32, ncols int)

	// narrowSeq, if set, is like narrow for the first 8 columns but sums
	// each column in k order like full does, so its results are
	// bit-identical to full's. narrow's four partial sums are used only
	// where the same columns always take it (the global tail of a GEMM);
	// Winograd blocks, whose boundaries depend on the thread count, use
	// narrowSeq so that results do not.
	narrowSeq func(kc int, a, b, tile *float32)

	// packPanels packs rows x cols of a row-major matrix into all the
	// nr-wide panels of a block at once, row by row (see
	// packPanels32AVX512). nil means per-panel packing.
	packPanels func(dst, src *float32, ld, rows, cols, panelStride int)

	// transpose16, if set, transposes a 16-row block of a row-major
	// matrix into half of a 32-wide packed panel (see transpose16AVX512);
	// it packs transposed B operands.
	transpose16 func(dst, src *float32, ld, blocks int)

	// gatherRows builds `rows` rows of an im2col panel (see packIm2col and
	// gatherRows32AVX512). nil means the Go version.
	gatherRows func(dst, plane *float32, idx *int32, desc *uint64, rows, r0, khw, planeStride, idxStride int)

	// winoIn, winoOut and winoGradOut are the Winograd F(4x4, 3x3)
	// transforms of 16 tiles (see winoInputGo, winoOutputGo and
	// winoGradOutGo for what they compute); nil means the Go versions. Auto
	// algorithm selection only picks Winograd for paths that have them.
	winoIn      func(v, x *float32, inOff *int32, inMask *uint16, w, plane, inC, xiStride, icStride int, tmp *float32)
	winoOut     func(out, m *float32, xiStride int, outOff *int32, outMask *uint16, ow, ohw, nOC, block int, flags uintptr, bias, res, tmp *float32)
	winoGradOut func(m, dy *float32, xiStride int, outOff *int32, outMask *uint16, ow, ohw, nOC, ocStride int, tmp *float32)
	// winoInRows, winoGradOutRows and winoOutRows are the same transforms
	// for a 16-tile group of whole tile rows (see winoRows); nil means the
	// general versions.
	winoInRows      func(v, x *float32, slot *int32, idx *int32, masks uintptr, inC, plane, xiStride, icStride int, tmp *float32)
	winoGradOutRows func(m, dy *float32, slot *int32, idx *int32, xiStride, ohw, nOC, ocStride int, tmp *float32)
	winoOutRows     func(out, m *float32, xiStride int, slot *int32, idx *int32, ohw, nOC, block int, flags uintptr, bias, res, tmp *float32)
	// dot4x4 adds a 4x4 block of A B^T with depth-contiguous operands
	// (see dot4x4Go); nil means the Go version.
	dot4x4 func(c *float32, ldc int, a, b *float32, ld, k int)
}

// kernelPaths lists the paths this CPU supports, best first; the generic Go
// path is always last. Filled in by init functions.
var kernelPaths []*kernelImpl

// genericKernel is the portable Go path.
var genericKernel = &kernelImpl{name: "generic", mr: 4, nr: 4}

// activeKernel is the path used by Gemm and by NewConv.
var activeKernel atomic.Pointer[kernelImpl]

// init selects the best path this CPU supports.
func init() {
	kernelPaths = append(archKernels(), genericKernel)
	activeKernel.Store(kernelPaths[0])
}

// KernelPath returns the name of the micro-kernel path in use: "avx512",
// "avx2" or "generic".
func KernelPath() string { return activeKernel.Load().name }

// KernelPaths returns the names of all paths this CPU can run, best first.
func KernelPaths() []string {
	names := make([]string, len(kernelPaths))
	for i, k := range kernelPaths {
		names[i] = k.name
	}
	return names
}

// SetKernelPath selects the micro-kernel path by name for subsequent Gemm
// and NewConv calls (an existing Conv keeps the path it was packed for). It
// exists for tests and benchmarks; it returns an error if this CPU cannot run
// the path.
func SetKernelPath(name string) error {
	for _, k := range kernelPaths {
		if k.name == name {
			activeKernel.Store(k)
			return nil
		}
	}
	return fmt.Errorf("kernels: kernel path %q not available on this CPU (have %v)", name, KernelPaths())
}
