package infer

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// opCase is one small model run on given inputs; want holds the expected
// outputs, or err a substring of the expected load or run error.
type opCase struct {
	name   string
	g      *gb
	inputs map[string]*Tensor
	want   map[string]*Tensor
	err    string
	atol   float64 // absolute tolerance; 0 means 1e-6 (with rtol 1e-5)
}

func runOpCases(t *testing.T, cases []opCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := LoadBytes(c.g.bytes(t), Options{Threads: 2})
			if err == nil {
				defer s.Close()
				var got map[string]*Tensor
				got, err = s.Run(context.Background(), c.inputs)
				if err == nil && c.err == "" {
					atol := c.atol
					if atol == 0 {
						atol = 1e-6
					}
					for name, w := range c.want {
						if msg := compareTensors(got[name], w, 1e-5, atol); msg != "" {
							if got[name] != nil && got[name].Len() <= 64 {
								msg += fmt.Sprintf("\n got %v", got[name])
							}
							t.Errorf("output %q: %s", name, msg)
						}
					}
					return
				}
			}
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.err != "" && err == nil:
				t.Fatalf("no error, want one containing %q", c.err)
			case !strings.Contains(err.Error(), c.err):
				t.Fatalf("error %q does not contain %q", err, c.err)
			}
		})
	}
}

func in1(name string, t *Tensor) map[string]*Tensor  { return map[string]*Tensor{name: t} }
func out1(name string, t *Tensor) map[string]*Tensor { return map[string]*Tensor{name: t} }

// randT is a deterministic random float32 tensor.
func randT(seed uint64, shape ...int) *Tensor {
	r := rand.New(rand.NewPCG(seed, 3))
	d := make([]float32, prod(shape))
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	return NewFloat32(shape, d)
}

// refConv is a float64 reference 2-D convolution (pads top, left,
// bottom, right).
func refConv(x, w *Tensor, bias []float32, stride, dil [2]int, pads [4]int, group int) *Tensor {
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	m, cg, kh, kw := w.Shape[0], w.Shape[1], w.Shape[2], w.Shape[3]
	oh := (h+pads[0]+pads[2]-(kh-1)*dil[0]-1)/stride[0] + 1
	ow := (wd+pads[1]+pads[3]-(kw-1)*dil[1]-1)/stride[1] + 1
	out := newTensor(Float32, []int{n, m, oh, ow})
	mg := m / group
	for b := range n {
		for o := range m {
			g := o / mg
			for y := range oh {
				for xx := range ow {
					s := 0.0
					if bias != nil {
						s = float64(bias[o])
					}
					for ic := range cg {
						ch := g*cg + ic
						for ky := range kh {
							iy := y*stride[0] - pads[0] + ky*dil[0]
							if iy < 0 || iy >= h {
								continue
							}
							for kx := range kw {
								ix := xx*stride[1] - pads[1] + kx*dil[1]
								if ix < 0 || ix >= wd {
									continue
								}
								s += float64(x.Float32[((b*c+ch)*h+iy)*wd+ix]) * float64(w.Float32[((o*cg+ic)*kh+ky)*kw+kx])
							}
						}
					}
					out.Float32[((b*m+o)*oh+y)*ow+xx] = float32(s)
				}
			}
		}
	}
	_ = c
	return out
}

func mapT(t *Tensor, f func(i int, v float32) float32) *Tensor {
	c := t.Clone()
	for i, v := range c.Float32 {
		c.Float32[i] = f(i, v)
	}
	return c
}

