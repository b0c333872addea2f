package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// trRand returns n uniform values in [-1, 1).
func trRand(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.Float64()*2 - 1)
	}
	return s
}

// trCompare checks got against a float64 reference: every element within
// tol*(1+max|ref|).
func trCompare(t *testing.T, what string, got []float32, ref []float64, tol float64) {
	t.Helper()
	maxRef := 0.0
	for _, v := range ref {
		maxRef = math.Max(maxRef, math.Abs(v))
	}
	bound := tol * (1 + maxRef)
	worst, at := 0.0, -1
	for i := range ref {
		d := math.Abs(float64(got[i]) - ref[i])
		if !(d <= worst) {
			worst, at = d, i
		}
	}
	if !(worst <= bound) {
		t.Errorf("%s: element %d = %g, want %g (|diff| %.3g > %.3g)", what, at, got[at], ref[at], worst, bound)
	}
}

// trConvRef computes the forward convolution and both gradients in
// float64 by direct loops.
func trConvRef(p ConvParams, n int, x, w, bias, dy []float32) (out, dx, dw, db []float64) {
	p = trConvNorm(p)
	oh, ow := p.OutH(), p.OutW()
	cin, mg := p.InC/p.Group, p.OutC/p.Group
	out = make([]float64, n*p.OutC*oh*ow)
	dx = make([]float64, n*p.InC*p.InH*p.InW)
	dw = make([]float64, len(w))
	db = make([]float64, p.OutC)
	for b := 0; b < n; b++ {
		for co := 0; co < p.OutC; co++ {
			g := co / mg
			for y := 0; y < oh; y++ {
				for xx := 0; xx < ow; xx++ {
					oi := ((b*p.OutC+co)*oh+y)*ow + xx
					s := 0.0
					if bias != nil {
						s = float64(bias[co])
					}
					d := float64(dy[oi])
					db[co] += d
					for ci := 0; ci < cin; ci++ {
						for kh := 0; kh < p.KH; kh++ {
							ih := y*p.StrideH - p.PadTop + kh*p.DilationH
							if ih < 0 || ih >= p.InH {
								continue
							}
							for kw := 0; kw < p.KW; kw++ {
								iw := xx*p.StrideW - p.PadLeft + kw*p.DilationW
								if iw < 0 || iw >= p.InW {
									continue
								}
								xi := ((b*p.InC+g*cin+ci)*p.InH+ih)*p.InW + iw
								wi := ((co*cin+ci)*p.KH+kh)*p.KW + kw
								s += float64(x[xi]) * float64(w[wi])
								dx[xi] += d * float64(w[wi])
								dw[wi] += d * float64(x[xi])
							}
						}
					}
					out[oi] = s
				}
			}
		}
	}
	return
}

func TestConvTrainAgainstReference(t *testing.T) {
	pool := NewPool(3)
	defer pool.Close()
	cases := []struct {
		name string
		p    ConvParams
		n    int
		bias bool
	}{
		{"3x3s1", trConv(5, 9, 7, 3, 1), 3, false},
		{"3x3s1-bias", trConv(4, 6, 8, 3, 1), 2, true},
		{"3x3s1-asym-pad", ConvParams{InC: 5, InH: 11, InW: 7, OutC: 6, KH: 3, KW: 3, PadBottom: 2, PadLeft: 1}, 2, false},
		{"3x3s2", trConv(6, 9, 10, 3, 2), 3, false},
		{"1x1s2", trConv(6, 8, 12, 1, 2), 2, false},
		{"1x1s1", trConv(6, 8, 12, 1, 1), 2, true},
		{"7x7s2", trConv(3, 16, 8, 7, 2), 2, false},
		{"grouped", ConvParams{InC: 8, InH: 7, InW: 6, OutC: 12, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, Group: 4}, 2, false},
		{"dilated-asym", ConvParams{InC: 3, InH: 9, InW: 8, OutC: 5, KH: 3, KW: 2, DilationH: 2, DilationW: 1, PadTop: 2, PadBottom: 1, PadLeft: 0, PadRight: 1}, 2, true},
		{"16ch-batch", trConv(16, 32, 16, 3, 1), 17, false},
		{"small-plane", trConv(32, 4, 64, 3, 1), 20, false},
	}
	// Every kernel path: BackwardFilter writes B panels of the path's width.
	forEachPath(t, func(t *testing.T) { convTrainCases(t, pool, cases) })
}

