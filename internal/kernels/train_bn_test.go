package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// trBNRef is training-mode BatchNorm (+shortcut, +ReLU) and its backward
// pass in float64, written from the definitions.
func trBNRef(n, c, h, w int, eps float64, x, gamma, beta []float32, sc Shortcut, relu bool, dy []float32) (out, dx, dgamma, dbeta, dsc []float64) {
	hw := h * w
	m := float64(n * hw)
	out = make([]float64, len(x))
	dx = make([]float64, len(x))
	dgamma = make([]float64, c)
	dbeta = make([]float64, c)
	if sc.X != nil {
		dsc = make([]float64, len(sc.X))
	}
	s := max(sc.Stride, 1)
	resIdx := func(img, ch, i int) int {
		cc := ch - sc.Before
		if sc.X == nil || cc < 0 || cc >= sc.C {
			return -1
		}
		return ((img*sc.C+cc)*sc.H+i/w*s)*sc.W + i%w*s
	}
	for ch := 0; ch < c; ch++ {
		var mean, v float64
		for img := 0; img < n; img++ {
			for i := 0; i < hw; i++ {
				mean += float64(x[(img*c+ch)*hw+i])
			}
		}
		mean /= m
		for img := 0; img < n; img++ {
			for i := 0; i < hw; i++ {
				d := float64(x[(img*c+ch)*hw+i]) - mean
				v += d * d
			}
		}
		v /= m
		inv := 1 / math.Sqrt(v+eps)
		g := make([]float64, n*hw) // dy'
		var sg, sgx float64
		for img := 0; img < n; img++ {
			for i := 0; i < hw; i++ {
				k := (img*c+ch)*hw + i
				xh := (float64(x[k]) - mean) * inv
				o := xh*float64(gamma[ch]) + float64(beta[ch])
				if r := resIdx(img, ch, i); r >= 0 {
					o += float64(sc.X[r])
				}
				d := float64(dy[k])
				if relu && o <= 0 {
					o, d = 0, 0
				}
				out[k] = o
				g[img*hw+i] = d
				sg += d
				sgx += d * xh
				if r := resIdx(img, ch, i); r >= 0 {
					dsc[r] = d
				}
			}
		}
		dgamma[ch], dbeta[ch] = sgx, sg
		for img := 0; img < n; img++ {
			for i := 0; i < hw; i++ {
				k := (img*c+ch)*hw + i
				xh := (float64(x[k]) - mean) * inv
				dx[k] = float64(gamma[ch]) * inv * (g[img*hw+i] - sg/m - xh*sgx/m)
			}
		}
	}
	return
}

func TestBatchNormTrainAgainstReference(t *testing.T) {
	pool := NewPool(3)
	defer pool.Close()
	r := rand.New(rand.NewPCG(5, 6))
	type tc struct {
		n, c, h, w int
		relu       bool
		sc         string // "", "id", "padA"
	}
	cases := []tc{
		{4, 3, 5, 6, false, ""}, {4, 3, 5, 6, true, ""}, {3, 4, 6, 6, true, "id"},
		{3, 6, 4, 4, true, "padA"}, {8, 16, 32, 32, true, "id"}, {2, 5, 1, 1, false, ""},
		{5, 8, 3, 3, false, "padA"},
	}
	for _, k := range cases {
		t.Run(fmt.Sprintf("%dx%dx%dx%d-relu=%v-%s", k.n, k.c, k.h, k.w, k.relu, k.sc), func(t *testing.T) {
			size := k.n * k.c * k.h * k.w
			x := trRand(r, size)
			for i := range x {
				x[i] = 3*x[i] + 1.5 // a mean far from 0
			}
			gamma, beta := trRand(r, k.c), trRand(r, k.c)
			dy := trRand(r, size)
			var sc Shortcut
			switch k.sc {
			case "id":
				sc = Shortcut{X: trRand(r, size), C: k.c, H: k.h, W: k.w, Stride: 1}
			case "padA":
				before := k.c / 4
				cin := k.c / 2
				sc = Shortcut{X: trRand(r, k.n*cin*2*k.h*2*k.w), C: cin, H: 2 * k.h, W: 2 * k.w, Stride: 2, Before: before}
			}
			out, dx, dg, db, dsc := trBNRef(k.n, k.c, k.h, k.w, 1e-5, x, gamma, beta, sc, k.relu, dy)
			b, err := NewBatchNormTrain(k.n, k.c, k.h, k.w, 1e-5)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, size)
			b.Forward(pool, x, gamma, beta, sc, k.relu, got)
			trCompare(t, "out", got, out, 1e-5)
			gdx := make([]float32, size)
			gg, gb := make([]float32, k.c), make([]float32, k.c)
			var gsc Shortcut
			if sc.X != nil {
				gsc = sc
				gsc.X = make([]float32, len(sc.X))
				for i := range gsc.X {
					gsc.X[i] = 7 // must be overwritten
				}
			}
			b.Backward(pool, x, gamma, got, dy, k.relu, gg, gb, nil, gdx, gsc)
			trCompare(t, "dx", gdx, dx, 1e-5)
			trCompare(t, "dgamma", gg, dg, 1e-5)
			trCompare(t, "dbeta", gb, db, 1e-5)
			if sc.X != nil {
				trCompare(t, "dshortcut", gsc.X, dsc, 1e-6)
			}
			// The same with an output that is not the last Forward's (the
			// ReLU mask then comes from out itself).
			if k.relu {
				outCopy := append([]float32(nil), got...)
				g2 := make([]float32, size)
				var sc2 Shortcut
				if sc.X != nil {
					sc2 = sc
					sc2.X = make([]float32, len(sc.X))
				}
				b.Backward(pool, x, gamma, outCopy, dy, k.relu, gg, gb, nil, g2, sc2)
				trCompare(t, "dx (mask from out)", g2, dx, 1e-5)
				if sc.X != nil {
					trCompare(t, "dshortcut (mask from out)", sc2.X, dsc, 1e-6)
				}
			}
			// Accumulation in place.
			acc := trRand(r, size)
			ref := make([]float64, size)
			for i := range ref {
				ref[i] = dx[i] + float64(acc[i])
			}
			b.Backward(pool, x, gamma, got, dy, k.relu, gg, gb, acc, acc, Shortcut{})
			trCompare(t, "dx+accum", acc, ref, 1e-5)
		})
	}
}
