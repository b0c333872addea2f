package quantize

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/interop"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/models"
	"google.golang.org/protobuf/proto"
)

// TestStatsRange checks each method's range on distributions whose
// answer is known.
func TestStatsRange(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	// 100,000 values uniform in [0, 1) and one outlier at 50: minmax
	// keeps the outlier, the 99.99th percentile and entropy clip it.
	relu := make([]float32, 100000)
	for i := range relu {
		relu[i] = float32(r.Float64())
	}
	relu[123] = 50
	// Symmetric: normal with sigma 1.
	normal := make([]float32, 100000)
	for i := range normal {
		normal[i] = float32(r.NormFloat64())
	}
	for _, tc := range []struct {
		name           string
		x              []float32
		method         string
		loMin, loMax   float64
		hiMin, hiMax   float64
		splitIntoBatch int
	}{
		{"relu minmax", relu, MinMax, 0, 0, 50, 50, 1},
		{"relu percentile", relu, Percentile, 0, 0, 0.99, 1.05, 1},
		// Entropy cannot clip below levels (256) of its 2048 bins: with the
		// outlier at 50 that is 6.26 (minmax keeps 50).
		{"relu entropy", relu, Entropy, 0, 0, 0.9, 6.3, 1},
		{"relu minmax in 10 batches (range grows)", relu, MinMax, 0, 0, 50, 50, 10},
		{"relu percentile in 10 batches", relu, Percentile, 0, 0, 0.99, 1.06, 10},
		{"normal minmax", normal, MinMax, -5, -3.5, 3.5, 5, 1},
		{"normal percentile", normal, Percentile, -4.3, -3.5, 3.5, 4.3, 1},
		{"normal entropy", normal, Entropy, -4.5, -2, 2, 4.5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStats()
			n := len(tc.x) / tc.splitIntoBatch
			for i := 0; i < len(tc.x); i += n {
				if err := s.Add(tc.x[i:min(i+n, len(tc.x))]); err != nil {
					t.Fatal(err)
				}
			}
			if s.Count != int64(len(tc.x)) {
				t.Fatalf("count %d, want %d", s.Count, len(tc.x))
			}
			var total int64
			for _, c := range s.hist {
				total += c
			}
			if total != s.Count {
				t.Fatalf("histogram holds %d values, want %d (lost in rebinning)", total, s.Count)
			}
			lo, hi, err := s.Range(tc.method, 99.99)
			if err != nil {
				t.Fatal(err)
			}
			if lo < tc.loMin || lo > tc.loMax || hi < tc.hiMin || hi > tc.hiMax {
				t.Fatalf("range [%g, %g], want lo in [%g, %g], hi in [%g, %g]", lo, hi, tc.loMin, tc.loMax, tc.hiMin, tc.hiMax)
			}
		})
	}
	s := NewStats()
	if err := s.Add([]float32{1, float32(math.NaN())}); err == nil {
		t.Error("NaN accepted")
	}
	if _, _, err := NewStats().Range(MinMax, 0); err == nil {
		t.Error("range of nothing")
	}
	if _, _, err := s.Range("median", 0); err == nil {
		t.Error("unknown method accepted")
	}
}

// TestActParams: 0 is exactly representable, ranges map onto the type.
func TestActParams(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		signed bool
		scale  float32
		zp     int32
	}{
		{0, 2.55, false, 0.01, 0},
		{-1.28, 1.27, false, 0.01, 128},
		{-1.28, 1.27, true, 0.01, 0},
		{0, 0, false, 1, 0},
		{0.5, 2.55, false, 0.01, 0}, // widened to include 0
	} {
		p := actParams(tc.lo, tc.hi, tc.signed)
		if math.Abs(float64(p.scale-tc.scale)) > 1e-7 || p.zp != tc.zp {
			t.Errorf("actParams(%g, %g, %v) = %+v, want scale %g zp %d", tc.lo, tc.hi, tc.signed, p, tc.scale, tc.zp)
		}
	}
}

