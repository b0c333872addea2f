package onnximport_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/internal/interop"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/testmodel"
	"github.com/resnetctl/resnetctl/models"
	"google.golang.org/protobuf/proto"
)

// spec looks a catalog model up and applies mutations.
func spec(t testing.TB, name string, mutate ...func(*models.Spec)) models.Spec {
	t.Helper()
	s, err := models.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mutate {
		m(&s)
	}
	return s
}

func shortcutB(s *models.Spec) { s.Shortcut = models.ShortcutB }

func input(c, h, w int) func(*models.Spec) {
	return func(s *models.Spec) { s.Input = models.Shape{C: c, H: h, W: w} }
}

// newGraph builds a spec with seeded weights and trained-looking BatchNorm
// statistics, so that folding and BN semantics matter.
func newGraph(t testing.TB, s models.Spec, seed uint64) *build.Graph {
	t.Helper()
	g, err := build.New(s, build.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	testmodel.PerturbBN(g, seed)
	return g
}

func randomInput(seed uint64, dims ...int) interop.Tensor {
	r := rand.New(rand.NewPCG(seed, 11))
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	return interop.Tensor{Dims: dims, Data: data}
}

// agree reports whether got matches ref within tol × (1 + max|ref|).
func agree(got, ref []float32, tol float64) (bool, float64, float64) {
	if len(got) != len(ref) || len(ref) == 0 {
		return false, math.Inf(1), 0
	}
	maxRef, maxErr := 0.0, 0.0
	for i := range ref {
		maxRef = math.Max(maxRef, math.Abs(float64(ref[i])))
		maxErr = math.Max(maxErr, math.Abs(float64(got[i]-ref[i])))
	}
	if math.IsNaN(maxErr) {
		return false, maxErr, maxRef
	}
	return maxErr <= tol*(1+maxRef), maxErr, maxRef
}

func decode(t testing.TB, b []byte) *onnxpb.ModelProto {
	t.Helper()
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func encode(t testing.TB, m *onnxpb.ModelProto) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameInitializers compares two models' initializers: names, order, types,
// dims and data bytes.
func sameInitializers(a, b *onnxpb.ModelProto) string {
	ia, ib := a.GetGraph().GetInitializer(), b.GetGraph().GetInitializer()
	if len(ia) != len(ib) {
		return "initializer counts differ"
	}
	for i := range ia {
		x, y := ia[i], ib[i]
		switch {
		case x.GetName() != y.GetName():
			return "initializer " + x.GetName() + " is " + y.GetName() + " in the re-export"
		case x.GetDataType() != y.GetDataType() || !equalInts(x.GetDims(), y.GetDims()):
			return "initializer " + x.GetName() + " changed type or shape"
		case !bytes.Equal(x.GetRawData(), y.GetRawData()) || !equalInts(x.GetInt64Data(), y.GetInt64Data()):
			return "initializer " + x.GetName() + " changed data"
		}
	}
	return ""
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// stripMetadata removes resnetctl's metadata, so the file is imported as a
// stranger's.
func stripMetadata(m *onnxpb.ModelProto) {
	m.MetadataProps = nil
	m.ProducerName, m.ProducerVersion, m.DocString = "someone", "", ""
}

func encodeErr(m *onnxpb.ModelProto) ([]byte, error) { return proto.Marshal(m) }
