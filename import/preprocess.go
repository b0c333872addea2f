package onnximport

import (
	"fmt"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/models"
)

// Preprocessing is the preprocessing an imported model is taken to expect,
// with a phrase saying what it is and where it comes from. It is the one
// rule `resnetctl import` (which prints it and writes it into the
// checkpoint) and `resnetctl train --init` (which trains with it) share, so
// that the two never disagree about the same file:
//
//  1. the file's own, when it carries resnetctl metadata stating it
//     (Report.PreprocessFromFile);
//  2. else, for a recognised catalog architecture, the catalog's preset for
//     it (torchvision's ImageNet mean/std for resnet18, CIFAR-10's for
//     resnet20): PyTorch's exporter writes no preprocessing, and that preset
//     is how the architecture's published weights were trained, so it is
//     the best guess (the import's notes say it is assumed);
//  3. else nothing is known and ok is false: a ResNet outside the catalog
//     or a general graph has no preset to assume (its Spec holds a
//     placeholder), and the caller decides (train takes it from its data).
//
// Call it on the graph and report Load or FromBytes returned.
func Preprocessing(g *build.Graph, r *Report) (p models.Preprocess, what string, ok bool) {
	p = g.Spec.Preprocess
	switch {
	case r.PreprocessFromFile:
		return p, DescribePreprocess(p) + " (from the file's metadata)", true
	case r.Method == MethodRecognised && r.Architecture != "" && p.Name != "" && knownPreprocess(g.Spec):
		return p, fmt.Sprintf("%s (assumed: %s's catalog preset)", DescribePreprocess(p), r.Architecture), true
	}
	return models.Preprocess{}, "", false
}

// DescribePreprocess names a preprocessing: "the imagenet preset", or its
// numbers when it has no name.
func DescribePreprocess(p models.Preprocess) string {
	if p.Name != "" {
		return "the " + p.Name + " preset"
	}
	return fmt.Sprintf("pixels × %.6g, mean %v, std %v", p.Scale, p.Mean, p.Std)
}
