package train

import (
	"fmt"
	"math"

	"github.com/resnetctl/resnetctl/build"
)

// emaPrefix names the EMA tensors in a checkpoint's StateFile
// ("ema.<parameter>"), next to "param." and "optim.".
const emaPrefix = "ema."

// ema is an exponential moving average of a model's weights
// (Recipe.EMADecay): after every optimiser step, for every parameter the
// Net trains,
//
//	ema ← ema + (1−d)·(w − ema)   (= d·ema + (1−d)·w, PyTorch's lerp form)
//
// which leaves a constant weight exactly constant. Every other parameter
// (BatchNorm running statistics, and the parameters a frozen backbone
// holds fixed) is copied, not averaged: the running statistics are
// already an exponential average of the batch statistics, so averaging
// them again would make them lag twice as much, and copying keeps them
// those of the most recent training, as torch.optim.swa_utils'
// AveragedModel with use_buffers=False followed by update_bn does in
// spirit (timm's ModelEmaV2 averages the buffers too; with BatchNorm
// momentum 0.1 and a decay near 1 the two differ little).
//
// The raw weights keep training; validation and the model.onnx of every
// checkpoint use the average (Model.EMAGraph).
type ema struct {
	decay float64
	a     float32 // 1−d as float32
	// avg[i] is the average of param[i]'s data; average[i] says whether it
	// is averaged (else copied).
	params  []*build.Param
	avg     [][]float32
	average []bool
}

// newEMA starts an average at the model's current weights; trained names
// the parameters the Net updates.
func newEMA(g *build.Graph, decay float64, trained map[*build.Param]bool) *ema {
	e := &ema{decay: decay, a: float32(1 - decay)}
	for _, p := range g.Params {
		e.params = append(e.params, p)
		e.avg = append(e.avg, append([]float32(nil), p.Data...))
		e.average = append(e.average, trained[p])
	}
	return e
}

// update folds the current weights into the average; it allocates
// nothing.
func (e *ema) update() {
	a := e.a
	for i, p := range e.params {
		dst := e.avg[i]
		src := p.Data[:len(dst)]
		if !e.average[i] {
			copy(dst, src)
			continue
		}
		for j, w := range src {
			dst[j] += a * (w - dst[j])
		}
	}
}

// graph returns a copy of g (sharing its nodes) whose parameters hold the
// averaged weights.
func (e *ema) graph(g *build.Graph) *build.Graph {
	eg := *g
	eg.Params = make([]*build.Param, len(e.params))
	for i, p := range e.params {
		q := *p
		q.Data = e.avg[i]
		eg.Params[i] = &q
	}
	eg.Reindex()
	return &eg
}

// state returns the checkpoint tensors of the average, by parameter name.
func (e *ema) state() map[string][]float32 {
	out := make(map[string][]float32, len(e.params))
	for i, p := range e.params {
		out[p.Name] = e.avg[i]
	}
	return out
}

// setState restores the average from checkpoint tensors, which must hold
// exactly one of the right size for every parameter.
func (e *ema) setState(s map[string][]float32) error {
	if len(s) != len(e.params) {
		return fmt.Errorf("%d EMA tensors for %d parameters", len(s), len(e.params))
	}
	for i, p := range e.params {
		v, ok := s[p.Name]
		if !ok || len(v) != len(e.avg[i]) {
			return fmt.Errorf("no EMA tensor of %d values for parameter %s", len(e.avg[i]), p.Name)
		}
		copy(e.avg[i], v)
	}
	return nil
}

// validEMADecay reports whether d is 0 (off) or in (0, 1).
func validEMADecay(d float64) bool {
	return d == 0 || (d > 0 && d < 1 && !math.IsNaN(d))
}

// EMAGraph returns the graph validation, Evaluate, Predict and the
// checkpoints' model.onnx use: with Recipe.EMADecay set, a copy of
// m.Graph holding the exponential moving average of the weights (the
// copy's parameter data is the model's live average: export or copy it
// before training further); otherwise m.Graph itself.
func (m *Model) EMAGraph() *build.Graph {
	if m.ema == nil {
		return m.Graph
	}
	return m.ema.graph(m.Graph)
}

// setupEMA creates the average when the compiled options ask for one and
// the Net exists (Fit, Resume), starting from the current weights.
func (m *Model) setupEMA() {
	if m.copts.EMADecay == 0 {
		m.ema = nil
		return
	}
	trained := map[*build.Param]bool{}
	for _, t := range m.net.Params() {
		trained[t.Param] = true
	}
	if m.ema != nil && m.ema.decay == m.copts.EMADecay && len(m.ema.params) == len(m.Graph.Params) {
		same := true
		for i, p := range m.Graph.Params {
			same = same && m.ema.params[i] == p && len(m.ema.avg[i]) == len(p.Data)
		}
		if same {
			// The same model trained further (another Fit, perhaps with
			// another freeze): keep the average, averaging what the Net
			// now trains.
			for i, p := range m.ema.params {
				m.ema.average[i] = trained[p]
			}
			return
		}
	}
	m.ema = newEMA(m.Graph, m.copts.EMADecay, trained)
}
