package train

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/internal/testmodel"
)

// snapshot copies every parameter's values (running statistics included).
func snapshot(g *build.Graph) map[string][]float32 {
	s := map[string][]float32{}
	for _, p := range g.Params {
		s[p.Name] = append([]float32(nil), p.Data...)
	}
	return s
}

// checkFrozen fails unless every parameter outside the head is
// bit-identical to before and both head parameters changed.
func checkFrozen(t *testing.T, g *build.Graph, before map[string][]float32, head map[string]bool) {
	t.Helper()
	for _, p := range g.Params {
		same := testmodel.BitsEqual(p.Data, before[p.Name])
		switch {
		case head[p.Name] && same:
			t.Errorf("head parameter %s did not change", p.Name)
		case !head[p.Name] && !same:
			t.Errorf("frozen parameter %s changed", p.Name)
		}
	}
}

// TestFreezeBackbone: with Freeze = backbone, a few optimiser steps (SGD
// with momentum and L2 weight decay; AdamW with decoupled decay) leave
// every backbone parameter and BatchNorm running statistic bit-identical
// and change the head; the Net differentiates the head only, the
// optimiser holds buffers for the head only, and a resumed checkpoint
// continues frozen.
func TestFreezeBackbone(t *testing.T) {
	ds := sample(t, "train", 64)
	spec := smallSpec()
	train, _ := sources(t, ds, spec.Preprocess)
	head := map[string]bool{"fc.weight": true, "fc.bias": true}
	for _, opt := range []OptimizerConfig{
		{Name: SGD, LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4},
		{Name: AdamW, LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-7, WeightDecay: 0.05},
	} {
		t.Run(opt.Name, func(t *testing.T) {
			m, err := NewModel(spec, 3)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := m.Compile(CompileOptions{Optimizer: opt, Threads: 2, Freeze: FreezeBackbone}); err != nil {
				t.Fatal(err)
			}
			before := snapshot(m.Graph)
			dir := t.TempDir()
			fo := FitOptions{Epochs: 1, MaxSteps: 3, Batch: 16, Seed: 5, CheckpointDir: dir}
			if _, err := m.Fit(context.Background(), train, fo); err != nil {
				t.Fatal(err)
			}
			checkFrozen(t, m.Graph, before, head)

			var names []string
			for _, p := range m.net.Params() {
				names = append(names, p.Param.Name)
			}
			if strings.Join(names, ",") != "fc.weight,fc.bias" {
				t.Errorf("Net trains %v, want the head only", names)
			}
			for _, nd := range m.net.g.AllNodes() {
				if strings.Contains(nd.Name(), ".grad") && !strings.HasPrefix(nd.Name(), "fc.") && !strings.HasPrefix(nd.Name(), "loss") {
					t.Errorf("the backward pass differentiates %s", nd.Name())
				}
			}
			for k := range m.opt.state(m.net.Params()) {
				if !strings.HasSuffix(k, ".fc.weight") && !strings.HasSuffix(k, ".fc.bias") {
					t.Errorf("optimiser state %s for a frozen parameter", k)
				}
			}

			// The checkpoint records the freeze; resuming continues frozen.
			c, err := LoadCheckpoint(filepath.Join(dir, "epoch-0001"))
			if err != nil {
				t.Fatal(err)
			}
			if c.State.Recipe.Freeze != FreezeBackbone {
				t.Fatalf("checkpoint recipe freeze %q", c.State.Recipe.Freeze)
			}
			resumed, r, err := Resume(filepath.Join(dir, "epoch-0001"), 2)
			if err != nil {
				t.Fatal(err)
			}
			defer resumed.Close()
			fo = r.FitOptions()
			fo.Epochs, fo.MaxSteps = 2, 6
			if _, err := resumed.Fit(context.Background(), train, fo); err != nil {
				t.Fatal(err)
			}
			checkFrozen(t, resumed.Graph, before, head)
		})
	}
}

