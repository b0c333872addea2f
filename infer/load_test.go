package infer

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

func TestTruncatedAndCorruptFiles(t *testing.T) {
	b, err := os.ReadFile(resnet20File(t, export.Options{Opset: 11}, nil))
	if err != nil {
		t.Fatal(err)
	}
	loaded := 0
	for _, n := range []int{0, 1, 2, 10, 100, len(b) / 3, len(b) / 2, len(b) - 1000, len(b) - 10, len(b) - 1} {
		s, err := LoadBytes(b[:n], Options{Threads: 1})
		if err == nil {
			// Cut at a message boundary: must still be a complete, valid
			// model, or it would have been refused.
			loaded++
			s.Close()
			continue
		}
		if !errors.Is(err, ErrInvalidModel) && !errors.Is(err, ErrUnsupported) {
			t.Errorf("truncated to %d bytes: error %v wraps neither ErrInvalidModel nor ErrUnsupported", n, err)
		}
	}
	if loaded > 0 {
		t.Errorf("%d truncated files loaded", loaded)
	}
	// Flip bytes all over the file: errors or valid models, never a panic.
	for i := 0; i < len(b); i += len(b)/97 + 1 {
		c := slices.Clone(b)
		c[i] ^= 0xA5
		if s, err := LoadBytes(c, Options{Threads: 1}); err == nil {
			s.Run(context.Background(), map[string]*Tensor{"input": cifarInput(1, 1)})
			s.Close()
		}
	}
	if _, err := LoadBytes([]byte("this is not a model"), Options{}); !errors.Is(err, ErrInvalidModel) {
		t.Errorf("text file: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.onnx"), Options{}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestAllProblemsInOneError(t *testing.T) {
	g := newGB(13).in("x", Float32, 1, 3, 8, 8).out("y", Float32).
		init("w", randT(1, 4, 3, 3, 3)).
		node("Conv", []string{"x", "w"}, []string{"c"}, aInt("group", 1), aStr("auto_pad", "SAME")).
		node("Swish", []string{"c"}, []string{"s"}).
		node("Relu", []string{"s"}, []string{"r"}, aFloat("alpha", 1)).
		node("LayerNormalization", []string{"r"}, []string{"l"}).
		node("MaxPool", []string{"l"}, []string{"y"}, aInts("kernel_shape", 2, 2), aInt("storage_order", 1))
	g.nodes = append(g.nodes, &onnxpb.NodeProto{Name: "custom", OpType: "Gelu", Domain: "com.microsoft", Input: []string{"x"}, Output: []string{"z"}})
	_, err := LoadBytes(g.bytes(t), Options{})
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("error %v is not a *LoadError", err)
	}
	if !errors.Is(err, ErrUnsupported) || !errors.Is(err, ErrInvalidModel) {
		t.Errorf("error should match both ErrUnsupported and ErrInvalidModel: %v", err)
	}
	want := []string{
		`node "Conv:c" (Conv): auto_pad "SAME" is not`,
		`node "Swish:s" (Swish): op is not supported`,
		`node "Relu:r" (Relu): attribute "alpha" is not supported by Relu-13`,
		`node "LayerNormalization:l" (LayerNormalization): op is not supported`,
		`node "MaxPool:y" (MaxPool): storage_order=1`,
		`node "custom" (Gelu): op domain "com.microsoft" is not supported`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q:\n%s", w, msg)
		}
	}
	if len(le.Problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(le.Problems), len(want), msg)
	}
}

