package train

import (
	"encoding/hex"
	"fmt"
	"math"

	"github.com/resnetctl/resnetctl/build"
)

// Bounds of what a checkpoint may declare. They are far beyond any real
// run (ResNet-1202 at batch 4096 over 10^5 epochs) and far below what
// would let a hand-edited trainer.json size an allocation of terabytes.
const (
	maxEpochs        = 1_000_000
	maxBatch         = 1 << 16
	maxSteps         = 1 << 40
	maxImageValues   = 1 << 24 // C×H×W of one input image
	maxNodeValues    = 1 << 28 // C×H×W of one node's output, per sample
	maxKernel        = 1 << 10
	maxGraphNodes    = 1 << 16
	maxSourceLength  = 4096
	maxScheduleMarks = 1 << 12
)

// fieldError names the trainer.json field (a JSON path) that is out of
// bounds.
func fieldError(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

// validate checks every field of a trainer.json against its bounds and
// against the others (history against epoch, best against history, the
// interrupted epoch against the batch size), naming the field.
func (st *TrainerState) validate() error {
	r := &st.Recipe
	switch {
	case r.Epochs < 1 || r.Epochs > maxEpochs:
		return fieldError("recipe.epochs", "%d is outside [1, %d]", r.Epochs, maxEpochs)
	case r.Batch < 2 || r.Batch > maxBatch:
		return fieldError("recipe.batch", "%d is outside [2, %d]", r.Batch, maxBatch)
	case r.MaxSteps < 0 || r.MaxSteps > maxSteps:
		return fieldError("recipe.max_steps", "%d is outside [0, %d]", r.MaxSteps, int64(maxSteps))
	case len(r.Schedule.Milestones) > maxScheduleMarks:
		return fieldError("recipe.schedule.milestones", "%d milestones (at most %d)", len(r.Schedule.Milestones), maxScheduleMarks)
	case st.Epoch < 0 || st.Epoch > r.Epochs:
		return fieldError("epoch", "%d is outside [0, recipe.epochs %d]", st.Epoch, r.Epochs)
	case st.Step < 0 || st.Step > maxSteps:
		return fieldError("step", "%d is outside [0, %d]", st.Step, int64(maxSteps))
	case st.BadEpochs < 0 || st.BadEpochs > st.Epoch:
		return fieldError("bad_epochs", "%d is outside [0, epoch %d]", st.BadEpochs, st.Epoch)
	case len(st.RNG) == 0:
		return fieldError("rng", "missing")
	}
	for _, lr := range []struct {
		name string
		v    float64
	}{{"recipe.optimizer.lr", r.Optimizer.LR}, {"recipe.optimizer.momentum", r.Optimizer.Momentum}, {"recipe.optimizer.weight_decay", r.Optimizer.WeightDecay}} {
		if math.IsNaN(lr.v) || math.IsInf(lr.v, 0) || lr.v < 0 || lr.v > 1e6 {
			return fieldError(lr.name, "%g is outside [0, 1e6]", lr.v)
		}
	}
	if err := r.Validate(); err != nil {
		return fieldError("recipe", "%v", err)
	}
	if len(st.History) != st.Epoch {
		return fieldError("history", "%d entries for epoch %d", len(st.History), st.Epoch)
	}
	for i, h := range st.History {
		if h.Epoch != i+1 {
			return fieldError(fmt.Sprintf("history[%d].epoch", i), "%d, want %d", h.Epoch, i+1)
		}
		if h.Step < 0 || h.Step > st.Step {
			return fieldError(fmt.Sprintf("history[%d].step", i), "%d is outside [0, step %d]", h.Step, st.Step)
		}
	}
	if b := st.Best; b != nil {
		switch b.Monitor {
		case "val_loss", "val_accuracy", "loss", "accuracy":
		default:
			return fieldError("best.monitor", "%q is not val_loss, val_accuracy, loss or accuracy", b.Monitor)
		}
		if b.Epoch < 1 || b.Epoch > st.Epoch {
			return fieldError("best.epoch", "%d is outside [1, epoch %d]", b.Epoch, st.Epoch)
		}
	}
	if p := st.Partial; p != nil {
		switch {
		case p.Batches < 1 || p.Batches > maxSteps/r.Batch:
			return fieldError("partial.batches", "%d is outside [1, %d]", p.Batches, maxSteps/r.Batch)
		case st.Epoch >= r.Epochs:
			return fieldError("partial", "an interrupted epoch %d after the run's last epoch %d", st.Epoch+1, r.Epochs)
		case p.Seen != p.Batches*r.Batch:
			return fieldError("partial.seen", "%d, want batches × batch = %d", p.Seen, p.Batches*r.Batch)
		case p.Correct < 0 || p.Correct > p.Seen:
			return fieldError("partial.correct", "%d is outside [0, seen %d]", p.Correct, p.Seen)
		case !(p.Seconds >= 0) || math.IsInf(p.Seconds, 0):
			return fieldError("partial.seconds", "%g is not a duration", p.Seconds)
		case !(p.SumLoss >= 0) || math.IsInf(p.SumLoss, 0):
			return fieldError("partial.sum_loss", "%g is not a sum of losses", p.SumLoss)
		}
	}
	if d := st.Data; d != nil {
		switch {
		case len(d.Source) > maxSourceLength:
			return fieldError("data.source", "%d bytes long", len(d.Source))
		case d.Fingerprint != "" && !isHexSHA256(d.Fingerprint):
			return fieldError("data.fingerprint", "%q is not a SHA-256 in hex", d.Fingerprint)
		case d.Limit < 0 || d.Limit > math.MaxInt32:
			return fieldError("data.limit", "%d is outside [0, %d]", d.Limit, math.MaxInt32)
		case !(d.ValSplit >= 0 && d.ValSplit < 1):
			return fieldError("data.val_split", "%g is outside [0, 1)", d.ValSplit)
		case d.TrainImages < 0 || d.ValImages < 0:
			return fieldError("data.train_images", "negative image counts %d, %d", d.TrainImages, d.ValImages)
		}
		switch d.Validation {
		case "", "test", "held-out", "training":
		default:
			return fieldError("data.validation", "%q is not test, held-out or training", d.Validation)
		}
	}
	if st.Graph == nil {
		return fieldError("graph", "missing")
	}
	return checkGraphBounds(st.Graph, r.Batch)
}

func isHexSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32
}