// tinyResNet exports a ResNet-8 (CIFAR, fresh weights, BatchNorm not
// folded) as ONNX bytes.
func tinyResNet(t testing.TB) []byte {
	spec, err := models.Lookup("resnet8")
	if err != nil {
		t.Fatal(err)
	}
	g, err := build.New(spec, build.Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, err := export.Marshal(g, export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// calibrate runs the calibration model on batches of random images.
func calibrate(t testing.TB, m *Model, images int, r *rand.Rand) map[string]*Stats {
	b, err := m.CalibrationModel()
	if err != nil {
		t.Fatal(err)
	}
	s, err := infer.LoadBytes(b, infer.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stats := map[string]*Stats{}
	for _, a := range m.Activations() {
		stats[a] = NewStats()
	}
	for done := 0; done < images; done += 16 {
		x := randImages(r, 16)
		out, err := s.Run(context.Background(), map[string]*infer.Tensor{"input": x})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range m.Activations() {
			if err := stats[a].Add(out[a].Float32); err != nil {
				t.Fatal(err)
			}
		}
	}
	return stats
}

func randImages(r *rand.Rand, n int) *infer.Tensor {
	x := make([]float32, n*3*32*32)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return infer.NewFloat32([]int{n, 3, 32, 32}, x)
}

// TestQuantizeResNet quantizes a ResNet-8 and checks the file: the ONNX
// checker accepts it, every Conv and Gemm weight is int8 behind a
// DequantizeLinear, our runtime's outputs stay close to the float
// model's, and ONNX Runtime computes the same as our runtime.
func TestQuantizeResNet(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	float := tinyResNet(t)
	m, err := Prepare(float)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range m.g.GetNode() {
		if n.GetOpType() == "BatchNormalization" {
			t.Fatalf("node %q: BatchNormalization left after folding", n.GetName())
		}
	}
	stats := calibrate(t, m, 64, r)
	q, rep, err := m.Quantize(stats, Options{Method: Percentile, Calibration: map[string]any{"data": "random", "images": 64}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Weights != 8 || rep.Ops["Conv"] != 7 || rep.Ops["Gemm"] != 1 || rep.Biases != 8 {
		t.Errorf("report %+v, want 7 Conv and 1 Gemm weights and biases", rep)
	}
	mp := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(q, mp); err != nil {
		t.Fatal(err)
	}
	inits := map[string]*onnxpb.TensorProto{}
	for _, i := range mp.GetGraph().GetInitializer() {
		inits[i.GetName()] = i
	}
	producer := map[string]*onnxpb.NodeProto{}
	for _, n := range mp.GetGraph().GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
	}
	for _, n := range mp.GetGraph().GetNode() {
		if n.GetOpType() != "Conv" && n.GetOpType() != "Gemm" {
			continue
		}
		w := producer[n.GetInput()[1]]
		if w == nil || w.GetOpType() != "DequantizeLinear" || inits[w.GetInput()[0]].GetDataType() != int32(onnxpb.TensorProto_INT8) {
			t.Errorf("node %q: weight is not DequantizeLinear of int8", n.GetName())
		}
		x := producer[n.GetInput()[0]]
		if x == nil || x.GetOpType() != "DequantizeLinear" {
			t.Errorf("node %q: input is not dequantized", n.GetName())
		}
	}
	meta := map[string]string{}
	for _, p := range mp.GetMetadataProps() {
		meta[p.GetKey()] = p.GetValue()
	}
	if !strings.Contains(meta[MetaKey], `"method":"percentile"`) || !strings.Contains(meta[MetaKey], `"images":64`) || meta["folded_batchnorm"] != "true" {
		t.Errorf("metadata %v", meta)
	}

	dir := t.TempDir()
	fp, qp := filepath.Join(dir, "float.onnx"), filepath.Join(dir, "int8.onnx")
	if err := os.WriteFile(fp, float, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(qp, q, 0o644); err != nil {
		t.Fatal(err)
	}
	x := randImages(r, 32)
	run := func(path string, opts infer.Options) []float32 {
		s, err := infer.Load(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		out, err := s.Run(context.Background(), map[string]*infer.Tensor{"input": x})
		if err != nil {
			t.Fatal(err)
		}
		return out["logits"].Float32
	}
	yf, yq := run(fp, infer.Options{Threads: 2}), run(qp, infer.Options{Threads: 2})
	// int8 against float: the logits keep their direction (cosine
	// similarity over the batch) — quantization noise, not a broken graph.
	var dot, nf, nq float64
	for i := range yf {
		dot += float64(yf[i]) * float64(yq[i])
		nf += float64(yf[i]) * float64(yf[i])
		nq += float64(yq[i]) * float64(yq[i])
	}
	if cos := dot / math.Sqrt(nf*nq); cos < 0.99 {
		t.Errorf("int8 logits against float: cosine similarity %.4f, want >= 0.99", cos)
	}

	interop.RequireChecker(t)
	if err := interop.CheckONNX(context.Background(), qp); err != nil {
		t.Fatalf("ONNX checker: %v", err)
	}
	interop.RequireORT(t)
	res, err := interop.ORT(context.Background(), []interop.Job{{Model: qp, Inputs: map[string]interop.Tensor{"input": {Dims: x.Shape, Data: x.Float32}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != "" {
		t.Fatalf("ONNX Runtime: %s", res[0].Err)
	}
	yo := res[0].Outputs["logits"].Data
	// ONNX Runtime's int8 kernels and ours requantize alike, but a value
	// on a rounding boundary may land a step apart at one layer and move
	// the logits a little: bounded by a few output steps of the logits'
	// spread, and the top-1 classes agree.
	var spread float64
	for _, v := range yq {
		spread = max(spread, math.Abs(float64(v)))
	}
	agree := 0
	for i := range 32 {
		a, b := yq[i*10:(i+1)*10], yo[i*10:(i+1)*10]
		for j := range a {
			if d := math.Abs(float64(a[j] - b[j])); d > 0.05*spread {
				t.Errorf("image %d logit %d: ours %g, ONNX Runtime %g (spread %g)", i, j, a[j], b[j], spread)
			}
		}
		if argmax(a) == argmax(b) {
			agree++
		}
	}
	if agree < 31 {
		t.Errorf("top-1 agrees with ONNX Runtime on %d of 32 images", agree)
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// TestPrepareRefuses: an already quantized model, a model with nothing
// to quantize, garbage.
func TestPrepareRefuses(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	m, err := Prepare(tinyResNet(t))
	if err != nil {
		t.Fatal(err)
	}
	q, _, err := m.Quantize(calibrate(t, m, 16, r), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(q); err == nil || !strings.Contains(err.Error(), "already quantized") {
		t.Errorf("quantized model: %v", err)
	}
	relu := &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: &onnxpb.GraphProto{
		Node:   []*onnxpb.NodeProto{{Name: "r", OpType: "Relu", Input: []string{"x"}, Output: []string{"y"}}},
		Input:  []*onnxpb.ValueInfoProto{{Name: "x"}},
		Output: []*onnxpb.ValueInfoProto{{Name: "y"}},
	}}
	b, _ := proto.Marshal(relu)
	if _, err := Prepare(b); !errors.Is(err, ErrNothing) {
		t.Errorf("Relu model: %v, want ErrNothing", err)
	}
	if _, err := Prepare([]byte("not a model")); err == nil {
		t.Error("garbage accepted")
	}
	if _, _, err := m.Quantize(map[string]*Stats{}, Options{}); err == nil || !strings.Contains(err.Error(), "no calibration values") {
		t.Errorf("no statistics: %v", err)
	}
	if _, _, err := m.Quantize(calibrate(t, m, 16, r), Options{Method: "median"}); err == nil {
		t.Error("unknown method accepted")
	}
}
