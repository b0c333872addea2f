package models

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestEveryPresetIsValid(t *testing.T) {
	names := Names()
	if len(names) != len(catalog) {
		t.Fatalf("Names lists %d of %d presets", len(names), len(catalog))
	}
	for _, n := range names {
		s, err := Lookup(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if s.Name != n {
			t.Errorf("preset %s is named %s", n, s.Name)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if s.Reference.Params == 0 || About(n) == "" {
			t.Errorf("%s: no published parameter count or description", n)
		}
	}
	if names[0] != "resnet20" || names[len(names)-1] != "wide_resnet101_2" {
		t.Errorf("Names order: %v", names)
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		name    string
		family  Family
		block   Block
		depths  []int
		wantErr string
	}{
		{"resnet20", CIFAR, Basic, []int{3, 3, 3}, ""},
		{"ResNet-56", CIFAR, Basic, []int{9, 9, 9}, ""},
		{"resnet26", CIFAR, Basic, []int{4, 4, 4}, ""},
		{"resnet50", ImageNet, Bottleneck, []int{3, 4, 6, 3}, ""},
		{"resnext50-32x4d", ImageNet, Bottleneck, []int{3, 4, 6, 3}, ""},
		{"resnet164", CIFAR, Bottleneck, []int{18, 18, 18}, ""},
		{"resnet21", "", "", nil, "depth 21 is not 6n+2 for basic-block CIFAR ResNets (try 20 or 26)"},
		{"resnet2", "", "", nil, "depth 2 is not 6n+2 for basic-block CIFAR ResNets (try 8)"},
		{"vgg16", "", "", nil, `unknown model "vgg16"`},
		{"resnet", "", "", nil, `unknown model "resnet"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Lookup(tt.name)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Family != tt.family || s.Block != tt.block || !equal(s.Depths, tt.depths) {
				t.Errorf("got %s %s %v", s.Family, s.Block, s.Depths)
			}
		})
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCIFARDepth(t *testing.T) {
	for _, tt := range []struct {
		depth int
		block Block
		n     int
		err   string
	}{
		{20, Basic, 3, ""}, {1202, Basic, 200, ""}, {8, Basic, 1, ""},
		{164, Bottleneck, 18, ""}, {11, Bottleneck, 1, ""},
		{21, Basic, 0, "not 6n+2"}, {21, Bottleneck, 0, "not 9n+2 for bottleneck-block CIFAR ResNets (try 20 or 29)"},
		{0, Basic, 0, "try 8"}, {20, "dense", 0, `block "dense"`},
	} {
		s, err := CIFARDepth(tt.depth, tt.block)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("CIFARDepth(%d, %s) = %v, want error with %q", tt.depth, tt.block, err, tt.err)
			}
			continue
		}
		if err != nil || s.Depths[0] != tt.n || s.Depth() != tt.depth {
			t.Errorf("CIFARDepth(%d, %s) = %v, %v", tt.depth, tt.block, s.Depths, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	base := func() Spec { s, _ := Lookup("resnet20"); return s }
	imagenet := func() Spec { s, _ := Lookup("resnet50"); return s }
	tests := []struct {
		name   string
		mutate func() Spec
		want   string
	}{
		{"zero classes", func() Spec { s := base(); s.Classes, s.Labels = 0, ""; return s }, "classes must be at least 1, got 0"},
		{"labels mismatch", func() Spec { s := base(); s.Classes = 100; return s }, "label set cifar10 has 10 classes but the model has 100"},
		{"unknown labels", func() Spec { s := base(); s.Labels = "mnist"; return s }, `unknown label set "mnist"`},
		{"groups with basic blocks", func() Spec { s := base(); s.Groups = 32; return s }, "basic blocks support only groups=1"},
		{"width per group with basic blocks", func() Spec { s := base(); s.WidthPerGroup = 4; return s }, "basic blocks support only groups=1"},
		{"shortcut A on bottleneck", func() Spec { s := imagenet(); s.Shortcut = ShortcutA; return s }, "shortcut A (zero-padded identity) is defined for basic blocks only"},
		{"bad shortcut", func() Spec { s := base(); s.Shortcut = "C"; return s }, `shortcut "C"`},
		{"zero widen", func() Spec { s := base(); s.Widen = 0; return s }, "width multiplier 0"},
		{"zero groups", func() Spec { s := imagenet(); s.Groups = 0; return s }, "groups 0"},
		{"empty stage", func() Spec { s := base(); s.Depths[1] = 0; return s }, "stage 2 has 0 blocks"},
		{"depth/width mismatch", func() Spec { s := base(); s.Widths = s.Widths[:2]; return s }, "3 stage depths but 2 stage widths"},
		{"no input", func() Spec { s := base(); s.Input.H = 0; return s }, "input shape 3x0x32"},
		{"preprocess channels", func() Spec { s := base(); s.Input.C = 1; return s }, "one mean and std per input channel (1)"},
		{"family", func() Spec { s := base(); s.Family = "mnist"; return s }, `family "mnist"`},
		{"shrinking option A", func() Spec { s := base(); s.Widths = []int{16, 8, 64}; return s }, "shortcut A cannot shrink channels"},
		{"tiny ResNeXt width", func() Spec { s := imagenet(); s.WidthPerGroup = 1; s.Widths[0] = 32; return s }, "leaves no channels per group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.mutate().Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalidSpec) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q should wrap ErrInvalidSpec and be one line", err)
			}
		})
	}
}

func TestCloneDoesNotAlias(t *testing.T) {
	a, _ := Lookup("resnet20")
	b := a.Clone()
	b.Depths[0], b.Widths[0], b.Preprocess.Mean[0] = 99, 99, 99
	if a.Depths[0] == 99 || a.Widths[0] == 99 || a.Preprocess.Mean[0] == 99 {
		t.Fatal("Clone shares slices with the original")
	}
	c, _ := Lookup("resnet20")
	c.Preprocess.Mean[0] = 42
	if d, _ := Lookup("resnet20"); d.Preprocess.Mean[0] == 42 {
		t.Fatal("Lookup hands out shared preset slices")
	}
}

func TestLabels(t *testing.T) {
	for name, want := range map[string]struct {
		n            int
		first, last  string
		indexOf, idx string
	}{
		"cifar10":         {10, "airplane", "truck", "cat", "3"},
		"cifar100":        {100, "apple", "worm", "maple_tree", "47"},
		"cifar100-coarse": {20, "aquatic_mammals", "vehicles_2", "fish", "1"},
		"imagenet":        {1000, "tench", "toilet tissue", "tabby", "281"},
	} {
		l, err := Labels(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != want.n || l[0] != want.first || l[len(l)-1] != want.last {
			t.Errorf("%s: %d labels, %q … %q", name, len(l), l[0], l[len(l)-1])
		}
		found := ""
		for i, s := range l {
			if s == want.indexOf {
				found = strconv.Itoa(i)
				break
			}
		}
		if found != want.idx {
			t.Errorf("%s: %q at index %s, want %s", name, want.indexOf, found, want.idx)
		}
	}
	if _, err := Labels("../models"); err == nil {
		t.Error("a path was accepted as a label set")
	}
	if got := LabelSets(); len(got) != 4 {
		t.Errorf("LabelSets() = %v", got)
	}
}

func TestParseShape(t *testing.T) {
	for in, want := range map[string]string{
		"3x32x32": "", "1X28X28": "", " 3x224x224 ": "",
		"3x32": "want CxHxW", "3x0x32": "must be positive", "3xax32": "not a whole number", "3x32x32.5": "not a whole number", "3x-1x4": "positive",
	} {
		s, err := ParseShape(in)
		if want == "" {
			if err != nil || s.String() != strings.ToLower(strings.TrimSpace(in)) {
				t.Errorf("ParseShape(%q) = %v, %v", in, s, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseShape(%q) error %v, want %q", in, err, want)
		}
	}
}

func TestPreprocessPreset(t *testing.T) {
	p, err := PreprocessPreset("imagenet")
	if err != nil || p.Mean[0] != 0.485 || p.Std[2] != 0.225 {
		t.Fatalf("imagenet preset: %+v, %v", p, err)
	}
	p.Mean[0] = 0
	if q, _ := PreprocessPreset("imagenet"); q.Mean[0] != 0.485 {
		t.Fatal("preset slices are shared")
	}
	if _, err := PreprocessPreset("coco"); err == nil {
		t.Fatal("unknown preset accepted")
	}
}
