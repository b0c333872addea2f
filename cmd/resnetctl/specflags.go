package main

import (
	"fmt"
	"strings"

	"github.com/resnetctl/resnetctl/models"
	"github.com/spf13/cobra"
)

// specFlags are the flags that pick a catalog model and change it; summary,
// export and train share them.
type specFlags struct {
	Model         string
	Classes       int
	Input         string
	Labels        string
	Shortcut      string
	PreAct        bool
	Widen         int
	Groups        int
	WidthPerGroup int
	ZeroInit      bool
}

func (f *specFlags) register(c *cobra.Command, defaultModel string) {
	fs := c.Flags()
	fs.StringVarP(&f.Model, "model", "m", defaultModel, "catalog model (see 'resnetctl models'), or resnetN for any CIFAR depth 6n+2")
	fs.IntVar(&f.Classes, "classes", 0, "number of classes (default: the model's)")
	fs.StringVar(&f.Input, "input", "", "input shape CxHxW (default: the model's, e.g. 3x32x32)")
	fs.StringVar(&f.Labels, "labels", "", "label set: "+strings.Join(models.LabelSets(), ", ")+" (default: the model's when the class count fits)")
	fs.StringVar(&f.Shortcut, "shortcut", "", "shortcut option: A (zero-padded identity) or B (1x1 projection)")
	fs.BoolVar(&f.PreAct, "preact", false, "pre-activation blocks (ResNet v2)")
	fs.IntVar(&f.Widen, "widen", 0, "wide-ResNet width multiplier")
	fs.IntVar(&f.Groups, "groups", 0, "groups of the 3x3 bottleneck convolution (ResNeXt)")
	fs.IntVar(&f.WidthPerGroup, "width-per-group", 0, "channels per group of the 3x3 bottleneck convolution (ResNeXt; 64 is plain)")
	fs.BoolVar(&f.ZeroInit, "zero-init-residual", false, "start the last BatchNorm of every residual branch at zero")
}

// resolve looks the model up, applies the flags that were set and validates
// the result.
func (f *specFlags) resolve(c *cobra.Command) (models.Spec, error) {
	s, err := models.Lookup(f.Model)
	if err != nil {
		return models.Spec{}, err
	}
	changed := c.Flags().Changed
	if changed("classes") {
		s.Classes = f.Classes
	}
	if changed("input") {
		in, err := models.ParseShape(f.Input)
		if err != nil {
			return models.Spec{}, usageErrorf(c, "--input: %v", err)
		}
		if in.C != s.Input.C {
			// Other channel counts get the preset's channel-averaged statistics.
			var m, sd float32
			for i := range s.Preprocess.Mean {
				m += s.Preprocess.Mean[i] / float32(len(s.Preprocess.Mean))
				sd += s.Preprocess.Std[i] / float32(len(s.Preprocess.Std))
			}
			s.Preprocess.Mean, s.Preprocess.Std = nil, nil
			for range in.C {
				s.Preprocess.Mean = append(s.Preprocess.Mean, m)
				s.Preprocess.Std = append(s.Preprocess.Std, sd)
			}
		}
		s.Input = in
	}
	switch {
	case changed("labels"):
		s.Labels = f.Labels
	case s.Labels != "":
		if l, err := models.Labels(s.Labels); err == nil && len(l) != s.Classes {
			s.Labels = ""
			for _, name := range models.LabelSets() {
				if l, _ := models.Labels(name); len(l) == s.Classes && !strings.HasSuffix(name, "coarse") {
					s.Labels = name
				}
			}
		}
	}
	if changed("shortcut") {
		s.Shortcut = models.Shortcut(strings.ToUpper(f.Shortcut))
	}
	if changed("preact") {
		s.PreAct = f.PreAct
	}
	if changed("widen") {
		s.Widen = f.Widen
	}
	if changed("groups") {
		s.Groups = f.Groups
	}
	if changed("width-per-group") {
		s.WidthPerGroup = f.WidthPerGroup
	}
	if changed("zero-init-residual") {
		s.ZeroInitResidual = f.ZeroInit
	}
	if err := s.Validate(); err != nil {
		return models.Spec{}, err
	}
	return s, nil
}

// humanSI formats 1814073344 as "1.81 G".
func humanSI(n int64) string {
	v := float64(n)
	for _, u := range []string{"", " K", " M", " G", " T"} {
		if v < 1000 {
			if u == "" {
				return fmt.Sprint(n)
			}
			return fmt.Sprintf("%.2f%s", v, u)
		}
		v /= 1000
	}
	return fmt.Sprintf("%.2f P", v)
}
