package kernels

import (
	"math"
	"runtime"
	"testing"
)

// TestNewConvBytesBound: NewConvBytes bounds what NewConv allocates
// (measured with runtime.MemStats), on GEMM, pointwise and Winograd
// geometries, and stays within a small factor of it.
func TestNewConvBytesBound(t *testing.T) {
	for _, prm := range []ConvParams{
		{InC: 3, InH: 32, InW: 32, OutC: 16, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{InC: 64, InH: 16, InW: 16, OutC: 64, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{InC: 64, InH: 8, InW: 8, OutC: 128, KH: 1, KW: 1},
		{InC: 3, InH: 224, InW: 224, OutC: 64, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadTop: 3, PadLeft: 3, PadBottom: 3, PadRight: 3},
		{InC: 32, InH: 20, InW: 20, OutC: 32, KH: 3, KW: 3, Group: 32, DilationH: 2, DilationW: 2},
	} {
		w := make([]float32, prm.OutC*prm.InC/max(prm.Group, 1)*prm.KH*prm.KW)
		b := make([]float32, prm.OutC)
		for _, algo := range []ConvAlgo{AlgoAuto, AlgoGEMM, AlgoWinograd} {
			if algo == AlgoWinograd && !winoUsable(prm.normalized()) {
				continue
			}
			runtime.GC() // twice: an empty pool of Winograd scratch, the worst case
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c, err := NewConvAlgo(prm, w, b, algo)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			got, bound := after.TotalAlloc-before.TotalAlloc, prm.NewConvAlgoBytes(algo)
			if got > uint64(bound) || uint64(bound) > 4*got+1<<16 {
				t.Errorf("%+v %v: NewConvAlgo allocated %d bytes, NewConvAlgoBytes says %d", prm, algo, got, bound)
			}
			_ = c
		}
	}
	huge := ConvParams{InC: 1 << 20, InH: 1, InW: 1, OutC: 1 << 20, KH: 1 << 20, KW: 1 << 20}
	if got := huge.NewConvBytes(); got != math.MaxInt {
		t.Errorf("overflowing NewConvBytes = %d, want MaxInt", got)
	}
}

// TestConvHugeDilation: a dilation whose dilated kernel overflows int is
// refused by Validate (it wrapped around to a plausible output size
// before), and pooling likewise.
func TestConvHugeDilation(t *testing.T) {
	for _, d := range []int{1 << 62, math.MaxInt, 1 << 40} {
		prm := ConvParams{InC: 1, InH: 4, InW: 4, OutC: 1, KH: 3, KW: 3, DilationH: d}
		if err := prm.Validate(); err == nil {
			t.Errorf("dilation %d: Validate accepted it (OutH %d)", d, prm.OutH())
		}
		pp := Pool2DParams{KH: 5, KW: 1, DilationH: d}
		if err := pp.Validate(4, 4); err == nil {
			oh, ow := pp.OutSize(4, 4)
			t.Errorf("pool dilation %d: Validate accepted it (out %dx%d)", d, oh, ow)
		}
	}
}
