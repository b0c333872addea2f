package augment

import (
	"fmt"
	"strings"
)

// An Augmentation is a random geometric transform of an image that copies
// pixels: every output pixel is one input pixel or zero (black). That
// covers all three of ours (nearest-neighbour affine warps, pad-and-crop,
// flips) and lets the loader sample, normalise and write a batch item in
// one pass over the pixels, the same for every channel.
type Augmentation interface {
	// Sample draws one transform of a w×h image from r and writes its
	// pixel map into m (len w*h): m[y*w+x] is the index y'*w+x' of the
	// source pixel that output pixel (x, y) copies, or -1 for a zero
	// pixel. It must draw from r only, so that the result is a function
	// of r's state.
	Sample(m []int32, w, h int, r *Rand)
	// String names the augmentation and its settings, for logs and
	// model metadata ("keras(rotation=15 ...)").
	String() string
}

// None leaves images as they are.
type None struct{}

// Sample writes the identity map.
func (None) Sample(m []int32, w, h int, _ *Rand) { identity(m[:w*h]) }

func (None) String() string { return "none" }

func identity(m []int32) {
	for i := range m {
		m[i] = int32(i)
	}
}

// Names lists the augmentations Lookup knows.
func Names() []string { return []string{"keras", "paper", "none"} }

// Lookup returns a named augmentation with its standard settings:
//
//	keras  KerasDefaults(): the Keras tutorial's ImageDataGenerator
//	       (rotation 15°, shifts 0.1, zoom 0.1, horizontal flips)
//	paper  PaperDefaults(): He et al. 2016 (pad 4, random crop, horizontal flips)
//	none   None{}
func Lookup(name string) (Augmentation, error) {
	switch name {
	case "keras":
		return KerasDefaults(), nil
	case "paper":
		return PaperDefaults(), nil
	case "none":
		return None{}, nil
	}
	return nil, fmt.Errorf("augment: unknown augmentation %q (want %s)", name, strings.Join(Names(), ", "))
}

// checker is implemented by augmentations whose settings can be invalid.
type checker interface{ Check() error }
