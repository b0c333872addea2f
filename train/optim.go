package train

import (
	"fmt"
	"math"
	"strings"
)

// Optimizer kinds.
const (
	SGD   = "sgd"
	Adam  = "adam"
	AdamW = "adamw"
)

// OptimizerConfig is an optimiser as plain data. The semantics are
// PyTorch's (torch.optim, 1.13):
//
//   - "sgd": SGD with optional momentum, dampening and Nesterov momentum.
//     WeightDecay is PyTorch's: L2, added to the gradient (g += wd·w)
//     before the momentum update, unless DecoupledDecay, which instead
//     shrinks the weight directly (w -= lr·wd·w, as SGDW does);
//   - "adam": Adam with L2 weight decay added to the gradient;
//   - "adamw": Adam with decoupled weight decay (w -= lr·wd·w first).
//
// Adam's Eps is added to sqrt(v̂) (PyTorch's placement). The learning rate
// of each step comes from the schedule; LR is its base value.
type OptimizerConfig struct {
	Name        string  `json:"name"`
	LR          float64 `json:"lr"`
	Momentum    float64 `json:"momentum,omitempty"`
	Dampening   float64 `json:"dampening,omitempty"`
	Nesterov    bool    `json:"nesterov,omitempty"`
	WeightDecay float64 `json:"weight_decay,omitempty"`
	// DecoupledDecay makes SGD's weight decay decoupled (SGDW).
	DecoupledDecay bool `json:"decoupled_decay,omitempty"`
	// NoDecayNormBias exempts BatchNorm parameters and biases (every
	// one-dimensional parameter) from weight decay; PyTorch decays all
	// parameters unless told otherwise.
	NoDecayNormBias bool    `json:"no_decay_norm_bias,omitempty"`
	Beta1           float64 `json:"beta1,omitempty"`
	Beta2           float64 `json:"beta2,omitempty"`
	Eps             float64 `json:"eps,omitempty"`
}

// Validate reports the first invalid setting.
func (c OptimizerConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("optimizer %s: %s", c.Name, fmt.Sprintf(format, args...))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch c.Name {
	case SGD:
		if c.Nesterov && (c.Momentum <= 0 || c.Dampening != 0) {
			return bad("Nesterov momentum needs a momentum > 0 and zero dampening")
		}
	case Adam, AdamW:
		if !(c.Beta1 >= 0 && c.Beta1 < 1) || !(c.Beta2 >= 0 && c.Beta2 < 1) {
			return bad("betas (%g, %g) must be in [0, 1)", c.Beta1, c.Beta2)
		}
		if !(c.Eps > 0) || !finite(c.Eps) {
			return bad("eps %g must be positive", c.Eps)
		}
	default:
		return fmt.Errorf("unknown optimizer %q (want %s)", c.Name, strings.Join([]string{SGD, Adam, AdamW}, ", "))
	}
	switch {
	case !(c.LR >= 0) || !finite(c.LR):
		return bad("learning rate %g must be ≥ 0", c.LR)
	case !(c.Momentum >= 0 && c.Momentum < 1):
		return bad("momentum %g must be in [0, 1)", c.Momentum)
	case !(c.Dampening >= 0 && c.Dampening <= 1):
		return bad("dampening %g must be in [0, 1]", c.Dampening)
	case !(c.WeightDecay >= 0) || !finite(c.WeightDecay):
		return bad("weight decay %g must be ≥ 0", c.WeightDecay)
	}
	return nil
}

// Optimizer updates a Net's parameters in place from their gradients. Its
// state (momentum buffers, Adam moments, the step count) is part of a
// checkpoint.
type Optimizer struct {
	Config OptimizerConfig
	// Steps is the number of steps taken (Adam's t).
	Steps int64
	// Buffers per parameter: SGD's momentum buffer in buf1 (nil until the
	// first step, as in PyTorch), Adam's exp_avg in buf1 and exp_avg_sq in
	// buf2.
	buf1, buf2 [][]float32
}

// NewOptimizer validates cfg.
func NewOptimizer(cfg OptimizerConfig) (*Optimizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Optimizer{Config: cfg}, nil
}

func (o *Optimizer) ensure(n int) {
	if len(o.buf1) < n {
		o.buf1 = append(o.buf1, make([][]float32, n-len(o.buf1))...)
		o.buf2 = append(o.buf2, make([][]float32, n-len(o.buf2))...)
	}
}

// Step applies one update with learning rate lr and, for SGD, momentum
// (the schedule may cycle it; pass Config.Momentum otherwise). The
// arithmetic is float32, in PyTorch's order of operations.
func (o *Optimizer) Step(params []*Trainable, lr, momentum float64) error {
	o.ensure(len(params))
	o.Steps++
	c := o.Config
	for i, p := range params {
		w, g := p.Param.Data, p.Grad()
		if len(g) != len(w) {
			return fmt.Errorf("train: %s: gradient of %d values for %d weights", p.Param.Name, len(g), len(w))
		}
		wd := float32(c.WeightDecay)
		if c.NoDecayNormBias && len(p.Param.Shape) == 1 {
			wd = 0
		}
		switch c.Name {
		case SGD:
			o.sgd(i, w, g, float32(lr), wd, float32(momentum))
		default:
			o.adam(i, w, g, lr, wd)
		}
	}
	return nil
}

