package train

import (
	"math/rand/v2"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/models"
)

// TestStepAllocatesNothing: after the first step, a training step
// (forward, backward and the optimiser's update) allocates nothing, for
// each kind of block and shortcut, with and without a frozen backbone,
// in eval mode, and with the moving average of the weights (EMA).
func TestStepAllocatesNothing(t *testing.T) {
	spec := func(name string, edit func(*models.Spec)) models.Spec {
		s, err := models.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(&s)
		}
		return s
	}
	bottleneck, err := models.CIFARDepth(11, models.Bottleneck)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		spec   models.Spec
		freeze string
		optim  string
		eval   bool
		ema    bool
	}{
		{"resnet8 option A, SGD", spec("resnet8", nil), "", SGD, false, false},
		{"resnet8 option B, Adam", spec("resnet8", func(s *models.Spec) { s.Shortcut = models.ShortcutB }), "", Adam, false, false},
		{"bottleneck 11", bottleneck, "", SGD, false, false},
		{"pre-activation resnet8", spec("resnet8", func(s *models.Spec) { s.PreAct = true }), "", AdamW, false, false},
		{"resnet8 frozen backbone", spec("resnet8", nil), "backbone", SGD, false, false},
		{"resnet8 eval mode", spec("resnet8", nil), "", SGD, true, false},
		{"resnet8 SGD with EMA", spec("resnet8", nil), "", SGD, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := build.New(tc.spec, build.Options{Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			frozen, err := FrozenParams(g, tc.freeze)
			if err != nil {
				t.Fatal(err)
			}
			const batch = 4
			net, err := NewNet(g, batch, NetOptions{Threads: 2, Frozen: frozen})
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			net.SetTraining(!tc.eval)
			opt, err := NewOptimizer(OptimizerConfig{Name: tc.optim, LR: 0.1, Momentum: 0.9, WeightDecay: 5e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			x := make([]float32, batch*3*32*32)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			labels := []int{0, 3, 9, 5}
			var avg *ema
			if tc.ema {
				trained := map[*build.Param]bool{}
				for _, p := range net.Params() {
					trained[p.Param] = true
				}
				avg = newEMA(g, 0.999, trained)
			}
			step := func() {
				if _, err := net.Step(x, labels); err != nil {
					t.Fatal(err)
				}
				if !tc.eval {
					if err := opt.Step(net.Params(), 0.01, 0.9); err != nil {
						t.Fatal(err)
					}
					if avg != nil {
						avg.update()
					}
				}
			}
			step()
			if n := testing.AllocsPerRun(5, step); n != 0 {
				t.Errorf("%v allocations per step, want 0", n)
			}
			if net.Logits() == nil || net.Params()[0].Grad() == nil {
				t.Error("no logits or gradients after a step")
			}
		})
	}
}
