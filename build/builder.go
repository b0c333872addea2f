package build

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/resnetctl/resnetctl/models"
)

// Options control how New builds a graph.
type Options struct {
	// Seed makes the initial weights reproducible: the same spec and seed
	// give bit-identical parameters.
	Seed uint64
	// ShapesOnly skips allocating and initialising parameter data; the
	// graph still has every parameter's name and shape (for summaries and
	// counts of large models).
	ShapesOnly bool
}

// BatchNorm defaults, PyTorch's.
const (
	bnEpsilon  = 1e-5
	bnMomentum = 0.1
)

// New builds the graph of a spec: validated first, then laid out stem,
// stages, head, with per-sample shapes inferred and parameters initialised
// as torchvision does (He-normal fan-out convolutions, BN weight 1 and bias
// 0, running mean 0 and variance 1, dense weight and bias uniform in
// ±1/sqrt(fan-in)).
func New(spec models.Spec, opts Options) (*Graph, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.ZeroInitResidual && spec.PreAct {
		return nil, fmt.Errorf("%w: %s: zero-init of the last BatchNorm needs post-activation blocks (a pre-activation branch ends in a convolution)", models.ErrInvalidSpec, spec.Name)
	}
	b := &builder{
		g:    &Graph{Spec: spec.Clone(), Input: "input"},
		rng:  rand.New(rand.NewPCG(opts.Seed, 0x5265734e6574)), // "ResNet"
		opts: opts,
	}
	b.g.index = map[string]*Param{}
	x := value{name: "input", shape: spec.Input}
	x, err := b.network(x)
	if err != nil {
		return nil, err
	}
	b.g.Output = x.name
	if err := b.g.Check(); err != nil {
		return nil, fmt.Errorf("build %s: %w", spec.Name, err) // a builder bug, reported rather than hidden
	}
	return b.g, nil
}

type value struct {
	name  string
	shape models.Shape
}

type builder struct {
	g    *Graph
	rng  *rand.Rand
	opts Options
	err  error
}

func (b *builder) network(x value) (value, error) {
	s := b.g.Spec
	// Stem.
	switch s.Family {
	case models.ImageNet:
		x = b.conv("conv1", x, s.StemWidth, 7, 2, 3, 1)
		if !s.PreAct {
			x = b.relu("relu", b.bn("bn1", x, false))
		}
		x = b.pool(MaxPool, "maxpool", x, 3, 2, 1)
	default:
		x = b.conv("conv1", x, s.StemWidth, 3, 1, 1, 1)
		if !s.PreAct {
			x = b.relu("relu", b.bn("bn1", x, false))
		}
	}
	// Stages.
	for i, depth := range s.Depths {
		planes := s.Widths[i]
		if s.Block == models.Basic {
			planes *= s.Widen
		}
		for j := 0; j < depth; j++ {
			stride := 1
			if i > 0 && j == 0 {
				stride = 2
			}
			prefix := fmt.Sprintf("layer%d.%d", i+1, j)
			x = b.block(prefix, x, planes, stride)
		}
	}
	// Head.
	if s.PreAct {
		x = b.relu("relu_final", b.bn("bn_final", x, false))
	}
	x = b.unary(GlobalAvgPool, "avgpool", x, models.Shape{C: x.shape.C, H: 1, W: 1})
	x = b.unary(Flatten, "flatten", x, models.Shape{C: x.shape.C, H: 1, W: 1})
	x = b.dense("fc", x, s.Classes)
	b.g.Nodes[len(b.g.Nodes)-1].Output = "logits"
	x.name = "logits"
	return x, b.err
}

