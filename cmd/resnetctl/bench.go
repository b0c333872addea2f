package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/resnetctl/resnetctl/infer"
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
}

// NewCmdBench makes `resnetctl bench`; runF replaces the run function in tests.
func NewCmdBench(s *Streams, runF func(*BenchOptions) error) *cobra.Command {
	opts := &BenchOptions{Streams: s}
	c := &cobra.Command{
		Use:   "bench [flags] MODEL.onnx",
		Short: "Measure inference latency and throughput",
		Long: `Measure how fast a model runs, in the spirit of onnxruntime_perf_test and
trtexec: random input at the model's size, --warmup runs, then --iters timed runs.
Prints median, min and max latency per batch and images per second (from the
median). --json prints one object (median_ms, min_ms, max_ms, mean_ms,
images_per_s, …) for scripts; 'make bench' compares it with ONNX Runtime.`,
		Example: `  resnetctl bench resnet50.onnx
  resnetctl bench resnet20.onnx --batch 128 --threads 2 --iters 20 --json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf(c, "bench takes one model (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if opts.Batch < 1 || opts.Iters < 1 || opts.Warmup < 0 || opts.Threads < 0 {
				return usageErrorf(c, "--batch and --iters must be at least 1, --warmup and --threads not negative")
			}
			opts.Model = args[0]
			if runF != nil {
				return runF(opts)
			}
			return benchRun(c, opts)
		},
	}
	fs := c.Flags()
	fs.IntVar(&opts.Batch, "batch", 1, "batch size")
	fs.IntVar(&opts.Threads, "threads", 0, "worker threads (default: all cores)")
	fs.IntVar(&opts.Iters, "iters", 20, "timed runs")
	fs.IntVar(&opts.Warmup, "warmup", 3, "untimed runs first")
	fs.IntVar(&opts.Size, "size", 0, "input side for models without a fixed input size")
	fs.StringVar(&opts.Engine, "engine", infer.EngineNative, "inference engine: native or gorgonnx")
	fs.BoolVar(&opts.JSON, "json", false, "print JSON")
	return c
}

type benchResult struct {
	Model      string  `json:"model"`
	Engine     string  `json:"engine"`
	Batch      int     `json:"batch"`
	Threads    int     `json:"threads"`
	Iters      int     `json:"iters"`
	Input      []int   `json:"input"`
	MedianMS   float64 `json:"median_ms"`
	MinMS      float64 `json:"min_ms"`
	MaxMS      float64 `json:"max_ms"`
	MeanMS     float64 `json:"mean_ms"`
	ImagesPerS float64 `json:"images_per_s"`
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
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]float32, shape[0]*shape[1]*shape[2]*shape[3])
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	inputs := map[string]*infer.Tensor{in.Name: infer.NewFloat32(shape, data)}
	outputs := map[string]*infer.Tensor{}
	for i := 0; i < opts.Warmup; i++ {
		if err := sess.RunInto(ctx, inputs, outputs); err != nil {
			return err
		}
	}
	times := make([]float64, opts.Iters)
	for i := range times {
		t0 := time.Now()
		if err := sess.RunInto(ctx, inputs, outputs); err != nil {
			return err
		}
		times[i] = float64(time.Since(t0).Microseconds()) / 1000
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	median := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	mean := 0.0
	for _, t := range times {
		mean += t / float64(len(times))
	}
	threads := opts.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	res := benchResult{
		Model: opts.Model, Engine: sess.Engine(), Batch: opts.Batch, Threads: threads, Iters: opts.Iters, Input: shape,
		MedianMS: median, MinMS: sorted[0], MaxMS: sorted[len(sorted)-1], MeanMS: mean,
		ImagesPerS: float64(opts.Batch) / (median / 1000),
	}
	w := opts.Streams.Out
	if opts.JSON {
		return json.NewEncoder(w).Encode(res)
	}
	fmt.Fprintf(w, "%s (%s engine, %d threads), input %v, %d runs after %d warm-up\n", opts.Model, res.Engine, threads, shape, opts.Iters, opts.Warmup)
	fmt.Fprintf(w, "latency per batch: median %.2f ms, min %.2f ms, max %.2f ms, mean %.2f ms\n", median, res.MinMS, res.MaxMS, mean)
	fmt.Fprintf(w, "throughput: %.1f images/s\n", res.ImagesPerS)
	return nil
}