func TestConvOps(t *testing.T) {
	x := randT(1, 2, 4, 7, 6)
	w := randT(2, 6, 2, 3, 3) // group 2: 4 input channels, 6 outputs
	bias := randT(3, 6).Float32
	refG := refConv(x, w, bias, [2]int{2, 1}, [2]int{2, 1}, [4]int{1, 0, 2, 1}, 2)

	w1 := randT(4, 3, 4, 3, 3)
	// SAME_LOWER, stride 2 on 7x6: out 4x3, total pads H 2 (1,1), W 1 (1,0).
	refSame := refConv(x, w1, nil, [2]int{2, 2}, [2]int{1, 1}, [4]int{1, 1, 1, 0}, 1)
	// SAME_UPPER: W pads (0,1).
	refSameU := refConv(x, w1, nil, [2]int{2, 2}, [2]int{1, 1}, [4]int{1, 0, 1, 1}, 1)

	// 1-D convolution as [N, C, L].
	x1 := randT(5, 2, 3, 10)
	w1d := randT(6, 4, 3, 3)
	ref1 := refConv(&Tensor{Shape: []int{2, 3, 1, 10}, Float32: x1.Float32}, &Tensor{Shape: []int{4, 3, 1, 3}, Float32: w1d.Float32}, nil, [2]int{1, 2}, [2]int{1, 1}, [4]int{0, 1, 0, 1}, 1)
	ref1.Shape = []int{2, 4, 5}

	// Fused residual and ReLU, with a full-shape and a broadcast residual.
	w3 := randT(7, 4, 4, 3, 3)
	conv3 := refConv(x, w3, nil, [2]int{1, 1}, [2]int{1, 1}, [4]int{1, 1, 1, 1}, 1)
	res := randT(8, 2, 4, 7, 6)
	fused := mapT(conv3, func(i int, v float32) float32 { return max(v+res.Float32[i], 0) })
	rb := randT(9, 1, 4, 1, 1)
	fusedB := mapT(conv3, func(i int, v float32) float32 { return max(v+rb.Float32[(i/42)%4], 0) })

	// Conv → BatchNormalization → Relu, the BN folded at load.
	gamma, beta := randT(10, 4), randT(11, 4)
	mean, variance := randT(12, 4), mapT(randT(13, 4), func(_ int, v float32) float32 { return 0.5 + v*v })
	bnRef := mapT(conv3, func(i int, v float32) float32 {
		c := (i / 42) % 4
		y := (float64(v)-float64(mean.Float32[c]))/math.Sqrt(float64(variance.Float32[c])+1e-3)*float64(gamma.Float32[c]) + float64(beta.Float32[c])
		return max(float32(y), 0)
	})
	bnOnly := mapT(x, func(i int, v float32) float32 {
		c := (i / 42) % 4
		y := (float64(v)-float64(mean.Float32[c]))/math.Sqrt(float64(variance.Float32[c])+1e-3)*float64(gamma.Float32[c]) + float64(beta.Float32[c])
		return max(float32(y), 0)
	})

	xBig, wBig := randT(14, 2, 8, 64, 96), randT(15, 8, 8, 3, 3)
	runOpCases(t, []opCase{
		{name: "group dilation stride asymmetric pads bias",
			g: newGB(13).in("x", Float32, -1, 4, 7, 6).out("y", Float32).init("w", w).init("b", NewFloat32([]int{6}, bias)).
				node("Conv", []string{"x", "w", "b"}, []string{"y"}, aInt("group", 2), aInts("strides", 2, 1), aInts("dilations", 2, 1), aInts("pads", 1, 0, 2, 1), aInts("kernel_shape", 3, 3)),
			inputs: in1("x", x), want: out1("y", refG)},
		{name: "auto_pad SAME_LOWER",
			g:      newGB(11).in("x", Float32, 2, 4, 7, 6).out("y", Float32).init("w", w1).node("Conv", []string{"x", "w"}, []string{"y"}, aStr("auto_pad", "SAME_LOWER"), aInts("strides", 2, 2)),
			inputs: in1("x", x), want: out1("y", refSame)},
		{name: "auto_pad SAME_UPPER",
			g:      newGB(11).in("x", Float32, 2, 4, 7, 6).out("y", Float32).init("w", w1).node("Conv", []string{"x", "w"}, []string{"y"}, aStr("auto_pad", "SAME_UPPER"), aInts("strides", 2, 2)),
			inputs: in1("x", x), want: out1("y", refSameU)},
		{name: "1-D",
			g:      newGB(17).in("x", Float32, 2, 3, 10).out("y", Float32).init("w", w1d).node("Conv", []string{"x", "w"}, []string{"y"}, aInts("strides", 2), aInts("pads", 1, 1)),
			inputs: in1("x", x1), want: out1("y", ref1)},
		{name: "dynamic weights",
			g:      newGB(13).in("x", Float32, 2, 4, 7, 6).in("w", Float32, 3, 4, 3, 3).out("y", Float32).node("Conv", []string{"x", "w"}, []string{"y"}, aStr("auto_pad", "SAME_LOWER"), aInts("strides", 2, 2)),
			inputs: map[string]*Tensor{"x": x, "w": w1}, want: out1("y", refSame)},
		{name: "fused residual and relu",
			g: newGB(13).in("x", Float32, -1, 4, 7, 6).in("r", Float32, -1, 4, 7, 6).out("y", Float32).init("w", w3).
				node("Conv", []string{"x", "w"}, []string{"c"}, aInts("pads", 1, 1, 1, 1)).
				node("Add", []string{"r", "c"}, []string{"s"}).node("Relu", []string{"s"}, []string{"y"}),
			inputs: map[string]*Tensor{"x": x, "r": res}, want: out1("y", fused)},
		{name: "fused broadcast residual",
			g: newGB(13).in("x", Float32, -1, 4, 7, 6).out("y", Float32).init("w", w3).init("r", rb).
				node("Conv", []string{"x", "w"}, []string{"c"}, aInts("pads", 1, 1, 1, 1)).
				node("Add", []string{"c", "r"}, []string{"s"}).node("Relu", []string{"s"}, []string{"y"}),
			inputs: in1("x", x), want: out1("y", fusedB)},
		{name: "residual that is the convolution's own input",
			g: newGB(13).in("x", Float32, -1, 8, 64, 96).out("y", Float32).init("w", wBig).
				node("Relu", []string{"x"}, []string{"t"}).
				node("Conv", []string{"t", "w"}, []string{"c"}, aInts("pads", 1, 1, 1, 1)).
				node("Add", []string{"c", "t"}, []string{"s"}).node("Relu", []string{"s"}, []string{"y"}),
			inputs: in1("x", xBig), want: out1("y", func() *Tensor {
				rx := mapT(xBig, func(_ int, v float32) float32 { return max(v, 0) })
				c := refConv(rx, wBig, nil, [2]int{1, 1}, [2]int{1, 1}, [4]int{1, 1, 1, 1}, 1)
				return mapT(c, func(i int, v float32) float32 { return max(v+rx.Float32[i], 0) })
			}()),
			// Values reach 20; fast kernels (Winograd) sum differently.
			atol: 1e-4},
		{name: "intermediate graph output is not fused away",
			g: newGB(13).in("x", Float32, -1, 4, 7, 6).in("r", Float32, -1, 4, 7, 6).out("c", Float32).out("y", Float32).init("w", w3).
				node("Conv", []string{"x", "w"}, []string{"c"}, aInts("pads", 1, 1, 1, 1)).
				node("Add", []string{"r", "c"}, []string{"s"}).node("Relu", []string{"s"}, []string{"y"}),
			inputs: map[string]*Tensor{"x": x, "r": res}, want: map[string]*Tensor{"y": fused, "c": conv3}},
		{name: "batchnorm folded into conv",
			g: newGB(9).in("x", Float32, -1, 4, 7, 6).out("y", Float32).init("w", w3).
				init("g", gamma).init("b", beta).init("m", mean).init("v", variance).
				node("Conv", []string{"x", "w"}, []string{"c"}, aInts("pads", 1, 1, 1, 1)).
				node("BatchNormalization", []string{"c", "g", "b", "m", "v"}, []string{"n"}, aFloat("epsilon", 1e-3)).
				node("Relu", []string{"n"}, []string{"y"}),
			inputs: in1("x", x), want: out1("y", bnRef)},
		{name: "batchnorm with relu, run-time parameters",
			g: newGB(15).in("x", Float32, -1, 4, 7, 6).in("g", Float32, 4).in("b", Float32, 4).in("m", Float32, 4).in("v", Float32, 4).out("y", Float32).
				node("BatchNormalization", []string{"x", "g", "b", "m", "v"}, []string{"n"}, aFloat("epsilon", 1e-3), aInt("training_mode", 0)).
				node("Relu", []string{"n"}, []string{"y"}),
			inputs: map[string]*Tensor{"x": x, "g": gamma, "b": beta, "m": mean, "v": variance}, want: out1("y", bnOnly)},
		{name: "batchnorm-7 spatial=0 refused",
			g: newGB(7).in("x", Float32, 2, 4, 7, 6).out("y", Float32).init("g", gamma).init("b", beta).init("m", mean).init("v", variance).
				node("BatchNormalization", []string{"x", "g", "b", "m", "v"}, []string{"y"}, aInt("spatial", 0)),
			err: "spatial=0"},
		{name: "channel mismatch",
			g:      newGB(13).in("x", Float32, -1, 3, 7, 6).out("y", Float32).init("w", w3).node("Conv", []string{"x", "w"}, []string{"y"}),
			inputs: in1("x", randT(1, 1, 3, 7, 6)), err: "input has 3 channels"},
		{name: "3-D convolution refused at load",
			g:   newGB(13).in("x", Float32, 1, 1, 4, 4, 4).out("y", Float32).init("w", randT(1, 1, 1, 2, 2, 2)).node("Conv", []string{"x", "w"}, []string{"y"}),
			err: "3-D convolution"},
	})
}

