package gorgonnx

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// golden is testdata/golden.json, written by testdata/make_golden.py.
type golden struct {
	Input      string `json:"input"`
	InputShape []int  `json:"input_shape"`
	Models     map[string]struct {
		Opset   int `json:"opset"`
		Outputs map[string]struct {
			Shape []int     `json:"shape"`
			Data  []float32 `json:"data"`
		} `json:"outputs"`
	} `json:"models"`
}

func loadGolden(t testing.TB) (golden, []float32) {
	t.Helper()
	var g golden
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", g.Input))
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, len(raw)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	if n := prod(g.InputShape); n != len(x) {
		t.Fatalf("input has %d values, shape %v", len(x), g.InputShape)
	}
	return g, x
}

func readModel(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// firstImages returns the first batch images of the golden input and their shape.
func firstImages(g golden, x []float32, batch int) ([]float32, []int) {
	shape := append([]int{batch}, g.InputShape[1:]...)
	return x[:prod(shape)], shape
}

// compare checks got against the first batch rows of PyTorch's output.
// Tolerance: max |ours - torch| <= 1e-4 * (1 + max |torch|), per output
// (the project-wide tolerance for direct kernels, DESIGN.md).
func compare(t *testing.T, name string, got Output, wantShape []int, wantData []float32, batch int) {
	t.Helper()
	shape := append([]int{batch}, wantShape[1:]...)
	if !slices.Equal(got.Shape, shape) {
		t.Errorf("%s: shape %v, want %v", name, got.Shape, shape)
		return
	}
	want := wantData[:prod(shape)]
	var maxRef, maxDiff float64
	for i, w := range want {
		maxRef = math.Max(maxRef, math.Abs(float64(w)))
		maxDiff = math.Max(maxDiff, math.Abs(float64(got.Data[i])-float64(w)))
	}
	tol := 1e-4 * (1 + maxRef)
	if maxDiff > tol || math.IsNaN(maxDiff) {
		t.Errorf("%s: max |ours - torch| = %.3g > %.3g", name, maxDiff, tol)
	} else {
		t.Logf("%s: max |ours - torch| = %.3g (tolerance %.3g)", name, maxDiff, tol)
	}
}

func TestRunMatchesPyTorch(t *testing.T) {
	g, x := loadGolden(t)
	cases := []struct {
		model string
		batch int
	}{
		{"tiny_op9_bn.onnx", 1}, {"tiny_op9_bn.onnx", 3},
		{"tiny_op9_fused.onnx", 1}, {"tiny_op9_fused.onnx", 3},
		{"tiny_op13_bn.onnx", 1}, {"tiny_op13_bn.onnx", 3},
		{"tiny_op13_fused.onnx", 1}, {"tiny_op13_fused.onnx", 3},
		{"shared_bn_op13.onnx", 3},
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.model, ".onnx")+"/batch"+string(rune('0'+c.batch)), func(t *testing.T) {
			model := readModel(t, c.model)
			want, ok := g.Models[c.model]
			if !ok {
				t.Fatalf("%s missing from golden.json", c.model)
			}
			in, shape := firstImages(g, x, c.batch)
			// Twice: a fresh backend per Run must give identical results.
			var first map[string]Output
			for rep := 0; rep < 2; rep++ {
				outs, err := Run(context.Background(), model, in, shape)
				if err != nil {
					t.Fatal(err)
				}
				if len(outs) != len(want.Outputs) {
					t.Fatalf("got %d outputs, want %d", len(outs), len(want.Outputs))
				}
				if rep == 1 {
					for name, o := range outs {
						if !slices.Equal(o.Data, first[name].Data) {
							t.Errorf("%s: second Run differs from the first", name)
						}
					}
					break
				}
				first = outs
				for name, w := range want.Outputs {
					got, ok := outs[name]
					if !ok {
						t.Fatalf("output %q missing (have %v)", name, keys(outs))
					}
					compare(t, name, got, w.Shape, w.Data, c.batch)
				}
			}
		})
	}
}

