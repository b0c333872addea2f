package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// refConv computes the convolution (+bias, +residual, ReLU) in float64 and
// the error scale of every output element.
func refConv(p ConvParams, n int, x, w, bias, res []float32, relu bool) (ref, abs []float64) {
	p = p.normalized()
	oh, ow := p.OutH(), p.OutW()
	cin, cout := p.InC/p.Group, p.OutC/p.Group
	ref = make([]float64, n*p.OutC*oh*ow)
	abs = make([]float64, len(ref))
	for b := 0; b < n; b++ {
		for oc := 0; oc < p.OutC; oc++ {
			g := oc / cout
			for y := 0; y < oh; y++ {
				for xo := 0; xo < ow; xo++ {
					var s, sa float64
					for ic := 0; ic < cin; ic++ {
						for kh := 0; kh < p.KH; kh++ {
							ih := y*p.StrideH - p.PadTop + kh*p.DilationH
							if ih < 0 || ih >= p.InH {
								continue
							}
							for kw := 0; kw < p.KW; kw++ {
								iw := xo*p.StrideW - p.PadLeft + kw*p.DilationW
								if iw < 0 || iw >= p.InW {
									continue
								}
								xv := float64(x[((b*p.InC+g*cin+ic)*p.InH+ih)*p.InW+iw])
								wv := float64(w[((oc*cin+ic)*p.KH+kh)*p.KW+kw])
								s += xv * wv
								sa += math.Abs(xv * wv)
							}
						}
					}
					o := ((b*p.OutC+oc)*oh+y)*ow + xo
					if bias != nil {
						s += float64(bias[oc])
						sa += math.Abs(float64(bias[oc]))
					}
					if res != nil {
						s += float64(res[o])
						sa += math.Abs(float64(res[o]))
					}
					if relu && s < 0 {
						s = 0
					}
					ref[o], abs[o] = s, sa
				}
			}
		}
	}
	return ref, abs
}

// convCase is one convolution shape in the table.
type convCase struct {
	name string
	p    ConvParams
}

