package kernels

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// qconvRef is the definition: for each output channel m and pixel,
// v = (Σ w·(x_q - zx) + bias[m]) · mult[m], ReLU, quantize; x_q =
// round(x/sx) + zx with padding at zx (i.e. contributing nothing).
func qconvRef(prm ConvParams, batch int, x []float32, sx float32, zx int32, w []int8, o *QOutput, res []float32) []float32 {
	oh, ow := prm.OutH(), prm.OutW()
	cin := prm.InC / prm.Group
	mg := prm.OutC / prm.Group
	out := make([]float32, batch*prm.OutC*oh*ow)
	for b := range batch {
		for m := range prm.OutC {
			g := m / mg
			for y := range oh {
				for xo := range ow {
					var acc int32
					for c := range cin {
						for kh := range prm.KH {
							for kw := range prm.KW {
								iy := y*prm.StrideH - prm.PadTop + kh*prm.DilationH
								ix := xo*prm.StrideW - prm.PadLeft + kw*prm.DilationW
								if iy < 0 || iy >= prm.InH || ix < 0 || ix >= prm.InW {
									continue
								}
								xv := x[((b*prm.InC+g*cin+c)*prm.InH+iy)*prm.InW+ix]
								xq := int32(roundEven32(xv/sx)) + zx
								xq = min(max(xq, 0), 255)
								acc += (xq - zx) * int32(w[((m*cin+c)*prm.KH+kh)*prm.KW+kw])
							}
						}
					}
					if o.Bias != nil {
						acc += o.Bias[m]
					}
					v := float32(acc) * o.Mult[m]
					if o.ReLU {
						v = max(v, 0)
					}
					if o.Quantize {
						v = min(max(roundEven32(v), o.Lo), o.Hi) * o.S
					}
					i := ((b*prm.OutC+m)*oh+y)*ow + xo
					if o.Residual {
						v += res[i]
						if o.ReLU2 {
							v = max(v, 0)
						}
						if o.Quantize2 {
							v = min(max(roundEven32(v*(1/o.S2)), o.Lo2), o.Hi2) * o.S2
						}
					}
					out[i] = v
				}
			}
		}
	}
	return out
}

// TestQConv compares QConv (VNNI where the CPU has it; the Go path with
// the generic kernels)
// with the definition, exactly: integer accumulation, the same float
// epilogue.
func TestQConv(t *testing.T) { forEachPath(t, testQConv) }