func keys(m map[string]Output) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

func TestInputNotModified(t *testing.T) {
	g, x := loadGolden(t)
	in, shape := firstImages(g, x, 1)
	before := slices.Clone(in)
	if _, err := Run(context.Background(), readModel(t, "tiny_op13_bn.onnx"), in, shape); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, in) {
		t.Fatal("Run modified the caller's input")
	}
}

// TestRefused checks models onnx-go would fail on or compute wrongly.
func TestRefused(t *testing.T) {
	g, x := loadGolden(t)
	in1, shape1 := firstImages(g, x, 1)
	in3, shape3 := firstImages(g, x, 3)
	cases := []struct {
		name  string
		model []byte
		in    []float32
		shape []int
		want  string // substring of the error
	}{
		{"grouped conv", readModel(t, "grouped_op13.onnx"), in3, shape3, `"/gconv/Conv" (Conv): group = 2`},
		{"option-A pad shortcut", readModel(t, "pad_op13.onnx"), in3, shape3, `"/Pad" (Pad): op Pad is not in the checked op set`},
		// y = conv(x); bn(y) + y: at batch 1 onnx-go's BatchNormalization
		// overwrites y in place (verified: 0.85 max error when not refused).
		{"shared BN input at batch 1", readModel(t, "shared_bn_op13.onnx"), in1, shape1, "overwrites input"},
		{"asymmetric conv pads", convModel(t, []int64{1, 1, 2, 2}, 1), in1, shape1, "pads [1 1 2 2]"},
		{"conv pads equal per axis but H != W", convModel(t, []int64{0, 1, 0, 1}, 1), in1, shape1, "four equal pads"},
		{"grouped conv (hand-made)", convModel(t, []int64{1, 1, 1, 1}, 3), in1, shape1, "group = 3"},
		{"broadcasting add", addBiasModel(t), in1, shape1, "broadcast it cannot do"},
		{"softmax on rank 4", softmaxModel(t, 1), in1, shape1, "only rank 2"},
		{"softmax axis 0", softmaxModel(t, 0), in1, shape1, "attribute axis = 0"},
		{"opset 6", opsetModel(t, 6), in1, shape1, "opset 6 outside"},
		{"custom domain", domainModel(t), in1, shape1, `domain "com.microsoft"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Run(context.Background(), c.model, c.in, c.shape)
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("err = %v, want ErrUnsupported", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
			t.Log(err)
		})
	}
}

// TestErrors checks invalid models and inputs give errors, never panics.
func TestErrors(t *testing.T) {
	g, x := loadGolden(t)
	in1, shape1 := firstImages(g, x, 1)
	good := readModel(t, "tiny_op13_bn.onnx")
	garbage := make([]byte, 4096)
	seed := uint32(12345)
	for i := range garbage {
		seed = seed*1664525 + 1013904223
		garbage[i] = byte(seed >> 24)
	}
	cases := []struct {
		name  string
		model []byte
		in    []float32
		shape []int
		want  string
	}{
		{"garbage bytes", garbage, in1, shape1, "gorgonnx"},
		{"empty model", nil, in1, shape1, "no graph"},
		{"text", []byte("this is not an ONNX model"), in1, shape1, "gorgonnx"},
		{"truncated model", good[:len(good)/2], in1, shape1, "gorgonnx"},
		{"input length mismatch", good, in1[:10], shape1, "needs"},
		{"wrong channel count", good, in1, []int{3, 1, 20, 20}, "dimension 1 = 3"},
		{"wrong rank", good, in1, []int{1, 1200}, "rank 4"},
		{"zero dimension", good, nil, []int{0, 3, 20, 20}, "invalid input shape"},
		{"bad initializer size (onnx-go panics)", badInitModel(t), in1, shape1, "gorgonnx"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("Run panicked: %v", p)
					}
				}()
				_, err = Run(context.Background(), c.model, c.in, c.shape)
			}()
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
			t.Log(firstLine(err.Error()))
		})
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func TestCancelledContext(t *testing.T) {
	g, x := loadGolden(t)
	in, shape := firstImages(g, x, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, readModel(t, "tiny_op13_bn.onnx"), in, shape)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestTimePerImage logs onnx-go's time per image at batch 1 (decode, build
// and run, as Run does every time).
func TestTimePerImage(t *testing.T) {
	g, x := loadGolden(t)
	in, shape := firstImages(g, x, 1)
	model := readModel(t, "tiny_op13_bn.onnx")
	const n = 20
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := Run(context.Background(), model, in, shape); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("tiny_op13_bn, batch 1: %v per image", time.Since(start)/n)
}

func BenchmarkRunBatch1(b *testing.B) {
	g, x := loadGolden(b)
	in, shape := firstImages(g, x, 1)
	model := readModel(b, "tiny_op13_bn.onnx")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Run(context.Background(), model, in, shape); err != nil {
			b.Fatal(err)
		}
	}
}

// --- a minimal ONNX encoder for hand-made negative cases -------------------

type pb []byte

func (p pb) varint(v uint64) pb {
	for v >= 0x80 {
		p = append(p, byte(v)|0x80)
		v >>= 7
	}
	return append(p, byte(v))
}

func (p pb) tag(num, typ int) pb        { return p.varint(uint64(num)<<3 | uint64(typ)) }
func (p pb) int(num int, v int64) pb    { return p.tag(num, 0).varint(uint64(v)) }
func (p pb) bytes(num int, b []byte) pb { return p.tag(num, 2).varint(uint64(len(b))).append(b) }
func (p pb) str(num int, s string) pb   { return p.bytes(num, []byte(s)) }
func (p pb) msg(num int, m pb) pb       { return p.bytes(num, m) }
func (p pb) append(b []byte) pb         { return append(p, b...) }
func (p pb) float(num int, f float32) pb {
	return p.tag(num, 5).append(binary.LittleEndian.AppendUint32(nil, math.Float32bits(f)))
}
func attrInt(name string, v int64) pb     { return pb{}.str(1, name).int(3, v).int(20, 2) }
func attrFloat(name string, v float32) pb { return pb{}.str(1, name).float(2, v).int(20, 1) }
func attrInts(name string, vs ...int64) pb {
	p := pb{}.str(1, name)
	for _, v := range vs {
		p = p.int(8, v)
	}
	return p.int(20, 7)
}

// node encodes a NodeProto.
func node(op, name string, inputs, outputs []string, attrs ...pb) pb {
	p := pb{}
	for _, in := range inputs {
		p = p.str(1, in)
	}
	for _, out := range outputs {
		p = p.str(2, out)
	}
	p = p.str(3, name).str(4, op)
	for _, a := range attrs {
		p = p.msg(5, a)
	}
	return p
}

// valueInfo encodes a float tensor ValueInfoProto; dim < 0 is dim_param "batch".
func valueInfoPB(name string, dims ...int64) pb {
	shape := pb{}
	for _, d := range dims {
		if d < 0 {
			shape = shape.msg(1, pb{}.str(2, "batch"))
		} else {
			shape = shape.msg(1, pb{}.int(1, d))
		}
	}
	tt := pb{}.int(1, onnxFloat).msg(2, shape)
	return pb{}.str(1, name).msg(2, pb{}.msg(1, tt))
}

// initializer encodes a float TensorProto holding n values 0.01*i (raw_data
// may be given a different length than the dims).
func initializer(name string, dims []int64, n int) pb {
	p := pb{}
	for _, d := range dims {
		p = p.int(1, d)
	}
	raw := make([]byte, 0, 4*n)
	for i := 0; i < n; i++ {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(0.01*float32(i%17)))
	}
	return p.int(2, onnxFloat).str(8, name).bytes(9, raw)
}

// modelPB wraps a graph into a ModelProto with the given opset.
func modelPB(opset int64, domain string, nodes []pb, inits []pb, output pb) []byte {
	gr := pb{}
	for _, n := range nodes {
		gr = gr.msg(1, n)
	}
	gr = gr.str(2, "test")
	for _, i := range inits {
		gr = gr.msg(5, i)
	}
	gr = gr.msg(11, valueInfoPB("input", -1, 3, 20, 20)).msg(12, output)
	m := pb{}.int(1, 7).msg(7, gr).msg(8, pb{}.int(2, opset))
	if domain != "" {
		m = m.msg(8, pb{}.str(1, domain).int(2, 1))
	}
	return m
}

func convModel(t *testing.T, pads []int64, group int64) []byte {
	t.Helper()
	conv := node("Conv", "conv", []string{"input", "w"}, []string{"output"},
		attrInts("kernel_shape", 3, 3), attrInts("pads", pads...), attrInt("group", group))
	w := initializer("w", []int64{3, 3 / group, 3, 3}, 3*int(3/group)*9)
	return modelPB(13, "", []pb{conv}, []pb{w}, valueInfoPB("output", -1, 3, 20, 20))
}

func addBiasModel(t *testing.T) []byte {
	t.Helper()
	add := node("Add", "add_bias", []string{"input", "b"}, []string{"output"})
	return modelPB(13, "", []pb{add}, []pb{initializer("b", []int64{20}, 20)}, valueInfoPB("output", -1, 3, 20, 20))
}

func softmaxModel(t *testing.T, axis int64) []byte {
	t.Helper()
	sm := node("Softmax", "sm", []string{"input"}, []string{"output"}, attrInt("axis", axis))
	return modelPB(13, "", []pb{sm}, nil, valueInfoPB("output", -1, 3, 20, 20))
}

func opsetModel(t *testing.T, opset int64) []byte {
	t.Helper()
	r := node("Relu", "relu", []string{"input"}, []string{"output"})
	return modelPB(opset, "", []pb{r}, nil, valueInfoPB("output", -1, 3, 20, 20))
}

func domainModel(t *testing.T) []byte {
	t.Helper()
	r := node("Relu", "relu", []string{"input"}, []string{"output"})
	r = r.str(7, "com.microsoft")
	return modelPB(13, "com.microsoft", []pb{r}, nil, valueInfoPB("output", -1, 3, 20, 20))
}

// badInitModel has a BatchNormalization whose scale claims 3 values but
// carries 2.
func badInitModel(t *testing.T) []byte {
	t.Helper()
	bn := node("BatchNormalization", "bn", []string{"input", "s", "b", "m", "v"}, []string{"output"},
		attrFloat("epsilon", 1e-5))
	inits := []pb{
		initializer("s", []int64{3}, 2), initializer("b", []int64{3}, 3),
		initializer("m", []int64{3}, 3), initializer("v", []int64{3}, 3),
	}
	return modelPB(13, "", []pb{bn}, inits, valueInfoPB("output", -1, 3, 20, 20))
}

// TestHandMadeModelsRun checks the hand-made encoder itself produces models
// onnx-go runs (so the refusals above are about the tested property).
func TestHandMadeModelsRun(t *testing.T) {
	g, x := loadGolden(t)
	in, shape := firstImages(g, x, 3)
	for name, m := range map[string][]byte{
		"conv pads 1":   convModel(t, []int64{1, 1, 1, 1}, 1),
		"relu opset 7":  opsetModel(t, 7),
		"relu opset 22": opsetModel(t, 22),
	} {
		outs, err := Run(context.Background(), m, in, shape)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if o := outs["output"]; !slices.Equal(o.Shape, []int{3, 3, 20, 20}) {
			t.Fatalf("%s: output shape %v", name, o.Shape)
		}
	}
	// Relu must be exact.
	outs, err := Run(context.Background(), opsetModel(t, 13), in, shape)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range outs["output"].Data {
		if want := float32(math.Max(0, float64(in[i]))); v != want {
			t.Fatalf("relu[%d] = %v, want %v", i, v, want)
		}
	}
}