func convCases() []convCase {
	c := func(name string, inC, inH, inW, outC, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, g int) convCase {
		return convCase{name, ConvParams{InC: inC, InH: inH, InW: inW, OutC: outC, KH: kh, KW: kw,
			StrideH: sh, StrideW: sw, DilationH: dh, DilationW: dw,
			PadTop: pt, PadLeft: pl, PadBottom: pb, PadRight: pr, Group: g}}
	}
	return []convCase{
		c("1x1", 16, 7, 9, 24, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
		c("1x1_odd", 5, 3, 5, 11, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
		c("1x1_big", 64, 14, 14, 72, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
		c("1x1_deepK", 300, 6, 6, 17, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
		c("1x1_s2", 16, 9, 9, 32, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1),
		c("1x1_pad", 8, 4, 4, 8, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1),
		c("3x3_s1_p1", 8, 10, 12, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
		c("3x3_s1_p1_wide", 32, 20, 20, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
		c("3x3_s2_p1", 8, 11, 9, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1),
		c("3x3_nopad", 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1),
		c("3x3_asym_pad", 4, 6, 7, 5, 3, 3, 1, 2, 1, 1, 0, 2, 1, 0, 1),
		c("3x3_dil2", 6, 9, 9, 8, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1),
		c("3x3_dil_stride_mixed", 5, 12, 10, 7, 3, 2, 2, 1, 2, 3, 1, 0, 2, 3, 1),
		c("7x7_stem", 3, 32, 30, 64, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1),
		c("5x3", 4, 8, 8, 6, 5, 3, 1, 1, 1, 1, 2, 1, 2, 1, 1),
		c("grouped", 16, 8, 8, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4),
		c("resnext_32g", 64, 6, 6, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 32),
		c("grouped_1x1", 12, 5, 5, 18, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 3),
		c("depthwise", 8, 7, 7, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8),
		c("depthwise_mult2_s2", 4, 9, 9, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 4),
		c("tiny_1x1_input", 3, 1, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1),
		c("tiny_pad_bigger_than_input", 2, 1, 2, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1),
		c("kernel_equals_input", 3, 4, 4, 9, 4, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1),
		c("stride_bigger_than_kernel", 3, 10, 10, 4, 2, 2, 3, 3, 1, 1, 0, 0, 0, 0, 1),
		c("wide_row_N_over_blockN", 4, 3, 700, 9, 1, 3, 1, 1, 1, 1, 0, 1, 0, 1, 1),
	}
}

func TestConv(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, cc := range convCases() {
			for _, n := range []int{1, 3} {
				for _, v := range []struct{ bias, res, relu bool }{{false, false, false}, {true, false, true}, {true, true, true}, {false, true, false}} {
					for _, p := range []*Pool{nil, pool} {
						name := fmt.Sprintf("%s/n%d_bias%v_res%v_relu%v_threads%d", cc.name, n, v.bias, v.res, v.relu, p.Threads())
						runConvCase(t, r, name, cc.p, n, v.bias, v.res, v.relu, p, false)
						if t.Failed() {
							return
						}
					}
				}
			}
		}
	})
}

// TestConvResidualInPlace checks Forward with residual == out.
func TestConvResidualInPlace(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, cc := range convCases()[:12] {
			runConvCase(t, r, cc.name, cc.p, 2, true, true, true, pool, true)
		}
	})
}

func runConvCase(t *testing.T, r *rand.Rand, name string, p ConvParams, n int, hasBias, hasRes, relu bool, pool *Pool, inPlace bool) {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	oh, ow := p.OutH(), p.OutW()
	x := randSlice(r, n*p.InC*p.InH*p.InW)
	w := randSlice(r, p.OutC*p.InC/max(p.Group, 1)*p.KH*p.KW)
	var bias, res []float32
	if hasBias {
		bias = randSlice(r, p.OutC)
	}
	outLen := n * p.OutC * oh * ow
	if hasRes {
		res = randSlice(r, outLen)
	}
	ref, abs := refConv(p, n, x, w, bias, res, relu)
	conv, err := NewConv(p, w, bias)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	out := make([]float32, outLen+7)
	for i := range out {
		out[i] = float32(math.NaN())
	}
	if inPlace {
		copy(out, res)
		res = out[:outLen]
	}
	ws := make([]float32, conv.WorkspaceSize(n, pool.Threads()))
	conv.Forward(pool, n, x, res, relu, out[:outLen], ws)
	for i := outLen; i < len(out); i++ {
		if out[i] == out[i] {
			t.Fatalf("%s: wrote past the end of out", name)
		}
	}
	k := p.InC / max(p.Group, 1) * p.KH * p.KW
	tol := make([]float64, len(abs))
	for i, a := range abs {
		tol[i] = tolerance(k, a)
	}
	checkClose(t, name, out[:outLen], ref, tol)
}

func TestConvValidate(t *testing.T) {
	ok := ConvParams{InC: 4, InH: 5, InW: 5, OutC: 8, KH: 3, KW: 3}
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if ok.OutH() != 3 || ok.OutW() != 3 {
		t.Fatalf("OutH/OutW = %d/%d, want 3/3", ok.OutH(), ok.OutW())
	}
	bad := []struct {
		name string
		mut  func(*ConvParams)
		want string
	}{
		{"zero InC", func(p *ConvParams) { p.InC = 0 }, "InC"},
		{"negative stride", func(p *ConvParams) { p.StrideH = -1 }, "StrideH"},
		{"negative pad", func(p *ConvParams) { p.PadLeft = -2 }, "PadLeft"},
		{"group not dividing", func(p *ConvParams) { p.Group = 3 }, "divisible"},
		{"kernel too big", func(p *ConvParams) { p.KH = 9 }, "does not fit"},
		{"dilation too big", func(p *ConvParams) { p.DilationW = 4 }, "does not fit"},
		{"huge", func(p *ConvParams) { p.InH, p.InW = 1<<20, 1<<20 }, "32-bit"},
	}
	for _, b := range bad {
		p := ok
		b.mut(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: Validate() = %v, want error mentioning %q", b.name, err, b.want)
		}
		if _, err := NewConv(p, nil, nil); err == nil {
			t.Errorf("%s: NewConv accepted invalid params", b.name)
		}
	}
	if _, err := NewConv(ok, make([]float32, 5), nil); err == nil || !strings.Contains(err.Error(), "weight") {
		t.Errorf("short weight: err = %v", err)
	}
	if _, err := NewConv(ok, make([]float32, 8*4*9), make([]float32, 3)); err == nil || !strings.Contains(err.Error(), "bias") {
		t.Errorf("short bias: err = %v", err)
	}
}

func TestConvForwardPanicsOnShortSlices(t *testing.T) {
	p := ConvParams{InC: 2, InH: 4, InW: 4, OutC: 3, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}
	c, err := NewConv(p, make([]float32, 3*2*9), nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := make([]float32, c.WorkspaceSize(1, 1))
	for name, f := range map[string]func(){
		"x":         func() { c.Forward(nil, 1, make([]float32, 31), nil, false, make([]float32, 48), ws) },
		"out":       func() { c.Forward(nil, 1, make([]float32, 32), nil, false, make([]float32, 47), ws) },
		"res":       func() { c.Forward(nil, 1, make([]float32, 32), make([]float32, 4), false, make([]float32, 48), ws) },
		"workspace": func() { c.Forward(nil, 1, make([]float32, 32), nil, false, make([]float32, 48), ws[:1]) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), name) {
					t.Errorf("short %s: recovered %v", name, r)
				}
			}()
			f()
		}()
	}
}

