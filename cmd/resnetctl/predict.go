package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/classify"
	"github.com/resnetctl/resnetctl/internal/imgproc"
	"github.com/resnetctl/resnetctl/internal/printable"
	"github.com/spf13/cobra"
)

// inputFlags are the model-feeding flags predict and evaluate share.
type inputFlags struct {
	classify.Flags
	Threads int
	Engine  string
}

func (f *inputFlags) register(c *cobra.Command) {
	fs := c.Flags()
	fs.StringVar(&f.Preprocess, "preprocess", "", "torch, caffe, tf or raw (default: the model's metadata, else torch)")
	fs.Float32SliceVar(&f.Mean, "mean", nil, "per-channel mean on the 0-1 scale, e.g. 0.485,0.456,0.406 (torch mode)")
	fs.Float32SliceVar(&f.Std, "std", nil, "per-channel std on the 0-1 scale (torch mode)")
	fs.IntVar(&f.Size, "size", 0, "input side for models without a fixed input size")
	fs.StringVar(&f.Labels, "labels", "", "cifar10, cifar100, imagenet or a file with one class name a line (default: the model's metadata)")
	fs.IntVar(&f.Threads, "threads", 0, "worker threads (default: all cores)")
	fs.StringVar(&f.Engine, "engine", infer.EngineNative, "inference engine: native or gorgonnx (onnx-go, for cross-checking)")
}

// load loads the model and works out its setup, for batches of up to
// batch images (their size checked before the caller allocates one). A
// model with NaN or infinite weights loads (ONNX graphs may hold
// infinities on purpose, and a weight may not reach the output) with a
// warning on warn; its non-finite outputs are errors
// (classify.CheckOutput).
func (f *inputFlags) load(path string, batch int, warn io.Writer) (*infer.Session, *classify.Setup, error) {
	sess, err := infer.Load(path, infer.Options{Threads: f.Threads, Engine: f.Engine})
	if err != nil {
		return nil, nil, err
	}
	if nf := sess.NonFiniteWeights(); len(nf) > 0 {
		what := fmt.Sprintf("%d weight tensors hold", len(nf))
		if len(nf) == 1 {
			what = "a weight tensor holds"
		}
		fmt.Fprintf(warn, "resnetctl: warning: %s: %s NaN or infinite values: %s; the outputs will likely not be finite\n",
			printable.Name(path), what, printable.Text(classify.WeightList(nf, 3)))
	}
	setup, err := classify.Resolve(sess.Metadata(), f.Flags)
	if err != nil {
		sess.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.checkSetup(path, sess.Metadata(), setup, batch); err != nil {
		sess.Close()
		return nil, nil, err
	}
	return sess, setup, nil
}

// PredictOptions are the inputs of `resnetctl predict`.
type PredictOptions struct {
	Streams *Streams
	Model   string
	Images  []string
	Top     int
	JSON    bool
	Input   inputFlags
}

// NewCmdPredict makes `resnetctl predict`; runF replaces the run function in tests.
func NewCmdPredict(s *Streams, runF func(*PredictOptions) error) *cobra.Command {
	opts := &PredictOptions{Streams: s}
	c := &cobra.Command{
		Use:   "predict [flags] MODEL.onnx IMAGE...",
		Short: "Classify images with an ONNX model, top-k with class names",
		Long: `Classify images (JPEG, PNG, GIF, BMP, WebP) with any ResNet-family ONNX model:
ours, PyTorch's, the ONNX model zoo's. Images are resized as torchvision's
evaluation transforms do (shorter side to size/0.875, then a centre crop) for
ImageNet-sized models, and straight to the input size for small ones such as
CIFAR's. Preprocessing and class names come from the model's metadata when it
has them (resnetctl exports do); otherwise from the flags.`,
		Example: `  resnetctl predict resnet20.onnx cat.png
  resnetctl predict --top 5 resnet50.onnx photo.jpg --labels imagenet --preprocess torch
  resnetctl predict --json model.onnx a.jpg b.jpg`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageErrorf(c, "predict takes a model and at least one image (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if opts.Top < 1 {
				return usageErrorf(c, "--top %d: must be at least 1", opts.Top)
			}
			if err := opts.Input.check(c); err != nil {
				return err
			}
			opts.Model, opts.Images = args[0], args[1:]
			if runF != nil {
				return runF(opts)
			}
			return predictRun(c, opts)
		},
	}
	c.Flags().IntVar(&opts.Top, "top", 3, "how many classes to show per image")
	c.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	opts.Input.register(c)
	return c
}

