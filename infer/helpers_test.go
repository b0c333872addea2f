package infer

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
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
	perturbBN(g, seed)
	return s, g
}

// perturbBN gives BatchNorm layers trained-looking statistics (fresh ones
// are γ=1, β=0, μ=0, σ²=1, which would hide BN mistakes), damping the end
// of each residual branch (its last BN, or its last convolution in a
// pre-activation block) by 1/√blocks, as in trained deep ResNets, so
// that the activations stay of order one.
func perturbBN(g *build.Graph, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	last := map[string]bool{}
	producer := map[string]*build.Node{}
	blocks := 0
	for _, n := range g.Nodes {
		producer[n.Output] = n
		if n.Kind == build.Add {
			blocks++
			for _, in := range n.Inputs {
				if p := producer[in]; p != nil && (p.Kind == build.BatchNorm || p.Kind == build.Conv) && !strings.Contains(p.Name, "downsample") {
					last[p.Params[0]] = true // γ, or the weight of a pre-activation branch's last conv
				}
			}
		}
	}
	damp := float32(1 / math.Sqrt(float64(max(blocks, 1))))
	for _, p := range g.Params {
		if last[p.Name] && strings.Contains(p.Name, "conv") {
			for i := range p.Data {
				p.Data[i] *= damp
			}
			continue
		}
		switch {
		case strings.HasSuffix(p.Name, "running_var"):
			for i := range p.Data {
				p.Data[i] = 0.5 + r.Float32()
			}
		case strings.HasSuffix(p.Name, "running_mean"):
			for i := range p.Data {
				p.Data[i] = float32(r.NormFloat64() * 0.1)
			}
		case strings.Contains(p.Name, "bn") || strings.Contains(p.Name, "downsample.1"):
			for i := range p.Data {
				if strings.HasSuffix(p.Name, ".weight") {
					p.Data[i] = 0.5 + r.Float32()
					if last[p.Name] {
						p.Data[i] *= damp
					}
				} else {
					p.Data[i] = float32(r.NormFloat64() * 0.1)
				}
			}
		}
	}
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
