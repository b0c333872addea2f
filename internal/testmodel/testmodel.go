// Package testmodel holds what the tests of several packages share to
// make models worth comparing, and to compare them: BatchNorm statistics
// that look trained, bit-for-bit equality of parameter values, and small
// hand-built graphs in the style of other converters. It is imported by
// tests only.
package testmodel

import (
	"math"
	"math/rand/v2"
	"strings"

	"github.com/resnetctl/resnetctl/build"
)

// PerturbBN gives BatchNorm layers trained-looking statistics (fresh ones
// are γ=1, β=0, μ=0, σ²=1, which would hide BN mistakes), damping the end
// of each residual branch (its last BN, or its last convolution in a
// pre-activation block) by 1/√blocks, as in trained deep ResNets, so
// that the activations stay of order one.
func PerturbBN(g *build.Graph, seed uint64) {
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

// BitsEqual reports whether a and b are identical bit for bit (so a NaN
// equals the same NaN, and -0 differs from +0).
func BitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