func testQConv(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name string
		prm  ConvParams
		b    int
	}{
		{"3x3 s1 p1 16->16 8x8", ConvParams{InC: 16, InH: 8, InW: 8, OutC: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, DilationH: 1, DilationW: 1, Group: 1}, 2},
		{"3x3 s2 p1 16->32 9x7", ConvParams{InC: 16, InH: 9, InW: 7, OutC: 32, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, DilationH: 1, DilationW: 1, Group: 1}, 1},
		{"1x1 s1 12->20 7x7", ConvParams{InC: 12, InH: 7, InW: 7, OutC: 20, KH: 1, KW: 1, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1, Group: 1}, 3},
		{"7x7 s2 p3 3->8 stem", ConvParams{InC: 3, InH: 20, InW: 18, OutC: 8, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadTop: 3, PadLeft: 3, PadBottom: 3, PadRight: 3, DilationH: 1, DilationW: 1, Group: 1}, 1},
		{"3x3 dil2 groups 2", ConvParams{InC: 8, InH: 10, InW: 10, OutC: 6, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2, DilationH: 2, DilationW: 2, Group: 2}, 1},
		{"3x3 s1 p1 96->40 6x9 (AMX: chunks of 16 and 8 groups)", ConvParams{InC: 96, InH: 6, InW: 9, OutC: 40, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, DilationH: 1, DilationW: 1, Group: 1}, 2},
		{"3x3 s2 p1 64->32 11x11", ConvParams{InC: 64, InH: 11, InW: 11, OutC: 32, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, DilationH: 1, DilationW: 1, Group: 1}, 1},
		{"1x1 s1 256->64 4x4", ConvParams{InC: 256, InH: 4, InW: 4, OutC: 64, KH: 1, KW: 1, StrideH: 1, StrideW: 1, DilationH: 1, DilationW: 1, Group: 1}, 1},
		{"3x3 groups 2, 64->64 5x5", ConvParams{InC: 64, InH: 5, InW: 5, OutC: 64, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1, DilationH: 1, DilationW: 1, Group: 2}, 1},
		{"1x1 s2 16->8 32x32", ConvParams{InC: 16, InH: 32, InW: 32, OutC: 8, KH: 1, KW: 1, StrideH: 2, StrideW: 2, DilationH: 1, DilationW: 1, Group: 1}, 1},
	} {
		prm := tc.prm
		cin := prm.InC / prm.Group
		w := make([]int8, prm.OutC*cin*prm.KH*prm.KW)
		for i := range w {
			w[i] = int8(r.IntN(255) - 127)
		}
		sx, zx := float32(0.05), int32(r.IntN(40))
		x := make([]float32, tc.b*prm.InC*prm.InH*prm.InW)
		for i := range x {
			x[i] = float32(int32(r.IntN(256))-zx) * sx
		}
		res := make([]float32, tc.b*prm.OutC*prm.OutH()*prm.OutW())
		for i := range res {
			res[i] = float32(r.IntN(200)-100) * 0.07
		}
		// Residuals exact on a uint8 grid (for the packed residual cases).
		const rs, rz = 0.07, 100
		for i := range res {
			res[i] = float32(r.IntN(256)-rz) * rs
		}
		for _, o := range []*QOutput{
			{Mult: make([]float32, prm.OutC), Bias: make([]int32, prm.OutC), ReLU: true, Quantize: true, S: 0.1, Lo: 0, Hi: 255, PackedIn: true, PackedOut: true},
			{Mult: make([]float32, prm.OutC), Bias: make([]int32, prm.OutC), Quantize: true, S: 0.1, Lo: -128, Hi: 127, PackedIn: true,
				Residual: true, PackedRes: true, ResS: rs, ResZ: rz, ReLU2: true, Quantize2: true, S2: 0.05, Lo2: -20, Hi2: 235, PackedOut: true},
			{Mult: make([]float32, prm.OutC), Quantize: true, S: 0.1, Lo: -7, Hi: 248, Residual: true, PackedRes: true, ResS: rs, ResZ: rz},
			// The flag sets with their own epilogue copies: 34 and 118.
			{Mult: make([]float32, prm.OutC), Bias: make([]int32, prm.OutC), Quantize: true, S: 0.1, Lo: -3, Hi: 252, PackedIn: true, PackedOut: true},
			{Mult: make([]float32, prm.OutC), Bias: make([]int32, prm.OutC), Quantize: true, S: 0.1, Lo: -128, Hi: 127, PackedIn: true,
				Residual: true, PackedRes: true, ResS: rs, ResZ: rz, ReLU2: true, Quantize2: true, S2: 0.05, Lo2: 0, Hi2: 255, PackedOut: true},
			{Mult: make([]float32, prm.OutC)},
			{Mult: make([]float32, prm.OutC), Bias: make([]int32, prm.OutC), ReLU: true, Quantize: true, S: 0.1, Lo: -3, Hi: 252},
			{Mult: make([]float32, prm.OutC), Bias: make([]int32, prm.OutC), Quantize: true, S: 0.1, Lo: -128, Hi: 127,
				Residual: true, ReLU2: true, Quantize2: true, S2: 0.05, Lo2: 0, Hi2: 255},
			{Mult: make([]float32, prm.OutC), Residual: true},
		} {
			for m := range o.Mult {
				o.Mult[m] = 0.001 * float32(1+m%5)
				if o.Bias != nil {
					o.Bias[m] = int32(r.IntN(2001) - 1000)
				}
			}
			if (o.PackedOut || o.PackedRes) && prm.Group > 1 && prm.OutC/prm.Group%4 != 0 {
				if _, err := mustQConv(prm, w).Prepare(o, zx); err == nil {
					t.Fatalf("%s: packed output of %d channels a group accepted", tc.name, prm.OutC/prm.Group)
				}
				continue
			}
			want := qconvRef(prm, tc.b, x, sx, zx, w, o, res)
			for _, amx := range []bool{false, true} {
				if amx && !hasAMX() {
					continue
				}
				q, err := newQConv(prm, w, amx)
				if err != nil {
					t.Fatal(err)
				}
				for _, threads := range []int{1, 2} {
					pool := NewPool(threads)
					got := make([]float32, len(want))
					p, err := q.Prepare(o, zx)
					if err != nil {
						t.Fatal(err)
					}
					hw, ohw := prm.InH*prm.InW, prm.OutH()*prm.OutW()
					in, rin, dst := x, res, got
					if o.PackedIn {
						in = packU8(x, tc.b, prm.InC, hw, sx, float32(zx))
					}
					if o.PackedRes {
						rin = packU8(res, tc.b, prm.OutC, ohw, rs, rz)
					}
					if o.PackedOut {
						dst = make([]float32, PackedSlots(tc.b, prm.OutC, ohw))
					}
					ws := q.NewWorkspace(threads, zx)
					q.Forward(pool, tc.b, in, sx, zx, p, rin, dst, ws)
					// Again with the same workspace: the padding NewWorkspace filled is intact.
					again := make([]float32, len(dst))
					q.Forward(pool, tc.b, in, sx, zx, p, rin, again, ws)
					for i := range dst {
						if again[i] != dst[i] && !(dst[i] != dst[i]) {
							t.Fatalf("%s: a second Forward differs at %d", tc.name, i)
						}
					}
					pool.Close()
					if o.PackedOut {
						s, lo := o.S, o.Lo
						if o.Residual {
							s, lo = o.S2, o.Lo2
						}
						got = unpackU8(dst, tc.b, prm.OutC, ohw, s, -lo)
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("%s, %d threads, quantize %v, AMX %v: element %d is %g, want %g (VNNI: %v)", tc.name, threads, o.Quantize, q.amx, i, got[i], want[i], QConvSupported())
						}
					}
				}
			}
		}
	}
}

