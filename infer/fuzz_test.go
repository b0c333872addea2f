package infer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fuzzSeeds are small models covering the loader's paths: fused conv
// blocks, shape-only chains, attribute- and input-form ops, several
// element types. Their bytes (and truncations) seed FuzzLoadBytes through
// testdata/fuzz/FuzzLoadBytes, rewritten by `go test -run TestFuzzSeeds
// ./infer -args -update`.
func fuzzSeeds(t testing.TB) map[string][]byte {
	w := randT(1, 4, 2, 3, 3)
	block := newGB(13).in("x", Float32, 1, 2, 6, 6).out("p", Float32).out("s", Float32).
		init("w", w).init("g", randT(2, 4)).init("b", randT(3, 4)).init("m", randT(4, 4)).init("v", f32(sh(4), 1, 2, 3, 4)).
		init("fw", randT(5, 3, 4)).init("fb", randT(6, 3)).
		node("Conv", []string{"x", "w"}, []string{"c"}, aInts("pads", 1, 1, 1, 1)).
		node("BatchNormalization", []string{"c", "g", "b", "m", "v"}, []string{"n"}).
		node("Relu", []string{"n"}, []string{"r"}).
		node("MaxPool", []string{"r"}, []string{"mp"}, aInts("kernel_shape", 3, 3), aInts("strides", 2, 2), aInts("pads", 1, 1, 1, 1)).
		node("GlobalAveragePool", []string{"mp"}, []string{"gp"}).
		node("Flatten", []string{"gp"}, []string{"f"}).
		node("Gemm", []string{"f", "fw", "fb"}, []string{"p"}, aInt("transB", 1)).
		node("Softmax", []string{"p"}, []string{"s"}, aInt("axis", 1))
	chain := newGB(11).in("x", Float32, -1, 3, 2, 2).out("y", Float32).
		init("zero", i64(sh(), 0)).init("minus1", i64(sh(1), -1)).
		node("Shape", []string{"x"}, []string{"s"}).
		node("Gather", []string{"s", "zero"}, []string{"n"}).
		node("Unsqueeze", []string{"n"}, []string{"n1"}, aInts("axes", 0)).
		node("Concat", []string{"n1", "minus1"}, []string{"shape"}, aInt("axis", 0)).
		node("Reshape", []string{"x", "shape"}, []string{"y"})
	optionA9 := newGB(9).in("x", Float32, -1, 2, 4, 4).out("y", Float32).
		node("MaxPool", []string{"x"}, []string{"s"}, aInts("kernel_shape", 1, 1), aInts("strides", 2, 2)).
		node("Pad", []string{"s"}, []string{"y"}, aStr("mode", "constant"), aInts("pads", 0, 1, 0, 0, 0, 1, 0, 0), aFloat("value", 0))
	optionA13 := newGB(13).in("x", Float32, -1, 2, 4, 4).out("y", Float32).
		init("st", i64(sh(2), 0, 0)).init("en", i64(sh(2), 1<<62, 1<<62)).init("ax", i64(sh(2), 2, 3)).init("sp", i64(sh(2), 2, 2)).
		init("pads", i64(sh(8), 0, 1, 0, 0, 0, 1, 0, 0)).
		node("Slice", []string{"x", "st", "en", "ax", "sp"}, []string{"s"}).
		node("Pad", []string{"s", "pads"}, []string{"y"}, aStr("mode", "constant"))
	misc := newGB(18).in("x", Float32, 2, 3).in("i", Int64, 2).out("y", Float32).out("k", Int64).out("d", Bool).
		init("ax", i64(sh(1), 1)).init("lo", f32(sh(), -0.5)).
		node("ReduceMean", []string{"x", "ax"}, []string{"r"}, aInt("keepdims", 1)).
		node("Clip", []string{"r", "lo"}, []string{"c"}).
		node("Dropout", []string{"c"}, []string{"y", "d"}).
		node("Cast", []string{"x"}, []string{"xi"}, aInt("to", int64(Int64))).
		node("Gather", []string{"xi", "i"}, []string{"g"}, aInt("axis", 1)).
		node("Shape", []string{"g"}, []string{"gs"}).
		node("ConstantOfShape", []string{"gs"}, []string{"one"}, aTensor("value", i64(sh(1), 1))).
		node("Add", []string{"g", "one"}, []string{"k"})
	seeds := map[string][]byte{}
	for name, g := range map[string]*gb{"block": block, "chain": chain, "optionA9": optionA9, "optionA13": optionA13, "misc": misc} {
		b := g.bytes(t)
		seeds[name] = b
		seeds[name+"-truncated"] = b[:len(b)*2/3]
	}
	return seeds
}

func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzLoadBytes")
	seeds := fuzzSeeds(t)
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, b := range seeds {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("seed %s: %v (run with -update to write the seeds)", name, err)
		}
		if string(got) != "go test fuzz v1\n[]byte("+strconv.Quote(string(b))+")\n" {
			t.Errorf("seed %s is stale (run with -update)", name)
		}
		if s, err := LoadBytes(b, Options{Threads: 1}); err == nil {
			s.Close()
		} else if !isTruncated(name) {
			t.Errorf("seed %s does not load: %v", name, err)
		}
	}
}

func isTruncated(name string) bool { return strings.HasSuffix(name, "-truncated") }

// FuzzLoadBytes feeds arbitrary bytes to the loader and runs whatever
// loads on zero inputs: errors are fine, panics and hangs are not. Tensor
// sizes are capped so a fuzzed shape cannot exhaust memory.
func FuzzLoadBytes(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := LoadBytes(b, Options{Threads: 1, MaxElements: 1 << 16, MaxPlans: 2})
		if err != nil {
			if !errors.Is(err, ErrInvalidModel) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("load error wraps neither ErrInvalidModel nor ErrUnsupported: %v", err)
			}
			return
		}
		defer s.Close()
		inputs := map[string]*Tensor{}
		for _, in := range s.Metadata().Inputs {
			if in.Shape == nil {
				return
			}
			shape := make([]int, len(in.Shape))
			for i, d := range in.Shape {
				shape[i] = d
				if d < 0 {
					shape[i] = 1
				}
			}
			n, err := numel(shape)
			if err != nil || n > 1<<16 {
				return
			}
			t := newTensor(in.DType, shape)
			if t.dataLen() != n {
				return
			}
			inputs[in.Name] = t
		}
		_, err = s.Run(context.Background(), inputs)
		_ = fmt.Sprint(err)
	})
}