func TestActivationOps(t *testing.T) {
	x := f32(sh(2, 3), -2, -0.5, 0, 0.5, 2, 7)
	runOpCases(t, []opCase{
		{name: "Relu", g: newGB(14).in("x", Float32, 2, 3).out("y", Float32).node("Relu", []string{"x"}, []string{"y"}),
			inputs: in1("x", x), want: out1("y", f32(sh(2, 3), 0, 0, 0, 0.5, 2, 7))},
		{name: "Clip-6 attributes", g: newGB(7).in("x", Float32, 2, 3).out("y", Float32).node("Clip", []string{"x"}, []string{"y"}, aFloat("min", -1), aFloat("max", 1)),
			inputs: in1("x", x), want: out1("y", f32(sh(2, 3), -1, -0.5, 0, 0.5, 1, 1))},
		{name: "Clip-13 max only", g: newGB(13).in("x", Float32, 2, 3).out("y", Float32).init("hi", f32(sh(), 0.25)).node("Clip", []string{"x", "", "hi"}, []string{"y"}),
			inputs: in1("x", x), want: out1("y", f32(sh(2, 3), -2, -0.5, 0, 0.25, 0.25, 0.25))},
		{name: "Clip-13 attribute refused", g: newGB(13).in("x", Float32, 2, 3).out("y", Float32).node("Clip", []string{"x"}, []string{"y"}, aFloat("min", 0)),
			err: `attribute "min" is not supported by Clip-13`},
		{name: "LeakyRelu", g: newGB(16).in("x", Float32, 2, 3).out("y", Float32).node("LeakyRelu", []string{"x"}, []string{"y"}, aFloat("alpha", 0.1)),
			inputs: in1("x", x), want: out1("y", f32(sh(2, 3), -0.2, -0.05, 0, 0.5, 2, 7))},
		{name: "Sigmoid", g: newGB(13).in("x", Float32, 2, 3).out("y", Float32).node("Sigmoid", []string{"x"}, []string{"y"}),
			inputs: in1("x", x), want: out1("y", mapT(x, func(_ int, v float32) float32 { return float32(1 / (1 + math.Exp(-float64(v)))) }))},
		{name: "Relu on int64 refused", g: newGB(14).in("x", Int64, 2).out("y", Int64).node("Relu", []string{"x"}, []string{"y"}),
			err: "input 0 (X) is int64; this runtime computes Relu on float32"},
	})
}

func TestPoolOps(t *testing.T) {
	x := f32(sh(1, 1, 4, 5), seq(20, 1, 0)...)
	runOpCases(t, []opCase{
		{name: "MaxPool dilations ceil", g: newGB(12).in("x", Float32, 1, 1, 4, 5).out("y", Float32).
			node("MaxPool", []string{"x"}, []string{"y"}, aInts("kernel_shape", 2, 2), aInts("dilations", 2, 2), aInts("strides", 2, 2), aInt("ceil_mode", 1)),
			// windows rows {0,2},{2,4→out}; cols {0,2},{2,4}: out 1x2 with ceil (row 2 window starts at 2 < 4: 2 rows).
			inputs: in1("x", x), want: out1("y", f32(sh(1, 1, 2, 2), 12, 14, 12, 14))},
		{name: "AveragePool count_include_pad", g: newGB(11).in("x", Float32, 1, 1, 4, 5).out("y", Float32).
			node("AveragePool", []string{"x"}, []string{"y"}, aInts("kernel_shape", 3, 3), aInts("pads", 1, 1, 1, 1), aInts("strides", 3, 3), aInt("count_include_pad", 1)),
			// windows rows -1..1 and 2..4, cols -1..1 and 2..4.
			inputs: in1("x", x), want: out1("y", f32(sh(1, 1, 2, 2), (0+1+5+6)/9.0, (2+3+4+7+8+9)/9.0, (10+11+15+16)/9.0, (12+13+14+17+18+19)/9.0))},
		{name: "AveragePool excluding pad", g: newGB(11).in("x", Float32, 1, 1, 4, 5).out("y", Float32).
			node("AveragePool", []string{"x"}, []string{"y"}, aInts("kernel_shape", 3, 3), aInts("pads", 1, 1, 1, 1), aInts("strides", 3, 3)),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 1, 2, 2), (0+1+5+6)/4.0, (2+3+4+7+8+9)/6.0, (10+11+15+16)/4.0, (12+13+14+17+18+19)/6.0))},
		{name: "AveragePool-19 dilations", g: newGB(19).in("x", Float32, 1, 1, 4, 5).out("y", Float32).
			node("AveragePool", []string{"x"}, []string{"y"}, aInts("kernel_shape", 2, 2), aInts("dilations", 2, 3)),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 1, 2, 2), (0+3+10+13)/4.0, (1+4+11+14)/4.0, (5+8+15+18)/4.0, (6+9+16+19)/4.0))},
		{name: "AveragePool-11 dilations refused", g: newGB(11).in("x", Float32, 1, 1, 4, 5).out("y", Float32).
			node("AveragePool", []string{"x"}, []string{"y"}, aInts("kernel_shape", 2, 2), aInts("dilations", 2, 2)),
			err: `attribute "dilations" is not supported by AveragePool-11`},
		{name: "MaxPool storage_order refused", g: newGB(12).in("x", Float32, 1, 1, 4, 5).out("y", Float32).
			node("MaxPool", []string{"x"}, []string{"y"}, aInts("kernel_shape", 2, 2), aInt("storage_order", 1)),
			err: "storage_order=1"},
		{name: "GlobalMaxPool", g: newGB(13).in("x", Float32, 1, 2, 2, 2).out("y", Float32).node("GlobalMaxPool", []string{"x"}, []string{"y"}),
			inputs: in1("x", f32(sh(1, 2, 2, 2), 1, 5, 2, 3, -1, -4, -2, -3)), want: out1("y", f32(sh(1, 2, 1, 1), 5, -1))},
		{name: "GlobalAveragePool", g: newGB(13).in("x", Float32, 1, 2, 2, 2).out("y", Float32).node("GlobalAveragePool", []string{"x"}, []string{"y"}),
			inputs: in1("x", f32(sh(1, 2, 2, 2), 1, 5, 2, 3, -1, -4, -2, -3)), want: out1("y", f32(sh(1, 2, 1, 1), 2.75, -2.5))},
	})
}

