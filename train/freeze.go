package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/resnetctl/resnetctl/build"
)

// Freezing and BatchNorm re-estimation, for fine-tuning and transfer
// learning from an imported model.
//
// CompileOptions.Freeze = FreezeBackbone trains only the head, the final
// dense layer (its weight and bias); every other parameter is frozen:
//
//   - frozen parameters are not among Net.Params, so the optimiser never
//     sees them: no update, no weight decay, no momentum buffer, nothing in
//     a checkpoint's optimiser state;
//   - gorgonia differentiates only the ops between a trainable parameter
//     and the loss, so with a frozen backbone the backward pass is the
//     head's alone (a step costs about a forward pass);
//   - a BatchNorm whose weight and bias are frozen runs in inference mode:
//     it normalises with its running statistics and never updates them.
//     This is the usual choice with a frozen backbone (torchvision's
//     fine-tuning recipes put the frozen part in eval mode): the features
//     the head learns from are then exactly those the exported model
//     computes, and the backbone (parameters and running statistics) stays
//     bit-identical to the imported one. To adapt the statistics to the
//     new data, re-estimate them first (Model.ReestimateBN).
//
// The freeze mode is part of the Recipe a checkpoint records, so Resume
// continues frozen.

// Freeze modes.
const (
	FreezeNone     = "none"     // train every parameter (also "")
	FreezeBackbone = "backbone" // train only the final dense layer
)

// FrozenParams returns the trainable parameters of g that the freeze mode
// holds fixed: none for "" and FreezeNone; for FreezeBackbone every
// trainable parameter except the weight and bias of the head, the last
// Dense node, which must produce the logits (the graph's output or the
// input of a final Softmax).
func FrozenParams(g *build.Graph, mode string) (map[string]bool, error) {
	switch mode {
	case "", FreezeNone:
		return nil, nil
	case FreezeBackbone:
	default:
		return nil, fmt.Errorf("train: freeze %q: want %s or %s", mode, FreezeNone, FreezeBackbone)
	}
	head, err := headNode(g)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, p := range head.Params {
		keep[p] = true
	}
	frozen := map[string]bool{}
	for _, p := range g.Params {
		if p.Trainable && !keep[p.Name] {
			frozen[p.Name] = true
		}
	}
	return frozen, nil
}

// headNode is the graph's last Dense node, which must produce the logits.
func headNode(g *build.Graph) (*build.Node, error) {
	logits := g.Output
	var head *build.Node
	for _, n := range g.Nodes {
		switch {
		case n.Kind == build.Dense:
			head = n
		case n.Kind == build.Softmax && n.Output == g.Output:
			logits = n.Inputs[0]
		}
	}
	if head == nil || head.Output != logits {
		return nil, fmt.Errorf("train: freeze %s: %w: no dense layer produces the logits %q, so there is no head to train alone", FreezeBackbone, ErrUnsupported, logits)
	}
	return head, nil
}

// normFreeze returns the canonical form of a freeze mode ("" for none).
func normFreeze(mode string) string {
	mode = strings.ToLower(strings.TrimSpace(mode))
	if mode == FreezeNone {
		return ""
	}
	return mode
}

// netOptions are the options of the model's training Net.
func (m *Model) netOptions() NetOptions {
	return NetOptions{Threads: m.copts.Threads, LabelSmoothing: m.copts.LabelSmoothing, Frozen: m.frozen}
}

// ReestimateBN recomputes the running mean and variance of every
// BatchNorm layer from data, leaving all other parameters untouched, as
// torch.optim.swa_utils.update_bn does: the running statistics are reset
// (mean 0, variance 1), then up to batches full batches of batch samples
// (batches ≤ 0: one whole pass) run forward with BatchNorm in training
// mode (each layer normalising with its batch statistics, frozen layers
// included), and batch k (1-based) is averaged in with momentum 1/k. The
// result is the cumulative average over the batches: each layer's running
// mean is the mean of its input over every sample seen (batches are of
// equal size) and its running variance the average of the batches'
// unbiased variances. The data is read as pass 0 with seed 0, so the
// result depends only on the data, the batch size and the count. A partial
// last batch is dropped.
//
// It returns the number of batches used, which the model records (the
// Recipe's BNReestimate in checkpoints). The model's Graph must not be
// trained concurrently.
func (m *Model) ReestimateBN(ctx context.Context, data Source, batch, batches int) (int, error) {
	if batch < 2 {
		return 0, fmt.Errorf("train: BatchNorm re-estimation at batch %d: BatchNorm needs at least 2 samples", batch)
	}
	in := m.Graph.Spec.Input
	if data.Shape() != in {
		return 0, fmt.Errorf("train: the data's images are %s, the model takes %s", data.Shape(), in)
	}
	net, err := NewNet(m.Graph, batch, NetOptions{Threads: m.copts.Threads, forwardOnly: true})
	if err != nil {
		return 0, err
	}
	defer net.Close()
	if len(net.bns) == 0 {
		return 0, errors.New("train: BatchNorm re-estimation: the model has no BatchNorm in training form (folded or absent)")
	}
	// Work on copies so that a failure leaves the statistics as they were.
	type saved struct{ mean, vr []float32 }
	orig := make([]saved, len(net.bns))
	for i, b := range net.bns {
		orig[i] = saved{append([]float32(nil), b.runMean...), append([]float32(nil), b.runVar...)}
		for c := range b.runMean {
			b.runMean[c], b.runVar[c] = 0, 1
		}
	}
	restore := func() {
		for i, b := range net.bns {
			copy(b.runMean, orig[i].mean)
			copy(b.runVar, orig[i].vr)
		}
	}
	pass, err := data.Epoch(0, 0, batch)
	if err != nil {
		restore()
		return 0, err
	}
	x := make([]float32, batch*in.C*in.H*in.W)
	labels := make([]int, batch)
	k := 0
	for batches <= 0 || k < batches {
		if err := ctx.Err(); err != nil {
			restore()
			return 0, err
		}
		n, err := pass.Next(x, labels)
		if err != nil {
			restore()
			return 0, fmt.Errorf("train: BatchNorm re-estimation, batch %d: %w", k+1, err)
		}
		if n < batch {
			break
		}
		for _, b := range net.bns {
			b.momentum = 1 / float64(k+1)
		}
		for i := range labels {
			labels[i] = 0 // the loss is computed but not used
		}
		if _, err := net.Step(x, labels); err != nil {
			restore()
			return 0, err
		}
		k++
	}
	if k == 0 {
		restore()
		return 0, fmt.Errorf("train: BatchNorm re-estimation: %d samples make no full batch of %d", data.Len(), batch)
	}
	if c, ok := pass.(io.Closer); ok {
		c.Close() // stop a pipeline's workers early
	}
	m.bnBatches = k
	return k, nil
}
