package quantize

import (
	"math/rand/v2"
	"testing"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// FuzzPrepare feeds arbitrary bytes to Prepare and, when it accepts
// them, quantizes with made-up statistics: errors are fine, panics are
// not. (Entropy's threshold search, ~10 ms a tensor and much more under
// the fuzzer's instrumentation, is left to TestStatsRange: the method
// changes only the ranges, not the rewriting fuzzed here.)
func FuzzPrepare(f *testing.F) {
	good := miniModel(f)
	f.Add(good)
	m, err := Prepare(good)
	if err != nil {
		f.Fatal(err)
	}
	q, _, err := m.Quantize(fakeStats(m), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(q)
	f.Add([]byte("\x08\x07\x12\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Prepare(b)
		if err != nil {
			return
		}
		if _, err := m.CalibrationModel(); err != nil {
			return
		}
		for _, method := range []string{MinMax, Percentile} {
			m.Quantize(fakeStats(m), Options{Method: method})
		}
		m.Quantize(fakeStats(m), Options{PerTensor: true, SignedActivations: true})
	})
}

// fakeStats gives every activation a spread of values.
func fakeStats(m *Model) map[string]*Stats {
	r := rand.New(rand.NewPCG(1, 1))
	stats := map[string]*Stats{}
	for _, a := range m.Activations() {
		s := NewStats()
		x := make([]float32, 64)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		s.Add(x)
		stats[a] = s
	}
	return stats
}

// miniModel is a small seed (fuzzing mutates every byte of it): input
// [N,3,4,4] → Conv 3x3 (4) → BatchNormalization → Relu → GlobalAveragePool
// → Flatten → Gemm (2).
func miniModel(t testing.TB) []byte {
	vals := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i%7)*0.1 + 0.05
		}
		return v
	}
	in := func(name string, dims ...int64) *onnxpb.ValueInfoProto {
		shape := &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: 1, Shape: shape}}}}
	}
	m := &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}}, Graph: &onnxpb.GraphProto{
		Name: "mini",
		Node: []*onnxpb.NodeProto{
			{Name: "conv", OpType: "Conv", Input: []string{"input", "w"}, Output: []string{"c"}, Attribute: []*onnxpb.AttributeProto{{Name: "pads", Type: onnxpb.AttributeProto_INTS, Ints: []int64{1, 1, 1, 1}}}},
			{Name: "bn", OpType: "BatchNormalization", Input: []string{"c", "g", "b", "mu", "var"}, Output: []string{"n"}},
			{Name: "relu", OpType: "Relu", Input: []string{"n"}, Output: []string{"r"}},
			{Name: "gap", OpType: "GlobalAveragePool", Input: []string{"r"}, Output: []string{"p"}},
			{Name: "flat", OpType: "Flatten", Input: []string{"p"}, Output: []string{"f"}},
			{Name: "fc", OpType: "Gemm", Input: []string{"f", "fw", "fb"}, Output: []string{"logits"}, Attribute: []*onnxpb.AttributeProto{{Name: "transB", Type: onnxpb.AttributeProto_INT, I: 1}}},
		},
		Initializer: []*onnxpb.TensorProto{
			onnxmodel.FloatTensor("w", []int{4, 3, 3, 3}, vals(108)), onnxmodel.FloatTensor("g", []int{4}, vals(4)),
			onnxmodel.FloatTensor("b", []int{4}, vals(4)), onnxmodel.FloatTensor("mu", []int{4}, vals(4)),
			onnxmodel.FloatTensor("var", []int{4}, vals(4)), onnxmodel.FloatTensor("fw", []int{2, 4}, vals(8)),
			onnxmodel.FloatTensor("fb", []int{2}, vals(2)),
		},
		Input:  []*onnxpb.ValueInfoProto{in("input", 1, 3, 4, 4)},
		Output: []*onnxpb.ValueInfoProto{in("logits", 1, 2)},
	}}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
