package main

import (
	"context"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/imgproc"
)

// imageTransform sizes decoded images for a model as evaluate does:
// ImageNet-style models (setup.Resize > 0) get torchvision's shorter-side
// resize and centre crop, others a straight resize to the input size.
func imageTransform(setup *classify.Setup) func(*imgproc.Image) (*imgproc.Image, error) {
	return func(img *imgproc.Image) (*imgproc.Image, error) {
		if setup.Resize > 0 {
			return imgproc.CenterCrop(imgproc.ResizeShorter(img, setup.Resize), setup.W, setup.H), nil
		}
		if img.W == setup.W && img.H == setup.H {
			return img, nil
		}
		return imgproc.Resize(img, setup.W, setup.H), nil
	}
}

// openLabelled opens labelled data for evaluate and quantize: "sample"
// is the embedded CIFAR-10 sample (split train or test), anything else a
// path cifar.Open reads; when the split was not given (autoSplit) and the
// data has no such split, its only split. It returns the split read.
func openLabelled(ctx context.Context, data, split string, autoSplit bool, copts cifar.Options) (*cifar.Source, string, error) {
	copts.Split = split
	if data == "sample" {
		if split == "" {
			split = "train"
		}
		ds, err := cifar.EmbeddedSample(split)
		if err != nil {
			return nil, "", err
		}
		return cifar.FromDataset(ds, "sample", copts), split, nil
	}
	src, err := cifar.Open(ctx, data, copts)
	if err != nil && autoSplit {
		copts.Split = ""
		if s2, err2 := cifar.Open(ctx, data, copts); err2 == nil {
			return s2, "", nil
		}
	}
	return src, split, err
}
