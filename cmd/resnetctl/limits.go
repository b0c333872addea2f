package main

import (
	"fmt"

	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/checked"
	"github.com/spf13/cobra"
)

// Bounds of the flags that size allocations: what a flag, a file's
// declared shape or its metadata asks for is checked before anything of
// that size is allocated, so an absurd value is a one-line error naming
// it, never Go's fatal "runtime: out of memory".
const (
	maxBatch = 1 << 16 // --batch
	maxSide  = 16384   // --size, and any input side from the model
	maxIters = 1 << 20 // --iters, --steps (a slice of timings each)
)

// checkIntFlag refuses --name n outside [lo, hi].
func checkIntFlag(c *cobra.Command, name string, n, lo, hi int) error {
	if n < lo || n > hi {
		return usageErrorf(c, "--%s %d: must be between %d and %d", name, n, lo, hi)
	}
	return nil
}

// checkThreads refuses a --threads the inference runtime would not take.
func checkThreads(c *cobra.Command, n int) error {
	return checkIntFlag(c, "threads", n, 0, infer.MaxThreads())
}

// checkInputTensor checks the float32 input batch [batch, ch, h, w] a
// command is about to allocate: each side at most maxSide, and its bytes
// within the memory budget the session gets (infer.DefaultMaxMemory).
// what names where the size comes from (the file and the flag, field or
// declared shape).
func checkInputTensor(what string, batch, ch, h, w int) error {
	if h < 1 || w < 1 || h > maxSide || w > maxSide {
		return fmt.Errorf("%s: input %dx%d: each side must be between 1 and %d", what, h, w, maxSide)
	}
	n, ok := checked.Product(batch, ch, h, w, 4)
	if budget := infer.DefaultMaxMemory(); !ok || int64(n) > budget {
		return fmt.Errorf("%s: an input batch of %d×%d×%d×%d float32 needs more than the memory budget of %d MiB (3/4 of the memory this process may use)",
			what, batch, ch, h, w, budget>>20)
	}
	return nil
}

// check validates the input flags predict and evaluate share.
func (f *inputFlags) check(c *cobra.Command) error {
	if err := checkThreads(c, f.Threads); err != nil {
		return err
	}
	return checkIntFlag(c, "size", f.Size, 0, maxSide)
}

// checkSetup checks the input batch of batch images that setup implies,
// naming where its size came from: --size, the model's declared input
// shape, or its metadata's input_size.
func (f *inputFlags) checkSetup(path string, md infer.Metadata, setup *classify.Setup, batch int) error {
	src := "metadata input_size"
	switch {
	case f.Size > 0:
		src = "--size"
	case len(md.Inputs) == 1 && len(md.Inputs[0].Shape) == 4 && md.Inputs[0].Shape[2] > 0 && md.Inputs[0].Shape[3] > 0:
		src = fmt.Sprintf("input %q's declared shape", md.Inputs[0].Name)
	}
	return checkInputTensor(fmt.Sprintf("%s (%s)", path, src), batch, setup.C, setup.H, setup.W)
}
