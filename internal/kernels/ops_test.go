package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refPool2D is a direct float64 pooling reference written from the
// definitions (independent of tapRange).
func refPool2D(maxPool bool, prm Pool2DParams, n, c, h, w int, x []float32) []float64 {
	prm = prm.normalized()
	oh, ow := prm.OutSize(h, w)
	out := make([]float64, n*c*oh*ow)
	for pl := 0; pl < n*c; pl++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				best, sum, cnt, cntPad := -math.MaxFloat32, 0.0, 0, 0
				for kh := 0; kh < prm.KH; kh++ {
					for kw := 0; kw < prm.KW; kw++ {
						iy := oy*prm.StrideH - prm.PadTop + kh*prm.DilationH
						ix := ox*prm.StrideW - prm.PadLeft + kw*prm.DilationW
						if iy >= -prm.PadTop && iy < h+prm.PadBottom && ix >= -prm.PadLeft && ix < w+prm.PadRight {
							cntPad++
						}
						if iy < 0 || iy >= h || ix < 0 || ix >= w {
							continue
						}
						v := float64(x[(pl*h+iy)*w+ix])
						best = math.Max(best, v)
						sum += v
						cnt++
					}
				}
				o := (pl*oh+oy)*ow + ox
				switch {
				case maxPool:
					out[o] = best
				case prm.CountIncludePad:
					out[o] = sum / float64(cntPad)
				case cnt > 0:
					out[o] = sum / float64(cnt)
				}
			}
		}
	}
	return out
}

func TestPool2D(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(9, 10))
	cases := []struct {
		name string
		p    Pool2DParams
		h, w int
	}{
		{"resnet_stem_max", Pool2DParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, 112, 112},
		{"2x2s2", Pool2DParams{KH: 2, KW: 2, StrideH: 2, StrideW: 2}, 7, 9},
		{"ceil", Pool2DParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, CeilMode: true}, 8, 10},
		{"ceil_pad_include", Pool2DParams{KH: 3, KW: 2, StrideH: 2, StrideW: 3, PadTop: 1, PadLeft: 1, CeilMode: true, CountIncludePad: true}, 9, 11},
		{"asym_pad_include", Pool2DParams{KH: 3, KW: 3, PadTop: 2, PadLeft: 0, PadBottom: 1, PadRight: 2, CountIncludePad: true}, 5, 6},
		{"asym_pad_exclude", Pool2DParams{KH: 3, KW: 3, PadTop: 2, PadLeft: 0, PadBottom: 1, PadRight: 2}, 5, 6},
		{"dilated", Pool2DParams{KH: 3, KW: 2, DilationH: 2, DilationW: 3, PadTop: 1, PadLeft: 2, PadBottom: 1, PadRight: 2}, 9, 10},
		{"global_like_7x7", Pool2DParams{KH: 7, KW: 7}, 7, 7},
		{"tiny", Pool2DParams{KH: 1, KW: 1}, 1, 1},
		{"pad_bigger_than_window", Pool2DParams{KH: 2, KW: 2, StrideH: 1, StrideW: 1, PadTop: 3, PadLeft: 3, PadBottom: 3, PadRight: 3}, 2, 2},
	}
	for _, cs := range cases {
		for _, n := range []int{1, 3} {
			for _, p := range []*Pool{nil, pool} {
				c := 5
				if err := cs.p.Validate(cs.h, cs.w); err != nil {
					t.Fatalf("%s: %v", cs.name, err)
				}
				x := randSlice(r, n*c*cs.h*cs.w)
				oh, ow := cs.p.OutSize(cs.h, cs.w)
				for _, maxPool := range []bool{true, false} {
					name := fmt.Sprintf("%s/n%d/max%v/threads%d", cs.name, n, maxPool, p.Threads())
					out := make([]float32, n*c*oh*ow)
					if maxPool {
						MaxPool2D(p, cs.p, n, c, cs.h, cs.w, x, out)
					} else {
						AvgPool2D(p, cs.p, n, c, cs.h, cs.w, x, out)
					}
					ref := refPool2D(maxPool, cs.p, n, c, cs.h, cs.w, x)
					tol := make([]float64, len(ref))
					for i := range tol {
						tol[i] = 1e-6 * (1 + math.Abs(ref[i]))
					}
					checkClose(t, name, out, ref, tol)
				}
			}
		}
	}
}

