package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Winograd tolerance: the F(4x4, 3x3) transforms multiply inputs by up to
// 4*4 (B^T) and 8*8 (A^T) and weights by fractions like 1/24 before the
// results cancel, amplifying float32 rounding by roughly two orders of
// magnitude over a direct dot product. We allow 1e-3 relative to the error
// scale (sum of |w*x| + |bias| + |residual|), the bound DESIGN.md sets for
// Winograd; measured errors are around 1e-5 of that scale.
const winoTol = 1e-3

func winoCases() []convCase {
	c := func(name string, inC, h, w, outC, pt, pl, pb, pr int) convCase {
		return convCase{name, ConvParams{InC: inC, InH: h, InW: w, OutC: outC, KH: 3, KW: 3,
			PadTop: pt, PadLeft: pl, PadBottom: pb, PadRight: pr}}
	}
	return []convCase{
		c("same_8x8", 16, 8, 8, 16, 1, 1, 1, 1),
		c("same_odd_7x9", 5, 7, 9, 11, 1, 1, 1, 1),
		c("valid_10x6", 4, 10, 6, 8, 0, 0, 0, 0),
		c("asym_pad", 3, 9, 11, 6, 2, 0, 1, 2),
		c("tiny_3x3", 2, 3, 3, 3, 0, 0, 0, 0),
		c("tiny_1x1_padded", 3, 1, 1, 4, 1, 1, 1, 1),
		c("many_tiles_28", 8, 28, 28, 24, 1, 1, 1, 1),
		c("wide_channels", 256, 6, 6, 40, 1, 1, 1, 1),
		c("k_blocked_600_channels", 600, 5, 7, 24, 1, 1, 1, 1),
		c("tile_ranges_36x36", 4, 36, 36, 24, 1, 1, 1, 1),       // 81 tiles: per-thread tile ranges
		c("dynamic_blocks_128x128", 2, 128, 128, 3, 1, 1, 1, 1), // 1024 tiles: blocks claimed dynamically
	}
}

func TestConvWinograd(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(21, 22))
		worst := 0.0
		for _, cc := range winoCases() {
			for _, n := range []int{1, 3} {
				for _, v := range []struct{ bias, res, relu, inPlace bool }{{false, false, false, false}, {true, true, true, false}, {true, true, false, true}} {
					for _, p := range []*Pool{nil, pool} {
						name := fmt.Sprintf("%s/n%d_bias%v_res%v_relu%v_inplace%v_threads%d", cc.name, n, v.bias, v.res, v.relu, v.inPlace, p.Threads())
						worst = max(worst, runWinoCase(t, r, name, cc.p, n, v.bias, v.res, v.relu, v.inPlace, p))
						if t.Failed() {
							return
						}
					}
				}
			}
		}
		t.Logf("worst error / scale: %.3g", worst)
	})
}

func runWinoCase(t *testing.T, r *rand.Rand, name string, p ConvParams, n int, hasBias, hasRes, relu, inPlace bool, pool *Pool) float64 {
	t.Helper()
	oh, ow := p.OutH(), p.OutW()
	x := randSlice(r, n*p.InC*p.InH*p.InW)
	w := randSlice(r, p.OutC*p.InC*9)
	var bias, res []float32
	if hasBias {
		bias = randSlice(r, p.OutC)
	}
	outLen := n * p.OutC * oh * ow
	if hasRes {
		res = randSlice(r, outLen)
	}
	ref, abs := refConv(p, n, x, w, bias, res, relu)
	conv, err := NewConvAlgo(p, w, bias, AlgoWinograd)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if conv.Algo(n) != AlgoWinograd {
		t.Fatalf("%s: Algo = %v", name, conv.Algo(n))
	}
	out := make([]float32, outLen+5)
	for i := range out {
		out[i] = float32(math.NaN())
	}
	if inPlace {
		copy(out, res)
		res = out[:outLen]
	}
	ws := make([]float32, conv.WorkspaceSize(n, pool.Threads()))
	for i := range ws {
		ws[i] = float32(math.NaN()) // scratch must not leak into results
	}
	conv.Forward(pool, n, x, res, relu, out[:outLen], ws)
	for i := outLen; i < len(out); i++ {
		if out[i] == out[i] {
			t.Fatalf("%s: wrote past the end of out", name)
		}
	}
	tol := make([]float64, len(abs))
	worst := 0.0
	for i, a := range abs {
		tol[i] = winoTol*a + 1e-30
		worst = max(worst, math.Abs(float64(out[i])-ref[i])/a)
	}
	checkClose(t, name, out[:outLen], ref, tol)
	return worst
}

func TestConvAlgoSelection(t *testing.T) {
	w := make([]float32, 8*8*9)
	p := ConvParams{InC: 8, InH: 16, InW: 16, OutC: 8, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}
	c, err := NewConvAlgo(p, w, nil, AlgoGEMM)
	if err != nil || c.Algo(4) != AlgoGEMM {
		t.Fatalf("AlgoGEMM: %v %v", err, c.Algo(4))
	}
	p2 := p
	p2.StrideH, p2.StrideW = 2, 2
	if _, err := NewConvAlgo(p2, w, nil, AlgoWinograd); err == nil {
		t.Fatal("Winograd accepted a strided conv")
	}
	if _, err := NewConvAlgo(p, w, nil, ConvAlgo(9)); err == nil {
		t.Fatal("unknown algorithm accepted")
	}
}
