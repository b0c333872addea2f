package infer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/testmodel"
	"github.com/resnetctl/resnetctl/models"
)

// exportCase is a model from the catalog exported with some options.
type exportCase struct {
	name   string
	model  string
	mutate func(*models.Spec)
	opts   export.Options
}

func shortcutB(s *models.Spec) { s.Shortcut = models.ShortcutB }

// buildExport builds the case's graph with trained-looking BatchNorm
// statistics and returns its spec and graph.
func buildExport(t testing.TB, c exportCase, seed uint64) (models.Spec, *build.Graph) {
	t.Helper()
	s, err := models.Lookup(c.model)
	if err != nil {
		t.Fatal(err)
	}
	if c.mutate != nil {
		c.mutate(&s)
	}
	g, err := build.New(s, build.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	testmodel.PerturbBN(g, seed)
	return s, g
}

// randomInput is a batch of standard-normal images for spec s.
func randomInput(seed uint64, s models.Spec, batch int) *Tensor {
	r := rand.New(rand.NewPCG(seed, 11))
	shape := []int{batch, s.Input.C, s.Input.H, s.Input.W}
	data := make([]float32, prod(shape))
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	return NewFloat32(shape, data)
}

// agreement returns max|got-ref| and max|ref|.
func agreement(got, ref []float32) (maxErr, maxRef float64) {
	if len(got) != len(ref) {
		return math.Inf(1), 0
	}
	for i := range ref {
		maxRef = math.Max(maxRef, math.Abs(float64(ref[i])))
		d := math.Abs(float64(got[i] - ref[i]))
		if math.IsNaN(d) {
			return math.NaN(), maxRef
		}
		maxErr = math.Max(maxErr, d)
	}
	return maxErr, maxRef
}