// block adds one residual block with the given planes and stride.
func (b *builder) block(prefix string, x value, planes, stride int) value {
	s := b.g.Spec
	out := planes * s.Block.Expansion()
	needsShortcut := stride != 1 || x.shape.C != out
	in := x
	if s.PreAct {
		x = b.relu(prefix+".relu1", b.bn(prefix+".bn1", x, false))
	}
	pre := x // what a pre-activation projection shortcut reads

	zero := s.ZeroInitResidual
	switch s.Block {
	case models.Basic:
		if s.PreAct {
			x = b.conv(prefix+".conv1", x, planes, 3, stride, 1, 1)
			x = b.relu(prefix+".relu2", b.bn(prefix+".bn2", x, false))
			x = b.conv(prefix+".conv2", x, planes, 3, 1, 1, 1)
		} else {
			x = b.relu(prefix+".relu1", b.bn(prefix+".bn1", b.conv(prefix+".conv1", x, planes, 3, stride, 1, 1), false))
			x = b.bn(prefix+".bn2", b.conv(prefix+".conv2", x, planes, 3, 1, 1, 1), zero)
		}
	default:
		width := planes * s.WidthPerGroup / 64 * s.Groups * s.Widen
		if s.PreAct {
			x = b.conv(prefix+".conv1", x, width, 1, 1, 0, 1)
			x = b.relu(prefix+".relu2", b.bn(prefix+".bn2", x, false))
			x = b.conv(prefix+".conv2", x, width, 3, stride, 1, s.Groups)
			x = b.relu(prefix+".relu3", b.bn(prefix+".bn3", x, false))
			x = b.conv(prefix+".conv3", x, out, 1, 1, 0, 1)
		} else {
			x = b.relu(prefix+".relu1", b.bn(prefix+".bn1", b.conv(prefix+".conv1", x, width, 1, 1, 0, 1), false))
			x = b.relu(prefix+".relu2", b.bn(prefix+".bn2", b.conv(prefix+".conv2", x, width, 3, stride, 1, s.Groups), false))
			x = b.bn(prefix+".bn3", b.conv(prefix+".conv3", x, out, 1, 1, 0, 1), zero)
		}
	}
	// The shortcut comes after the branch, the order of torchvision's
	// state dict. Option B projects the (pre-activated) input; option A
	// pads the raw one.
	shortcut := in
	if needsShortcut {
		switch s.Shortcut {
		case models.ShortcutA:
			extra := out - in.shape.C
			shortcut = b.channelPad(prefix+".shortcut", in, stride, extra/2, extra-extra/2)
		default:
			if s.PreAct {
				shortcut = b.conv(prefix+".downsample.0", pre, out, 1, stride, 0, 1)
			} else {
				shortcut = b.bn(prefix+".downsample.1", b.conv(prefix+".downsample.0", in, out, 1, stride, 0, 1), false)
			}
		}
	}
	x = b.add(prefix+".add", x, shortcut)
	if !s.PreAct {
		x = b.relu(prefix+".relu", x)
	}
	return x
}

func (b *builder) node(n *Node) value {
	n.Output = n.Name
	b.g.Nodes = append(b.g.Nodes, n)
	if b.err == nil && (n.Shape.C < 1 || n.Shape.H < 1 || n.Shape.W < 1) {
		b.err = fmt.Errorf("%w: %s: %s would output %s; the input %s is too small", models.ErrInvalidSpec, b.g.Spec.Name, n.Name, n.Shape, b.g.Spec.Input)
	}
	return value{name: n.Name, shape: n.Shape}
}

func (b *builder) param(name string, shape []int, trainable bool, init func(p []float32)) string {
	p := &Param{Name: name, Shape: shape, Trainable: trainable}
	if !b.opts.ShapesOnly {
		p.Data = make([]float32, p.Size())
		init(p.Data)
	}
	b.g.Params = append(b.g.Params, p)
	b.g.index[name] = p
	return name
}

func outSize(in, kernel, stride, pad, dilation int) int {
	span := in + 2*pad - dilation*(kernel-1) - 1
	if stride < 1 || span < 0 { // a window larger than the padded map: Go's division would round -1/5 up to 0
		return 0
	}
	return span/stride + 1
}

