package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/atomicfile"
	"github.com/resnetctl/resnetctl/internal/numfmt"
	"github.com/resnetctl/resnetctl/internal/printable"
	"github.com/resnetctl/resnetctl/modelmeta"
	"github.com/resnetctl/resnetctl/quantize"
	"github.com/spf13/cobra"
)

// calibrationBudget bounds the activations one calibration batch
// returns (the batch shrinks to fit).
const calibrationBudget = 256 << 20

// QuantizeOptions are the inputs of `resnetctl quantize`.
type QuantizeOptions struct {
	Streams    *Streams
	Model      string
	Data       string
	Split      string
	AutoSplit  bool
	Images     int
	Seed       uint64
	Batch      int
	Method     string
	Percentile float64
	PerChannel bool
	Activation string
	Out        string
	Input      inputFlags
}

// NewCmdQuantize makes `resnetctl quantize`; runF replaces the run
// function in tests.
func NewCmdQuantize(s *Streams, runF func(*QuantizeOptions) error) *cobra.Command {
	opts := &QuantizeOptions{Streams: s}
	c := &cobra.Command{
		Use:   "quantize [flags] MODEL.onnx --calibrate DATA",
		Short: "Quantize a float model to int8 (QDQ ONNX) with calibration images",
		Long: `Static post-training quantization: BatchNormalization is folded into the
convolution before it; the weights of Conv, Gemm and MatMul become int8
(symmetric, one scale per output channel); the activations between them uint8
(or int8 with --activations int8) with ranges measured on --images images of
--calibrate, preprocessed as evaluate does; biases int32 at input scale × weight
scale. The file is standard QDQ ONNX (QuantizeLinear/DequantizeLinear around float
ops) that ONNX Runtime and other runtimes run; its metadata records the method and
the calibration.

Methods: percentile (the default: |x| clipped at its --percentile, 99.99), minmax
(the extremes seen), entropy (the clipping that keeps the quantized distribution
closest to the seen one, TensorRT's method). On the CIFAR ResNets measured
(README: Quantization) percentile lost least, entropy most. Calibrate on training images, not the test split you
report accuracy on: --split defaults to train.`,
		Example: `  resnetctl quantize runs/resnet20/best/model.onnx --calibrate ../shared/data/cifar10-jpeg.tar.gz --images 500
  resnetctl quantize model.onnx --calibrate images/ --split "" --method entropy --out model.int8.onnx
  resnetctl evaluate model.int8.onnx --data ../shared/data/cifar10-jpeg.tar.gz`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf(c, "quantize takes one model (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if opts.Data == "" {
				return usageErrorf(c, "--calibrate is required: the images to measure activation ranges on")
			}
			if err := checkIntFlag(c, "images", opts.Images, 1, 1<<24); err != nil {
				return err
			}
			if err := checkIntFlag(c, "batch", opts.Batch, 1, maxBatch); err != nil {
				return err
			}
			if !slices.Contains(quantize.Methods, opts.Method) {
				return usageErrorf(c, "--method %q: want %s", opts.Method, strings.Join(quantize.Methods, ", "))
			}
			if !(opts.Percentile > 0 && opts.Percentile <= 100) {
				return usageErrorf(c, "--percentile %g: must be in (0, 100]", opts.Percentile)
			}
			if opts.Activation != "uint8" && opts.Activation != "int8" {
				return usageErrorf(c, "--activations %q: want uint8 or int8", opts.Activation)
			}
			if err := opts.Input.check(c); err != nil {
				return err
			}
			opts.Model = args[0]
			opts.AutoSplit = !c.Flags().Changed("split")
			if opts.Out == "" {
				opts.Out = strings.TrimSuffix(opts.Model, filepath.Ext(opts.Model)) + ".int8.onnx"
			}
			if runF != nil {
				return runF(opts)
			}
			return quantizeRun(c, opts)
		},
	}
	fs := c.Flags()
	fs.StringVar(&opts.Data, "calibrate", "", `calibration data: anything evaluate --data reads, or "sample" (the embedded CIFAR-10 sample)`)
	fs.StringVar(&opts.Split, "split", "train", `split of --calibrate to draw images from ("" for class folders directly under it)`)
	fs.IntVar(&opts.Images, "images", 500, "calibration images: a class-balanced random subset drawn from --seed")
	fs.Uint64Var(&opts.Seed, "seed", 1, "seed of the calibration subset")
	fs.IntVar(&opts.Batch, "batch", 50, "images per calibration batch at most (fewer when their activations would pass 256 MiB)")
	fs.StringVar(&opts.Method, "method", quantize.Percentile, "calibration method: percentile (the default: |x| clipped at --percentile), minmax or entropy")
	fs.Float64Var(&opts.Percentile, "percentile", 99.99, "percentile of |x| the percentile method clips at")
	fs.BoolVar(&opts.PerChannel, "per-channel", true, "one weight scale per output channel (false: one per tensor)")
	fs.StringVar(&opts.Activation, "activations", "uint8", "activation type: uint8 or int8")
	fs.StringVar(&opts.Out, "out", "", "output file (default: MODEL.int8.onnx beside MODEL)")
	opts.Input.register(c)
	return c
}