func TestMatrixOps(t *testing.T) {
	a := f32(sh(2, 3), 1, 2, 3, 4, 5, 6)
	b := f32(sh(3, 2), 1, 0, 0, 1, 1, 1)
	ab := f32(sh(2, 2), 4, 5, 10, 11)
	m3 := randT(3, 2, 1, 3, 4)
	m4 := randT(4, 3, 4, 5)
	refMM := func(a, b *Tensor) *Tensor { // [2,1,3,4] x [3,4,5] → [2,3,3,5]
		out := newTensor(Float32, []int{2, 3, 3, 5})
		for i := range 2 {
			for j := range 3 {
				for r := range 3 {
					for c := range 5 {
						s := 0.0
						for k := range 4 {
							s += float64(a.Float32[(i*3+r)*4+k]) * float64(b.Float32[(j*4+k)*5+c])
						}
						out.Float32[((i*3+j)*3+r)*5+c] = float32(s)
					}
				}
			}
		}
		return out
	}
	runOpCases(t, []opCase{
		{name: "Gemm vector bias", g: newGB(13).in("a", Float32, 2, 3).out("y", Float32).init("b", b).init("c", f32(sh(2), 10, 20)).
			node("Gemm", []string{"a", "b", "c"}, []string{"y"}),
			inputs: in1("a", a), want: out1("y", f32(sh(2, 2), 14, 25, 20, 31))},
		{name: "Gemm transposes alpha beta column bias", g: newGB(13).in("a", Float32, 3, 2).out("y", Float32).init("b", f32(sh(2, 3), 1, 0, 1, 0, 1, 1)).init("c", f32(sh(2, 1), 1, 2)).
			node("Gemm", []string{"a", "b", "c"}, []string{"y"}, aInt("transA", 1), aInt("transB", 1), aFloat("alpha", 2), aFloat("beta", -1)),
			inputs: in1("a", f32(sh(3, 2), 1, 4, 2, 5, 3, 6)), want: out1("y", f32(sh(2, 2), 7, 9, 18, 20))},
		{name: "Gemm-13 no C", g: newGB(13).in("a", Float32, 2, 3).out("y", Float32).init("b", b).node("Gemm", []string{"a", "b"}, []string{"y"}),
			inputs: in1("a", a), want: out1("y", ab)},
		{name: "Gemm-9 needs C", g: newGB(9).in("a", Float32, 2, 3).out("y", Float32).init("b", b).node("Gemm", []string{"a", "b"}, []string{"y"}),
			err: "has 2 inputs; Gemm-9 takes 3"},
		{name: "MatMul 2-D", g: newGB(13).in("a", Float32, 2, 3).in("b", Float32, 3, 2).out("y", Float32).node("MatMul", []string{"a", "b"}, []string{"y"}),
			inputs: map[string]*Tensor{"a": a, "b": b}, want: out1("y", ab)},
		{name: "MatMul vector matrix", g: newGB(13).in("a", Float32, 3).in("b", Float32, 3, 2).out("y", Float32).node("MatMul", []string{"a", "b"}, []string{"y"}),
			inputs: map[string]*Tensor{"a": f32(sh(3), 1, 2, 3), "b": b}, want: out1("y", f32(sh(2), 4, 5))},
		{name: "MatMul matrix vector", g: newGB(13).in("a", Float32, 2, 3).in("b", Float32, 3).out("y", Float32).node("MatMul", []string{"a", "b"}, []string{"y"}),
			inputs: map[string]*Tensor{"a": a, "b": f32(sh(3), 1, 1, 1)}, want: out1("y", f32(sh(2), 6, 15))},
		{name: "MatMul batch broadcast", g: newGB(13).in("a", Float32, 2, 1, 3, 4).in("b", Float32, 3, 4, 5).out("y", Float32).node("MatMul", []string{"a", "b"}, []string{"y"}),
			inputs: map[string]*Tensor{"a": m3, "b": m4}, want: out1("y", refMM(m3, m4))},
		{name: "MatMul batch against matrix", g: newGB(13).in("a", Float32, 2, 2, 3).in("b", Float32, 3, 2).out("y", Float32).node("MatMul", []string{"a", "b"}, []string{"y"}),
			inputs: map[string]*Tensor{"a": f32(sh(2, 2, 3), 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6), "b": b}, want: out1("y", f32(sh(2, 2, 2), 4, 5, 10, 11, 4, 5, 10, 11))},
		{name: "MatMul mismatch", g: newGB(13).in("a", Float32, 2, 3).in("b", Float32, 2, 2).out("y", Float32).node("MatMul", []string{"a", "b"}, []string{"y"}),
			err: "do not multiply"},
	})
}