// TestLoadDescriptors checks that common im2col patterns get the cheap
// window loads (a gather is correct too, only slower, so the conv tests
// alone would not notice).
func TestLoadDescriptors(t *testing.T) {
	count := func(p ConvParams) (one, two, gather int) {
		c, err := NewConvAlgo(p, make([]float32, p.OutC*p.InC*p.KH*p.KW), nil, AlgoGEMM)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(c.desc); i += 2 {
			switch {
			case c.desc[i]&gatherFlag != 0:
				gather++
			case c.desc[i+1] != 0:
				two++
			default:
				one++
			}
		}
		return
	}
	for _, tc := range []struct {
		name      string
		p         ConvParams
		wantNoGat bool
	}{
		{"3x3_s1_56", conv(8, 56, 8, 3, 1), true},
		{"3x3_s2_28to14", conv(8, 28, 8, 3, 2), true},
		{"1x1_s2_28to14", conv(8, 28, 8, 1, 2), true},
		{"stem_7x7_s2", conv(3, 64, 8, 7, 2), true},
		{"3x3_s1_8", conv(8, 8, 8, 3, 1), true},
		{"3x3_s2_16to8", conv(8, 16, 8, 3, 2), true},
	} {
		one, two, gather := count(tc.p)
		if tc.wantNoGat && gather != 0 {
			t.Errorf("%s: %d one-window, %d two-window, %d gather descriptors; want no gathers", tc.name, one, two, gather)
		}
	}
	// Three output rows in 16 pixels cannot be windows.
	if _, _, gather := count(conv(8, 10, 8, 3, 2)); gather == 0 {
		t.Error("5-wide output rows: expected gathers")
	}
}