func quantizeRun(c *cobra.Command, opts *QuantizeOptions) error {
	ctx := c.Context()
	errOut := opts.Streams.ErrOut
	sess, setup, err := opts.Input.load(opts.Model, opts.Batch, errOut)
	if err != nil {
		return err
	}
	sess.Close()
	raw, err := os.ReadFile(opts.Model)
	if err != nil {
		return err
	}
	qm, err := quantize.Prepare(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", printable.Name(opts.Model), err)
	}
	if in := qm.Inputs(); len(in) != 1 || in[0] != setup.Input {
		return fmt.Errorf("%s: quantize needs a model with one image input (inputs: %s)", printable.Name(opts.Model), printable.Text(strings.Join(in, ", ")))
	}
	calBytes, err := qm.CalibrationModel()
	if err != nil {
		return err
	}
	cal, err := infer.LoadBytes(calBytes, infer.Options{Threads: opts.Input.Threads})
	if err != nil {
		return fmt.Errorf("%s: the calibration model: %w", printable.Name(opts.Model), err)
	}
	defer cal.Close()

	src, split, err := openLabelled(ctx, opts.Data, opts.Split, opts.AutoSplit, cifar.Options{Transform: imageTransform(setup)})
	if err != nil {
		return err
	}
	opts.Split = split
	if src.Len == 0 {
		return fmt.Errorf("--calibrate %s: no images", printable.Name(opts.Data))
	}
	if opts.Images < src.Len {
		if err := src.Limit(opts.Images, opts.Seed); err != nil {
			return err
		}
	}
	acts := qm.Activations()
	batchSize := opts.Batch
	if setup.Batch > 0 {
		batchSize = setup.Batch // a fixed-batch model: whole batches, the padding ignored
	} else {
		// Every activation of a batch comes out of the calibration run at
		// once: a ResNet-50 image's are 40 MB, so 50 images would hold 2 GB
		// (and the process 4 GB). A probe image measures them; batches keep
		// them under calibrationBudget.
		per := setup.C * setup.H * setup.W
		out, err := cal.Run(ctx, map[string]*infer.Tensor{setup.Input: setup.Tensor(1, make([]float32, per))})
		if err != nil {
			return fmt.Errorf("%s: calibration: %w", printable.Name(opts.Model), err)
		}
		var bytes int64
		for _, a := range acts {
			if t := out[a]; t != nil {
				bytes += int64(len(t.Float32)) * 4
			}
		}
		if bytes > 0 {
			batchSize = int(max(1, min(int64(batchSize), calibrationBudget/bytes)))
		}
	}
	stats := map[string]*quantize.Stats{}
	for _, a := range acts {
		stats[a] = quantize.NewStats()
	}
	per := setup.C * setup.H * setup.W
	batch := make([]float32, batchSize*per)
	n, seen := 0, 0
	bar := isTerminal(errOut)
	start := time.Now()
	flush := func() error {
		if n == 0 {
			return nil
		}
		rows := n
		if setup.Batch > 0 {
			clear(batch[n*per:])
			rows = setup.Batch
		}
		out, err := cal.Run(ctx, map[string]*infer.Tensor{setup.Input: setup.Tensor(rows, batch[:rows*per])})
		if err != nil {
			return fmt.Errorf("%s: calibration: %w", printable.Name(opts.Model), err)
		}
		for _, a := range acts {
			t := out[a]
			if t == nil || t.Type() != infer.Float32 || len(t.Shape) == 0 || t.Shape[0] != rows {
				return fmt.Errorf("%s: calibration: tensor %q is not a float32 batch of %d", printable.Name(opts.Model), a, rows)
			}
			keep := len(t.Float32) / rows * n
			if err := stats[a].Add(t.Float32[:keep]); err != nil {
				return fmt.Errorf("%s: calibration: tensor %q: %w", printable.Name(opts.Model), a, err)
			}
		}
		seen += n
		n = 0
		if bar {
			fmt.Fprintf(errOut, "\rcalibrating: %d/%d images (%.0f img/s)   ", seen, src.Len, float64(seen)/time.Since(start).Seconds())
		}
		return nil
	}
	err = src.Walk(ctx, func(s cifar.Sample) error {
		if err := setup.Write(batch, n, s.Image, printable.Name(s.Name)); err != nil {
			return err
		}
		if n++; n == batchSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if bar {
		fmt.Fprintln(errOut)
	}
	if err != nil {
		return err
	}
	if seen == 0 {
		return fmt.Errorf("--calibrate %s: no images were read", printable.Name(opts.Data))
	}
	calib := map[string]any{"data": filepath.Base(opts.Data), "images": seen, "seed": opts.Seed}
	if opts.Split != "" {
		calib["split"] = opts.Split
	}
	qopts := quantize.Options{Method: opts.Method, Percentile: opts.Percentile, PerTensor: !opts.PerChannel,
		SignedActivations: opts.Activation == "int8", Calibration: calib, Metadata: preprocessMetadata(opts, setup)}
	out, rep, err := qm.Quantize(stats, qopts)
	if err != nil {
		return fmt.Errorf("%s: %w", printable.Name(opts.Model), err)
	}
	// What is written must load.
	check, err := infer.LoadBytes(out, infer.Options{Threads: 1})
	if err != nil {
		return fmt.Errorf("the quantized model does not load (not written): %w", err)
	}
	check.Close()
	if err := atomicfile.WriteFile(opts.Out, out, 0o644); err != nil {
		return err
	}
	var ops []string
	for _, k := range slices.Sorted(maps.Keys(rep.Ops)) {
		ops = append(ops, fmt.Sprintf("%d %s", rep.Ops[k], k))
	}
	if split == "" {
		split = "all"
	}
	fmt.Fprintf(opts.Streams.Out, "quantized %s: %d weights (%s) int8 %s, %d int32 biases, %d activations %s\ncalibrated (%s) on %d images of %s (split %s, seed %d)\nwrote %s (%s)\n",
		printable.Name(opts.Model), rep.Weights, strings.Join(ops, ", "), map[bool]string{true: "per channel", false: "per tensor"}[opts.PerChannel],
		rep.Biases, rep.Activations, opts.Activation, opts.Method, seen, printable.Name(opts.Data), split, opts.Seed,
		printable.Name(opts.Out), numfmt.Bytes(int64(len(out))))
	return nil
}

// preprocessMetadata records, for a model that did not say, the
// preprocessing and labels given by flags for calibration, so that the
// quantized file is evaluated and served the same way without them.
func preprocessMetadata(opts *QuantizeOptions, setup *classify.Setup) map[string]string {
	md := map[string]string{}
	f := opts.Input
	if f.Mean != nil && f.Std != nil && (f.Preprocess == "" || f.Preprocess == "torch") {
		p := modelmeta.Preprocessing{Scale: 1.0 / 255, Mean: f.Mean, Std: f.Std, Layout: setup.Layout, Color: "RGB", InputSize: []int{setup.C, setup.H, setup.W}}
		if b, err := json.Marshal(p); err == nil {
			md[modelmeta.MetaPreprocess] = string(b)
		}
	}
	if f.Labels != "" && setup.Classes != nil {
		if b, err := json.Marshal(setup.Classes); err == nil {
			md[modelmeta.MetaClasses] = string(b)
		}
	}
	return md
}
