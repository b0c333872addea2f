package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Tolerance. A float32 dot product of length k accumulated in any order
// (blocked, FMA or not) has an error bounded by about k*u*sum|a_i*b_i| in the
// worst case (u = 2^-24) and, for the independent rounding errors of random
// data, by a small multiple of sqrt(k)*u*sum|a_i*b_i| with overwhelming
// probability. We check
//
//	|got - ref| <= 8 * sqrt(k+2) * u * (sum|a_i*b_i| + |bias| + |residual|) + 1e-30
//
// against a float64 reference; the +2 covers the bias and residual
// additions. Scaling by sum|a_i*b_i| (not |ref|) keeps the check meaningful
// where cancellation makes ref small; a layout or indexing bug produces
// errors of order |a_i*b_i|, i.e. many orders of magnitude above this bound.
const tolFactor = 8

const unitRoundoff = 1.0 / (1 << 24)

func tolerance(k int, absSum float64) float64 {
	return tolFactor*math.Sqrt(float64(k+2))*unitRoundoff*absSum + 1e-30
}

// forEachPath runs f once per micro-kernel path this CPU supports, with
// that path forced, and restores the default path afterwards.
func forEachPath(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	def := KernelPath()
	defer func() {
		if err := SetKernelPath(def); err != nil {
			t.Fatal(err)
		}
	}()
	for _, name := range KernelPaths() {
		if err := SetKernelPath(name); err != nil {
			t.Fatal(err)
		}
		t.Run(name, f)
	}
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.Float64()*2 - 1)
	}
	return s
}

// checkClose compares got with ref elementwise using the per-element bound
// tol[i], reporting at most a few mismatches.
func checkClose(t *testing.T, what string, got []float32, ref, tol []float64) {
	t.Helper()
	bad := 0
	for i := range ref {
		d := math.Abs(float64(got[i]) - ref[i])
		if !(d <= tol[i]) {
			if bad < 5 {
				t.Errorf("%s: element %d = %g, want %g (diff %.3g > tol %.3g)", what, i, got[i], ref[i], d, tol[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements out of tolerance", what, bad, len(ref))
	}
}
