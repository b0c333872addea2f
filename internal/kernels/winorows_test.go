package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestWinoRowsMatchGathers runs every convolution the row transforms
// handle through both the row transforms and the general (gather) ones
// and requires bit-identical results: forward with every epilogue (bias,
// residual, ReLU, accumulation in place) on several thread counts and
// block splits, and the Winograd weight gradient. It also checks the row
// layout is used exactly where it applies.
func TestWinoRowsMatchGathers(t *testing.T) {
	if activeKernel.Load().winoInRows == nil {
		t.Skip("the kernel path has no row transforms (they are AVX-512 only)")
	}
	r := rand.New(rand.NewPCG(11, 12))
	pools := []*Pool{nil, NewPool(2), NewPool(3)}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	for _, tc := range []struct {
		inC, outC, h, w, n int
	}{
		{16, 16, 32, 32, 3}, // 2 tile rows of 8 per group
		{8, 24, 16, 16, 2},  // 4 tile rows of 4
		{32, 32, 16, 32, 1},
		{5, 7, 32, 16, 2},
		{64, 64, 16, 16, 5}, // 80 tiles: ranges split at non-multiples of 16
	} {
		p := ConvParams{InC: tc.inC, InH: tc.h, InW: tc.w, OutC: tc.outC, KH: 3, KW: 3,
			PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}
		p = trConvNorm(p)
		if newWinoRows(p) == nil {
			t.Fatalf("%+v: no row layout", p)
		}
		x := randSlice(r, tc.n*p.InC*p.InH*p.InW)
		w := randSlice(r, p.OutC*p.InC*9)
		bias := randSlice(r, p.OutC)
		outLen := tc.n * p.OutC * p.InH * p.InW
		res := randSlice(r, outLen)
		for _, ep := range []struct {
			bias, res, relu, inPlace bool
		}{{false, false, false, false}, {true, true, true, false}, {true, false, true, true}, {false, true, false, false}} {
			for _, pool := range pools {
				name := fmt.Sprintf("%dx%dx%d->%d batch %d %+v threads %d", p.InC, p.InH, p.InW, p.OutC, tc.n, ep, pool.Threads())
				var b []float32
				if ep.bias {
					b = bias
				}
				run := func(rows bool) []float32 {
					c, err := NewConvAlgo(p, w, b, AlgoWinograd)
					if err != nil {
						t.Fatal(err)
					}
					if c.wino.rows == nil {
						t.Fatalf("%s: the Winograd conv has no row layout", name)
					}
					if !rows {
						c.wino.rows = nil
					}
					out := make([]float32, outLen)
					var rs []float32
					if ep.res {
						rs = res
					}
					if ep.inPlace {
						copy(out, res)
						rs = out
					}
					c.Forward(pool, tc.n, x, rs, ep.relu, out, make([]float32, c.WorkspaceSize(tc.n, pool.Threads())))
					return out
				}
				got, want := run(true), run(false)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s: element %d: rows %g, gathers %g", name, i, got[i], want[i])
					}
				}
			}
		}
		// Weight gradient.
		dy := randSlice(r, outLen)
		grad := func(rows bool) []float32 {
			c, err := NewConvTrain(p, AlgoWinograd)
			if err != nil {
				t.Fatal(err)
			}
			if !rows {
				c.noRows = true
			}
			dw := make([]float32, len(w))
			c.BackwardFilter(pools[1], tc.n, x, dy, dw, nil)
			return dw
		}
		got, want := grad(true), grad(false)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%+v weight gradient element %d: rows %g, gathers %g", p, i, got[i], want[i])
			}
		}
	}
	// Shapes without the layout.
	for _, p := range []ConvParams{
		trConv(16, 8, 16, 3, 1),  // 8 wide
		trConv(16, 28, 16, 3, 1), // 28 wide
		trConv(16, 32, 16, 3, 2), // strided
		{InC: 4, InH: 32, InW: 32, OutC: 4, KH: 3, KW: 3, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1, Group: 1}, // no padding
		trConv(16, 32, 16, 1, 1), // 1x1
		{InC: 4, InH: 20, InW: 32, OutC: 4, KH: 3, KW: 3, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1, Group: 1, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}, // 5 tile rows: groups would straddle images
	} {
		if newWinoRows(trConvNorm(p)) != nil {
			t.Errorf("%+v: row layout where none applies", p)
		}
	}
}
