package infer

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/kernels"
	"github.com/resnetctl/resnetctl/models"
	quantizepkg "github.com/resnetctl/resnetctl/quantize"
)

// qdqBlock builds a residual block in the QDQ form quantizers write:
// x → Q/DQ → Conv(DQ(int8 W1), DQ(int32 b1)) → Relu → Q/DQ → Conv(W2, b2)
// → Q/DQ → Add(x_dq) → Relu → Q/DQ → y, c channels, h×w images.
func qdqBlock(r *rand.Rand, c, h, w int) *gb {
	g := newGB(13).in("x", Float32, -1, int64(c), int64(h), int64(w)).out("y", Float32)
	sx, s1, s2, sy := float32(0.04), float32(0.03), float32(0.05), float32(0.045)
	act := func(name string, s float32, z uint8) {
		g.init(name+"_s", f32(sh(), s)).init(name+"_z", &Tensor{Shape: sh(), DType: Uint8, Uint8: []uint8{z}})
	}
	act("x", sx, 128)
	act("a1", s1, 0)
	act("c2", s2, 120)
	act("y", sy, 0)
	conv := func(name, in string, scaleIn float32) {
		wq := make([]int8, c*c*9)
		for i := range wq {
			wq[i] = int8(r.IntN(255) - 127)
		}
		ws := make([]float32, c)
		bq := make([]int32, c)
		bs := make([]float32, c)
		for m := range ws {
			ws[m] = 0.002 * float32(1+m%3)
			bs[m] = scaleIn * ws[m]
			bq[m] = int32(r.IntN(4001) - 2000)
		}
		g.init(name+"_wq", &Tensor{Shape: sh(c, c, 3, 3), DType: Int8, Int8: wq}).init(name+"_ws", f32(sh(c), ws...)).
			init(name+"_wz", &Tensor{Shape: sh(c), DType: Int8, Int8: make([]int8, c)}).
			init(name+"_bq", &Tensor{Shape: sh(c), DType: Int32, Int32: bq}).init(name+"_bs", f32(sh(c), bs...))
		g.node("DequantizeLinear", []string{name + "_wq", name + "_ws", name + "_wz"}, []string{name + "_w"}, aInt("axis", 0))
		g.node("DequantizeLinear", []string{name + "_bq", name + "_bs"}, []string{name + "_b"}, aInt("axis", 0))
		g.node("Conv", []string{in, name + "_w", name + "_b"}, []string{name}, aInts("pads", 1, 1, 1, 1), aInts("kernel_shape", 3, 3))
	}
	qdq := func(t, params, out string) {
		g.node("QuantizeLinear", []string{t, params + "_s", params + "_z"}, []string{t + "_q"})
		g.node("DequantizeLinear", []string{t + "_q", params + "_s", params + "_z"}, []string{out})
	}
	qdq("x", "x", "x_dq")
	conv("c1", "x_dq", sx)
	g.node("Relu", []string{"c1"}, []string{"a1"})
	qdq("a1", "a1", "a1_dq")
	conv("c2", "a1_dq", s1)
	qdq("c2", "c2", "c2_dq")
	g.node("Add", []string{"c2_dq", "x_dq"}, []string{"sum"})
	g.node("Relu", []string{"sum"}, []string{"a2"})
	qdq("a2", "y", "y")
	return g
}

