// Package models is the resnetctl catalog: every ResNet architecture the
// toolkit knows, described as plain data (a Spec), plus the label sets and
// preprocessing presets that go with the data sets those models are trained on.
//
// A Spec says what to build, never how: the build package turns it into a
// graph. Specs are plain values, so a caller may copy a preset, change a field
// (classes, input size, shortcut option …) and call Validate before building.
package models

import (
	"errors"
	"fmt"
	"strings"
)

// Family selects the stem and the stage layout of a ResNet.
type Family string

const (
	// CIFAR is the layout of He et al. (2015), section 4.2: a 3x3 stem
	// convolution and three stages whose first blocks (but the first) halve
	// the resolution. Depth is 6n+2 (basic blocks) or 9n+2 (bottlenecks).
	CIFAR Family = "cifar"
	// ImageNet is torchvision's layout: a 7x7 stride-2 stem convolution, a
	// 3x3 stride-2 max pool, and four stages; the stride of a bottleneck sits
	// on its 3x3 convolution ("ResNet v1.5").
	ImageNet Family = "imagenet"
)

// Block is the kind of residual block.
type Block string

const (
	// Basic is two 3x3 convolutions (expansion 1).
	Basic Block = "basic"
	// Bottleneck is 1x1, 3x3 (grouped for ResNeXt), 1x1 (expansion 4).
	Bottleneck Block = "bottleneck"
)

// Expansion is the ratio of a block's output channels to its planes.
func (b Block) Expansion() int {
	if b == Bottleneck {
		return 4
	}
	return 1
}

// Shortcut selects what the skip connection does when a block changes the
// number of channels or the resolution (He et al. 2015, section 3.3).
type Shortcut string

const (
	// ShortcutA is the parameter-free identity: subsample spatially by the
	// block's stride and zero-pad the new channels, half before and half after
	// the existing ones (as the common PyTorch CIFAR implementations do).
	ShortcutA Shortcut = "A"
	// ShortcutB is a 1x1 projection convolution followed by BatchNorm, used
	// only where the shape changes (torchvision's "downsample").
	ShortcutB Shortcut = "B"
)

// Shape is a per-sample tensor shape in channels, height, width order.
type Shape struct {
	C int `json:"c"`
	H int `json:"h"`
	W int `json:"w"`
}

// String formats the shape as CxHxW.
func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.C, s.H, s.W) }

// ParseShape reads a CxHxW string such as "3x32x32".
func ParseShape(s string) (Shape, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "x")
	if len(parts) != 3 {
		return Shape{}, fmt.Errorf("input shape %q: want CxHxW, e.g. 3x32x32", s)
	}
	var v [3]int
	for i, p := range parts {
		if _, err := fmt.Sscanf(p, "%d", &v[i]); err != nil || fmt.Sprint(v[i]) != p {
			return Shape{}, fmt.Errorf("input shape %q: %q is not a whole number", s, p)
		}
		if v[i] <= 0 {
			return Shape{}, fmt.Errorf("input shape %q: every dimension must be positive", s)
		}
	}
	return Shape{C: v[0], H: v[1], W: v[2]}, nil
}

// Preprocess describes how raw 8-bit RGB pixels become the model's input:
// x = (pixel*Scale - Mean[c]) / Std[c], in NCHW layout.
type Preprocess struct {
	Name  string    `json:"name"`
	Scale float32   `json:"scale"`
	Mean  []float32 `json:"mean"`
	Std   []float32 `json:"std"`
}

// Reference is a published figure a Spec should reproduce.
type Reference struct {
	Params int64  `json:"params,omitempty"` // trainable parameters, as PyTorch counts them
	MACs   int64  `json:"macs,omitempty"`   // multiply-accumulates at the default input size
	Source string `json:"source,omitempty"`
}

// Spec is one ResNet architecture as plain data.
type Spec struct {
	Name   string `json:"name"`
	Family Family `json:"family"`
	Block  Block  `json:"block"`
	// Depths is the number of blocks in each stage.
	Depths []int `json:"depths"`
	// Widths is the number of planes of each stage; a stage outputs
	// Widths[i]*Block.Expansion() channels.
	Widths []int `json:"widths"`
	// StemWidth is the number of output channels of the stem convolution.
	StemWidth int      `json:"stem_width"`
	Shortcut  Shortcut `json:"shortcut"`
	// PreAct selects pre-activation blocks (He et al. 2016, "ResNet v2"):
	// BN and ReLU come before each convolution, and a final BN+ReLU follows
	// the last stage.
	PreAct bool `json:"preact,omitempty"`
	// Groups and WidthPerGroup make ResNeXt bottlenecks; the 3x3 convolution
	// of a bottleneck has int(planes*WidthPerGroup/64)*Groups*Widen channels.
	Groups        int `json:"groups"`
	WidthPerGroup int `json:"width_per_group"`
	// Widen is the wide-ResNet multiplier: basic blocks multiply every stage
	// width by it, bottlenecks their inner width (torchvision's convention).
	Widen int `json:"widen"`
	// ZeroInitResidual starts the last BatchNorm of every residual branch at
	// zero, so each block begins as an identity (Goyal et al. 2017).
	ZeroInitResidual bool  `json:"zero_init_residual,omitempty"`
	Classes          int   `json:"classes"`
	Input            Shape `json:"input"`
	// Labels names the label set (see Labels), empty when unknown.
	Labels     string     `json:"labels,omitempty"`
	Preprocess Preprocess `json:"preprocess"`
	Reference  Reference  `json:"reference,omitempty"`
}