// TestFreezeErrors: unknown modes and graphs without a dense head are
// refused when compiling.
func TestFreezeErrors(t *testing.T) {
	for _, c := range []struct {
		name, mode string
		graph      func(g *build.Graph)
		want       string
	}{
		{"unknown mode", "everything", nil, "want none or backbone"},
		{"no dense head", FreezeBackbone, func(g *build.Graph) {
			for _, n := range g.Nodes {
				if n.Kind == build.Dense {
					n.Kind = "NotDense"
				}
			}
		}, "no dense layer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := NewModel(smallSpec(), 1)
			if err != nil {
				t.Fatal(err)
			}
			if c.graph != nil {
				c.graph(m.Graph)
			}
			err = m.Compile(CompileOptions{Optimizer: OptimizerConfig{Name: SGD, LR: 0.1}, Freeze: c.mode})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
	if err := (Recipe{Name: "x", Epochs: 1, Batch: 2, Optimizer: OptimizerConfig{Name: SGD}, Schedule: ScheduleConfig{Kind: Constant}, Freeze: "head"}).Validate(); err == nil {
		t.Error("a recipe with freeze \"head\" validates")
	}
}

// refBNStats runs the graph forward in float64 on a batch with every
// BatchNorm in training mode (normalising with the batch mean and biased
// variance) and returns each BatchNorm's batch mean and unbiased variance
// per channel: an independent reference for ReestimateBN.
func refBNStats(t *testing.T, g *build.Graph, x []float32, n int) map[string][2][]float64 {
	t.Helper()
	type val struct {
		d       []float64
		c, h, w int
	}
	vals := map[string]val{}
	in := g.Spec.Input
	x64 := make([]float64, len(x))
	for i, v := range x {
		x64[i] = float64(v)
	}
	vals[g.Input] = val{x64, in.C, in.H, in.W}
	stats := map[string][2][]float64{}
	for _, nd := range g.Nodes {
		a := vals[nd.Inputs[0]]
		s := nd.Shape
		out := val{c: s.C, h: s.H, w: s.W}
		switch nd.Kind {
		case build.Conv:
			cv := nd.Conv
			if cv.Groups != 1 || cv.Dilation != 1 {
				t.Fatalf("%s: reference conv has no groups or dilation", nd.Name)
			}
			wt := g.Param(nd.Params[0]).Data
			out.d = make([]float64, n*s.C*s.H*s.W)
			k := cv.Kernel
			for b := 0; b < n; b++ {
				for oc := 0; oc < s.C; oc++ {
					for oy := 0; oy < s.H; oy++ {
						for ox := 0; ox < s.W; ox++ {
							var sum float64
							if cv.Bias {
								sum = float64(g.Param(nd.Params[1]).Data[oc])
							}
							for ic := 0; ic < a.c; ic++ {
								for ky := 0; ky < k; ky++ {
									iy := oy*cv.Stride - cv.Pad + ky
									if iy < 0 || iy >= a.h {
										continue
									}
									for kx := 0; kx < k; kx++ {
										ix := ox*cv.Stride - cv.Pad + kx
										if ix < 0 || ix >= a.w {
											continue
										}
										sum += float64(wt[((oc*a.c+ic)*k+ky)*k+kx]) * a.d[((b*a.c+ic)*a.h+iy)*a.w+ix]
									}
								}
							}
							out.d[((b*s.C+oc)*s.H+oy)*s.W+ox] = sum
						}
					}
				}
			}
		case build.BatchNorm:
			gamma, beta := g.Param(nd.Params[0]).Data, g.Param(nd.Params[1]).Data
			hw := a.h * a.w
			cnt := float64(n * hw)
			mean, uvar := make([]float64, a.c), make([]float64, a.c)
			out.d = make([]float64, len(a.d))
			for c := 0; c < a.c; c++ {
				var sum float64
				for b := 0; b < n; b++ {
					for _, v := range a.d[(b*a.c+c)*hw : (b*a.c+c+1)*hw] {
						sum += v
					}
				}
				mu := sum / cnt
				var ss float64
				for b := 0; b < n; b++ {
					for _, v := range a.d[(b*a.c+c)*hw : (b*a.c+c+1)*hw] {
						ss += (v - mu) * (v - mu)
					}
				}
				mean[c], uvar[c] = mu, ss/(cnt-1)
				inv := 1 / math.Sqrt(ss/cnt+float64(nd.BN.Epsilon))
				for b := 0; b < n; b++ {
					for i := (b*a.c + c) * hw; i < (b*a.c+c+1)*hw; i++ {
						out.d[i] = (a.d[i]-mu)*inv*float64(gamma[c]) + float64(beta[c])
					}
				}
			}
			stats[nd.Name] = [2][]float64{mean, uvar}
		case build.Relu:
			out.d = make([]float64, len(a.d))
			for i, v := range a.d {
				out.d[i] = math.Max(v, 0)
			}
		case build.Add:
			bv := vals[nd.Inputs[1]]
			out.d = make([]float64, len(a.d))
			for i := range a.d {
				out.d[i] = a.d[i] + bv.d[i]
			}
		case build.ChannelPad:
			p := nd.Pad
			out.d = make([]float64, n*s.C*s.H*s.W)
			for b := 0; b < n; b++ {
				for c := 0; c < a.c; c++ {
					for y := 0; y < s.H; y++ {
						for xx := 0; xx < s.W; xx++ {
							out.d[((b*s.C+c+p.Before)*s.H+y)*s.W+xx] = a.d[((b*a.c+c)*a.h+y*p.Stride)*a.w+xx*p.Stride]
						}
					}
				}
			}
		case build.GlobalAvgPool:
			hw := a.h * a.w
			out.d = make([]float64, n*a.c)
			for i := range out.d {
				var sum float64
				for _, v := range a.d[i*hw : (i+1)*hw] {
					sum += v
				}
				out.d[i] = sum / float64(hw)
			}
		case build.Flatten, build.Dense, build.Softmax:
			continue // after the last BatchNorm
		default:
			t.Fatalf("%s: no reference for %s", nd.Name, nd.Kind)
		}
		vals[nd.Output] = out
	}
	return stats
}

// TestReestimateBN: the running statistics ReestimateBN computes over 3
// batches equal the cumulative average of each BatchNorm's batch mean and
// unbiased batch variance, computed independently by a float64 forward
// pass of the graph with BatchNorm in training mode, within
// 1e-6 × (1 + |ref|) (float32 activations against float64); the weights
// stay bit-identical, the count is recorded in the checkpoint recipe, and
// a frozen model's BatchNorms (inference mode in training) are
// re-estimated all the same.
func TestReestimateBN(t *testing.T) {
	const batch, batches = 8, 3
	ds := sample(t, "train", batch*batches+5) // a partial fourth batch is dropped
	spec := smallSpec()
	_, ordered := sources(t, ds, spec.Preprocess)
	for _, freeze := range []string{FreezeNone, FreezeBackbone} {
		t.Run("freeze="+freeze, func(t *testing.T) {
			m, err := NewModel(spec, 7)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			// Make the affine parameters non-trivial, so that later layers
			// see the effect of earlier ones.
			for _, p := range m.Graph.Params {
				if strings.Contains(p.Name, "bn") && p.Trainable {
					for i := range p.Data {
						p.Data[i] += 0.1 * float32(i%5-2)
					}
				}
			}
			if err := m.Compile(CompileOptions{Optimizer: OptimizerConfig{Name: SGD, LR: 0.1}, Threads: 2, Freeze: freeze}); err != nil {
				t.Fatal(err)
			}
			before := snapshot(m.Graph)

			// The reference: the same batches, in order.
			want := map[string][2][]float64{}
			per := 3 * 32 * 32
			pass, _ := ordered.Epoch(0, 0, batch)
			x, labels := make([]float32, batch*per), make([]int, batch)
			for k := 0; k < batches; k++ {
				if n, err := pass.Next(x, labels); err != nil || n != batch {
					t.Fatal(n, err)
				}
				for name, st := range refBNStats(t, m.Graph, x, batch) {
					acc, ok := want[name]
					if !ok {
						acc = [2][]float64{make([]float64, len(st[0])), make([]float64, len(st[1]))}
						want[name] = acc
					}
					for c := range st[0] {
						acc[0][c] += st[0][c] / batches
						acc[1][c] += st[1][c] / batches
					}
				}
			}

			got, err := m.ReestimateBN(context.Background(), ordered, batch, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got != batches {
				t.Errorf("re-estimated over %d batches, want %d", got, batches)
			}
			worst := 0.0
			for _, nd := range m.Graph.Nodes {
				if nd.Kind != build.BatchNorm {
					continue
				}
				ref := want[nd.Name]
				for i, pname := range nd.Params[2:] {
					p := m.Graph.Param(pname)
					for c, v := range p.Data {
						e := math.Abs(float64(v)-ref[i][c]) / (1 + math.Abs(ref[i][c]))
						worst = math.Max(worst, e)
						if e > 1e-6 {
							t.Errorf("%s[%d] = %g, reference %g", pname, c, v, ref[i][c])
						}
					}
				}
			}
			t.Logf("%d BatchNorms: worst error %.2g × (1 + |ref|)", len(want), worst)
			for _, p := range m.Graph.Params {
				if !strings.HasSuffix(p.Name, "running_mean") && !strings.HasSuffix(p.Name, "running_var") && !testmodel.BitsEqual(p.Data, before[p.Name]) {
					t.Errorf("%s changed", p.Name)
				}
			}

			// Recorded in the recipe of the checkpoint that follows.
			train, _ := sources(t, ds, spec.Preprocess)
			dir := t.TempDir()
			if _, err := m.Fit(context.Background(), train, FitOptions{Epochs: 1, MaxSteps: 1, Batch: batch, CheckpointDir: dir}); err != nil {
				t.Fatal(err)
			}
			c, err := LoadCheckpoint(filepath.Join(dir, "epoch-0001"))
			if err != nil {
				t.Fatal(err)
			}
			if c.State.Recipe.BNReestimate != batches || c.State.Recipe.Freeze != normFreeze(freeze) {
				t.Errorf("recipe records bn_reestimate %d, freeze %q", c.State.Recipe.BNReestimate, c.State.Recipe.Freeze)
			}
		})
	}
}
