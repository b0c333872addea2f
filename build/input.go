package build

import (
	"errors"
	"fmt"

	"github.com/resnetctl/resnetctl/models"
)

// ErrInputSize is wrapped by every error WithInput returns.
var ErrInputSize = errors.New("input size not supported")

// WithInput re-runs shape inference at a new per-sample input shape, so
// that a model trained at one resolution (torchvision's 224x224) can be
// fine-tuned at another (CIFAR's 32x32). Convolutions, BatchNorm, ReLU, Add
// and pooling only change the feature maps' height and width, and a global
// average pool turns any map into the 1x1 the head flattens; such a graph
// has weights that fit every size. What ties a graph to its size is a map
// reaching Flatten that is 1x1 only at the original size (a fixed-window
// pool, or none): elsewhere the dense head would get a different number of
// features. A map shrinking to nothing, a channel count the first
// convolution's weights do not take, or shapes that stop matching are
// refused too. The error names the node and wraps ErrInputSize; on error g
// is unchanged. The Spec's input follows, and its published reference
// figures (measured at the original size) are dropped.
func (g *Graph) WithInput(in models.Shape) error {
	if in.C < 1 || in.H < 1 || in.W < 1 {
		return fmt.Errorf("%w: %s must have positive channels, height and width", ErrInputSize, in)
	}
	now := map[string]models.Shape{g.Input: in}
	producer := map[string]*Node{}
	shapes := make([]models.Shape, len(g.Nodes))
	for i, n := range g.Nodes {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%w: at %s, %s (%s) %s", ErrInputSize, in, n.Name, n.Kind, fmt.Sprintf(format, args...))
		}
		x, ok := now[n.Inputs[0]]
		if !ok {
			return fail("reads %q, which no earlier node computes", n.Inputs[0])
		}
		s := x
		switch n.Kind {
		case Conv:
			w := g.Param(n.Params[0])
			if w == nil || len(w.Shape) != 4 || n.Conv.Groups < 1 {
				return fail("has no 4-D weight")
			}
			if want := w.Shape[1] * n.Conv.Groups; x.C != want {
				return fail("takes %d channels, not %d: its weights fix the channel count", want, x.C)
			}
			a := n.Conv
			s = models.Shape{C: w.Shape[0], H: outSize(x.H, a.Kernel, a.Stride, a.Pad, a.Dilation), W: outSize(x.W, a.Kernel, a.Stride, a.Pad, a.Dilation)}
		case MaxPool, AvgPool:
			p := n.Pool
			s.H, s.W = outSize(x.H, p.Kernel, p.Stride, p.Pad, 1), outSize(x.W, p.Kernel, p.Stride, p.Pad, 1)
		case GlobalAvgPool:
			s.H, s.W = 1, 1
		case ChannelPad:
			p := n.Pad
			if p.Stride < 1 {
				return fail("has stride %d", p.Stride)
			}
			s = models.Shape{C: x.C + p.Before + p.After, H: (x.H + p.Stride - 1) / p.Stride, W: (x.W + p.Stride - 1) / p.Stride}
		case Add:
			if y := now[n.Inputs[1]]; y != x {
				return fail("would add %s to %s", x, y)
			}
		case Flatten:
			if x.H != 1 || x.W != 1 {
				// The node that made the map 1x1 at the original size is
				// what ties the graph to it: name it.
				what := fmt.Sprintf("%s (%s) gets", n.Name, n.Kind)
				if p := producer[n.Inputs[0]]; p != nil && p.Pool != nil {
					what = fmt.Sprintf("%s (%s, a fixed %dx%d window) outputs", p.Name, p.Kind, p.Pool.Kernel, p.Pool.Kernel)
				}
				return fmt.Errorf("%w: at %s, %s a %s map where %s gives 1x1, so %s would pass %d features to the head instead of %d: the graph is tied to its input size (only a global average pool before the head adapts to any size)",
					ErrInputSize, in, what, x, g.Spec.Input, n.Name, x.C*x.H*x.W, x.C)
			}
		case Dense:
			w := g.Param(n.Params[0])
			if w == nil || len(w.Shape) != 2 {
				return fail("has no 2-D weight")
			}
			if x.C*x.H*x.W != w.Shape[1] {
				return fail("takes %d features, not %s", w.Shape[1], x)
			}
			s = models.Shape{C: w.Shape[0], H: 1, W: 1}
		}
		if s.C < 1 || s.H < 1 || s.W < 1 {
			return fail("would output %s: the input is too small", s)
		}
		shapes[i] = s
		now[n.Output], producer[n.Output] = s, n
	}
	for i, n := range g.Nodes {
		n.Shape = shapes[i]
	}
	if g.Spec.Input != in {
		g.Spec.Reference = models.Reference{}
	}
	g.Spec.Input = in
	return nil
}
