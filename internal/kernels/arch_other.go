//go:build !amd64

package kernels

// archKernels returns the assembly paths usable on this CPU: none off amd64.
func archKernels() []*kernelImpl { return nil }

// dotVec returns sum x[i]*y[i] over len(x) (len(y) >= len(x)).
func dotVec(x, y []float32) float32 { return dotGo(x, y) }

// axpyVec computes y[i] += a*x[i] over len(y) (len(x) >= len(y)).
func axpyVec(a float32, x, y []float32) { axpyGo(a, x, y) }