// predictChunk is the most images predict runs at once.
const predictChunk = 16

type predictResult struct {
	Image       string                `json:"image"`
	Predictions []classify.Prediction `json:"predictions"`
}

func predictRun(c *cobra.Command, opts *PredictOptions) error {
	sess, setup, err := opts.Input.load(opts.Model, min(len(opts.Images), predictChunk), opts.Streams.ErrOut)
	if err != nil {
		return err
	}
	defer sess.Close()
	weights := sess.NonFiniteWeights()
	// Decode everything first: an unreadable image fails before any work.
	imgs := make([]*imgproc.Image, len(opts.Images))
	for i, p := range opts.Images {
		if imgs[i], err = imgproc.DecodeFile(p); err != nil {
			return err
		}
	}
	const chunk = predictChunk
	pre := setup.Preprocessor()
	per := setup.C * setup.H * setup.W
	var results []predictResult
	for lo := 0; lo < len(imgs); lo += chunk {
		hi := min(lo+chunk, len(imgs))
		batch := make([]float32, (hi-lo)*per)
		// The steps are classify's, shared with `resnetctl serve`.
		for i := lo; i < hi; i++ {
			if err := setup.Sample(pre, batch, i-lo, imgs[i], printable.Name(opts.Images[i])); err != nil {
				return err
			}
		}
		out, err := sess.Run(c.Context(), map[string]*infer.Tensor{
			setup.Input: infer.NewFloat32([]int{hi - lo, setup.C, setup.H, setup.W}, batch),
		})
		if err != nil {
			// The engine's errors name the node, not the file.
			return fmt.Errorf("%s: %w", opts.Model, err)
		}
		scores, err := setup.Scores(out, hi-lo)
		if err != nil {
			return fmt.Errorf("%s: %w", opts.Model, err)
		}
		k := scores.Shape[1]
		for i := lo; i < hi; i++ {
			preds, err := setup.Predict(printable.Name(opts.Images[i]), scores.Float32[(i-lo)*k:(i-lo+1)*k], opts.Top, weights)
			if err != nil {
				return fmt.Errorf("%s: %w", opts.Model, err)
			}
			results = append(results, predictResult{Image: opts.Images[i], Predictions: preds})
		}
	}
	w := opts.Streams.Out
	if opts.JSON {
		// Exact names; printable.JSON escapes what encoding/json leaves
		// raw (C1 controls, format characters).
		enc := json.NewEncoder(printable.JSON(w))
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	// Names from the command line, the model's metadata or a labels file
	// are escaped (quoted) when they hold control characters, such as a
	// terminal escape sequence, or are not UTF-8; JSON escapes them itself.
	fmt.Fprintf(opts.Streams.ErrOut, "%s: %s\n", printable.Name(opts.Model), printable.Text(strings.Join(setup.Describe, "; ")))
	for _, r := range results {
		fmt.Fprintf(w, "%s\n", printable.Name(r.Image))
		width := 0
		for _, p := range r.Predictions {
			width = max(width, len(printable.Name(p.Label)))
		}
		for _, p := range r.Predictions {
			fmt.Fprintf(w, "  %d. %-*s  %6.2f%%\n", p.Rank, width, printable.Name(p.Label), 100*p.Prob)
		}
	}
	return nil
}