func TestMalformedGraphs(t *testing.T) {
	relu := func(g *gb, in, out string) *gb { return g.node("Relu", []string{in}, []string{out}) }
	cases := []struct {
		name string
		m    func() *onnxpb.ModelProto
		want string
		sent error
	}{
		{"dangling input", func() *onnxpb.ModelProto {
			return relu(newGB(13).in("x", Float32, 2).out("y", Float32), "nope", "y").model()
		}, `input "nope" is not an initializer, a graph input or the output of any node`, ErrInvalidModel},
		{"cycle", func() *onnxpb.ModelProto {
			g := newGB(13).in("x", Float32, 2).out("y", Float32)
			g.node("Add", []string{"x", "b"}, []string{"a"}).node("Relu", []string{"a"}, []string{"b"}).node("Relu", []string{"b"}, []string{"y"})
			return g.model()
		}, "cycle through nodes", ErrInvalidModel},
		{"output defined twice", func() *onnxpb.ModelProto {
			return relu(relu(newGB(13).in("x", Float32, 2).out("y", Float32), "x", "y"), "x", "y").model()
		}, `output "y" is already defined by another node`, ErrInvalidModel},
		{"graph output not computed", func() *onnxpb.ModelProto {
			return relu(newGB(13).in("x", Float32, 2).out("z", Float32), "x", "y").model()
		}, `graph output "z" is not computed`, ErrInvalidModel},
		{"no graph", func() *onnxpb.ModelProto {
			return &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 13}}}
		}, "no graph", ErrInvalidModel},
		{"IR version 2", func() *onnxpb.ModelProto {
			m := relu(newGB(13).in("x", Float32, 2).out("y", Float32), "x", "y").model()
			m.IrVersion = 2
			return m
		}, "IR version 2 (this runtime reads IR versions 3 to 10)", ErrUnsupported},
		{"IR version 11", func() *onnxpb.ModelProto {
			m := relu(newGB(13).in("x", Float32, 2).out("y", Float32), "x", "y").model()
			m.IrVersion = 11
			return m
		}, "IR version 11", ErrUnsupported},
		{"opset 6", func() *onnxpb.ModelProto {
			return relu(newGB(6).in("x", Float32, 2).out("y", Float32), "x", "y").model()
		}, "ai.onnx opset 6 (this runtime runs opsets 7 to 21)", ErrUnsupported},
		{"opset 22", func() *onnxpb.ModelProto {
			return relu(newGB(22).in("x", Float32, 2).out("y", Float32), "x", "y").model()
		}, "ai.onnx opset 22", ErrUnsupported},
		{"no opset", func() *onnxpb.ModelProto {
			m := relu(newGB(13).in("x", Float32, 2).out("y", Float32), "x", "y").model()
			m.OpsetImport = nil
			return m
		}, "no ai.onnx opset import", ErrInvalidModel},
		{"double compute", func() *onnxpb.ModelProto {
			return newGB(13).in("x", Float64, 1, 1, 3, 3).out("y", Float64).init("w", &Tensor{Shape: sh(1, 1, 1, 1), DType: Float64, Float64: []float64{1}}).
				node("Conv", []string{"x", "w"}, []string{"y"}).model()
		}, "input 0 (X) is float64; this runtime computes Conv on float32", ErrUnsupported},
		{"uint8 input", func() *onnxpb.ModelProto {
			return relu(newGB(13).in("x", 2, 2).out("y", Float32), "x", "y").model()
		}, `node "Relu:y" (Relu): input 0 (X) is uint8; this runtime computes Relu on float32`, ErrUnsupported},
		{"output type mismatch", func() *onnxpb.ModelProto {
			return newGB(13).in("x", Float32, 2).out("y", Float32).node("Shape", []string{"x"}, []string{"y"}).model()
		}, `graph output "y" is declared float32 but computed as int64`, ErrInvalidModel},
		{"initializer data too short", func() *onnxpb.ModelProto {
			g := newGB(13).in("x", Float32, 2).out("y", Float32).init("b", f32(sh(2), 1, 2))
			g.inits[0].RawData = g.inits[0].RawData[:5]
			return g.node("Add", []string{"x", "b"}, []string{"y"}).model()
		}, `initializer "b": raw_data has 5 bytes, dims [2] of float32 need 8`, ErrInvalidModel},
		{"initializer huge dims", func() *onnxpb.ModelProto {
			g := newGB(13).in("x", Float32, 2).out("y", Float32).init("b", f32(sh(2), 1, 2))
			g.inits[0].Dims = []int64{1 << 30, 1 << 30, 1 << 30}
			return g.node("Add", []string{"x", "b"}, []string{"y"}).model()
		}, `initializer "b"`, ErrInvalidModel},
		{"fixed shapes that do not fit", func() *onnxpb.ModelProto {
			return newGB(13).in("x", Float32, 2, 3).in("z", Float32, 4).out("y", Float32).node("Add", []string{"x", "z"}, []string{"y"}).model()
		}, "cannot be broadcast", ErrInvalidModel},
		{"attribute of the wrong type", func() *onnxpb.ModelProto {
			return newGB(13).in("x", Float32, 2, 3).out("y", Float32).node("Flatten", []string{"x"}, []string{"y"}, aFloat("axis", 1)).model()
		}, `attribute "axis" is FLOAT, want INT`, ErrInvalidModel},
		{"huge shape from ConstantOfShape", func() *onnxpb.ModelProto {
			return newGB(13).out("y", Float32).init("s", i64(sh(3), 1<<20, 1<<20, 1<<20)).node("ConstantOfShape", []string{"s"}, []string{"y"}).model()
		}, "too large", ErrInvalidModel},
	}
	for _, c := range cases {
		b, err := proto.Marshal(c.m())
		if err != nil {
			t.Fatal(err)
		}
		_, err = LoadBytes(b, Options{Threads: 1})
		if err == nil || !errors.Is(err, c.sent) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %v containing %q", c.name, err, c.sent, c.want)
		}
	}
}