// BenchmarkQConv times QConv against the float32 convolution on layers of
// ResNet-20 (batch 128) and ResNet-50 (batch 1), two threads.
func BenchmarkQConv(b *testing.B) {
	sq := func(c, hw, m, k, s int) ConvParams {
		p := k / 2
		return ConvParams{InC: c, InH: hw, InW: hw, OutC: m, KH: k, KW: k, StrideH: s, StrideW: s, PadTop: p, PadLeft: p, PadBottom: p, PadRight: p, DilationH: 1, DilationW: 1, Group: 1}
	}
	for _, tc := range []struct {
		name  string
		prm   ConvParams
		batch int
	}{
		{"r20-stem-3x32x32-b128", sq(3, 32, 16, 3, 1), 128},
		{"r20-16x32x32-b128", sq(16, 32, 16, 3, 1), 128},
		{"r20-32x16x16-b128", sq(32, 16, 32, 3, 1), 128},
		{"r20-64x8x8-b128", sq(64, 8, 64, 3, 1), 128},
		{"r50-64x56x56-3x3-b1", sq(64, 56, 64, 3, 1), 1},
		{"r50-256x14x14-3x3-b1", sq(256, 14, 256, 3, 1), 1},
		{"r50-1024x14x14-1x1-b1", sq(1024, 14, 256, 1, 1), 1},
		{"r50-512x7x7-3x3-b1", sq(512, 7, 512, 3, 1), 1},
		{"r50-128x56x56-3x3s2-b1", sq(128, 56, 128, 3, 2), 1},
	} {
		prm := tc.prm
		r := rand.New(rand.NewPCG(1, 1))
		x := make([]float32, tc.batch*prm.InC*prm.InH*prm.InW)
		for i := range x {
			x[i] = float32(r.IntN(256)) * 0.02
		}
		w8 := make([]int8, prm.OutC*prm.InC*prm.KH*prm.KW)
		wf := make([]float32, len(w8))
		for i := range w8 {
			w8[i] = int8(r.IntN(255) - 127)
			wf[i] = float32(w8[i]) * 0.01
		}
		out := make([]float32, tc.batch*prm.OutC*prm.OutH()*prm.OutW())
		pool := NewPool(2)
		macs := float64(tc.batch) * float64(prm.OutC*prm.OutH()*prm.OutW()) * float64(prm.InC*prm.KH*prm.KW)
		for _, v := range []struct {
			name string
			amx  bool
		}{{"int8-vnni", false}, {"int8", true}} { // int8: AMX where useAMX says so
			b.Run(tc.name+"/"+v.name, func(b *testing.B) {
				q, _ := newQConv(prm, w8, v.amx)
				o := &QOutput{Mult: make([]float32, prm.OutC), Quantize: true, S: 0.1, Lo: 0, Hi: 255}
				p, _ := q.Prepare(o, 0)
				ws := q.NewWorkspace(2, 0)
				for b.Loop() {
					q.Forward(pool, tc.batch, x, 0.02, 0, p, nil, out, ws)
				}
				b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
		}
		b.Run(tc.name+"/float32", func(b *testing.B) {
			c, _ := NewConv(prm, wf, nil)
			ws := make([]float32, c.WorkspaceSize(tc.batch, 2))
			for b.Loop() {
				c.Forward(pool, tc.batch, x, nil, true, out, ws)
			}
			b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
		pool.Close()
	}
}

// packU8 lays out float values v = (q - z)·s as QOutput.PackedIn reads
// them.
func packU8(x []float32, n, c, hw int, s, z float32) []float32 {
	out := make([]float32, PackedSlots(n, c, hw))
	b := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(out)*4)
	c4 := (c + 3) / 4
	for i := range n {
		for ch := range c {
			for p := range hw {
				q := roundEven32Wide(x[(i*c+ch)*hw+p]/s) + z
				b[((i*c4+ch/4)*hw+p)*4+ch%4] = byte(min(max(q, 0), 255))
			}
		}
	}
	return out
}

// unpackU8 reads a packed output back as floats (q - z)·s.
func unpackU8(x []float32, n, c, hw int, s, z float32) []float32 {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), len(x)*4)
	c4 := (c + 3) / 4
	out := make([]float32, n*c*hw)
	for i := range n {
		for ch := range c {
			for p := range hw {
				out[(i*c+ch)*hw+p] = (float32(b[((i*c4+ch/4)*hw+p)*4+ch%4]) - z) * s
			}
		}
	}
	return out
}

func mustQConv(prm ConvParams, w []int8) *QConv {
	q, err := NewQConv(prm, w)
	if err != nil {
		panic(err)
	}
	return q
}
