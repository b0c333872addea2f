package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/internal/atomicfile"
	"github.com/resnetctl/resnetctl/internal/printable"
	"github.com/spf13/cobra"
)

// EvaluateOptions are the inputs of `resnetctl evaluate`.
type EvaluateOptions struct {
	Streams   *Streams
	Model     string
	Data      string
	Split     string
	AutoSplit bool // --split not given: "test", else the only split
	Batch     int
	// Limit > 0 evaluates a seeded, class-balanced subset of that many
	// images (as train --limit chooses them).
	Limit int
	Seed  uint64
	Plot  string
	JSON  bool
	// TTA is classify.TTANone or classify.TTAFlip.
	TTA   string
	Input inputFlags
}

// NewCmdEvaluate makes `resnetctl evaluate`; runF replaces the run function in tests.
func NewCmdEvaluate(s *Streams, runF func(*EvaluateOptions) error) *cobra.Command {
	opts := &EvaluateOptions{Streams: s}
	c := &cobra.Command{
		Use:   "evaluate [flags] MODEL.onnx --data PATH",
		Short: "Measure a model's accuracy on a labelled data set",
		Long: `Run a model over a labelled data set and report top-1 and top-5 accuracy,
per-class accuracy and the confusion matrix (as text, and as a PNG with --plot).

--data takes CIFAR-10/100 in the official binary format (a folder, the release's
.tar.gz, or single .bin files) or image folders (split/class/*.jpg, a folder or a
.tar.gz read in place). The test split is used unless --split says otherwise.
Data classes are matched to the model's class names when both have them.
Preprocessing follows the same rules and flags as predict.

--tta flip evaluates every image as itself and mirrored left-right (the W axis of
the preprocessed input reversed) and averages the two softmax probability vectors
(probabilities, not logits); accuracy, ranks and the loss come from the average.
The loss reported is the mean cross-entropy −log p(true class) of the probabilities.`,
		Example: `  resnetctl evaluate resnet20.onnx --data ../shared/data/cifar10-jpeg.tar.gz
  resnetctl evaluate resnet20.onnx --data cifar-10-batches-bin --plot confusion.png
  resnetctl evaluate resnet50.onnx --data imagenet-val/ --split "" --labels imagenet --json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf(c, "evaluate takes one model (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if opts.Data == "" {
				return usageErrorf(c, "--data is required")
			}
			if err := checkIntFlag(c, "batch", opts.Batch, 1, maxBatch); err != nil {
				return err
			}
			if err := opts.Input.check(c); err != nil {
				return err
			}
			if opts.TTA != classify.TTANone && opts.TTA != classify.TTAFlip {
				return usageErrorf(c, "--tta %q: want none or flip", opts.TTA)
			}
			if opts.Limit < 0 {
				return usageErrorf(c, "--limit %d: must be positive (0: every image)", opts.Limit)
			}
			opts.Model = args[0]
			opts.AutoSplit = !c.Flags().Changed("split")
			if runF != nil {
				return runF(opts)
			}
			return evaluateRun(c, opts)
		},
	}
	fs := c.Flags()
	fs.StringVar(&opts.Data, "data", "", `data set: CIFAR binary folder/archive/.bin, image folders (folder or .tar.gz), or "sample" (the embedded CIFAR-10 sample)`)
	fs.StringVar(&opts.Split, "split", "test", `split to read ("" for class folders directly under --data)`)
	fs.IntVar(&opts.Batch, "batch", 64, "images per inference batch")
	fs.IntVar(&opts.Limit, "limit", 0, "evaluate N images only: a class-balanced random subset drawn from --seed, chosen before any image is decoded")
	fs.Uint64Var(&opts.Seed, "seed", 1, "seed of the --limit subset")
	fs.StringVar(&opts.Plot, "plot", "", "write the confusion matrix as a PNG to this file")
	fs.BoolVar(&opts.JSON, "json", false, "print JSON")
	fs.StringVar(&opts.TTA, "tta", classify.TTANone, "test-time augmentation: flip (average the softmax probabilities of each image and its left-right mirror image) or none")
	opts.Input.register(c)
	return c
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func evaluateRun(c *cobra.Command, opts *EvaluateOptions) error {
	ctx := c.Context()
	sess, setup, err := opts.Input.load(opts.Model, opts.Batch, opts.Streams.ErrOut)
	if err != nil {
		return err
	}
	defer sess.Close()
	weights := sess.NonFiniteWeights()
	bar := isTerminal(opts.Streams.ErrOut)
	start := time.Now()
	copts := cifar.Options{Transform: imageTransform(setup)}
	if bar {
		copts.Progress = func(done, total int64) {
			if done%256 == 0 || done == total {
				rate := float64(done) / time.Since(start).Seconds()
				fmt.Fprintf(opts.Streams.ErrOut, "\revaluating %d/%d images (%.0f img/s)   ", done, total, rate)
			}
		}
	}
	src, _, err := openLabelled(ctx, opts.Data, opts.Split, opts.AutoSplit, copts)
	if err != nil {
		return err
	}
	if opts.Limit > 0 && opts.Limit < src.Len {
		all := src.Len
		if err := src.Limit(opts.Limit, opts.Seed); err != nil {
			return err
		}
		fmt.Fprintf(opts.Streams.ErrOut, "--limit %d: a class-balanced random subset of the %d images (seed %d)\n", opts.Limit, all, opts.Seed)
	}
	// Map data labels to model outputs: by name when both sides have names.
	mapLabel := make([]int, len(src.Classes))
	nOut := len(setup.Classes)
	for i := range mapLabel {
		mapLabel[i] = i
	}
	if setup.Classes != nil {
		index := map[string]int{}
		for i, n := range setup.Classes {
			index[n] = i
		}
		for i, n := range src.Classes {
			j, ok := index[n]
			if !ok {
				return fmt.Errorf("data class %q is not one of the model's %d classes", n, len(setup.Classes))
			}
			mapLabel[i] = j
		}
	}
	var eval *classify.Eval
	per := setup.C * setup.H * setup.W
	batch := make([]float32, opts.Batch*per)
	var flipped []float32
	if opts.TTA == classify.TTAFlip {
		flipped = make([]float32, opts.Batch*per)
	}
	var sumLoss float64 // of −log p(label), p the (averaged) probabilities
	labels := make([]int, 0, opts.Batch)
	names := make([]string, 0, opts.Batch) // the batch's images, for errors
	flush := func() error {
		n := len(labels)
		if n == 0 {
			return nil
		}
		// Run cuts the batch into the model's fixed batch when it has one.
		scores, err := setup.Run(ctx, sess, batch, n)
		if err != nil {
			// The engine's errors name the node, not the file.
			return fmt.Errorf("%s: %w", opts.Model, err)
		}
		k := scores.Shape[1]
		if k == 0 { // nothing to rank: a symbolic class dimension came out 0
			return fmt.Errorf("%s: output %s has shape %v: the model has no classes", opts.Model, setup.Output, scores.Shape)
		}
		var mirrored []float32
		if flipped != nil {
			kept := append([]float32(nil), scores.Float32[:n*k]...)
			setup.FlipW(flipped, batch, n)
			fs, err := setup.Run(ctx, sess, flipped, n)
			if err != nil {
				return fmt.Errorf("%s: %w", opts.Model, err)
			}
			if len(fs.Shape) != 2 || fs.Shape[1] != k || len(fs.Float32) < n*k {
				return fmt.Errorf("%s: output %s has shape %v for the mirrored images, %v for the images", opts.Model, setup.Output, fs.Shape, scores.Shape)
			}
			mirrored = fs.Float32
			scores.Float32 = kept
		}
		if eval == nil {
			if nOut == 0 {
				nOut = k
			}
			if nOut != k {
				return fmt.Errorf("%d class names for a model with %d outputs (check --labels)", nOut, k)
			}
			eval = classify.NewEval(setup.Classes, k)
			if setup.Classes == nil {
				eval.Classes = src.Classes
			}
		}
		for i, l := range labels {
			row := scores.Float32[i*k : (i+1)*k]
			if err := classify.CheckOutput(names[i], row, weights); err != nil {
				return fmt.Errorf("%s: %w", opts.Model, err)
			}
			ranked := row
			var p []float64
			if mirrored != nil {
				mrow := mirrored[i*k : (i+1)*k]
				if err := classify.CheckOutput(names[i]+" (mirrored)", mrow, weights); err != nil {
					return fmt.Errorf("%s: %w", opts.Model, err)
				}
				p = classify.AverageProbs(setup.Probabilities, row, mrow)
				ranked = make([]float32, k)
				for j, v := range p {
					ranked[j] = float32(v)
				}
			} else {
				p = classify.Probs(row, setup.Probabilities)
			}
			if err := eval.Add(l, ranked); err != nil {
				return fmt.Errorf("%s: %w", opts.Data, err)
			}
			sumLoss += classify.NLL(p, l)
		}
		labels, names = labels[:0], names[:0]
		return nil
	}
	err = src.Walk(ctx, func(s cifar.Sample) error {
		name := printable.Name(s.Name) // for errors: quoted if not UTF-8 or holding control characters
		// In the model's layout and channels (gray: the luma).
		if err := setup.Write(batch, len(labels), s.Image, name); err != nil {
			return err
		}
		labels = append(labels, mapLabel[s.Label])
		names = append(names, name)
		if len(labels) == opts.Batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if bar {
		fmt.Fprintln(opts.Streams.ErrOut)
	}
	if err != nil {
		return err
	}
	if eval == nil {
		return fmt.Errorf("%s: no images", opts.Data)
	}
	elapsed := time.Since(start)
	if opts.Plot != "" {
		if err := atomicfile.Write(opts.Plot, 0o644, eval.WritePNG); err != nil {
			return err
		}
	}
	w := opts.Streams.Out
	if opts.JSON {
		acc, count := eval.PerClass()
		type class struct {
			Name string `json:"name"`
			// Accuracy is null for a class with no images: its NaN made
			// the encoder fail ("json: unsupported value: NaN").
			Accuracy *float64 `json:"accuracy"`
			Images   int      `json:"images"`
		}
		var classes []class
		for i := range acc {
			name := fmt.Sprintf("class %d", i)
			if i < len(eval.Classes) {
				name = eval.Classes[i]
			}
			c := class{Name: name, Images: count[i]}
			if count[i] > 0 {
				c.Accuracy = &acc[i]
			}
			classes = append(classes, c)
		}
		enc := json.NewEncoder(printable.JSON(w)) // see predict
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"model": opts.Model, "data": opts.Data, "split": src.Split, "images": eval.Total, "limit": opts.Limit, "seed": opts.Seed,
			"top1": eval.Top1Accuracy(), "top5": eval.Top5Accuracy(), "per_class": classes,
			"loss": sumLoss / float64(eval.Total), "tta": opts.TTA,
			"confusion": eval.Confusion, "seconds": elapsed.Seconds(),
		})
	}
	fmt.Fprintf(w, "model: %s\ndata: %s (split %q, %d classes)\n", printable.Name(opts.Model), printable.Name(opts.Data), src.Split, len(src.Classes))
	eval.WriteText(w)
	fmt.Fprintf(w, "\nloss (mean cross-entropy): %.4f", sumLoss/float64(eval.Total))
	if opts.TTA == classify.TTAFlip {
		fmt.Fprint(w, ", flip TTA: probabilities of each image and its mirror image averaged")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "\n%.1f s, %.0f images/s\n", elapsed.Seconds(), float64(eval.Total)/elapsed.Seconds())
	return nil
}