func (b *builder) conv(name string, x value, out, kernel, stride, pad, groups int) value {
	in := x.shape.C / groups
	fanOut := float64(out * kernel * kernel)
	std := math.Sqrt(2 / fanOut)
	w := b.param(name+".weight", []int{out, in, kernel, kernel}, true, func(p []float32) {
		for i := range p {
			p[i] = float32(b.rng.NormFloat64() * std)
		}
	})
	return b.node(&Node{
		Name: name, Kind: Conv, Inputs: []string{x.name}, Params: []string{w},
		Conv: &ConvAttrs{Kernel: kernel, Stride: stride, Pad: pad, Dilation: 1, Groups: groups},
		Shape: models.Shape{
			C: out,
			H: outSize(x.shape.H, kernel, stride, pad, 1),
			W: outSize(x.shape.W, kernel, stride, pad, 1),
		},
	})
}

func fill(v float32) func([]float32) {
	return func(p []float32) {
		for i := range p {
			p[i] = v
		}
	}
}

func (b *builder) bn(name string, x value, zeroGamma bool) value {
	c := x.shape.C
	gamma := float32(1)
	if zeroGamma {
		gamma = 0
	}
	params := []string{
		b.param(name+".weight", []int{c}, true, fill(gamma)),
		b.param(name+".bias", []int{c}, true, fill(0)),
		b.param(name+".running_mean", []int{c}, false, fill(0)),
		b.param(name+".running_var", []int{c}, false, fill(1)),
	}
	return b.node(&Node{
		Name: name, Kind: BatchNorm, Inputs: []string{x.name}, Params: params,
		BN: &BNAttrs{Epsilon: bnEpsilon, Momentum: bnMomentum}, Shape: x.shape,
	})
}

func (b *builder) relu(name string, x value) value {
	return b.unary(Relu, name, x, x.shape)
}

func (b *builder) unary(kind Kind, name string, x value, shape models.Shape) value {
	return b.node(&Node{Name: name, Kind: kind, Inputs: []string{x.name}, Shape: shape})
}

func (b *builder) pool(kind Kind, name string, x value, kernel, stride, pad int) value {
	return b.node(&Node{
		Name: name, Kind: kind, Inputs: []string{x.name},
		Pool: &PoolAttrs{Kernel: kernel, Stride: stride, Pad: pad},
		Shape: models.Shape{
			C: x.shape.C,
			H: outSize(x.shape.H, kernel, stride, pad, 1),
			W: outSize(x.shape.W, kernel, stride, pad, 1),
		},
	})
}

func (b *builder) channelPad(name string, x value, stride, before, after int) value {
	return b.node(&Node{
		Name: name, Kind: ChannelPad, Inputs: []string{x.name},
		Pad: &PadAttrs{Stride: stride, Before: before, After: after},
		Shape: models.Shape{
			C: x.shape.C + before + after,
			H: (x.shape.H + stride - 1) / stride,
			W: (x.shape.W + stride - 1) / stride,
		},
	})
}

func (b *builder) add(name string, x, y value) value {
	if b.err == nil && x.shape != y.shape {
		b.err = fmt.Errorf("%w: %s: %s adds %s to %s", models.ErrInvalidSpec, b.g.Spec.Name, name, x.shape, y.shape)
	}
	return b.node(&Node{Name: name, Kind: Add, Inputs: []string{x.name, y.name}, Shape: x.shape})
}

func (b *builder) dense(name string, x value, out int) value {
	in := x.shape.C
	bound := 1 / math.Sqrt(float64(in))
	uniform := func(p []float32) {
		for i := range p {
			p[i] = float32((2*b.rng.Float64() - 1) * bound)
		}
	}
	w := b.param(name+".weight", []int{out, in}, true, uniform)
	bias := b.param(name+".bias", []int{out}, true, uniform)
	return b.node(&Node{
		Name: name, Kind: Dense, Inputs: []string{x.name}, Params: []string{w, bias},
		Shape: models.Shape{C: out, H: 1, W: 1},
	})
}