func TestArithmeticOps(t *testing.T) {
	runOpCases(t, []opCase{
		{name: "Add broadcast float", g: newGB(14).in("a", Float32, 2, 1, 3).in("b", Float32, 2, 1).out("y", Float32).node("Add", []string{"a", "b"}, []string{"y"}),
			inputs: map[string]*Tensor{"a": f32(sh(2, 1, 3), 1, 2, 3, 4, 5, 6), "b": f32(sh(2, 1), 10, 20)},
			want:   out1("y", f32(sh(2, 2, 3), 11, 12, 13, 21, 22, 23, 14, 15, 16, 24, 25, 26))},
		{name: "Sub int64 scalar", g: newGB(14).in("a", Int64, 3).out("y", Int64).init("b", i64(sh(), 1)).node("Sub", []string{"b", "a"}, []string{"y"}),
			inputs: in1("a", i64(sh(3), 1, 2, 3)), want: out1("y", i64(sh(3), 0, -1, -2))},
		{name: "Mul int32", g: newGB(14).in("a", Int32, 2).in("b", Int32, 2).out("y", Int32).node("Mul", []string{"a", "b"}, []string{"y"}),
			inputs: map[string]*Tensor{"a": {Shape: sh(2), DType: Int32, Int32: []int32{3, -4}}, "b": {Shape: sh(2), DType: Int32, Int32: []int32{5, 6}}},
			want:   out1("y", &Tensor{Shape: sh(2), DType: Int32, Int32: []int32{15, -24}})},
		{name: "Div int64 truncates", g: newGB(14).in("a", Int64, 2).in("b", Int64, 2).out("y", Int64).node("Div", []string{"a", "b"}, []string{"y"}),
			inputs: map[string]*Tensor{"a": i64(sh(2), 7, -7), "b": i64(sh(2), 2, 2)}, want: out1("y", i64(sh(2), 3, -3))},
		{name: "Div int64 by zero", g: newGB(14).in("a", Int64, 2).in("b", Int64, 2).out("y", Int64).node("Div", []string{"a", "b"}, []string{"y"}),
			inputs: map[string]*Tensor{"a": i64(sh(2), 7, -7), "b": i64(sh(2), 2, 0)}, err: "integer division by zero"},
		{name: "Add mixed types", g: newGB(14).in("a", Int64, 2).in("b", Float32, 2).out("y", Int64).node("Add", []string{"a", "b"}, []string{"y"}),
			err: "different element types"},
		{name: "Add bad broadcast", g: newGB(14).in("a", Float32, 2, 3).in("b", Float32, 2).out("y", Float32).node("Add", []string{"a", "b"}, []string{"y"}),
			err: "cannot be broadcast"},
		{name: "Sum broadcast", g: newGB(13).in("a", Float32, 2, 1).in("b", Float32, 3).in("c", Float32, 1).out("y", Float32).node("Sum", []string{"a", "b", "c"}, []string{"y"}),
			inputs: map[string]*Tensor{"a": f32(sh(2, 1), 1, 2), "b": f32(sh(3), 10, 20, 30), "c": f32(sh(1), 100)},
			want:   out1("y", f32(sh(2, 3), 111, 121, 131, 112, 122, 132))},
		{name: "Mean", g: newGB(13).in("a", Float32, 2).in("b", Float32, 2).out("y", Float32).node("Mean", []string{"a", "b"}, []string{"y"}),
			inputs: map[string]*Tensor{"a": f32(sh(2), 1, 2), "b": f32(sh(2), 3, 6)}, want: out1("y", f32(sh(2), 2, 4))},
	})
}