// TestConvConcurrentForward runs Forward on one Conv (GEMM and Winograd)
// from several goroutines sharing a pool, each with its own buffers, as the
// runtime's concurrent Session.Run does; run it with -race.
func TestConvConcurrentForward(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(31, 32))
	for _, p := range []ConvParams{
		{InC: 32, InH: 12, InW: 12, OutC: 32, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{InC: 16, InH: 9, InW: 9, OutC: 24, KH: 1, KW: 1},
	} {
		n := 2
		w := randSlice(r, p.OutC*p.InC*p.KH*p.KW)
		conv, err := NewConv(p, w, nil)
		if err != nil {
			t.Fatal(err)
		}
		x := randSlice(r, n*p.InC*p.InH*p.InW)
		outLen := n * p.OutC * p.OutH() * p.OutW()
		want := make([]float32, outLen)
		conv.Forward(pool, n, x, nil, true, want, make([]float32, conv.WorkspaceSize(n, pool.Threads())))
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out := make([]float32, outLen)
				ws := make([]float32, conv.WorkspaceSize(n, pool.Threads()))
				for it := 0; it < 20; it++ {
					conv.Forward(pool, n, x, nil, true, out, ws)
					for i := range out {
						if out[i] != want[i] {
							t.Errorf("%v: concurrent result differs at %d: %g vs %g", conv.Algo(n), i, out[i], want[i])
							return
						}
					}
				}
			}()
		}
		wg.Wait()
	}
}

// TestThreadCountInvariance checks that results are bit-identical whatever
// the number of threads (the training runtime relies on it for
// reproducibility): every output element is summed in the same order
// however the work is split.
func TestThreadCountInvariance(t *testing.T) {
	forEachPath(t, testThreadCountInvariance)
}