// TestQDQInt8KernelsMatchFloat runs a residual block of the QDQ form on
// the int8 kernels (where the CPU has them) and as written (float32 on
// dequantized values): the int8 path accumulates exactly where float32
// rounds, so a value may land one quantization step away where the float
// result sits on a rounding boundary — rare. The block quantizes twice
// in a row (the second convolution's output at 0.05, then the sum at
// 0.045), so a step at the first can become two at the output.
func TestQDQInt8KernelsMatchFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, c := range []int{16, 32, 64} {
		model := qdqBlock(r, c, 9, 11).bytes(t)
		fast, err := LoadBytes(model, Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer fast.Close()
		slow, err := LoadBytes(model, Options{Threads: 2, NoInt8Kernels: true})
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Close()
		info := fast.Int8()
		if kernels.QConvSupported() {
			if info.Convolutions != 2 || info.FloatQDQ != 1 || info.Kernel == "" {
				t.Fatalf("%d channels: Int8() = %+v, want 2 convolutions on int8 kernels, 1 pair (the input's) in float", c, info)
			}
			t.Logf("%d channels: %+v", c, info)
		} else if info.Convolutions != 0 {
			t.Fatalf("Int8() = %+v on a CPU without the int8 kernels", info)
		}
		if si := slow.Int8(); si.Convolutions != 0 || si.FloatQDQ != 4 {
			t.Fatalf("NoInt8Kernels: Int8() = %+v, want 4 pairs in float, no int8 convolutions", si)
		}
		x := make([]float32, 3*c*9*11)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 2)
		}
		in := map[string]*Tensor{"x": f32(sh(3, c, 9, 11), x...)}
		a, err := fast.Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		b, err := slow.Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		ya, yb := a["y"].Float32, b["y"].Float32
		const step = 0.045
		off := 0
		for i := range ya {
			d := math.Abs(float64(ya[i] - yb[i]))
			if d > 2*step*1.001 {
				t.Fatalf("%d channels: element %d is %g on int8 kernels, %g in float: more than two steps apart", c, i, ya[i], yb[i])
			}
			if d > 1e-6 {
				off++
			}
		}
		if off*100 > len(ya) {
			t.Fatalf("%d channels: %d of %d outputs a step apart (over 1%%)", c, off, len(ya))
		}
		t.Logf("%d channels: %d of %d outputs a step or two apart", c, off, len(ya))
	}
}

// TestQDQBadParameters: scales that are zero, negative, NaN or infinite,
// zero points of the wrong type or shape, axes that do not fit: refused
// at load, each problem on a line naming its node.
func TestQDQBadParameters(t *testing.T) {
	u8 := func(v ...uint8) *Tensor { return &Tensor{Shape: sh(), DType: Uint8, Uint8: v} }
	base := func(scale *Tensor, zp *Tensor, attrs ...int64) *gb {
		g := newGB(13).in("x", Float32, 1, 3, 2, 2).out("y", Float32).init("s", scale)
		ins := []string{"x", "s"}
		if zp != nil {
			g.init("z", zp)
			ins = append(ins, "z")
		}
		var a []int64
		a = append(a, attrs...)
		if len(a) > 0 {
			g.node("QuantizeLinear", ins, []string{"q"}, aInt("axis", a[0]))
		} else {
			g.node("QuantizeLinear", ins, []string{"q"})
		}
		dins := append([]string{"q"}, ins[1:]...)
		if len(a) > 0 {
			g.node("DequantizeLinear", dins, []string{"y"}, aInt("axis", a[0]))
		} else {
			g.node("DequantizeLinear", dins, []string{"y"})
		}
		return g
	}
	for _, tc := range []struct {
		name string
		g    *gb
		want string
	}{
		{"zero scale", base(f32(sh(), 0), u8(0)), `node "QuantizeLinear:q" (QuantizeLinear): y_scale is 0: a scale must be positive and finite`},
		{"negative scale", base(f32(sh(), -0.5), u8(0)), `y_scale is -0.5: a scale must be positive and finite`},
		{"NaN scale", base(f32(sh(), float32(math.NaN())), u8(0)), `y_scale is NaN: a scale must be positive and finite`},
		{"infinite scale", base(f32(sh(), float32(math.Inf(1))), u8(0)), `y_scale is +Inf: a scale must be positive and finite`},
		{"one bad channel", base(f32(sh(3), 0.1, 0, 0.2), &Tensor{Shape: sh(3), DType: Uint8, Uint8: []uint8{0, 0, 0}}, 1), `y_scale[1] is 0: a scale must be positive and finite`},
		{"float zero point", base(f32(sh(), 0.1), f32(sh(), 3)), `input 2 (y_zero_point) is float32; this runtime computes QuantizeLinear on uint8 or int8`},
		{"axis does not fit", base(f32(sh(2), 0.1, 0.2), &Tensor{Shape: sh(2), DType: Uint8, Uint8: []uint8{0, 0}}, 1), `y_scale has 2 values, but the input's axis 1 has 3`},
		{"axis out of range", base(f32(sh(3), 0.1, 0.2, 0.3), &Tensor{Shape: sh(3), DType: Uint8, Uint8: []uint8{0, 0, 0}}, 7), `y_scale: axis 7 for an input of rank 4`},
		{"zero point shape", base(f32(sh(3), 0.1, 0.2, 0.3), &Tensor{Shape: sh(2), DType: Uint8, Uint8: []uint8{0, 0}}, 1), `zero point shape [2] does not match y_scale shape [3]`},
		{"int32 with a zero point", newGB(13).in("x", Int32, 4).out("y", Float32).init("s", f32(sh(), 0.5)).init("z", &Tensor{Shape: sh(), DType: Int32, Int32: []int32{3}}).
			node("DequantizeLinear", []string{"x", "s", "z"}, []string{"y"}), `x_zero_point of an int32 input must be 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadBytes(tc.g.bytes(t), Options{Threads: 1})
			if err == nil {
				s.Close()
				t.Fatalf("loaded; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			// A load error lists every problem, one line each, naming its node.
			for _, line := range strings.Split(err.Error(), "\n")[1:] {
				if !strings.Contains(line, `node "`) {
					t.Errorf("problem line %q names no node", line)
				}
			}
			if !errors.Is(err, ErrInvalidModel) && !errors.Is(err, ErrInput) && !errors.Is(err, ErrUnsupported) {
				t.Errorf("error %v wraps none of the sentinels", err)
			}
		})
	}
}

