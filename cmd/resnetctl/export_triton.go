package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/export"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/internal/numfmt"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/regularfile"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
)

// TritonExport holds the --triton flags of `resnetctl export`: write a
// Triton Inference Server model repository (export.WriteTriton) instead of
// one ONNX file.
type TritonExport struct {
	Dir         string // the repository; empty: no --triton
	Name        string // the model's name and directory (default: the model's name, or --from's stem)
	MaxBatch    int
	MaxBatchSet bool   // --max-batch was given (refused for a fixed-batch model rather than ignored)
	From        string // an existing ONNX file, put in as it is
	Labels      string // with From: class names for labels.txt (a label set or a file)
	Force       bool
}

// registerTritonFlags adds the --triton flags to export.
func registerTritonFlags(c *cobra.Command, t *TritonExport) {
	fs := c.Flags()
	fs.StringVar(&t.Dir, "triton", "", "write a Triton model repository in DIR (DIR/NAME/config.pbtxt, DIR/NAME/1/model.onnx, DIR/NAME/labels.txt) instead of a file")
	fs.StringVar(&t.Name, "triton-name", "", "with --triton: the model's name and directory (default: the model's name, or the --from file's stem)")
	fs.IntVar(&t.MaxBatch, "max-batch", export.DefaultTritonMaxBatch, "with --triton: max_batch_size of a model whose batch dimension is dynamic")
	fs.StringVar(&t.From, "from", "", "with --triton: put this ONNX file into the repository as it is (a checkpoint's model.onnx, PyTorch's export …)")
	fs.BoolVar(&t.Force, "force", false, "with --triton: replace DIR/NAME if it exists")
}

// tritonArgs is export's argument check under --triton: the repository
// replaces the output path.
func tritonArgs(c *cobra.Command, args []string) error {
	if len(args) != 0 {
		return usageErrorf(c, "with --triton the model goes to DIR/NAME/1/model.onnx: give no output path (got %q)", args[0])
	}
	return nil
}

// tritonFlags checks the --triton flags against the others.
func tritonFlags(c *cobra.Command, opts *ExportOptions) error {
	changed := c.Flags().Changed
	t := &opts.Triton
	if t.Dir == "" {
		for _, f := range []string{"triton-name", "max-batch", "from", "force"} {
			if changed(f) {
				return usageErrorf(c, "--%s goes with --triton DIR", f)
			}
		}
		return nil
	}
	t.MaxBatchSet = changed("max-batch")
	if t.MaxBatch < 1 {
		return usageErrorf(c, "--max-batch %d: must be at least 1", t.MaxBatch)
	}
	if t.From != "" {
		if changed("labels") {
			t.Labels, _ = c.Flags().GetString("labels")
		}
		for _, f := range []string{"checkpoint", "model", "classes", "input", "shortcut", "preact", "widen", "groups",
			"width-per-group", "zero-init-residual", "seed", "opset", "fold-bn", "softmax"} {
			if changed(f) {
				return usageErrorf(c, "--%s does not go with --from (the file goes into the repository as it is)", f)
			}
		}
	}
	return nil
}

// exportTritonRun writes the model as a Triton model repository entry.
func exportTritonRun(opts *ExportOptions) error {
	t := opts.Triton
	var model []byte
	var about, name string
	if t.From != "" {
		b, err := regularfile.ReadFile(t.From, onnxpb.MaxModelBytes)
		if err != nil {
			return err
		}
		model, about = b, "from "+t.From+" (as it is)"
		name = strings.TrimSuffix(filepath.Base(t.From), filepath.Ext(t.From))
	} else {
		var g *build.Graph
		var err error
		about = fmt.Sprintf("weights from seed %d (untrained)", opts.Seed)
		if opts.Checkpoint != "" {
			if g, _, err = onnximport.Load(filepath.Join(opts.Checkpoint, "model.onnx")); err != nil {
				return fmt.Errorf("checkpoint %s: %w", opts.Checkpoint, err)
			}
			opts.Spec = g.Spec
			about = "weights from checkpoint " + opts.Checkpoint
		} else if g, err = build.New(opts.Spec, build.Options{Seed: opts.Seed}); err != nil {
			return err
		}
		if model, err = export.Marshal(g, opts.Export); err != nil {
			return err
		}
		name = opts.Spec.Name
		about = fmt.Sprintf("%s, %s, opset %d", opts.Spec.Name, about, opts.Export.Opset)
		if opts.Export.FoldBN {
			about += ", BatchNorm folded"
		}
	}
	if t.Name != "" {
		name = t.Name
	}
	topts := export.TritonOptions{Name: name, MaxBatch: t.MaxBatch, Force: t.Force,
		Comment: fmt.Sprintf("written by resnetctl %s export --triton: %s", version, about)}
	if t.Labels != "" {
		classes, err := classify.LoadLabels(t.Labels)
		if err != nil {
			return err
		}
		topts.Classes = classes
	}

	// Decide before writing: a fixed batch dimension makes max_batch_size
	// 0, and a --max-batch the user gave would be silently ignored.
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(model, m); err != nil {
		return fmt.Errorf("%s: not an ONNX model: %w", t.From, err)
	}
	cfg, _, err := export.TritonConfigOf(model, topts)
	if err != nil {
		if t.Name == "" && strings.Contains(err.Error(), "model name") {
			return fmt.Errorf("%w (choose one with --triton-name)", err)
		}
		return err
	}
	if cfg.MaxBatchSize == 0 && t.MaxBatchSet {
		return fmt.Errorf("--max-batch %d: the model's batch dimension is fixed (input %s has dims %v), so Triton gets max_batch_size 0 and the full dims",
			t.MaxBatch, cfg.Input[0].Name, cfg.Input[0].Dims)
	}
	info, err := export.WriteTriton(t.Dir, model, topts)
	if err != nil {
		return err
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.Streams.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	w := opts.Streams.Out
	c := info.Spec
	verb := "wrote"
	if info.Replaced {
		verb = "replaced"
	}
	fmt.Fprintf(w, "%s Triton model %q in the repository %s\n", verb, c.Name, t.Dir)
	batching := "max_batch_size 0 (fixed batch dimension: dims are full shapes, no dynamic batching)"
	if c.MaxBatchSize > 0 {
		batching = fmt.Sprintf("max_batch_size %d, dynamic batching", c.MaxBatchSize)
	}
	fmt.Fprintf(w, "  %s: platform %s, %s\n", info.Config, c.Platform, batching)
	fmt.Fprintf(w, "  %s: %s bytes, %s\n", info.Model, numfmt.Commas(info.Bytes), about)
	if info.Labels != "" {
		fmt.Fprintf(w, "  %s: %d classes (label_filename of the class-score outputs)\n", info.Labels, info.Classes)
	} else {
		fmt.Fprintln(w, "  no labels file: the model's metadata names no classes (--labels with --from gives them), or no output has one score per class")
	}
	io := func(kind string, ts []export.TritonTensor) {
		for _, x := range ts {
			fmt.Fprintf(w, "  %s %s %s dims %v", kind, x.Name, x.DataType, x.Dims)
			if x.Format != "" {
				fmt.Fprintf(w, " %s", x.Format)
			}
			if x.LabelFilename != "" {
				fmt.Fprintf(w, " label_filename %s", x.LabelFilename)
			}
			fmt.Fprintln(w)
		}
	}
	io("input: ", c.Input)
	io("output:", c.Output)
	fmt.Fprintf(w, "serve it with: tritonserver --model-repository=%s\n", t.Dir)
	return nil
}
