package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/infer"
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
	fs.StringVar(&f.Layout, "layout", "", "input layout NCHW or NHWC (default: the model's metadata, else from the input's shape)")
	fs.StringVar(&f.Output, "output", "", `output holding the scores (default: "probabilities" when the model has it, else the first)`)
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
	setup, err := classify.ResolveSession(sess, f.Flags)
	if err != nil {
		sess.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	// A fixed-batch model is run on whole batches of its size (padded).
	if err := f.checkSetup(path, sess.Metadata(), setup, max(batch, setup.Batch)); err != nil {
		sess.Close()
		return nil, nil, err
	}
	return sess, setup, nil
}

// PredictOptions are the inputs of `resnetctl predict`.
type PredictOptions struct {
	Streams *Streams
	Model   string
	// Images are files, folders (searched recursively for image files)
	// and glob patterns.
	Images []string
	Top    int
	JSON   bool // JSON Lines: one object per image
	CSV    bool
	Input  inputFlags
}

// NewCmdPredict makes `resnetctl predict`; runF replaces the run function in tests.
func NewCmdPredict(s *Streams, runF func(*PredictOptions) error) *cobra.Command {
	opts := &PredictOptions{Streams: s}
	c := &cobra.Command{
		Use:   "predict [flags] MODEL.onnx IMAGE|FOLDER|GLOB...",
		Short: "Classify images with an ONNX model, top-k with class names",
		Long: `Classify images (JPEG, PNG, GIF, BMP, WebP) with any ResNet-family ONNX model:
ours, PyTorch's, the ONNX model zoo's, tf2onnx's (NHWC). Images are resized as
torchvision's evaluation transforms do (shorter side to size/0.875, then a centre
crop) for ImageNet-sized models, and straight to the input size for small ones
such as CIFAR's. Preprocessing and class names come from the model's metadata
when it has them (resnetctl exports do); otherwise from the flags.

Arguments may be files, folders (every image file below them, by extension) and
glob patterns. Images are read, preprocessed and run a batch at a time, and
each result is printed as soon as its batch has run. An image that cannot be
read is named on stderr and skipped; the exit code is then 1.

The input's layout (NCHW or NHWC) and channels (3, or 1 for gray models) come
from its shape, --layout overriding. A fixed-batch model is run in batches of
its size. An output that is already a distribution (the graph ends in Softmax)
is not normalised again.`,
		Example: `  resnetctl predict resnet20.onnx cat.png
  resnetctl predict --top 5 resnet50.onnx photo.jpg --labels imagenet --preprocess torch
  resnetctl predict --json model.onnx photos/ 'more/*.jpg'
  resnetctl predict --csv --top 1 model.onnx photos/ > predictions.csv`,
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
			if opts.JSON && opts.CSV {
				return usageErrorf(c, "--json and --csv: choose one")
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
	c.Flags().BoolVar(&opts.JSON, "json", false, "print JSON Lines: one object per image")
	c.Flags().BoolVar(&opts.CSV, "csv", false, "print CSV: a header, then one row per image")
	opts.Input.register(c)
	return c
}

// predictChunk is the most images predict decodes and runs at once: its
// memory is bounded by this, not by the number of images.
const predictChunk = 16

type predictResult struct {
	Image       string                `json:"image"`
	Predictions []classify.Prediction `json:"predictions"`
}

// imagePaths expands the arguments into image files: a folder gives every
// file below it with an image extension (in lexical order), a pattern
// with glob characters its matches, anything else itself (named in the
// error if it cannot be read). Only names are kept, never images.
func imagePaths(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		if st, err := os.Stat(a); err == nil && st.IsDir() {
			err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.IsDir() && imgproc.IsImageName(p) {
					out = append(out, p)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			continue
		} else if err == nil || !strings.ContainsAny(a, "*?[") {
			out = append(out, a) // a file, or missing: named when read
			continue
		}
		m, err := filepath.Glob(a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", printable.Name(a), err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%s: no file matches", printable.Name(a))
		}
		out = append(out, m...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no image files in %s", printable.Name(strings.Join(args, " ")))
	}
	return out, nil
}

func predictRun(c *cobra.Command, opts *PredictOptions) error {
	paths, err := imagePaths(opts.Images)
	if err != nil {
		return err
	}
	sess, setup, err := opts.Input.load(opts.Model, min(len(paths), predictChunk), opts.Streams.ErrOut)
	if err != nil {
		return err
	}
	defer sess.Close()
	weights := sess.NonFiniteWeights()
	chunk := predictChunk
	if setup.Batch > 0 { // whole runs of a fixed batch
		chunk = max(1, predictChunk/setup.Batch) * setup.Batch
	}
	pre := setup.Preprocessor()
	per := setup.C * setup.H * setup.W
	batch := make([]float32, min(chunk, len(paths))*per)
	out := newPredictWriter(opts, setup)
	failed := 0
	for lo := 0; lo < len(paths); lo += chunk {
		// Decode only this batch's images; a bad one is named and skipped.
		var names []string
		for _, p := range paths[lo:min(lo+chunk, len(paths))] {
			img, err := imgproc.DecodeFile(p)
			if err == nil {
				err = setup.Sample(pre, batch, len(names), img, printable.Name(p))
			}
			if err != nil {
				failed++
				fmt.Fprintf(opts.Streams.ErrOut, "resnetctl: %s\n", printable.Text(err.Error()))
				continue
			}
			names = append(names, p)
		}
		if len(names) == 0 {
			continue
		}
		scores, err := setup.Run(c.Context(), sess, batch, len(names))
		if err != nil {
			// The engine's errors name the node, not the file.
			return fmt.Errorf("%s: %w", opts.Model, err)
		}
		k := scores.Shape[1]
		for i, p := range names {
			preds, err := setup.Predict(printable.Name(p), scores.Float32[i*k:(i+1)*k], opts.Top, weights)
			if err != nil {
				return fmt.Errorf("%s: %w", opts.Model, err)
			}
			if err := out.write(predictResult{Image: p, Predictions: preds}); err != nil {
				return err
			}
		}
	}
	if err := out.flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images could not be read or preprocessed (named above)", failed, len(paths))
	}
	return nil
}

// predictWriter prints one record per image as it comes: text, JSON Lines
// or CSV.
type predictWriter struct {
	opts   *PredictOptions
	enc    *json.Encoder
	csv    *csv.Writer
	header bool
	// describe says where the setup came from, printed (text only) with
	// the first result, so that a failing run prints its error alone.
	describe []string
}

func newPredictWriter(opts *PredictOptions, setup *classify.Setup) *predictWriter {
	w := &predictWriter{opts: opts}
	switch {
	case opts.JSON:
		// Exact names; printable.JSON escapes what encoding/json leaves
		// raw (C1 controls, format characters).
		w.enc = json.NewEncoder(printable.JSON(opts.Streams.Out))
	case opts.CSV:
		w.csv = csv.NewWriter(opts.Streams.Out)
	default:
		w.describe = setup.Describe
	}
	return w
}

func (w *predictWriter) write(r predictResult) error {
	switch {
	case w.enc != nil:
		return w.enc.Encode(r)
	case w.csv != nil:
		if !w.header {
			w.header = true
			row := []string{"image"}
			for i := 1; i <= w.opts.Top; i++ {
				n := strconv.Itoa(i)
				row = append(row, "top"+n+"_index", "top"+n+"_label", "top"+n+"_probability")
			}
			if err := w.csv.Write(row); err != nil {
				return err
			}
		}
		// CSV cannot escape control characters: they are written as
		// printable.Text shows them (a terminal escape is never raw).
		row := []string{printable.Text(r.Image)}
		for _, p := range r.Predictions {
			row = append(row, strconv.Itoa(p.Index), printable.Text(p.Label), strconv.FormatFloat(p.Prob, 'g', 6, 64))
		}
		// A model with fewer classes than --top: empty cells keep the columns.
		for len(row) < 1+3*w.opts.Top {
			row = append(row, "")
		}
		return w.csv.Write(row)
	}
	// Names from the command line, the model's metadata or a labels file
	// are escaped (quoted) when they hold control characters, such as a
	// terminal escape sequence, or are not UTF-8; JSON escapes them itself.
	if w.describe != nil {
		fmt.Fprintf(w.opts.Streams.ErrOut, "%s: %s\n", printable.Name(w.opts.Model), printable.Text(strings.Join(w.describe, "; ")))
		w.describe = nil
	}
	out := w.opts.Streams.Out
	fmt.Fprintf(out, "%s\n", printable.Name(r.Image))
	width := 0
	for _, p := range r.Predictions {
		width = max(width, len(printable.Name(p.Label)))
	}
	for _, p := range r.Predictions {
		fmt.Fprintf(out, "  %d. %-*s  %6.2f%%\n", p.Rank, width, printable.Name(p.Label), 100*p.Prob)
	}
	return nil
}

func (w *predictWriter) flush() error {
	if w.csv != nil {
		w.csv.Flush()
		return w.csv.Error()
	}
	return nil
}
