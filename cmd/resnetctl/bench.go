package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/checked"
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
	// Inputs are --input's sample shapes (without the batch dimension)
	// of an ONNX model's inputs, by name ("" for the only input).
	Inputs map[string][]int

	// Train measures training steps of Spec (--model) instead of inference
	// of the ONNX file Model; Steps is then the number of timed steps.
	Train bool
	Spec  models.Spec
	Steps int
}

// trainOnlyFlags are the flags that only mean something with --train: the
// spec flags and --steps. inferOnlyFlags are the inference bench's own.
var (
	trainOnlyFlags = []string{"steps", "model", "classes", "labels", "shortcut", "preact", "widen", "groups", "width-per-group", "zero-init-residual"}
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
median), and the peak resident memory of the process (VmHWM: loading the
model included). --json prints one object (median_ms, min_ms, max_ms,
mean_ms, images_per_s, peak_rss_mib, …) for scripts; 'make bench' compares
it with ONNX Runtime.

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
			if changed("input") {
				in, err := parseBenchInputs(flags.Input)
				if err != nil {
					return usageErrorf(c, "--input %s: %v", flags.Input, err)
				}
				opts.Inputs = in
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
	// One flag, two meanings: the catalog model's CxHxW with --train, an
	// ONNX input's sample shape without (inputs that are not images).
	c.Flags().Lookup("input").Usage = "with --train: input shape CxHxW (default: the model's, e.g. 3x32x32); " +
		"else the shape of one sample of the ONNX input, without the batch dimension (e.g. 20 for [N, 20]), NAME=SHAPE,… for several inputs"
	return c
}

// parseBenchInputs reads --input for inference: SHAPE, or NAME=SHAPE
// entries separated by commas; a shape is dimensions joined by x.
func parseBenchInputs(v string) (map[string][]int, error) {
	out := map[string][]int{}
	for _, e := range strings.Split(v, ",") {
		name, shape, ok := strings.Cut(e, "=")
		if !ok {
			name, shape = "", e
		}
		var dims []int
		for _, d := range strings.Split(shape, "x") {
			n, err := strconv.Atoi(strings.TrimSpace(d))
			if err != nil || n < 1 || n > maxSide {
				return nil, fmt.Errorf("dimension %q: want a whole number from 1 to %d", d, maxSide)
			}
			dims = append(dims, n)
		}
		out[name] = dims
	}
	return out, nil
}

type benchResult struct {
	Model   string `json:"model"`
	Engine  string `json:"engine"`
	Batch   int    `json:"batch"`
	Threads int    `json:"threads"`
	Iters   int    `json:"iters"`
	Input   []int  `json:"input"`
	// Runs is how many runs of the model's fixed batch make one timed
	// batch (padded at the end), 1 otherwise.
	Runs int `json:"runs"`
	timingStats
	ImagesPerS float64 `json:"images_per_s"`
	// PeakRSSMiB is VmHWM of /proc/self/status after the timed runs: the
	// peak resident memory of the whole process, loading the model
	// included (0 where unavailable), as bench --train reports it.
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// Int8 says how a quantized model ran: its convolutions on int8
	// kernels and which, the quantize-dequantize pairs left in float.
	Int8 *benchInt8 `json:"int8,omitempty"`
}