// fma32 is a*b + c rounded once to float32 (the float32 product is exact
// in float64), as PyTorch's vectorised add(other, alpha) computes it.
func fma32(a, b, c float32) float32 { return float32(float64(a)*float64(b) + float64(c)) }

// sgd mirrors torch.optim.SGD (single-tensor path): d = g.add(w, alpha=wd);
// buf = d on the first step, else buf.mul_(m).add_(d, alpha=1-dampening);
// d = d.add(buf, alpha=m) (Nesterov) or buf; w.add_(d, alpha=-lr).
func (o *Optimizer) sgd(i int, w, g []float32, lr, wd, m float32) {
	c := o.Config
	if c.DecoupledDecay && wd != 0 {
		s := 1 - lr*wd
		for j := range w {
			w[j] *= s
		}
		wd = 0
	}
	if m == 0 {
		for j, gj := range g {
			w[j] = fma32(-lr, fma32(wd, w[j], gj), w[j])
		}
		return
	}
	buf := o.buf1[i]
	first := buf == nil
	if first {
		buf = make([]float32, len(w))
		o.buf1[i] = buf
	}
	damp := float32(1 - c.Dampening)
	for j, gj := range g {
		d := gj
		if wd != 0 {
			d = fma32(wd, w[j], gj)
		}
		if first {
			buf[j] = d
		} else {
			buf[j] = fma32(damp, d, buf[j]*m)
		}
		if c.Nesterov {
			d = fma32(m, buf[j], d)
		} else {
			d = buf[j]
		}
		w[j] = fma32(-lr, d, w[j])
	}
}

// adam mirrors torch.optim.Adam/AdamW (single-tensor path, no amsgrad):
// AdamW first scales w by 1-lr·wd; Adam adds wd·w to the gradient; then
// m.mul_(b1).add_(g, alpha=1-b1); v.mul_(b2).addcmul_(g, g, value=1-b2);
// denom = v.sqrt()/sqrt(1-b2^t) + eps; w.addcdiv_(m, denom,
// value=-lr/(1-b1^t)).
func (o *Optimizer) adam(i int, w, g []float32, lr float64, wd float32) {
	c := o.Config
	if o.buf1[i] == nil {
		o.buf1[i] = make([]float32, len(w))
		o.buf2[i] = make([]float32, len(w))
	}
	m, v := o.buf1[i], o.buf2[i]
	if c.Name == AdamW && wd != 0 {
		s := float32(1 - lr*float64(wd))
		for j := range w {
			w[j] *= s
		}
		wd = 0
	}
	b1, b2 := float32(c.Beta1), float32(c.Beta2)
	a1, a2 := float32(1-c.Beta1), float32(1-c.Beta2)
	t := float64(o.Steps)
	bc2 := float32(math.Sqrt(1 - math.Pow(c.Beta2, t)))
	step := float32(-lr / (1 - math.Pow(c.Beta1, t)))
	eps := float32(c.Eps)
	for j, gj := range g {
		if wd != 0 {
			gj = fma32(wd, w[j], gj)
		}
		m[j] = fma32(a1, gj, m[j]*b1)
		v[j] = v[j]*b2 + a2*gj*gj
		denom := float32(math.Sqrt(float64(v[j])))/bc2 + eps
		w[j] += step * m[j] / denom
	}
}

// state returns the optimiser buffers keyed "<kind>.<param>", for
// checkpoints.
func (o *Optimizer) state(params []*Trainable) map[string][]float32 {
	o.ensure(len(params))
	names := [2]string{"momentum_buffer", ""}
	if o.Config.Name != SGD {
		names = [2]string{"exp_avg", "exp_avg_sq"}
	}
	out := map[string][]float32{}
	for i, p := range params {
		if o.buf1[i] != nil {
			out[names[0]+"."+p.Param.Name] = o.buf1[i]
		}
		if o.buf2[i] != nil && names[1] != "" {
			out[names[1]+"."+p.Param.Name] = o.buf2[i]
		}
	}
	return out
}

// setState restores buffers saved by state.
func (o *Optimizer) setState(params []*Trainable, st map[string][]float32) error {
	o.buf1, o.buf2 = nil, nil
	o.ensure(len(params))
	names := [2]string{"momentum_buffer", ""}
	if o.Config.Name != SGD {
		names = [2]string{"exp_avg", "exp_avg_sq"}
	}
	used := 0
	for i, p := range params {
		for k, name := range names {
			if name == "" {
				continue
			}
			b, ok := st[name+"."+p.Param.Name]
			if !ok {
				continue
			}
			if len(b) != len(p.Param.Data) {
				return fmt.Errorf("optimizer state %s.%s has %d values for %d weights", name, p.Param.Name, len(b), len(p.Param.Data))
			}
			used++
			if k == 0 {
				o.buf1[i] = append([]float32(nil), b...)
			} else {
				o.buf2[i] = append([]float32(nil), b...)
			}
		}
	}
	if used != len(st) {
		return fmt.Errorf("optimizer state has %d buffers, %d of them for this model's parameters", len(st), used)
	}
	return nil
}
