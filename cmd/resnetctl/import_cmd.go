package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/resnetctl/resnetctl/export"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/internal/numfmt"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/regularfile"
	"github.com/spf13/cobra"
)

// ImportOptions are the inputs of `resnetctl import`.
type ImportOptions struct {
	Streams *Streams
	Source  string
	Out     string
	Opset   int // 0: the source's opset (at least export.MinOpset)
	Force   bool
	JSON    bool
}

// NewCmdImport makes `resnetctl import`; runF replaces the run function in tests.
func NewCmdImport(s *Streams, runF func(*ImportOptions) error) *cobra.Command {
	opts := &ImportOptions{Streams: s}
	c := &cobra.Command{
		Use:   "import [flags] MODEL.onnx --out DIR",
		Short: "Import an ONNX model as a checkpoint ready for training",
		Long: fmt.Sprintf(`Import an ONNX model into resnetctl's model representation and write it as a
checkpoint directory that training can start from.

Files exported by resnetctl are rebuilt exactly from their architecture metadata.
Other files (PyTorch's exporter with BatchNorm kept or folded, option-A shortcut
chains, model-zoo opset-7 files, tf2onnx NHWC graphs) are read op by op and
recognised as ResNets by their structure; a recognised model gets torchvision's
parameter names, and the catalog name when the architecture is in the catalog.
A graph whose ops all exist in resnetctl but that is not a ResNet is kept as it
is; anything else is refused with one error naming every node that blocks it.

DIR receives:
  model.onnx        the imported model, re-exported (opset of the source unless
                    --opset, at least %d; BatchNorm folded if the source was)
  checkpoint.json   format, architecture, parameter count, and the source file
                    (path, SHA-256, producer, how it was imported, notes)
DIR is written under a temporary name and renamed into place; a DIR that exists
and is not empty is only replaced with --force.`, export.MinOpset),
		Example: `  resnetctl import resnet18.onnx --out ckpt/resnet18
  resnetctl import model.onnx --out ckpt/m --opset 17 --force --json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf(c, "import takes one argument, the ONNX file (got %d)", len(args))
			}
			if opts.Out == "" {
				return usageErrorf(c, "--out DIR is required")
			}
			if o := opts.Opset; o != 0 && (o < export.MinOpset || o > export.MaxOpset) {
				return usageErrorf(c, "--opset %d: choose %d to %d", o, export.MinOpset, export.MaxOpset)
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			opts.Source = args[0]
			if runF != nil {
				return runF(opts)
			}
			return importRun(opts)
		},
	}
	fs := c.Flags()
	fs.StringVar(&opts.Out, "out", "", "checkpoint directory to write")
	fs.IntVar(&opts.Opset, "opset", 0, "opset of the written model.onnx (default: the source's)")
	fs.BoolVar(&opts.Force, "force", false, "replace DIR if it exists and is not empty")
	fs.BoolVar(&opts.JSON, "json", false, "print the report and the manifest as JSON")
	return c
}

// importJSON is what --json prints.
type importJSON struct {
	Dir      string               `json:"dir"`
	Report   *onnximport.Report   `json:"report"`
	Manifest *onnximport.Manifest `json:"manifest"`
}

func importRun(opts *ImportOptions) error {
	// A regular file only (a FIFO would block forever), of a size a
	// protobuf can have.
	b, err := regularfile.ReadFile(opts.Source, onnxpb.MaxModelBytes)
	if err != nil {
		return err
	}
	g, r, err := onnximport.FromBytes(b)
	if err != nil {
		return fmt.Errorf("%s: %w", opts.Source, err)
	}
	r.Source = opts.Source
	src := onnximport.SourceOf(r)
	if abs, err := filepath.Abs(opts.Source); err == nil {
		src.Path = abs
	}
	sum := sha256.Sum256(b)
	src.SHA256, src.Bytes = hex.EncodeToString(sum[:]), int64(len(b))
	opset := opts.Opset
	if opset == 0 {
		opset = min(max(r.Opset, export.MinOpset), export.MaxOpset)
	}
	m, err := onnximport.WriteCheckpoint(opts.Out, g, onnximport.CheckpointOptions{
		Export:       export.Options{Opset: opset, FoldBN: r.BNFolded, Softmax: r.Softmax, ProducerVersion: version},
		Force:        opts.Force,
		Architecture: r.Architecture,
		Source:       src,
		CreatedBy:    "resnetctl import " + version,
	})
	if err != nil {
		return err
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.Streams.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(importJSON{Dir: opts.Out, Report: r, Manifest: m})
	}
	w := opts.Streams.Out
	fmt.Fprint(w, r.String())
	// The rule train --init applies too (onnximport.Preprocessing).
	if _, what, ok := onnximport.Preprocessing(g, r); ok {
		fmt.Fprintf(w, "preprocessing: %s\n", what)
	} else {
		fmt.Fprintln(w, "preprocessing: unknown (the file does not state it and there is no catalog preset to assume; 'train --init' takes it from its data unless --preprocess is given)")
	}
	c := g.Counts()
	fmt.Fprintf(w, "wrote %s: %s (opset %d), %s\n", opts.Out, onnximport.CheckpointModel, m.Opset, onnximport.CheckpointManifest)
	fmt.Fprintf(w, "params: %s (%s trainable), MACs: %s per image\n", numfmt.Commas(c.Total()), numfmt.Commas(c.Trainable), numfmt.Commas(c.MACs))
	return nil
}