func testThreadCountInvariance(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	pools := []*Pool{nil, NewPool(2), NewPool(3), NewPool(4)}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	for _, tc := range []struct {
		p    ConvParams
		n    int
		algo ConvAlgo
	}{
		{conv(32, 28, 40, 3, 1), 1, AlgoWinograd},  // 49 tiles: ranges / split M
		{conv(32, 36, 24, 3, 1), 3, AlgoWinograd},  // 243 tiles
		{conv(64, 14, 64, 3, 1), 1, AlgoWinograd},  // 16 tiles
		{conv(32, 48, 24, 3, 1), 1, AlgoWinograd},  // 144 tiles: 36-tile chunks end in narrow panels
		{conv(16, 56, 24, 3, 1), 1, AlgoGEMM},      // N split
		{conv(48, 7, 72, 1, 1), 1, AlgoGEMM},       // M split, ragged N
		{conv(24, 15, 16, 3, 2), 2, AlgoGEMM},      // strided
		{grouped(conv(32, 10, 32, 3, 1), 8), 1, 0}, // grouped
	} {
		w := randSlice(r, tc.p.OutC*tc.p.InC/max(tc.p.Group, 1)*tc.p.KH*tc.p.KW)
		c, err := NewConvAlgo(tc.p, w, randSlice(r, tc.p.OutC), tc.algo)
		if err != nil {
			t.Fatal(err)
		}
		x := randSlice(r, tc.n*tc.p.InC*tc.p.InH*tc.p.InW)
		var want []float32
		for _, p := range pools {
			out := make([]float32, tc.n*tc.p.OutC*tc.p.OutH()*tc.p.OutW())
			c.Forward(p, tc.n, x, nil, true, out, make([]float32, c.WorkspaceSize(tc.n, p.Threads())))
			if want == nil {
				want = out
				continue
			}
			for i := range out {
				if math.Float32bits(out[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%+v %v: %d threads differ from 1 at %d: %g vs %g", tc.p, c.Algo(tc.n), p.Threads(), i, out[i], want[i])
				}
			}
		}
	}
	// Gemm, including ragged edges.
	m, n, k := 37, 210, 300
	a, b := randSlice(r, m*k), randSlice(r, k*n)
	var want []float32
	for _, p := range pools {
		c := make([]float32, m*n)
		Gemm(p, false, false, m, n, k, 1, a, k, b, n, 0, c, n)
		if want == nil {
			want = c
			continue
		}
		for i := range c {
			if math.Float32bits(c[i]) != math.Float32bits(want[i]) {
				t.Fatalf("Gemm: %d threads differ from 1 at %d", p.Threads(), i)
			}
		}
	}
}

// TestAutoAlgo: ConvParams.AutoAlgo(n) is the algorithm an AlgoAuto Conv
// uses at batch n, and a Conv made for that algorithm alone (as the
// inference planner packs them) computes the same bits at that batch.
func TestAutoAlgo(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(3, 4))
	for _, prm := range []ConvParams{
		{InC: 64, InH: 14, InW: 14, OutC: 48, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{InC: 40, InH: 7, InW: 7, OutC: 72, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{InC: 16, InH: 16, InW: 16, OutC: 16, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
		{InC: 32, InH: 9, InW: 9, OutC: 32, KH: 3, KW: 3, StrideH: 2, StrideW: 2},
		{InC: 24, InH: 8, InW: 8, OutC: 40, KH: 1, KW: 1},
	} {
		w, b := randSlice(r, prm.OutC*prm.InC*prm.KH*prm.KW), randSlice(r, prm.OutC)
		auto, err := NewConv(prm, w, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 2, 3, 8} {
			algo := prm.AutoAlgo(n)
			if got := auto.Algo(n); got != algo {
				t.Errorf("%+v batch %d: AutoAlgo %v, the Conv uses %v", prm, n, algo, got)
			}
			one, err := NewConvAlgo(prm, w, b, algo)
			if err != nil {
				t.Fatal(err)
			}
			x := randSlice(r, n*prm.InC*prm.InH*prm.InW)
			size := n * prm.OutC * prm.OutH() * prm.OutW()
			want, got := make([]float32, size), make([]float32, size)
			auto.Forward(pool, n, x, nil, true, want, make([]float32, auto.WorkspaceSize(n, 2)))
			one.Forward(pool, n, x, nil, true, got, make([]float32, one.WorkspaceSize(n, 2)))
			for i := range want {
				if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
					t.Fatalf("%+v batch %d %v: [%d] = %v, AlgoAuto gives %v", prm, n, algo, i, got[i], want[i])
				}
			}
		}
	}
}

// TestUnpackWeights: UnpackWeights gives back exactly the weights a Conv
// was packed from, for every algorithm that keeps the GEMM form, grouped
// or not, on every CPU path; a Winograd-only Conv says it cannot.
func TestUnpackWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	prev := activeKernel.Load()
	defer activeKernel.Store(prev)
	for _, k := range append(archKernels(), genericKernel) {
		activeKernel.Store(k)
		for _, prm := range []ConvParams{
			{InC: 64, InH: 14, InW: 14, OutC: 37, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1},
			{InC: 300, InH: 7, InW: 7, OutC: 13, KH: 3, KW: 3, StrideH: 2, StrideW: 2},
			{InC: 24, InH: 8, InW: 8, OutC: 40, KH: 1, KW: 1},
			{InC: 32, InH: 9, InW: 9, OutC: 16, KH: 3, KW: 3, Group: 4},
		} {
			w := randSlice(r, prm.OutC*prm.InC/max(prm.Group, 1)*prm.KH*prm.KW)
			for _, algo := range []ConvAlgo{AlgoAuto, AlgoGEMM, AlgoWinograd} {
				c, err := NewConvAlgo(prm, w, nil, algo)
				if err != nil {
					continue // Winograd where unusable
				}
				got := make([]float32, len(w))
				ok := c.UnpackWeights(got)
				if ok != (algo != AlgoWinograd) || ok != c.HasGEMMWeights() {
					t.Fatalf("%s %+v %v: UnpackWeights %v, HasGEMMWeights %v", k.name, prm, algo, ok, c.HasGEMMWeights())
				}
				if !ok {
					continue
				}
				for i := range w {
					if math.Float32bits(got[i]) != math.Float32bits(w[i]) {
						t.Fatalf("%s %+v %v: [%d] = %v, want %v", k.name, prm, algo, i, got[i], w[i])
					}
				}
			}
		}
	}
}