type benchInt8 struct {
	Convolutions int    `json:"convolutions"`
	Kernel       string `json:"kernel"`
	FloatQDQ     int    `json:"float_qdq"`
	Packed       int    `json:"packed_tensors"`
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

// benchShape is the shape of input in for one run of b rows: the declared
// one, --input's sample shape, and for a 4-D image input --size and the
// metadata's input_size filling dimensions that are not fixed.
func benchShape(opts *BenchOptions, md infer.Metadata, in infer.ValueInfo, b int) ([]int, error) {
	given, ok := opts.Inputs[in.Name]
	if !ok && len(md.Inputs) == 1 {
		given, ok = opts.Inputs[""]
	}
	if ok {
		if in.Shape != nil && len(in.Shape) != len(given)+1 {
			return nil, fmt.Errorf("--input %s: %d dimensions, input %s has %d after the batch (%v)", in.Name, len(given), in.Name, len(in.Shape)-1, in.Shape)
		}
		return append([]int{b}, given...), nil
	}
	if in.Shape == nil {
		return nil, fmt.Errorf("input %s declares no shape: give --input %s=D1xD2… (one sample, without the batch)", in.Name, in.Name)
	}
	shape := append([]int{b}, in.Shape[1:]...)
	if len(shape) == 4 {
		// Spatial dimensions: 2 and 3 (NCHW), or 1 and 2 when the last
		// looks like channels (NHWC).
		hw, c := []int{2, 3}, 1
		if ch := func(d int) bool { return d == 1 || d == 3 }; ch(shape[3]) && !ch(shape[1]) {
			hw, c = []int{1, 2}, 3
		}
		if opts.Size > 0 {
			shape[hw[0]], shape[hw[1]] = opts.Size, opts.Size
		}
		if pre, _ := md.Preprocessing(); pre != nil && len(pre.InputSize) == 3 {
			for i, d := range []int{c, hw[0], hw[1]} {
				if shape[d] < 1 {
					shape[d] = pre.InputSize[i]
				}
			}
		}
	}
	for _, d := range shape[1:] {
		if d < 1 {
			return nil, fmt.Errorf("input %s has shape %v with dimensions not fixed; give --size (images) or --input %s=D1xD2… (one sample, without the batch)", in.Name, in.Shape, in.Name)
		}
	}
	return shape, nil
}

func benchRun(c *cobra.Command, opts *BenchOptions) error {
	ctx := c.Context()
	sess, err := infer.Load(opts.Model, infer.Options{Threads: opts.Threads, Engine: opts.Engine})
	if err != nil {
		return err
	}
	defer sess.Close()
	md := sess.Metadata()
	// A fixed-batch model refuses any other batch: --batch images are
	// then ceil(batch/B) runs of B, and its own B when --batch is not given.
	runs, b0 := 1, opts.Batch
	if len(md.Inputs) > 0 && len(md.Inputs[0].Shape) > 0 && md.Inputs[0].Shape[0] > 0 {
		b0 = md.Inputs[0].Shape[0]
		if !c.Flags().Changed("batch") {
			opts.Batch = b0
		}
		runs = (opts.Batch + b0 - 1) / b0
	}
	r := rand.New(rand.NewPCG(1, 2))
	inputs, outputs := map[string]*infer.Tensor{}, map[string]*infer.Tensor{}
	var shape []int // the first input's, reported
	for i, in := range md.Inputs {
		sh, err := benchShape(opts, md, in, b0)
		if err != nil {
			return fmt.Errorf("%s: %w", opts.Model, err)
		}
		if i == 0 {
			shape = sh
		}
		n, ok := checked.Product(append([]int{4}, sh...)...)
		if len(sh) == 4 { // an image: its sides bounded too, naming where they came from
			src := "the declared input shape or metadata input_size"
			if opts.Size > 0 {
				src = "--size"
			}
			c, hw := sh[1], sh[2:]
			if ch := func(d int) bool { return d == 1 || d == 3 }; ch(sh[3]) && !ch(sh[1]) {
				c, hw = sh[3], sh[1:3]
			}
			if err := checkInputTensor(fmt.Sprintf("%s (%s, --batch)", opts.Model, src), sh[0], c, hw[0], hw[1]); err != nil {
				return err
			}
		}
		if budget := infer.DefaultMaxMemory(); !ok || int64(n) > budget {
			return fmt.Errorf("%s (input %s, --batch, --input): an input of %v float32 needs more than the memory budget of %d MiB", opts.Model, in.Name, sh, budget>>20)
		}
		switch in.DType {
		case infer.Float32:
			data := make([]float32, n/4)
			for i := range data {
				data[i] = float32(r.NormFloat64())
			}
			inputs[in.Name] = infer.NewFloat32(sh, data)
		case infer.Int64: // indices or token ids: zeros are always in range
			inputs[in.Name] = infer.NewInt64(sh, make([]int64, n/4))
		case infer.Float16: // fp16 exports; zeros time as any other value
			inputs[in.Name] = &infer.Tensor{Shape: sh, DType: infer.Float16, Float16: make([]uint16, n/4)}
		case infer.Uint8: // pixels, preprocessed in the graph
			data := make([]uint8, n/4)
			for i := range data {
				data[i] = uint8(r.Uint32())
			}
			inputs[in.Name] = &infer.Tensor{Shape: sh, DType: infer.Uint8, Uint8: data}
		default:
			return fmt.Errorf("%s: input %s is %v; bench feeds float32, float16, uint8 and int64 inputs", opts.Model, in.Name, in.DType)
		}
	}
	run := func() error {
		for range runs {
			if err := sess.RunInto(ctx, inputs, outputs); err != nil {
				return fmt.Errorf("%s: %w", opts.Model, err) // the engine's errors name the node, not the file
			}
		}
		return nil
	}
	for i := 0; i < opts.Warmup; i++ {
		if err := run(); err != nil {
			return err
		}
	}
	times := make([]float64, opts.Iters)
	for i := range times {
		t0 := time.Now()
		if err := run(); err != nil {
			return err
		}
		times[i] = float64(time.Since(t0).Nanoseconds()) / 1e6 // ns: tiny graphs run in under a microsecond
	}
	st := timingStatsOf(times)
	threads := benchThreads(opts.Threads)
	res := benchResult{
		Model: opts.Model, Engine: sess.Engine(), Batch: opts.Batch, Threads: threads, Iters: opts.Iters, Input: shape, Runs: runs,
		timingStats: st,
		ImagesPerS:  float64(opts.Batch) / (st.MedianMS / 1000), // padding not counted
		PeakRSSMiB:  float64(peakRSSBytes()) / (1 << 20),
	}
	if i8 := sess.Int8(); i8 != (infer.Int8Info{}) {
		res.Int8 = &benchInt8{Convolutions: i8.Convolutions, Kernel: i8.Kernel, FloatQDQ: i8.FloatQDQ, Packed: i8.Packed}
	}
	w := opts.Streams.Out
	if opts.JSON {
		return json.NewEncoder(w).Encode(res)
	}
	fmt.Fprintf(w, "%s (%s engine, %d threads), input %v, %d runs after %d warm-up\n", opts.Model, res.Engine, threads, shape, opts.Iters, opts.Warmup)
	if runs > 1 {
		padded := ""
		if opts.Batch%b0 != 0 {
			padded = " (the last padded)"
		}
		fmt.Fprintf(w, "fixed batch %d: each batch of %d is %d runs%s\n", b0, opts.Batch, runs, padded)
	}
	fmt.Fprintf(w, "latency per batch: median %.2f ms, min %.2f ms, max %.2f ms, mean %.2f ms\n", st.MedianMS, st.MinMS, st.MaxMS, st.MeanMS)
	fmt.Fprintf(w, "throughput: %.1f images/s\n", res.ImagesPerS)
	if res.PeakRSSMiB > 0 {
		fmt.Fprintf(w, "peak resident memory: %.1f MiB (VmHWM, whole process)\n", res.PeakRSSMiB)
	}
	if i8 := res.Int8; i8 != nil {
		kernel := i8.Kernel
		if kernel == "" {
			kernel = "none: this CPU lacks AVX-512 VNNI, the QDQ graph runs in float32"
		}
		fmt.Fprintf(w, "int8: %d convolutions on int8 kernels (%s), %d tensors between them as uint8, %d quantize-dequantize pairs in float32\n", i8.Convolutions, kernel, i8.Packed, i8.FloatQDQ)
	}
	return nil
}