func TestShapeOps(t *testing.T) {
	x := f32(sh(2, 3, 4), seq(24, 1, 0)...)
	runOpCases(t, []opCase{
		{name: "Flatten axis 0", g: newGB(13).in("x", Float32, 2, 3, 4).out("y", Float32).node("Flatten", []string{"x"}, []string{"y"}, aInt("axis", 0)),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 24), seq(24, 1, 0)...))},
		{name: "Flatten axis -1", g: newGB(13).in("x", Float32, 2, 3, 4).out("y", Float32).node("Flatten", []string{"x"}, []string{"y"}, aInt("axis", -1)),
			inputs: in1("x", x), want: out1("y", f32(sh(6, 4), seq(24, 1, 0)...))},
		{name: "Flatten-9 negative axis refused", g: newGB(9).in("x", Float32, 2, 3, 4).out("y", Float32).node("Flatten", []string{"x"}, []string{"y"}, aInt("axis", -1)),
			err: "negative axis"},
		{name: "Reshape 0 and -1", g: newGB(13).in("x", Float32, 2, 3, 4).out("y", Float32).init("s", i64(sh(3), 0, -1, 2)).node("Reshape", []string{"x", "s"}, []string{"y"}),
			inputs: in1("x", x), want: out1("y", f32(sh(2, 6, 2), seq(24, 1, 0)...))},
		{name: "Reshape allowzero", g: newGB(14).in("x", Float32, 0, 3).out("y", Float32).init("s", i64(sh(2), 3, 0)).node("Reshape", []string{"x", "s"}, []string{"y"}, aInt("allowzero", 1)),
			inputs: in1("x", f32(sh(0, 3))), want: out1("y", f32(sh(3, 0)))},
		{name: "Reshape bad size", g: newGB(13).in("x", Float32, 2, 3, 4).out("y", Float32).init("s", i64(sh(2), 5, -1)).node("Reshape", []string{"x", "s"}, []string{"y"}),
			err: "cannot reshape"},
		{name: "Reshape to a shape computed from a run-time input", g: newGB(13).in("x", Float32, 2, 3, 4).in("f", Float32, 2).out("y", Float32).
			node("Cast", []string{"f"}, []string{"s"}, aInt("to", int64(Int64))).node("Reshape", []string{"x", "s"}, []string{"y"}),
			inputs: map[string]*Tensor{"x": x, "f": f32(sh(2), 4, 6)}, want: out1("y", f32(sh(4, 6), seq(24, 1, 0)...))},
		{name: "Squeeze-1 all", g: newGB(9).in("x", Float32, 1, 3, 1).out("y", Float32).node("Squeeze", []string{"x"}, []string{"y"}),
			inputs: in1("x", f32(sh(1, 3, 1), 1, 2, 3)), want: out1("y", f32(sh(3), 1, 2, 3))},
		{name: "Squeeze-13 input axes", g: newGB(13).in("x", Float32, 1, 3, 1).out("y", Float32).init("a", i64(sh(1), -1)).node("Squeeze", []string{"x", "a"}, []string{"y"}),
			inputs: in1("x", f32(sh(1, 3, 1), 1, 2, 3)), want: out1("y", f32(sh(1, 3), 1, 2, 3))},
		{name: "Squeeze non-1", g: newGB(11).in("x", Float32, 1, 3, 1).out("y", Float32).node("Squeeze", []string{"x"}, []string{"y"}, aInts("axes", 1)),
			err: "cannot squeeze"},
		{name: "Unsqueeze-11 negative", g: newGB(11).in("x", Float32, 3).out("y", Float32).node("Unsqueeze", []string{"x"}, []string{"y"}, aInts("axes", 0, -1)),
			inputs: in1("x", f32(sh(3), 1, 2, 3)), want: out1("y", f32(sh(1, 3, 1), 1, 2, 3))},
		{name: "Unsqueeze-13 attribute refused", g: newGB(13).in("x", Float32, 3).out("y", Float32).node("Unsqueeze", []string{"x"}, []string{"y"}, aInts("axes", 0)),
			err: "has 1 inputs; Unsqueeze-13 takes 2"},
		{name: "Transpose default", g: newGB(13).in("x", Float32, 2, 3).out("y", Float32).node("Transpose", []string{"x"}, []string{"y"}),
			inputs: in1("x", f32(sh(2, 3), 1, 2, 3, 4, 5, 6)), want: out1("y", f32(sh(3, 2), 1, 4, 2, 5, 3, 6))},
		{name: "Transpose perm", g: newGB(13).in("x", Float32, 2, 3, 4).out("y", Float32).node("Transpose", []string{"x"}, []string{"y"}, aInts("perm", 1, 2, 0)),
			inputs: in1("x", x), want: out1("y", func() *Tensor {
				o := newTensor(Float32, sh(3, 4, 2))
				for a := range 2 {
					for b := range 3 {
						for c := range 4 {
							o.Float32[(b*4+c)*2+a] = x.Float32[(a*3+b)*4+c]
						}
					}
				}
				return o
			}())},
		{name: "Concat int64", g: newGB(13).in("a", Int64, 1, 2).in("b", Int64, 1, 1).out("y", Int64).node("Concat", []string{"a", "b"}, []string{"y"}, aInt("axis", -1)),
			inputs: map[string]*Tensor{"a": i64(sh(1, 2), 1, 2), "b": i64(sh(1, 1), 3)}, want: out1("y", i64(sh(1, 3), 1, 2, 3))},
		{name: "Shape start end", g: newGB(15).in("x", Float32, 2, 3, 4).out("y", Int64).node("Shape", []string{"x"}, []string{"y"}, aInt("start", -2), aInt("end", 10)),
			inputs: in1("x", x), want: out1("y", i64(sh(2), 3, 4))},
		{name: "Shape-13 start refused", g: newGB(13).in("x", Float32, 2, 3, 4).out("y", Int64).node("Shape", []string{"x"}, []string{"y"}, aInt("start", 1)),
			err: `attribute "start" is not supported by Shape-13`},
		{name: "Identity and Dropout-7 mask", g: newGB(7).in("x", Float32, 2).out("y", Float32).out("m", Float32).out("z", Float32).
			node("Dropout", []string{"x"}, []string{"y", "m"}, aFloat("ratio", 0.3)).node("Identity", []string{"y"}, []string{"z"}),
			inputs: in1("x", f32(sh(2), 1, 2)), want: map[string]*Tensor{"y": f32(sh(2), 1, 2), "m": f32(sh(2), 1, 1), "z": f32(sh(2), 1, 2)}},
		{name: "Dropout-13 mask", g: newGB(13).in("x", Float32, 2).out("y", Float32).out("m", Bool).node("Dropout", []string{"x"}, []string{"y", "m"}),
			inputs: in1("x", f32(sh(2), 1, 2)), want: map[string]*Tensor{"y": f32(sh(2), 1, 2), "m": {Shape: sh(2), DType: Bool, Bool: []bool{true, true}}}},
		{name: "Dropout-13 training refused", g: newGB(13).in("x", Float32, 2).out("y", Float32).init("r", f32(sh(), 0.5)).init("t", &Tensor{Shape: sh(), DType: Bool, Bool: []bool{true}}).
			node("Dropout", []string{"x", "r", "t"}, []string{"y"}),
			err: "training_mode=true"},
	})
}

