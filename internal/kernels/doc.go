// Package kernels is resnetctl's float32 NCHW kernel library, shared by the
// inference runtime (infer) and the training runtime (train).
//
// It provides:
//
//   - Pool, a persistent worker pool that every kernel accepts (a nil *Pool
//     runs on the calling goroutine);
//   - Gemm, a packed BLIS/GotoBLAS-style single-precision matrix multiply
//     whose register-blocked micro-kernels are written in Go assembly for
//     AVX-512 and AVX2+FMA and selected at run time, with a portable Go
//     fallback;
//   - Conv, a convolution whose weights are packed once by NewConv and whose
//     Forward runs 1x1 stride-1 convolutions as a GEMM straight over the NCHW
//     input and every other shape as an implicit im2col GEMM (the im2col
//     matrix is gathered directly into the packed GEMM panels and never
//     materialised), with bias, residual add and ReLU fused into the tile
//     write-back;
//   - pooling (MaxPool2D, AvgPool2D, GlobalAvgPool), inference BatchNorm,
//     ReLU and Add.
//
// All tensors are dense row-major float32 slices in NCHW order. Kernels take
// preallocated outputs and, where they need scratch memory, a caller-owned
// workspace, so that a runtime that plans its buffers once performs no
// allocation per call. Parameter structs have Validate methods that return
// errors; the compute functions document their preconditions and panic with
// a clear message when a slice is too short (a programmer error), before
// touching memory.
//
// The micro-kernel in use is reported by KernelPath; it is chosen once at
// start-up from the CPU features (golang.org/x/sys/cpu).
package kernels