// Depth is the number of weighted layers, as the ResNet papers count them:
// every convolution on the main path plus the classifier.
func (s Spec) Depth() int {
	per := 2
	if s.Block == Bottleneck {
		per = 3
	}
	n := 0
	for _, d := range s.Depths {
		n += d
	}
	return n*per + 2
}

// Clone returns a deep copy, so a preset can be changed without aliasing.
func (s Spec) Clone() Spec {
	c := s
	c.Depths = append([]int(nil), s.Depths...)
	c.Widths = append([]int(nil), s.Widths...)
	c.Preprocess.Mean = append([]float32(nil), s.Preprocess.Mean...)
	c.Preprocess.Std = append([]float32(nil), s.Preprocess.Std...)
	return c
}

// ErrInvalidSpec is wrapped by every error Validate returns.
var ErrInvalidSpec = errors.New("invalid model spec")

func invalid(name, format string, args ...any) error {
	if name == "" {
		name = "model"
	}
	return fmt.Errorf("%w: %s: %s", ErrInvalidSpec, name, fmt.Sprintf(format, args...))
}

// Validate reports the first thing wrong with a spec in one line, in the
// terms a user set (depth, groups, classes …), before anything is built.
func (s Spec) Validate() error {
	n := s.Name
	switch s.Family {
	case CIFAR, ImageNet:
	default:
		return invalid(n, "family %q is not %q or %q", s.Family, CIFAR, ImageNet)
	}
	switch s.Block {
	case Basic, Bottleneck:
	default:
		return invalid(n, "block %q is not %q or %q", s.Block, Basic, Bottleneck)
	}
	switch s.Shortcut {
	case ShortcutA, ShortcutB:
	default:
		return invalid(n, "shortcut %q is not A (zero-padded identity) or B (projection)", s.Shortcut)
	}
	if len(s.Depths) == 0 {
		return invalid(n, "no stages")
	}
	if len(s.Depths) != len(s.Widths) {
		return invalid(n, "%d stage depths but %d stage widths", len(s.Depths), len(s.Widths))
	}
	for i, d := range s.Depths {
		if d < 1 {
			return invalid(n, "stage %d has %d blocks; every stage needs at least one", i+1, d)
		}
		if s.Widths[i] < 1 {
			return invalid(n, "stage %d has width %d; widths must be positive", i+1, s.Widths[i])
		}
	}
	if s.StemWidth < 1 {
		return invalid(n, "stem width %d must be positive", s.StemWidth)
	}
	if s.Classes < 1 {
		return invalid(n, "classes must be at least 1, got %d", s.Classes)
	}
	if s.Input.C < 1 || s.Input.H < 1 || s.Input.W < 1 {
		return invalid(n, "input shape %s must have positive channels, height and width", s.Input)
	}
	if s.Widen < 1 {
		return invalid(n, "width multiplier %d must be at least 1", s.Widen)
	}
	if s.Groups < 1 {
		return invalid(n, "groups %d must be at least 1", s.Groups)
	}
	if s.WidthPerGroup < 1 {
		return invalid(n, "width per group %d must be at least 1", s.WidthPerGroup)
	}
	if s.Block == Basic && (s.Groups != 1 || s.WidthPerGroup != 64) {
		return invalid(n, "basic blocks support only groups=1 and width-per-group=64 (got %d and %d); grouped convolutions need bottleneck blocks (ResNeXt)", s.Groups, s.WidthPerGroup)
	}
	if s.Block == Bottleneck {
		for i, w := range s.Widths {
			if w*s.WidthPerGroup/64 < 1 {
				return invalid(n, "stage %d: width %d with width-per-group %d leaves no channels per group", i+1, w, s.WidthPerGroup)
			}
		}
	}
	if s.Shortcut == ShortcutA {
		if s.Block == Bottleneck {
			return invalid(n, "shortcut A (zero-padded identity) is defined for basic blocks only; bottlenecks use B")
		}
		prev := s.StemWidth
		for i, w := range s.Widths {
			w *= s.Widen
			if w < prev {
				return invalid(n, "shortcut A cannot shrink channels (%d to %d at stage %d); use shortcut B", prev, w, i+1)
			}
			prev = w
		}
	}
	if s.Preprocess.Scale == 0 || len(s.Preprocess.Mean) != s.Input.C || len(s.Preprocess.Std) != s.Input.C {
		return invalid(n, "preprocessing needs a scale and one mean and std per input channel (%d)", s.Input.C)
	}
	for _, v := range s.Preprocess.Std {
		if v <= 0 {
			return invalid(n, "preprocessing std %g must be positive", v)
		}
	}
	if s.Labels != "" {
		l, err := Labels(s.Labels)
		if err != nil {
			return invalid(n, "%v", err)
		}
		if len(l) != s.Classes {
			return invalid(n, "label set %s has %d classes but the model has %d", s.Labels, len(l), s.Classes)
		}
	}
	return nil
}
