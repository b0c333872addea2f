package models

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Preprocessing presets. Scale maps 8-bit pixels to [0, 1]; mean and std are
// per RGB channel of the training set.
var (
	// CIFAR10Norm holds the CIFAR-10 training-set statistics.
	cifar10Norm = Preprocess{Name: "cifar10", Scale: 1.0 / 255, Mean: []float32{0.4914, 0.4822, 0.4465}, Std: []float32{0.2470, 0.2435, 0.2616}}
	// CIFAR100Norm holds the CIFAR-100 training-set statistics.
	cifar100Norm = Preprocess{Name: "cifar100", Scale: 1.0 / 255, Mean: []float32{0.5071, 0.4865, 0.4409}, Std: []float32{0.2673, 0.2564, 0.2762}}
	// ImageNetNorm is torchvision's ImageNet normalisation.
	imageNetNorm = Preprocess{Name: "imagenet", Scale: 1.0 / 255, Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}}
)

// PreprocessPreset returns a copy of a named normalisation: "cifar10",
// "cifar100" or "imagenet".
func PreprocessPreset(name string) (Preprocess, error) {
	var p Preprocess
	switch name {
	case "cifar10":
		p = cifar10Norm
	case "cifar100":
		p = cifar100Norm
	case "imagenet":
		p = imageNetNorm
	default:
		return Preprocess{}, fmt.Errorf("unknown preprocessing preset %q (want cifar10, cifar100 or imagenet)", name)
	}
	p.Mean = append([]float32(nil), p.Mean...)
	p.Std = append([]float32(nil), p.Std...)
	return p, nil
}

// CIFARDepth returns the CIFAR ResNet of the given depth: basic blocks need
// depth 6n+2, bottlenecks 9n+2, giving n blocks in each of three stages of
// 16, 32 and 64 planes. Basic-block models default to shortcut A,
// bottlenecks to B. The result is a CIFAR-10 model at 3x32x32.
func CIFARDepth(depth int, block Block) (Spec, error) {
	name := fmt.Sprintf("resnet%d", depth)
	per, form := 6, "6n+2"
	shortcut := ShortcutA
	switch block {
	case Basic:
	case Bottleneck:
		per, form, shortcut = 9, "9n+2", ShortcutB
	default:
		return Spec{}, invalid(name, "block %q is not %q or %q", block, Basic, Bottleneck)
	}
	if depth < per+2 || (depth-2)%per != 0 {
		lo := (depth-2)/per*per + 2
		if lo < per+2 {
			lo = per + 2
		}
		hint := fmt.Sprintf("%d", lo)
		if lo < depth {
			hint = fmt.Sprintf("%d or %d", lo, lo+per)
		}
		return Spec{}, invalid(name, "depth %d is not %s for %s-block CIFAR ResNets (try %s)", depth, form, block, hint)
	}
	n := (depth - 2) / per
	s := Spec{
		Name: name, Family: CIFAR, Block: block,
		Depths: []int{n, n, n}, Widths: []int{16, 32, 64}, StemWidth: 16,
		Shortcut: shortcut, Groups: 1, WidthPerGroup: 64, Widen: 1,
		Classes: 10, Input: Shape{3, 32, 32}, Labels: "cifar10",
		Preprocess: cifar10Norm,
	}
	return s.Clone(), nil
}

func imageNet(name string, block Block, depths []int) Spec {
	return Spec{
		Name: name, Family: ImageNet, Block: block,
		Depths: depths, Widths: []int{64, 128, 256, 512}, StemWidth: 64,
		Shortcut: ShortcutB, Groups: 1, WidthPerGroup: 64, Widen: 1,
		Classes: 1000, Input: Shape{3, 224, 224}, Labels: "imagenet",
		Preprocess: imageNetNorm,
	}
}

const (
	srcCIFAR     = "He et al. 2015 (arXiv:1512.03385) Table 6; counts as PyTorch reports them"
	srcTV        = "torchvision 0.14 model weights metadata (num_params, GFLOPS)"
	srcPreAct    = "He et al. 2016 (arXiv:1603.05027) Table 2"
	srcWideResNe = "Zagoruyko & Komodakis 2016 (arXiv:1605.07146) Table 2"
)

// preset builds one catalog entry.
type preset struct {
	about string
	make  func() Spec
}

func cifarPreset(depth int, block Block, shortcut Shortcut, params int64) func() Spec {
	return func() Spec {
		s, err := CIFARDepth(depth, block)
		if err != nil {
			panic(err) // unreachable: presets use valid depths (tested)
		}
		s.Shortcut = shortcut
		s.Reference = Reference{Params: params, Source: srcCIFAR}
		return s
	}
}

func imageNetPreset(name string, block Block, depths []int, groups, wpg int, params int64, gmacs float64) func() Spec {
	return func() Spec {
		s := imageNet(name, block, depths)
		s.Groups, s.WidthPerGroup = groups, wpg
		s.Reference = Reference{Params: params, MACs: int64(gmacs * 1e9), Source: srcTV}
		return s.Clone()
	}
}