func TestPool2DOutSize(t *testing.T) {
	for _, c := range []struct {
		p          Pool2DParams
		h, oh      int
		wantErrStr bool
	}{
		{Pool2DParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, 112, 56, false},
		{Pool2DParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, CeilMode: true}, 8, 4, false},                                                   // (8-3)/2 = 2.5 -> 3+1
		{Pool2DParams{KH: 2, KW: 2, StrideH: 2, StrideW: 2, CeilMode: true}, 5, 3, false},                                                   // last window starts at 4 < 5
		{Pool2DParams{KH: 2, KW: 2, StrideH: 2, StrideW: 2, CeilMode: false}, 5, 2, false},                                                  //
		{Pool2DParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1, CeilMode: true}, 6, 4, false}, // last window starts at input row 5
		{Pool2DParams{KH: 2, KW: 2, StrideH: 2, StrideW: 2, PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1, CeilMode: true}, 5, 3, false}, // a 4th window would start in the padding
		{Pool2DParams{KH: 5, KW: 5}, 3, 0, true},
	} {
		oh, _ := c.p.OutSize(c.h, c.h)
		if oh != c.oh {
			t.Errorf("%+v in %d: OutSize = %d, want %d", c.p, c.h, oh, c.oh)
		}
		if err := c.p.Validate(c.h, c.h); (err != nil) != c.wantErrStr {
			t.Errorf("%+v in %d: Validate = %v", c.p, c.h, err)
		}
	}
	if err := (Pool2DParams{KH: 0, KW: 3, PadTop: -1}).Validate(4, 4); err == nil {
		t.Error("bad params accepted")
	}
}

func TestElementwise(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(11, 12))
	for _, size := range []int{0, 1, 17, 1 << 16, 1<<16 + 3} {
		for _, p := range []*Pool{nil, pool} {
			a, b := randSlice(r, size), randSlice(r, size)
			out := make([]float32, size)
			ReLU(p, a, out)
			for i, v := range a {
				if want := float32(math.Max(float64(v), 0)); out[i] != want {
					t.Fatalf("ReLU size %d: out[%d] = %g, want %g", size, i, out[i], want)
				}
			}
			for _, relu := range []bool{false, true} {
				Add(p, a, b, relu, out)
				for i := range a {
					want := a[i] + b[i]
					if relu && want < 0 {
						want = 0
					}
					if out[i] != want {
						t.Fatalf("Add size %d relu %v: out[%d] = %g, want %g", size, relu, i, out[i], want)
					}
				}
			}
		}
	}
	nan := float32(math.NaN())
	out := make([]float32, 2)
	ReLU(nil, []float32{nan, -1}, out)
	if out[0] == out[0] || out[1] != 0 {
		t.Errorf("ReLU(NaN, -1) = %v, want [NaN 0]", out)
	}
}

func TestBatchNormAndGlobalAvgPool(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(13, 14))
	for _, sh := range []struct{ n, c, hw int }{{1, 3, 5}, {2, 64, 3136}, {3, 7, 1}} {
		for _, p := range []*Pool{nil, pool} {
			x := randSlice(r, sh.n*sh.c*sh.hw)
			gamma, beta, mean := randSlice(r, sh.c), randSlice(r, sh.c), randSlice(r, sh.c)
			variance := make([]float32, sh.c)
			for i := range variance {
				variance[i] = 0.1 + r.Float32()
			}
			scale, shift := make([]float32, sh.c), make([]float32, sh.c)
			FoldBatchNorm(gamma, beta, mean, variance, 1e-5, scale, shift)
			for _, relu := range []bool{false, true} {
				out := make([]float32, len(x))
				BatchNorm(p, sh.n, sh.c, sh.hw, x, scale, shift, relu, out)
				for i, v := range x {
					ch := i / sh.hw % sh.c
					want := (float64(v)-float64(mean[ch]))/math.Sqrt(float64(variance[ch])+1e-5)*float64(gamma[ch]) + float64(beta[ch])
					if relu && want < 0 {
						want = 0
					}
					if d := math.Abs(float64(out[i]) - want); d > 1e-5*(1+math.Abs(want)) {
						t.Fatalf("BatchNorm %v relu %v: out[%d] = %g, want %g", sh, relu, i, out[i], want)
					}
				}
			}
			out := make([]float32, sh.n*sh.c)
			GlobalAvgPool(p, sh.n, sh.c, sh.hw, x, out)
			for pl := range out {
				var s float64
				for _, v := range x[pl*sh.hw : (pl+1)*sh.hw] {
					s += float64(v)
				}
				if want := s / float64(sh.hw); math.Abs(float64(out[pl])-want) > 1e-6 {
					t.Fatalf("GlobalAvgPool %v: out[%d] = %g, want %g", sh, pl, out[pl], want)
				}
			}
		}
	}
}
