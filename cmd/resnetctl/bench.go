package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/models"
	"github.com/spf13/cobra"
)

// BenchOptions are the inputs of `resnetctl bench`.
type BenchOptions struct {
	Streams *Streams
	Model   string
	Batch   int
	Threads int
	Iters   int
	Warmup  int
	Size    int
	Engine  string
	JSON    bool

	// Train measures training steps of Spec (--model) instead of inference
	// of the ONNX file Model; Steps is then the number of timed steps.
	Train bool
	Spec  models.Spec
	Steps int
}

// trainOnlyFlags are the flags that only mean something with --train: the
// spec flags and --steps. inferOnlyFlags are the inference bench's own.
var (
	trainOnlyFlags = []string{"steps", "model", "classes", "input", "labels", "shortcut", "preact", "widen", "groups", "width-per-group", "zero-init-residual"}
	inferOnlyFlags = []string{"iters", "size", "engine"}
)

// NewCmdBench makes `resnetctl bench`; runF replaces the run function in tests.
func NewCmdBench(s *Streams, runF func(*BenchOptions) error) *cobra.Command {
	opts := &BenchOptions{Streams: s}
	var flags specFlags
	c := &cobra.Command{
		Use:   "bench [flags] MODEL.onnx | bench --train --model NAME [flags]",
		Short: "Measure inference or training speed",
		Long: `Measure how fast a model runs, in the spirit of onnxruntime_perf_test and
trtexec: random input at the model's size, --warmup runs, then --iters timed runs.
Prints median, min and max latency per batch and images per second (from the
median). --json prints one object (median_ms, min_ms, max_ms, mean_ms,
images_per_s, …) for scripts; 'make bench' compares it with ONNX Runtime.

With --train, no ONNX file: the catalog model --model (resnetN for any CIFAR
depth 6n+2; the spec flags of 'resnetctl summary' apply) is built with seed 1
and trained on seeded random images and labels at --batch (default 128):
--warmup untimed steps, then --steps timed ones. A step is what the fast
recipe does per batch: forward, cross-entropy, backward and an SGD update
with Nesterov momentum 0.9 and weight decay 5e-4. Prints images per second
(from the median step and over all timed steps), milliseconds per step, CPU
milliseconds per step (user + system time of the whole process, all
threads), the peak resident memory (VmHWM: the whole process, warm-up and
model building included) and the Go heap allocations per step;
'make bench-train' compares it with PyTorch.`,
		Example: `  resnetctl bench resnet50.onnx
  resnetctl bench resnet20.onnx --batch 128 --threads 2 --iters 20 --json
  resnetctl bench --train --model resnet20
  resnetctl bench --train --model resnet56 --batch 128 --threads 2 --steps 20 --warmup 3 --json`,
		Args: func(c *cobra.Command, args []string) error {
			if opts.Train {
				if len(args) != 0 {
					return usageErrorf(c, "bench --train takes no MODEL.onnx (got %q); give the catalog model with --model", args[0])
				}
				return nil
			}
			if len(args) != 1 {
				return usageErrorf(c, "bench takes one model (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			changed := c.Flags().Changed
			if opts.Train {
				for _, f := range inferOnlyFlags {
					if changed(f) {
						return usageErrorf(c, "--%s is for inference; bench --train takes --steps, --warmup, --batch and --threads", f)
					}
				}
				if !changed("model") {
					return usageErrorf(c, "bench --train needs --model (a catalog model such as resnet20, see 'resnetctl models')")
				}
				if !changed("batch") {
					opts.Batch = 128
				}
				if opts.Batch < 2 || opts.Steps < 1 || opts.Warmup < 0 || opts.Threads < 0 {
					return usageErrorf(c, "bench --train: --batch must be at least 2 (BatchNorm), --steps at least 1, --warmup and --threads not negative")
				}
				if err := checkBenchFlags(c, opts); err != nil {
					return err
				}
				spec, err := flags.resolve(c)
				if err != nil {
					return err
				}
				opts.Spec, opts.Model = spec, flags.Model
				if runF != nil {
					return runF(opts)
				}
				return benchTrainRun(c, opts)
			}
			for _, f := range trainOnlyFlags {
				if changed(f) {
					return usageErrorf(c, "--%s needs --train (inference benchmarks an ONNX file)", f)
				}
			}
			if opts.Batch < 1 || opts.Iters < 1 || opts.Warmup < 0 || opts.Threads < 0 {
				return usageErrorf(c, "--batch and --iters must be at least 1, --warmup and --threads not negative")
			}
			if err := checkBenchFlags(c, opts); err != nil {
				return err
			}
			opts.Model = args[0]
			if runF != nil {
				return runF(opts)
			}
			return benchRun(c, opts)
		},
	}
	fs := c.Flags()
	fs.IntVar(&opts.Batch, "batch", 1, "batch size (with --train the default is 128)")
	fs.IntVar(&opts.Threads, "threads", 0, "worker threads (default: all cores)")
	fs.IntVar(&opts.Iters, "iters", 20, "timed runs")
	fs.IntVar(&opts.Warmup, "warmup", 3, "untimed runs (or training steps) first")
	fs.IntVar(&opts.Size, "size", 0, "input side for models without a fixed input size")
	fs.StringVar(&opts.Engine, "engine", infer.EngineNative, "inference engine: native or gorgonnx")
	fs.BoolVar(&opts.JSON, "json", false, "print JSON")
	fs.BoolVar(&opts.Train, "train", false, "measure training steps of --model instead of inference of MODEL.onnx")
	fs.IntVar(&opts.Steps, "steps", 20, "timed training steps (with --train)")
	flags.register(c, "")
	return c
}

type benchResult struct {
	Model   string `json:"model"`
	Engine  string `json:"engine"`
	Batch   int    `json:"batch"`
	Threads int    `json:"threads"`
	Iters   int    `json:"iters"`
	Input   []int  `json:"input"`
	timingStats
	ImagesPerS float64 `json:"images_per_s"`
}

// timingStats summarizes timed runs, in milliseconds (its fields are
// flattened into the JSON of the results that embed it).
type timingStats struct {
	MedianMS float64 `json:"median_ms"`
	MinMS    float64 `json:"min_ms"`
	MaxMS    float64 `json:"max_ms"`
	MeanMS   float64 `json:"mean_ms"`
}

// timingStatsOf summarizes ms, the times of the runs in milliseconds (at
// least one); the median of an even count is the mean of the middle two.
func timingStatsOf(ms []float64) timingStats {
	sorted := slices.Clone(ms)
	slices.Sort(sorted)
	median := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	mean := 0.0
	for _, t := range ms {
		mean += t / float64(len(ms))
	}
	return timingStats{MedianMS: median, MinMS: sorted[0], MaxMS: sorted[len(sorted)-1], MeanMS: mean}
}

// checkBenchFlags bounds the flags that size allocations (the input
// batch, the list of timings, the worker pool).
func checkBenchFlags(c *cobra.Command, opts *BenchOptions) error {
	if err := checkIntFlag(c, "batch", opts.Batch, 1, maxBatch); err != nil {
		return err
	}
	if err := checkThreads(c, opts.Threads); err != nil {
		return err
	}
	if opts.Train {
		return checkIntFlag(c, "steps", opts.Steps, 1, maxIters)
	}
	if err := checkIntFlag(c, "iters", opts.Iters, 1, maxIters); err != nil {
		return err
	}
	return checkIntFlag(c, "size", opts.Size, 0, maxSide)
}

// benchThreads is the thread count a run with --threads n uses (0: one
// per CPU).
func benchThreads(n int) int {
	if n == 0 {
		return runtime.NumCPU()
	}
	return n
}

func benchRun(c *cobra.Command, opts *BenchOptions) error {
	ctx := c.Context()
	sess, err := infer.Load(opts.Model, infer.Options{Threads: opts.Threads, Engine: opts.Engine})
	if err != nil {
		return err
	}
	defer sess.Close()
	md := sess.Metadata()
	if len(md.Inputs) != 1 || len(md.Inputs[0].Shape) != 4 {
		return fmt.Errorf("%s: bench needs one [N, C, H, W] input", opts.Model)
	}
	in := md.Inputs[0]
	shape := []int{opts.Batch, in.Shape[1], in.Shape[2], in.Shape[3]}
	if opts.Size > 0 {
		shape[2], shape[3] = opts.Size, opts.Size
	}
	if pre, _ := md.Preprocessing(); pre != nil && len(pre.InputSize) == 3 {
		for i := 1; i < 4; i++ {
			if shape[i] < 1 {
				shape[i] = pre.InputSize[i-1]
			}
		}
	}
	if shape[1] < 1 || shape[2] < 1 || shape[3] < 1 {
		return fmt.Errorf("%s: input size %v is not fixed; give --size", opts.Model, shape[1:])
	}
	src := "the declared input shape or metadata input_size"
	if opts.Size > 0 {
		src = "--size"
	}
	if err := checkInputTensor(fmt.Sprintf("%s (%s, --batch)", opts.Model, src), shape[0], shape[1], shape[2], shape[3]); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]float32, shape[0]*shape[1]*shape[2]*shape[3])
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	inputs := map[string]*infer.Tensor{in.Name: infer.NewFloat32(shape, data)}
	outputs := map[string]*infer.Tensor{}
	for i := 0; i < opts.Warmup; i++ {
		if err := sess.RunInto(ctx, inputs, outputs); err != nil {
			return fmt.Errorf("%s: %w", opts.Model, err) // the engine's errors name the node, not the file
		}
	}
	times := make([]float64, opts.Iters)
	for i := range times {
		t0 := time.Now()
		if err := sess.RunInto(ctx, inputs, outputs); err != nil {
			return fmt.Errorf("%s: %w", opts.Model, err) // the engine's errors name the node, not the file
		}
		times[i] = float64(time.Since(t0).Microseconds()) / 1000
	}
	st := timingStatsOf(times)
	threads := benchThreads(opts.Threads)
	res := benchResult{
		Model: opts.Model, Engine: sess.Engine(), Batch: opts.Batch, Threads: threads, Iters: opts.Iters, Input: shape,
		timingStats: st,
		ImagesPerS:  float64(opts.Batch) / (st.MedianMS / 1000),
	}
	w := opts.Streams.Out
	if opts.JSON {
		return json.NewEncoder(w).Encode(res)
	}
	fmt.Fprintf(w, "%s (%s engine, %d threads), input %v, %d runs after %d warm-up\n", opts.Model, res.Engine, threads, shape, opts.Iters, opts.Warmup)
	fmt.Fprintf(w, "latency per batch: median %.2f ms, min %.2f ms, max %.2f ms, mean %.2f ms\n", st.MedianMS, st.MinMS, st.MaxMS, st.MeanMS)
	fmt.Fprintf(w, "throughput: %.1f images/s\n", res.ImagesPerS)
	return nil
}