var catalog = map[string]preset{
	"resnet20":   {"CIFAR ResNet-20 (3x3 basic blocks, shortcut A)", cifarPreset(20, Basic, ShortcutA, 269722)},
	"resnet32":   {"CIFAR ResNet-32", cifarPreset(32, Basic, ShortcutA, 464154)},
	"resnet44":   {"CIFAR ResNet-44", cifarPreset(44, Basic, ShortcutA, 658586)},
	"resnet56":   {"CIFAR ResNet-56", cifarPreset(56, Basic, ShortcutA, 853018)},
	"resnet110":  {"CIFAR ResNet-110", cifarPreset(110, Basic, ShortcutA, 1727962)},
	"resnet1202": {"CIFAR ResNet-1202", cifarPreset(1202, Basic, ShortcutA, 19421274)},
	"resnet164":  {"CIFAR ResNet-164 (bottleneck blocks, shortcut B)", cifarPreset(164, Bottleneck, ShortcutB, 1704154)},
	"preact_resnet164": {"CIFAR pre-activation ResNet-164 (ResNet v2)", func() Spec {
		s := cifarPreset(164, Bottleneck, ShortcutB, 1703258)()
		s.Name, s.PreAct = "preact_resnet164", true
		s.Reference.Source = srcPreAct
		return s
	}},
	"wide_resnet28_10": {"CIFAR wide ResNet WRN-28-10 (pre-activation, widen 10)", func() Spec {
		s := cifarPreset(26, Basic, ShortcutB, 36479194)()
		s.Name, s.PreAct, s.Widen = "wide_resnet28_10", true, 10
		s.Depths = []int{4, 4, 4}
		s.Reference.Source = srcWideResNe
		return s
	}},
	"resnet18":         {"ImageNet ResNet-18 (torchvision)", imageNetPreset("resnet18", Basic, []int{2, 2, 2, 2}, 1, 64, 11689512, 1.814)},
	"resnet34":         {"ImageNet ResNet-34 (torchvision)", imageNetPreset("resnet34", Basic, []int{3, 4, 6, 3}, 1, 64, 21797672, 3.664)},
	"resnet50":         {"ImageNet ResNet-50 v1.5 (torchvision)", imageNetPreset("resnet50", Bottleneck, []int{3, 4, 6, 3}, 1, 64, 25557032, 4.089)},
	"resnet101":        {"ImageNet ResNet-101 v1.5 (torchvision)", imageNetPreset("resnet101", Bottleneck, []int{3, 4, 23, 3}, 1, 64, 44549160, 7.801)},
	"resnet152":        {"ImageNet ResNet-152 v1.5 (torchvision)", imageNetPreset("resnet152", Bottleneck, []int{3, 8, 36, 3}, 1, 64, 60192808, 11.514)},
	"resnext50_32x4d":  {"ImageNet ResNeXt-50 32x4d (torchvision)", imageNetPreset("resnext50_32x4d", Bottleneck, []int{3, 4, 6, 3}, 32, 4, 25028904, 4.226)},
	"resnext101_32x8d": {"ImageNet ResNeXt-101 32x8d (torchvision)", imageNetPreset("resnext101_32x8d", Bottleneck, []int{3, 4, 23, 3}, 32, 8, 88791336, 16.414)},
	"resnext101_64x4d": {"ImageNet ResNeXt-101 64x4d (torchvision)", imageNetPreset("resnext101_64x4d", Bottleneck, []int{3, 4, 23, 3}, 64, 4, 83455272, 15.46)},
	"wide_resnet50_2":  {"ImageNet wide ResNet-50-2 (torchvision)", imageNetPreset("wide_resnet50_2", Bottleneck, []int{3, 4, 6, 3}, 1, 128, 68883240, 11.398)},
	"wide_resnet101_2": {"ImageNet wide ResNet-101-2 (torchvision)", imageNetPreset("wide_resnet101_2", Bottleneck, []int{3, 4, 23, 3}, 1, 128, 126886696, 22.753)},
}

// Names lists the catalog's preset names in a stable order: CIFAR models,
// then ImageNet models, each from the smallest to the largest.
func Names() []string {
	names := make([]string, 0, len(catalog))
	for n := range catalog {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := catalog[names[i]].make(), catalog[names[j]].make()
		if a.Family != b.Family {
			return a.Family == CIFAR
		}
		if a.Reference.Params != b.Reference.Params {
			return a.Reference.Params < b.Reference.Params
		}
		return names[i] < names[j]
	})
	return names
}

// About is a one-line description of a preset, empty for unknown names.
func About(name string) string { return catalog[name].about }

// Lookup returns the spec of a catalog preset. Names are case-insensitive
// and '-' stands for '_'. A name "resnetN" that is not a preset is read as a
// CIFAR basic-block ResNet of depth N (which must be 6n+2).
func Lookup(name string) (Spec, error) {
	key := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "-", "_")
	if p, ok := catalog[key]; ok {
		return p.make(), nil
	}
	if d, ok := strings.CutPrefix(key, "resnet"); ok {
		if depth, err := strconv.Atoi(strings.TrimPrefix(d, "_")); err == nil && depth > 0 {
			return CIFARDepth(depth, Basic)
		}
	}
	return Spec{}, fmt.Errorf("unknown model %q (see 'resnetctl models'; resnetN with N=6n+2 is any CIFAR depth)", name)
}