// TestModelZooStyle loads an IR 3 / opset 7 model whose initializers are
// also graph inputs and hold their data in typed fields (float_data,
// int64_data), as old model-zoo files do.
func TestModelZooStyle(t *testing.T) {
	w := randT(1, 4, 3, 3, 3)
	g := newGB(7).in("data", Float32, 1, 3, 8, 8).in("w", Float32, 4, 3, 3, 3).in("shape", Int64, 2).out("y", Float32).
		node("Conv", []string{"data", "w"}, []string{"c"}, aInts("kernel_shape", 3, 3), aInts("pads", 1, 1, 1, 1)).
		node("Relu", []string{"c"}, []string{"r"}).
		node("Reshape", []string{"r", "shape"}, []string{"y"})
	g.inits = append(g.inits, &onnxpb.TensorProto{Name: "w", DataType: int32(Float32), Dims: []int64{4, 3, 3, 3}, FloatData: w.Float32},
		&onnxpb.TensorProto{Name: "shape", DataType: int32(Int64), Dims: []int64{2}, Int64Data: []int64{1, -1}})
	if g.ir != 3 {
		t.Fatalf("IR %d", g.ir)
	}
	s, err := LoadBytes(g.bytes(t), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if md := s.Metadata(); len(md.Inputs) != 1 || md.Inputs[0].Name != "data" {
		t.Fatalf("user inputs %+v, want only data", md.Inputs)
	}
	x := randT(2, 1, 3, 8, 8)
	out, err := s.Run(context.Background(), map[string]*Tensor{"data": x})
	if err != nil {
		t.Fatal(err)
	}
	want := mapT(refConv(x, w, nil, [2]int{1, 1}, [2]int{1, 1}, [4]int{1, 1, 1, 1}, 1), func(_ int, v float32) float32 { return max(v, 0) })
	if !slices.Equal(out["y"].Shape, sh(1, 256)) {
		t.Fatalf("shape %v", out["y"].Shape)
	}
	if e, m := agreement(out["y"].Float32, want.Float32); e > 1e-5*(1+m) {
		t.Errorf("differs from the reference by %g", e)
	}
}

// externalModel writes a model whose weight lives in an external file and
// returns the model path and its folder.
func externalModel(t *testing.T, location string, offset int, mutate func(tp *onnxpb.TensorProto)) (string, string) {
	dir := t.TempDir()
	g := newGB(13).in("x", Float32, 2).out("y", Float32).node("Add", []string{"x", "b"}, []string{"y"})
	tp := &onnxpb.TensorProto{Name: "b", DataType: int32(Float32), Dims: []int64{2}, DataLocation: onnxpb.TensorProto_EXTERNAL,
		ExternalData: []*onnxpb.StringStringEntryProto{{Key: "location", Value: location}, {Key: "offset", Value: "8"}, {Key: "length", Value: "8"}}}
	if mutate != nil {
		mutate(tp)
	}
	g.inits = append(g.inits, tp)
	data := make([]byte, 8+offset)
	binary.LittleEndian.PutUint32(data[offset:], math.Float32bits(10))
	binary.LittleEndian.PutUint32(data[offset+4:], math.Float32bits(20))
	if err := os.WriteFile(filepath.Join(dir, "weights.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(path, g.bytes(t), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

func TestExternalData(t *testing.T) {
	path, dir := externalModel(t, "weights.bin", 8, nil)
	s, err := Load(path, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Run(context.Background(), map[string]*Tensor{"x": f32(sh(2), 1, 2)})
	if err != nil || !slices.Equal(out["y"].Float32, []float32{11, 22}) {
		t.Fatalf("%v %v", out, err)
	}
	s.Close()

	b, _ := os.ReadFile(path)
	if _, err := LoadBytes(b, Options{}); err == nil || !strings.Contains(err.Error(), "loaded from bytes") {
		t.Errorf("LoadBytes without a folder: %v", err)
	}
	if s, err := LoadBytes(b, Options{ExternalDataDir: dir}); err != nil {
		t.Errorf("LoadBytes with ExternalDataDir: %v", err)
	} else {
		s.Close()
	}

	// A file outside the model's folder, reachable by .., an absolute path
	// or a symlink, is refused.
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.bin")
	if err := os.WriteFile(secret, make([]byte, 64), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(dir, secret)
	for _, c := range []struct{ loc, want string }{
		{rel, "escapes the model's folder"},
		{"sub/../../x.bin", "escapes the model's folder"},
		{secret, "is an absolute path"},
		{"link.bin", "it must be a file inside the model's folder"},
		{"missing.bin", "not found next to the model"},
	} {
		p, d := externalModel(t, c.loc, 8, nil)
		if c.loc == "link.bin" {
			if err := os.Symlink(secret, filepath.Join(d, "link.bin")); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Load(p, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("location %q: error %v, want %q", c.loc, err, c.want)
		}
	}
	// A symlink that stays inside the folder is fine.
	p, d := externalModel(t, "inner.bin", 8, nil)
	if err := os.Symlink("weights.bin", filepath.Join(d, "inner.bin")); err != nil {
		t.Fatal(err)
	}
	if s, err := Load(p, Options{}); err != nil {
		t.Errorf("symlink inside the folder: %v", err)
	} else {
		s.Close()
	}
	// Lengths that do not fit.
	p, _ = externalModel(t, "weights.bin", 8, func(tp *onnxpb.TensorProto) { tp.ExternalData[2].Value = "4" })
	if _, err := Load(p, Options{}); err == nil || !strings.Contains(err.Error(), "length 4, the tensor needs 8 bytes") {
		t.Errorf("short length: %v", err)
	}
	p, _ = externalModel(t, "weights.bin", 8, func(tp *onnxpb.TensorProto) { tp.ExternalData[1].Value = "12" })
	if _, err := Load(p, Options{}); err == nil || !strings.Contains(err.Error(), "has 16 bytes, the tensor needs 8 from offset 12") {
		t.Errorf("offset past the end: %v", err)
	}
}

func TestTensorProtoForms(t *testing.T) {
	raw := func(b ...byte) []byte { return b }
	cases := []struct {
		name string
		tp   *onnxpb.TensorProto
		want *Tensor
		err  string
	}{
		{"float raw", &onnxpb.TensorProto{DataType: 1, Dims: []int64{2}, RawData: raw(0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0)}, f32(sh(2), 1, -2), ""},
		{"float_data", &onnxpb.TensorProto{DataType: 1, Dims: []int64{2}, FloatData: []float32{1, -2}}, f32(sh(2), 1, -2), ""},
		{"double_data", &onnxpb.TensorProto{DataType: 11, Dims: []int64{1}, DoubleData: []float64{0.5}}, &Tensor{Shape: sh(1), DType: Float64, Float64: []float64{0.5}}, ""},
		{"double raw", &onnxpb.TensorProto{DataType: 11, Dims: []int64{1}, RawData: raw(0, 0, 0, 0, 0, 0, 0xe0, 0x3f)}, &Tensor{Shape: sh(1), DType: Float64, Float64: []float64{0.5}}, ""},
		{"int64_data", &onnxpb.TensorProto{DataType: 7, Dims: []int64{2}, Int64Data: []int64{-1, 1 << 40}}, i64(sh(2), -1, 1<<40), ""},
		{"int64 raw", &onnxpb.TensorProto{DataType: 7, Dims: []int64{1}, RawData: raw(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)}, i64(sh(1), -1), ""},
		{"int32_data", &onnxpb.TensorProto{DataType: 6, Dims: []int64{1}, Int32Data: []int32{-7}}, &Tensor{Shape: sh(1), DType: Int32, Int32: []int32{-7}}, ""},
		{"bool int32_data", &onnxpb.TensorProto{DataType: 9, Dims: []int64{2}, Int32Data: []int32{1, 0}}, &Tensor{Shape: sh(2), DType: Bool, Bool: []bool{true, false}}, ""},
		{"bool raw", &onnxpb.TensorProto{DataType: 9, Dims: []int64{2}, RawData: raw(0, 1)}, &Tensor{Shape: sh(2), DType: Bool, Bool: []bool{false, true}}, ""},
		{"scalar", &onnxpb.TensorProto{DataType: 7, Int64Data: []int64{3}}, i64(sh(), 3), ""},
		{"empty", &onnxpb.TensorProto{DataType: 1, Dims: []int64{0, 3}}, f32(sh(0, 3)), ""},
		{"too few values", &onnxpb.TensorProto{DataType: 1, Dims: []int64{3}, FloatData: []float32{1}}, nil, "float_data has 1 values, dims [3] need 3"},
		{"no data", &onnxpb.TensorProto{DataType: 7, Dims: []int64{2}}, nil, "int64_data has 0 values"},
		{"negative dim", &onnxpb.TensorProto{DataType: 1, Dims: []int64{-1}}, nil, "dimension -1"},
		{"float16", &onnxpb.TensorProto{DataType: 10, Dims: []int64{1}, Int32Data: []int32{0x3c00}}, &Tensor{Shape: []int{1}, DType: Float16, Float16: []uint16{0x3c00}}, ""},
		{"float16 raw", &onnxpb.TensorProto{DataType: 10, Dims: []int64{2}, RawData: []byte{0x00, 0x3c, 0x00, 0xc0}}, &Tensor{Shape: []int{2}, DType: Float16, Float16: []uint16{0x3c00, 0xc000}}, ""},
		{"uint8 raw", &onnxpb.TensorProto{DataType: 2, Dims: []int64{2}, RawData: []byte{7, 255}}, &Tensor{Shape: []int{2}, DType: Uint8, Uint8: []uint8{7, 255}}, ""},
		{"bfloat16", &onnxpb.TensorProto{DataType: 16, Dims: []int64{1}, Int32Data: []int32{0x3f80}}, nil, "element type BFLOAT16"},
		{"string", &onnxpb.TensorProto{DataType: 8, Dims: []int64{1}, StringData: [][]byte{[]byte("a")}}, nil, "element type STRING"},
	}
	for _, c := range cases {
		got, err := tensorFromProto(c.tp, nil)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if msg := compareTensors(got, c.want, 0, 0); msg != "" {
			t.Errorf("%s: %s", c.name, msg)
		}
	}
}