func convTrainCases(t *testing.T, pool *Pool, cases []struct {
	name string
	p    ConvParams
	n    int
	bias bool
}) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range cases {
		algos := []ConvAlgo{AlgoGEMM, AlgoAuto}
		if trWinograd(trConvNorm(tc.p)) {
			algos = append(algos, AlgoWinograd)
		}
		for _, algo := range algos {
			t.Run(fmt.Sprintf("%s/%v", tc.name, algo), func(t *testing.T) {
				p := trConvNorm(tc.p)
				oh, ow := p.OutH(), p.OutW()
				x := trRand(r, tc.n*p.InC*p.InH*p.InW)
				w := trRand(r, p.OutC*p.InC/p.Group*p.KH*p.KW)
				var bias []float32
				if tc.bias {
					bias = trRand(r, p.OutC)
				}
				dy := trRand(r, tc.n*p.OutC*oh*ow)
				acc := trRand(r, len(x))
				out, dx, dw, db := trConvRef(p, tc.n, x, w, bias, dy)
				c, err := NewConvTrain(p, algo)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.SetWeights(w, bias); err != nil {
					t.Fatal(err)
				}
				tol := 1e-5
				if algo != AlgoGEMM {
					tol = 1e-4 // Winograd
				}
				got := make([]float32, len(out))
				c.Forward(pool, tc.n, x, got)
				trCompare(t, "forward", got, out, tol)

				gx := make([]float32, len(x))
				c.BackwardData(pool, tc.n, w, dy, nil, gx)
				trCompare(t, "dx", gx, dx, tol)
				// With accumulation, into a separate buffer and in place.
				ref := make([]float64, len(dx))
				for i := range ref {
					ref[i] = dx[i] + float64(acc[i])
				}
				c.BackwardData(pool, tc.n, w, dy, acc, gx)
				trCompare(t, "dx+accum", gx, ref, tol)
				inplace := append([]float32(nil), acc...)
				c.BackwardData(pool, tc.n, w, dy, inplace, inplace)
				trCompare(t, "dx+accum in place", inplace, ref, tol)

				gw := make([]float32, len(w))
				var gb []float32
				if tc.bias {
					gb = make([]float32, p.OutC)
				}
				c.BackwardFilter(pool, tc.n, x, dy, gw, gb)
				trCompare(t, "dw", gw, dw, tol)
				if tc.bias {
					trCompare(t, "db", gb, db, 1e-5)
				}
				// Deterministic whatever the thread count.
				gw1 := make([]float32, len(w))
				c.BackwardFilter(nil, tc.n, x, dy, gw1, nil)
				for i := range gw {
					if gw[i] != gw1[i] {
						t.Fatalf("dw differs between 3 threads and 1 at %d: %g vs %g", i, gw[i], gw1[i])
					}
				}
			})
		}
	}
}

func trConv(inC, hw, outC, k, stride int) ConvParams {
	pad := (k - 1) / 2
	return ConvParams{InC: inC, InH: hw, InW: hw, OutC: outC, KH: k, KW: k, StrideH: stride, StrideW: stride,
		PadTop: pad, PadLeft: pad, PadBottom: pad, PadRight: pad}
}

// TestConvTrainWinogradFilterError measures the Winograd weight gradient's
// error against a float64 direct sum on the shapes of a CIFAR ResNet
// (3x3, stride 1, 16/32/64 channels at 32/16/8 pixels), relative to the
// largest gradient element, and checks it against the direct GEMM path's.
func TestConvTrainWinogradFilterError(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		p ConvParams
		n int
	}{
		{trConv(16, 32, 16, 3, 1), 8},
		{trConv(32, 16, 32, 3, 1), 16},
		{trConv(64, 8, 64, 3, 1), 32},
	} {
		p := tc.p
		x := trRand(r, tc.n*p.InC*p.InH*p.InW)
		w := trRand(r, p.OutC*p.InC*9)
		dy := trRand(r, tc.n*p.OutC*p.OutH()*p.OutW())
		_, _, ref, _ := trConvRef(p, tc.n, x, w, nil, dy)
		maxRef := 0.0
		for _, v := range ref {
			maxRef = math.Max(maxRef, math.Abs(v))
		}
		rel := map[ConvAlgo]float64{}
		for _, algo := range []ConvAlgo{AlgoGEMM, AlgoWinograd} {
			c, err := NewConvTrain(p, algo)
			if err != nil {
				t.Fatal(err)
			}
			dw := make([]float32, len(w))
			c.BackwardFilter(pool, tc.n, x, dy, dw, nil)
			worst := 0.0
			for i, v := range ref {
				worst = math.Max(worst, math.Abs(float64(dw[i])-v))
			}
			rel[algo] = worst / maxRef
		}
		t.Logf("%d->%d %dx%d batch %d: max |error| / max |dw|: winograd %.2e, direct %.2e",
			p.InC, p.OutC, p.InH, p.InW, tc.n, rel[AlgoWinograd], rel[AlgoGEMM])
		// F(4x4, 3x3) rounding: a few 1e-6 measured; 1e-4 leaves room for
		// other CPUs' summation orders while still catching a wrong
		// transform (which gives errors of order 1).
		if rel[AlgoWinograd] > 1e-4 {
			t.Errorf("%+v: Winograd weight gradient error %.2e of the largest element, want <= 1e-4", p, rel[AlgoWinograd])
		}
	}
}
