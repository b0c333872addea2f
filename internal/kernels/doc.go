// Package kernels is resnetctl's float32 NCHW kernel library, shared by the
// inference runtime (infer) and the training runtime (train).
//
// It provides:
//
//   - Pool, a persistent worker pool that every kernel accepts (a nil *Pool
//     runs on the calling goroutine). Idle threads poll for up to 2 ms
//     (RESNETCTL_SPIN, a Go duration, changes it), yielding to other
//     goroutines, before they block: on a virtual machine a blocked thread
//     can take a millisecond to wake, longer than most kernel calls;
//   - Gemm, a packed BLIS/GotoBLAS-style single-precision matrix multiply
//     whose register-blocked micro-kernels are written in Go assembly for
//     AVX-512 (8x32 ZMM tile, plus 8x16 and narrow edge kernels) and
//     AVX2+FMA (6x16 YMM tile), selected at run time with
//     golang.org/x/sys/cpu, with a portable Go fallback; matrix-vector
//     shapes (m or n = 1) run as dot products/axpy;
//   - Conv, a convolution whose weights are packed once by NewConv:
//     1x1 stride-1 convolutions run as a GEMM straight over the NCHW input,
//     other shapes as an implicit im2col GEMM (the im2col matrix is built
//     directly in the packed GEMM panels with masked vector loads, strided
//     permutes or gathers, never materialised), and 3x3 stride-1
//     convolutions by Winograd F(4x4, 3x3) when that is faster (AlgoAuto;
//     AlgoGEMM forces the plain path). Bias, residual add and ReLU are fused
//     into the tile write-back. On 16- and 32-wide images the Winograd
//     transforms read and write whole image rows instead of gathering
//     (winorows.go);
//   - pooling (MaxPool2D, AvgPool2D, GlobalAvgPool), inference BatchNorm
//     (FoldBatchNorm turns its parameters into scale and shift), ReLU and
//     Add.
//
// All tensors are dense row-major float32 slices in NCHW order. Kernels take
// preallocated outputs and, where they need scratch memory, a caller-owned
// workspace (Conv.WorkspaceSize), so a runtime that plans its buffers once
// performs no allocation per call. Parameter structs have Validate methods
// that return errors; the compute functions document their preconditions
// and panic with a clear message when a slice is too short (a programmer
// error), before touching memory. A panic in a task of the worker pool
// reaches the goroutine that called Parallel (as a *TaskPanic), never a
// worker's own stack, where no one could recover it. Window arithmetic
// (dilated kernel sizes, padded extents, products of sizes) is
// overflow-checked (internal/checked).
//
// Accuracy: GEMM-based results match a float64 reference to a few float32
// roundings per sqrt(K) of the dot-product magnitude; Winograd results to
// about 1e-5 of it (tests allow 1e-3, the bound DESIGN.md sets); Winograd
// weight gradients to about 2.5e-6 of the largest element (direct: 4e-7).
//
// The micro-kernel path in use is reported by KernelPath; it is chosen once
// at start-up from the CPU features and can be overridden with
// SetKernelPath (tests force every path).
//
// Training: ConvTrain (forward, data gradient as a transposed convolution,
// weight gradient by Winograd F(4x4, 3x3) for 3x3 stride-1 layers and by
// im2row GEMMs otherwise), BatchNormTrain (batch statistics, fused residual
// add and ReLU with 1-bit masks) and the pooling, dense and loss helpers of
// train_ops.go. Their reductions are summed in an order fixed by the batch
// size, so results do not depend on the number of threads.
package kernels