func TestDataMovementOps(t *testing.T) {
	x := f32(sh(2, 3, 4), seq(24, 1, 0)...)
	runOpCases(t, []opCase{
		{name: "Slice-1 attributes", g: newGB(9).in("x", Float32, 2, 3, 4).out("y", Float32).node("Slice", []string{"x"}, []string{"y"}, aInts("starts", 1, -3), aInts("ends", 2, 1000), aInts("axes", 0, 2)),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 3, 3), 13, 14, 15, 17, 18, 19, 21, 22, 23))},
		{name: "Slice-13 negative steps and extreme bounds", g: newGB(13).in("x", Float32, 2, 3, 4).out("y", Float32).
			init("s", i64(sh(2), math.MaxInt64, -1)).init("e", i64(sh(2), math.MinInt64, 0)).init("a", i64(sh(2), 2, 1)).init("st", i64(sh(2), -2, -1)).
			node("Slice", []string{"x", "s", "e", "a", "st"}, []string{"y"}),
			// axis 2: 3, 1; axis 1: 2, 1.
			inputs: in1("x", x), want: out1("y", f32(sh(2, 2, 2), 11, 9, 7, 5, 23, 21, 19, 17))},
		{name: "Slice-13 run-time bounds key the plan", g: newGB(13).in("x", Float32, 2, 3, 4).in("s", Int64, 1).out("y", Float32).
			init("e", i64(sh(1), 100)).init("a", i64(sh(1), 1)).node("Slice", []string{"x", "s", "e", "a"}, []string{"y"}),
			inputs: map[string]*Tensor{"x": x, "s": i64(sh(1), 2)}, want: out1("y", f32(sh(2, 1, 4), 8, 9, 10, 11, 20, 21, 22, 23))},
		{name: "Pad-2 reflect", g: newGB(9).in("x", Float32, 1, 3).out("y", Float32).node("Pad", []string{"x"}, []string{"y"}, aStr("mode", "reflect"), aInts("pads", 0, 2, 0, 1)),
			inputs: in1("x", f32(sh(1, 3), 1, 2, 3)), want: out1("y", f32(sh(1, 6), 3, 2, 1, 2, 3, 2))},
		{name: "Pad-2 constant value", g: newGB(9).in("x", Float32, 1, 2).out("y", Float32).node("Pad", []string{"x"}, []string{"y"}, aInts("pads", 1, 0, 0, 1), aFloat("value", 9)),
			inputs: in1("x", f32(sh(1, 2), 1, 2)), want: out1("y", f32(sh(2, 3), 9, 9, 9, 1, 2, 9))},
		{name: "Pad-11 edge", g: newGB(11).in("x", Float32, 2, 2).out("y", Float32).init("p", i64(sh(4), 0, 1, 1, 0)).node("Pad", []string{"x", "p"}, []string{"y"}, aStr("mode", "edge")),
			inputs: in1("x", f32(sh(2, 2), 1, 2, 3, 4)), want: out1("y", f32(sh(3, 3), 1, 1, 2, 3, 3, 4, 3, 3, 4))},
		{name: "Pad-18 axes and negative pads", g: newGB(18).in("x", Int64, 2, 3).out("y", Int64).
			init("p", i64(sh(2), -1, 2)).init("v", i64(sh(), 7)).init("a", i64(sh(1), 1)).node("Pad", []string{"x", "p", "v", "a"}, []string{"y"}),
			inputs: in1("x", i64(sh(2, 3), 1, 2, 3, 4, 5, 6)), want: out1("y", i64(sh(2, 4), 2, 3, 7, 7, 5, 6, 7, 7))},
		{name: "Pad wrap refused", g: newGB(19).in("x", Float32, 2).out("y", Float32).init("p", i64(sh(2), 1, 1)).node("Pad", []string{"x", "p"}, []string{"y"}, aStr("mode", "wrap")),
			err: `mode "wrap" is not supported`},
		{name: "Gather int32 axis 1", g: newGB(13).in("x", Float32, 2, 3).out("y", Float32).init("i", &Tensor{Shape: sh(2), DType: Int32, Int32: []int32{2, -3}}).
			node("Gather", []string{"x", "i"}, []string{"y"}, aInt("axis", 1)),
			inputs: in1("x", f32(sh(2, 3), 1, 2, 3, 4, 5, 6)), want: out1("y", f32(sh(2, 2), 3, 1, 6, 4))},
		{name: "Gather out of range", g: newGB(13).in("x", Float32, 3).in("i", Int64, 1).out("y", Float32).node("Gather", []string{"x", "i"}, []string{"y"}),
			inputs: map[string]*Tensor{"x": f32(sh(3), 1, 2, 3), "i": i64(sh(1), 3)}, err: "index 3 is out of range"},
		{name: "Cast float to int64 and back", g: newGB(13).in("x", Float32, 3).out("i", Int64).out("f", Float32).out("b", Bool).
			node("Cast", []string{"x"}, []string{"i"}, aInt("to", int64(Int64))).node("Cast", []string{"i"}, []string{"f"}, aInt("to", int64(Float32))).
			node("Cast", []string{"x"}, []string{"b"}, aInt("to", int64(Bool))),
			inputs: in1("x", f32(sh(3), -1.7, 0, 2.9)),
			want:   map[string]*Tensor{"i": i64(sh(3), -1, 0, 2), "f": f32(sh(3), -1, 0, 2), "b": {Shape: sh(3), DType: Bool, Bool: []bool{true, false, true}}}},
		{name: "Cast to bfloat16 refused", g: newGB(13).in("x", Float32, 3).out("y", Float32).node("Cast", []string{"x"}, []string{"y"}, aInt("to", 16)),
			err: "cast to BFLOAT16"},
	})
}