// checkGraphBounds bounds what the graph declares: the input image, every
// node's attributes and output size, so that building a Net of batch
// images from it cannot ask for absurd memory or divide by a zero stride.
func checkGraphBounds(g *build.Graph, batch int) error {
	in := g.Spec.Input
	if in.C < 1 || in.H < 1 || in.W < 1 || int64(in.C)*int64(in.H)*int64(in.W) > maxImageValues {
		return fieldError("graph.spec.input", "%dx%dx%d is outside 1 to %d values an image", in.C, in.H, in.W, maxImageValues)
	}
	if g.Spec.Classes < 1 || g.Spec.Classes > 1<<20 {
		return fieldError("graph.spec.classes", "%d is outside [1, %d]", g.Spec.Classes, 1<<20)
	}
	if len(g.Nodes) > maxGraphNodes {
		return fieldError("graph.nodes", "%d nodes (at most %d)", len(g.Nodes), maxGraphNodes)
	}
	var total int64 // values of all node outputs, per sample
	for i, n := range g.Nodes {
		field := fmt.Sprintf("graph.nodes[%d]", i)
		if n == nil {
			return fieldError(field, "null")
		}
		field += " (" + n.Name + ")"
		s := n.Shape
		if s.C < 1 || s.H < 1 || s.W < 1 || int64(s.C)*int64(s.H)*int64(s.W) > maxNodeValues {
			return fieldError(field+".shape", "%dx%dx%d is outside 1 to %d values", s.C, s.H, s.W, maxNodeValues)
		}
		total += int64(s.C) * int64(s.H) * int64(s.W)
		if c := n.Conv; c != nil {
			switch {
			case c.Kernel < 1 || c.Kernel > maxKernel:
				return fieldError(field+".conv.kernel", "%d is outside [1, %d]", c.Kernel, maxKernel)
			case c.Stride < 1 || c.Stride > maxKernel:
				return fieldError(field+".conv.stride", "%d is outside [1, %d]", c.Stride, maxKernel)
			case c.Dilation < 1 || c.Dilation > maxKernel:
				return fieldError(field+".conv.dilation", "%d is outside [1, %d]", c.Dilation, maxKernel)
			case c.Pad < 0 || c.Pad > maxKernel:
				return fieldError(field+".conv.pad", "%d is outside [0, %d]", c.Pad, maxKernel)
			case c.Groups < 1 || c.Groups > s.C:
				return fieldError(field+".conv.groups", "%d is outside [1, %d channels]", c.Groups, s.C)
			}
		}
		if p := n.Pool; p != nil {
			switch {
			case p.Kernel < 1 || p.Kernel > maxKernel:
				return fieldError(field+".pool.kernel", "%d is outside [1, %d]", p.Kernel, maxKernel)
			case p.Stride < 1 || p.Stride > maxKernel:
				return fieldError(field+".pool.stride", "%d is outside [1, %d]", p.Stride, maxKernel)
			case p.Pad < 0 || p.Pad >= p.Kernel:
				return fieldError(field+".pool.pad", "%d is outside [0, kernel %d)", p.Pad, p.Kernel)
			}
		}
		if p := n.Pad; p != nil {
			switch {
			case p.Stride < 1 || p.Stride > maxKernel:
				return fieldError(field+".pad.stride", "%d is outside [1, %d]", p.Stride, maxKernel)
			case p.Before < 0 || p.After < 0 || p.Before > maxNodeValues || p.After > maxNodeValues:
				return fieldError(field+".pad", "before %d, after %d", p.Before, p.After)
			}
		}
		if b := n.BN; b != nil {
			if !(b.Epsilon > 0 && b.Epsilon < 1) || !(b.Momentum >= 0 && b.Momentum <= 1) {
				return fieldError(field+".bn", "epsilon %g, momentum %g", b.Epsilon, b.Momentum)
			}
		}
	}
	// Training keeps about three values per node output and sample
	// (forward value, gradient, saved statistics or masks).
	if need := 3 * 4 * total * int64(batch); need > maxTrainBytes() {
		return fieldError("recipe.batch", "%d images of this graph need about %s for activations, more than this machine's %s",
			batch, byteSize(need), byteSize(maxTrainBytes()))
	}
	return nil
}

func byteSize(b int64) string {
	switch {
	case b >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(b)/(1<<40))
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	default:
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	}
}
