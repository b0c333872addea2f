package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/internal/numfmt"
	"github.com/resnetctl/resnetctl/models"
	"github.com/spf13/cobra"
)

// ExportOptions are the inputs of `resnetctl export`.
type ExportOptions struct {
	Streams    *Streams
	Spec       models.Spec
	Checkpoint string // export this checkpoint's model instead of a fresh one
	Path       string
	Seed       uint64
	Export     export.Options
	JSON       bool
	Triton     TritonExport // --triton: a Triton model repository instead of Path
}

// NewCmdExport makes `resnetctl export`; runF replaces the run function in tests.
func NewCmdExport(s *Streams, runF func(*ExportOptions) error) *cobra.Command {
	opts := &ExportOptions{Streams: s}
	var flags specFlags
	c := &cobra.Command{
		Use:   "export [flags] (MODEL.onnx | --triton DIR)",
		Short: "Write a model as an ONNX file",
		Long: fmt.Sprintf(`Write a model as an ONNX file that ONNX Runtime, onnx-go, TensorRT and
resnetctl's own runtime can load.

The file has one input "input" (N, C, H, W) and the output "logits" (N, classes),
plus "probabilities" with --softmax; the batch dimension N is dynamic. Initializers
carry torchvision's parameter names. Class names, preprocessing (scale, mean,
std, layout, input size) and the architecture are stored in metadata_props.

Opsets %d to %d are written, each in its own op forms, with the matching IR
version (default opset %d). --fold-bn folds every BatchNorm that follows a
convolution into it. The file is written atomically: it appears complete or not
at all. With --checkpoint the weights are the checkpoint's (a training run or
'resnetctl import' output); otherwise they are freshly initialised from --seed.

--triton DIR writes a Triton Inference Server model repository instead of a file:
DIR/NAME/config.pbtxt (platform onnxruntime_onnx; max_batch_size --max-batch for a
dynamic batch dimension, with dynamic batching, or 0 and the full dims for a fixed
one), DIR/NAME/1/model.onnx and DIR/NAME/labels.txt (the class names, for Triton's
classification extension). NAME is --triton-name, else the model's name. --from
puts an existing ONNX file (a checkpoint's model.onnx, PyTorch's export) in as it
is, --labels naming its classes if its metadata does not. The model directory
is written under a temporary name and renamed into place; an existing one is
only replaced with --force.`, export.MinOpset, export.MaxOpset, export.DefaultOpset),
		Example: `  resnetctl export --model resnet20 resnet20.onnx
  resnetctl export --model resnet50 --opset 13 --fold-bn --softmax resnet50.onnx
  resnetctl export --model resnet56 --shortcut B --classes 100 --json r56.onnx
  resnetctl export --checkpoint runs/r20/best --opset 13 --fold-bn r20.onnx
  resnetctl export --checkpoint runs/r20/best --triton repo
  resnetctl export --from torchvision_resnet50.onnx --triton repo --triton-name r50 --max-batch 8`,
		Args: func(c *cobra.Command, args []string) error {
			if opts.Triton.Dir != "" {
				return tritonArgs(c, args)
			}
			if len(args) != 1 {
				return usageErrorf(c, "export takes one argument, the output path (got %d)", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := tritonFlags(c, opts); err != nil {
				return err
			}
			if opts.Checkpoint != "" {
				for _, f := range []string{"model", "classes", "input", "labels", "shortcut", "preact", "widen", "groups", "width-per-group", "zero-init-residual", "seed"} {
					if c.Flags().Changed(f) {
						return usageErrorf(c, "--%s does not go with --checkpoint (the checkpoint fixes the model)", f)
					}
				}
			} else if opts.Triton.From == "" { // --from: the file goes in as it is
				spec, err := flags.resolve(c)
				if err != nil {
					return err
				}
				opts.Spec = spec
			}
			if o := opts.Export.Opset; o < export.MinOpset || o > export.MaxOpset {
				return usageErrorf(c, "--opset %d: choose %d to %d", o, export.MinOpset, export.MaxOpset)
			}
			if len(args) > 0 {
				opts.Path = args[0]
			}
			opts.Export.ProducerVersion = version
			if runF != nil {
				return runF(opts)
			}
			return exportRun(opts)
		},
	}
	flags.register(c, "resnet20")
	fs := c.Flags()
	fs.IntVar(&opts.Export.Opset, "opset", export.DefaultOpset, "ONNX opset to write")
	fs.BoolVar(&opts.Export.FoldBN, "fold-bn", false, "fold BatchNorm into the preceding convolution")
	fs.BoolVar(&opts.Export.Softmax, "softmax", false, `append a Softmax with output "probabilities"`)
	fs.Uint64Var(&opts.Seed, "seed", 1, "seed of the initial weights")
	fs.StringVar(&opts.Checkpoint, "checkpoint", "", "export the model of this checkpoint directory (from train or import)")
	fs.BoolVar(&opts.JSON, "json", false, "print what was written as JSON")
	registerTritonFlags(c, &opts.Triton)
	return c
}

func exportRun(opts *ExportOptions) error {
	if opts.Triton.Dir != "" {
		return exportTritonRun(opts)
	}
	var g *build.Graph
	var err error
	weights := fmt.Sprintf("weights from seed %d (untrained)", opts.Seed)
	if opts.Checkpoint != "" {
		if g, _, err = onnximport.Load(filepath.Join(opts.Checkpoint, "model.onnx")); err != nil {
			return fmt.Errorf("checkpoint %s: %w", opts.Checkpoint, err)
		}
		opts.Spec = g.Spec
		weights = "weights from checkpoint " + opts.Checkpoint
	} else if g, err = build.New(opts.Spec, build.Options{Seed: opts.Seed}); err != nil {
		return err
	}
	info, err := export.WriteFile(opts.Path, g, opts.Export)
	if err != nil {
		return err
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.Streams.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	w := opts.Streams.Out
	fmt.Fprintf(w, "wrote %s (%s bytes)\n", info.Path, numfmt.Commas(info.Bytes))
	fmt.Fprintf(w, "  model:   %s, %s\n", opts.Spec.Name, weights)
	fmt.Fprintf(w, "  opset:   %d (IR version %d), %d nodes", info.Opset, info.IRVersion, info.Nodes)
	if opts.Export.FoldBN {
		fmt.Fprint(w, ", BatchNorm folded")
	}
	fmt.Fprintln(w)
	in := opts.Spec.Input
	fmt.Fprintf(w, "  inputs:  %s [N, %d, %d, %d] float32\n", info.Inputs[0], in.C, in.H, in.W)
	for _, o := range info.Outputs {
		fmt.Fprintf(w, "  output:  %s [N, %d] float32\n", o, opts.Spec.Classes)
	}
	fmt.Fprintf(w, "  params:  %s\n", numfmt.Commas(info.Params))
	return nil
}
