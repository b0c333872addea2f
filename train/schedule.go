package train

import (
	"fmt"
	"math"
	"strings"
)

// Schedule kinds.
const (
	Constant = "constant"
	Steps    = "step"
	Cosine   = "cosine"
	OneCycle = "onecycle"
)

// ScheduleConfig is a learning-rate schedule as plain data. The learning
// rate of optimiser step s (0-based, s < total) is:
//
//   - "constant": the optimiser's LR;
//   - "step": LR·Gamma^k, k the number of Milestones ≤ s (PyTorch's
//     MultiStepLR stepped every iteration; milestones count iterations);
//   - "cosine": a linear warm-up over WarmupEpochs epochs (rounded to whole
//     steps W) from WarmupStart·LR to LR — step s < W gets
//     LR·(WarmupStart + (1-WarmupStart)·(s+1)/W) — then cosine annealing
//     from LR to MinLR: MinLR + (LR-MinLR)·(1+cos(π·(s-W)/(total-W)))/2;
//   - "onecycle": PyTorch's OneCycleLR (two phases, cosine annealing):
//     from MaxLR/DivFactor up to MaxLR over the first PctStart of the
//     steps, then down to MaxLR/(DivFactor·FinalDivFactor) at the last
//     step; with CycleMomentum, SGD's momentum moves inversely between
//     MaxMomentum and BaseMomentum. MaxLR 0 means the optimiser's LR.
type ScheduleConfig struct {
	Kind string `json:"kind"`

	Milestones []int   `json:"milestones,omitempty"`
	Gamma      float64 `json:"gamma,omitempty"`

	WarmupEpochs float64 `json:"warmup_epochs,omitempty"`
	WarmupStart  float64 `json:"warmup_start,omitempty"`
	MinLR        float64 `json:"min_lr,omitempty"`

	MaxLR          float64 `json:"max_lr,omitempty"`
	PctStart       float64 `json:"pct_start,omitempty"`
	DivFactor      float64 `json:"div_factor,omitempty"`
	FinalDivFactor float64 `json:"final_div_factor,omitempty"`
	CycleMomentum  bool    `json:"cycle_momentum,omitempty"`
	BaseMomentum   float64 `json:"base_momentum,omitempty"`
	MaxMomentum    float64 `json:"max_momentum,omitempty"`
}

// OneCycleDefaults returns PyTorch's OneCycleLR defaults.
func OneCycleDefaults(maxLR float64) ScheduleConfig {
	return ScheduleConfig{Kind: OneCycle, MaxLR: maxLR, PctStart: 0.3, DivFactor: 25, FinalDivFactor: 1e4,
		CycleMomentum: true, BaseMomentum: 0.85, MaxMomentum: 0.95}
}

// Validate reports the first invalid setting.
func (s ScheduleConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("schedule %s: %s", s.Kind, fmt.Sprintf(format, args...))
	}
	switch s.Kind {
	case Constant, "":
	case Steps:
		if !(s.Gamma > 0) {
			return bad("gamma %g must be positive", s.Gamma)
		}
		for i, m := range s.Milestones {
			if m < 0 || (i > 0 && m <= s.Milestones[i-1]) {
				return bad("milestones %v must be increasing and ≥ 0", s.Milestones)
			}
		}
	case Cosine:
		if !(s.WarmupEpochs >= 0) || !(s.WarmupStart >= 0 && s.WarmupStart <= 1) || !(s.MinLR >= 0) {
			return bad("warm-up epochs %g, warm-up start %g and min lr %g must be ≥ 0 (start ≤ 1)", s.WarmupEpochs, s.WarmupStart, s.MinLR)
		}
	case OneCycle:
		if !(s.PctStart > 0 && s.PctStart < 1) || !(s.DivFactor > 0) || !(s.FinalDivFactor > 0) || !(s.MaxLR >= 0) {
			return bad("pct_start %g must be in (0, 1), div factors %g and %g positive", s.PctStart, s.DivFactor, s.FinalDivFactor)
		}
	default:
		return fmt.Errorf("unknown schedule %q (want %s)", s.Kind, strings.Join([]string{Constant, Steps, Cosine, OneCycle}, ", "))
	}
	return nil
}

// At returns the learning rate and momentum of step s of total steps, with
// perEpoch steps an epoch, for an optimiser whose base learning rate and
// momentum are lr and momentum.
func (s ScheduleConfig) At(step, total, perEpoch int, lr, momentum float64) (float64, float64) {
	switch s.Kind {
	case Steps:
		k := 0
		for _, m := range s.Milestones {
			if m <= step {
				k++
			}
		}
		return lr * math.Pow(s.Gamma, float64(k)), momentum
	case Cosine:
		w := int(math.Round(s.WarmupEpochs * float64(perEpoch)))
		if step < w {
			return lr * (s.WarmupStart + (1-s.WarmupStart)*float64(step+1)/float64(w)), momentum
		}
		span := total - w
		if span <= 0 {
			return lr, momentum
		}
		t := math.Min(float64(step-w)/float64(span), 1)
		return s.MinLR + (lr-s.MinLR)*(1+math.Cos(math.Pi*t))/2, momentum
	case OneCycle:
		maxLR := s.MaxLR
		if maxLR == 0 {
			maxLR = lr
		}
		initial := maxLR / s.DivFactor
		final := initial / s.FinalDivFactor
		end1 := s.PctStart*float64(total) - 1
		end2 := float64(total - 1)
		anneal := func(a, b, pct float64) float64 { return b + (a-b)/2*(math.Cos(math.Pi*pct)+1) }
		x := float64(step)
		var outLR, outM float64
		if x <= end1 {
			pct := x / end1
			outLR, outM = anneal(initial, maxLR, pct), anneal(s.MaxMomentum, s.BaseMomentum, pct)
		} else {
			pct := (x - end1) / (end2 - end1)
			outLR, outM = anneal(maxLR, final, pct), anneal(s.BaseMomentum, s.MaxMomentum, pct)
		}
		if !s.CycleMomentum {
			outM = momentum
		}
		return outLR, outM
	}
	return lr, momentum
}