func TestConstantAndShapeFolding(t *testing.T) {
	x := f32(sh(2, 3, 2, 2), seq(24, 1, 0)...)
	// torchvision-style flatten: Shape → Gather → Unsqueeze → Concat → Reshape.
	flatten := newGB(11).in("x", Float32, -1, 3, 2, 2).out("y", Float32).
		init("zero", i64(sh(), 0)).init("minus1", i64(sh(1), -1)).
		node("Shape", []string{"x"}, []string{"s"}).
		node("Gather", []string{"s", "zero"}, []string{"n"}, aInt("axis", 0)).
		node("Unsqueeze", []string{"n"}, []string{"n1"}, aInts("axes", 0)).
		node("Concat", []string{"n1", "minus1"}, []string{"shape"}, aInt("axis", 0)).
		node("Reshape", []string{"x", "shape"}, []string{"y"})
	// ConstantOfShape chain: zeros shaped like the input, plus x.
	cos := newGB(13).in("x", Float32, -1, 3, 2, 2).out("y", Float32).out("k", Int64).
		node("Shape", []string{"x"}, []string{"s"}).
		node("ConstantOfShape", []string{"s"}, []string{"z"}, aTensor("value", f32(sh(1), 0.5))).
		node("Add", []string{"x", "z"}, []string{"y"}).
		node("ConstantOfShape", []string{"s"}, []string{"k"}, aTensor("value", i64(sh(1), 7)))
	runOpCases(t, []opCase{
		{name: "shape-only flatten chain", g: flatten, inputs: in1("x", x), want: out1("y", f32(sh(2, 12), seq(24, 1, 0)...))},
		{name: "ConstantOfShape chain", g: cos, inputs: in1("x", x), want: map[string]*Tensor{
			"y": f32(sh(2, 3, 2, 2), seq(24, 1, 0.5)...),
			"k": i64(sh(2, 3, 2, 2), 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7)}},
		{name: "Constant value_floats and value_int", g: newGB(13).in("x", Float32, 2).out("y", Float32).out("c", Int64).
			node("Constant", nil, []string{"k"}, aFloats("value_floats", 1, 2)).node("Mul", []string{"x", "k"}, []string{"y"}).
			node("Constant", nil, []string{"c"}, aInt("value_int", 42)),
			inputs: in1("x", f32(sh(2), 3, 4)), want: map[string]*Tensor{"y": f32(sh(2), 3, 8), "c": i64(sh(), 42)}},
		{name: "Constant-11 value_float refused", g: newGB(11).out("c", Float32).node("Constant", nil, []string{"c"}, aFloat("value_float", 1)),
			err: `attribute "value_float" is not supported by Constant-11`},
		{name: "graph output that is an input", g: newGB(13).in("x", Float32, 2).out("x", Float32).out("y", Float32).node("Relu", []string{"x"}, []string{"y"}),
			inputs: in1("x", f32(sh(2), -1, 1)), want: map[string]*Tensor{"x": f32(sh(2), -1, 1), "y": f32(sh(2), 0, 1)}},
	})
}

func TestSoftmaxAndReduceOps(t *testing.T) {
	x := randT(1, 2, 3, 4)
	softmax := func(axes []int, log bool) *Tensor { // over the given trailing-contiguous group of axes
		out := x.Clone()
		// groups: for axes {1} on [2,3,4]: outer 2, mid 3, inner 4; for {1,2}: outer 2, mid 12, inner 1.
		outer, mid, inner := 2, 3, 4
		if len(axes) == 2 {
			mid, inner = 12, 1
		}
		for o := range outer {
			for in := range inner {
				m := math.Inf(-1)
				for k := range mid {
					m = math.Max(m, float64(x.Float32[(o*mid+k)*inner+in]))
				}
				s := 0.0
				for k := range mid {
					s += math.Exp(float64(x.Float32[(o*mid+k)*inner+in]) - m)
				}
				for k := range mid {
					i := (o*mid+k)*inner + in
					v := math.Exp(float64(x.Float32[i])-m) / s
					if log {
						v = float64(x.Float32[i]) - m - math.Log(s)
					}
					out.Float32[i] = float32(v)
				}
			}
		}
		return out
	}
	mean12 := newTensor(Float32, sh(2))
	for o := range 2 {
		s := 0.0
		for k := range 12 {
			s += float64(x.Float32[o*12+k])
		}
		mean12.Float32[o] = float32(s / 12)
	}
	all := 0.0
	for _, v := range x.Float32 {
		all += float64(v)
	}
	runOpCases(t, []opCase{
		{name: "Softmax-11 coerces to 2-D", g: newGB(11).in("x", Float32, 2, 3, 4).out("y", Float32).node("Softmax", []string{"x"}, []string{"y"}),
			inputs: in1("x", x), want: out1("y", softmax([]int{1, 2}, false))},
		{name: "Softmax-13 one axis", g: newGB(13).in("x", Float32, 2, 3, 4).out("y", Float32).node("Softmax", []string{"x"}, []string{"y"}, aInt("axis", 1)),
			inputs: in1("x", x), want: out1("y", softmax([]int{1}, false))},
		{name: "LogSoftmax-1 coerces", g: newGB(9).in("x", Float32, 2, 3, 4).out("y", Float32).node("LogSoftmax", []string{"x"}, []string{"y"}),
			inputs: in1("x", x), want: out1("y", softmax([]int{1, 2}, true))},
		{name: "ReduceMean-18 axes input", g: newGB(18).in("x", Float32, 2, 3, 4).out("y", Float32).init("a", i64(sh(2), -1, 1)).
			node("ReduceMean", []string{"x", "a"}, []string{"y"}, aInt("keepdims", 0)),
			inputs: in1("x", x), want: out1("y", mean12)},
		{name: "ReduceMean-13 all axes", g: newGB(13).in("x", Float32, 2, 3, 4).out("y", Float32).node("ReduceMean", []string{"x"}, []string{"y"}),
			inputs: in1("x", x), want: out1("y", f32(sh(1, 1, 1), float32(all/24)))},
		{name: "ReduceMean-18 noop", g: newGB(18).in("x", Float32, 2, 3, 4).out("y", Float32).node("ReduceMean", []string{"x"}, []string{"y"}, aInt("noop_with_empty_axes", 1)),
			inputs: in1("x", x), want: out1("y", x)},
		{name: "ReduceMean-13 axes input refused", g: newGB(13).in("x", Float32, 2, 3, 4).out("y", Float32).init("a", i64(sh(1), 1)).node("ReduceMean", []string{"x", "a"}, []string{"y"}),
			err: "has 2 inputs; ReduceMean-13 takes 1"},
	})
}