// TestQDQResNetInt8 quantizes a ResNet-8 (option-A shortcuts) with the
// quantize package and runs it on the int8 kernels and as written: the
// int8 path fuses every convolution and both shortcuts (packed uint8
// between them), and its logits agree with the float path's up to the
// rounding-boundary steps TestQDQInt8KernelsMatchFloat describes.
func TestQDQResNetInt8(t *testing.T) {
	spec, err := models.Lookup("resnet8")
	if err != nil {
		t.Fatal(err)
	}
	g, err := build.New(spec, build.Options{Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	float, err := export.Marshal(g, export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	qm, err := quantizepkg.Prepare(float)
	if err != nil {
		t.Fatal(err)
	}
	cal, err := qm.CalibrationModel()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := LoadBytes(cal, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	r := rand.New(rand.NewPCG(8, 8))
	images := func(n int) *Tensor {
		x := make([]float32, n*3*32*32)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		return f32(sh(n, 3, 32, 32), x...)
	}
	stats := map[string]*quantizepkg.Stats{}
	for _, a := range qm.Activations() {
		stats[a] = quantizepkg.NewStats()
	}
	for range 4 {
		out, err := cs.Run(context.Background(), map[string]*Tensor{"input": images(16)})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range qm.Activations() {
			if err := stats[a].Add(out[a].Float32); err != nil {
				t.Fatal(err)
			}
		}
	}
	q, _, err := qm.Quantize(stats, quantizepkg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := LoadBytes(q, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	slow, err := LoadBytes(q, Options{Threads: 2, NoInt8Kernels: true})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if kernels.QConvSupported() {
		// 7 convolutions; packed: the outputs of all but the last (read
		// by GlobalAveragePool) and of the 2 shortcuts.
		if info := fast.Int8(); info.Convolutions != 7 || info.Packed != 8 {
			t.Fatalf("Int8() = %+v, want 7 convolutions and 8 packed tensors (both shortcuts fused)", info)
		}
	}
	x := images(32)
	a, err := fast.Run(context.Background(), map[string]*Tensor{"input": x})
	if err != nil {
		t.Fatal(err)
	}
	b, err := slow.Run(context.Background(), map[string]*Tensor{"input": x})
	if err != nil {
		t.Fatal(err)
	}
	ya, yb := a["logits"].Float32, b["logits"].Float32
	var spread, worst float64
	agree := 0
	for i := range 32 {
		ra, rb := ya[i*10:(i+1)*10], yb[i*10:(i+1)*10]
		ba, bb := 0, 0
		for j := range ra {
			spread = max(spread, math.Abs(float64(rb[j])))
			worst = max(worst, math.Abs(float64(ra[j]-rb[j])))
			if ra[j] > ra[ba] {
				ba = j
			}
			if rb[j] > rb[bb] {
				bb = j
			}
		}
		if ba == bb {
			agree++
		}
	}
	if worst > 0.05*spread || agree < 31 {
		t.Fatalf("int8 kernels against the graph as written: worst logit difference %g (spread %g), top-1 agrees on %d of 32", worst, spread, agree)
	}
	t.Logf("worst logit difference %g of spread %g; top-1 agrees on %d of 32", worst, spread, agree)
}
