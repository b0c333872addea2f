package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/internal/numfmt"
	"github.com/resnetctl/resnetctl/train"
	"github.com/spf13/cobra"
)

// benchTrainLR is the learning rate of the benchmark's SGD steps. It does
// not change the cost of a step; 0.01 keeps random-label training finite for
// as many steps as anyone times. tools/pytorch/bench_train.py uses the same.
const benchTrainLR = 0.01

// trainBenchResult is the JSON of `resnetctl bench --train`. The field names
// are those of the inference bench where they mean the same thing (per step
// instead of per run), and tools/pytorch/bench_train.py prints the same ones.
type trainBenchResult struct {
	Mode       string `json:"mode"`      // "train"
	Framework  string `json:"framework"` // "resnetctl"
	Model      string `json:"model"`
	Batch      int    `json:"batch"`
	Threads    int    `json:"threads"`
	GoMaxProcs int    `json:"gomaxprocs"`
	Steps      int    `json:"steps"`
	Warmup     int    `json:"warmup"`
	Input      []int  `json:"input"` // [N, C, H, W]
	Params     int64  `json:"params"`
	Optimizer  string `json:"optimizer"`
	// Wall time of one step (forward, backward, optimizer update).
	timingStats
	// ImagesPerS is batch / median step time; OverallImagesPerS is all
	// timed images over the whole timed wall time.
	ImagesPerS        float64 `json:"images_per_s"`
	OverallImagesPerS float64 `json:"overall_images_per_s"`
	// CPUMSPerStep is the process's user + system CPU time per timed step
	// (all threads, from getrusage; 0 where unavailable).
	CPUMSPerStep float64 `json:"cpu_ms_per_step"`
	// PeakRSSMiB is VmHWM of /proc/self/status: the peak resident memory of
	// the whole process (model building and warm-up included; 0 where
	// unavailable).
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// Go heap allocations per timed step (runtime.MemStats deltas).
	AllocsPerStep float64 `json:"allocs_per_step"`
	BytesPerStep  float64 `json:"bytes_per_step"`
	GCsPerStep    float64 `json:"gcs_per_step"`
}

func benchTrainRun(c *cobra.Command, opts *BenchOptions) error {
	ctx := c.Context()
	spec := opts.Spec
	if err := checkInputTensor(fmt.Sprintf("%s (--input, --batch)", opts.Model), opts.Batch, spec.Input.C, spec.Input.H, spec.Input.W); err != nil {
		return err
	}
	g, err := build.New(spec, build.Options{Seed: 1})
	if err != nil {
		return err
	}
	net, err := train.NewNet(g, opts.Batch, train.NetOptions{Threads: opts.Threads})
	if err != nil {
		return err
	}
	defer net.Close()
	rec, err := train.LookupRecipe("fast")
	if err != nil {
		return err
	}
	ocfg := rec.Optimizer
	opt, err := train.NewOptimizer(ocfg)
	if err != nil {
		return err
	}

	in := spec.Input
	shape := []int{opts.Batch, in.C, in.H, in.W}
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, opts.Batch*in.C*in.H*in.W)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	labels := make([]int, opts.Batch)
	for i := range labels {
		labels[i] = r.IntN(spec.Classes)
	}
	step := func() error {
		if _, err := net.Step(x, labels); err != nil {
			return err
		}
		return opt.Step(net.Params(), benchTrainLR, ocfg.Momentum)
	}
	for range opts.Warmup {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := step(); err != nil {
			return err
		}
	}

	times := make([]float64, opts.Steps)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0, c0 := time.Now(), processCPUTime()
	for i := range times {
		if err := ctx.Err(); err != nil {
			return err
		}
		ts := time.Now()
		if err := step(); err != nil {
			return err
		}
		times[i] = float64(time.Since(ts).Nanoseconds()) / 1e6
	}
	elapsed, cpu := time.Since(t0), processCPUTime()-c0
	runtime.ReadMemStats(&m1)

	st := timingStatsOf(times)
	threads := benchThreads(opts.Threads)
	n := float64(opts.Steps)
	res := trainBenchResult{
		Mode: "train", Framework: "resnetctl", Model: opts.Model,
		Batch: opts.Batch, Threads: threads, GoMaxProcs: runtime.GOMAXPROCS(0),
		Steps: opts.Steps, Warmup: opts.Warmup, Input: shape,
		Params:            g.Counts().Trainable,
		Optimizer:         fmt.Sprintf("SGD lr %g momentum %g nesterov %t weight_decay %g", benchTrainLR, ocfg.Momentum, ocfg.Nesterov, ocfg.WeightDecay),
		timingStats:       st,
		ImagesPerS:        float64(opts.Batch) / (st.MedianMS / 1000),
		OverallImagesPerS: n * float64(opts.Batch) / elapsed.Seconds(),
		CPUMSPerStep:      float64(cpu.Nanoseconds()) / 1e6 / n,
		PeakRSSMiB:        float64(peakRSSBytes()) / (1 << 20),
		AllocsPerStep:     float64(m1.Mallocs-m0.Mallocs) / n,
		BytesPerStep:      float64(m1.TotalAlloc-m0.TotalAlloc) / n,
		GCsPerStep:        float64(m1.NumGC-m0.NumGC) / n,
	}
	w := opts.Streams.Out
	if opts.JSON {
		return json.NewEncoder(w).Encode(res)
	}
	fmt.Fprintf(w, "training %s (%s params), input %v, %d threads, %d steps after %d warm-up\n",
		res.Model, numfmt.Commas(res.Params), shape, threads, opts.Steps, opts.Warmup)
	fmt.Fprintf(w, "step: %s\n", res.Optimizer)
	fmt.Fprintf(w, "time per step: median %.1f ms, min %.1f ms, max %.1f ms, mean %.1f ms\n", st.MedianMS, st.MinMS, st.MaxMS, st.MeanMS)
	fmt.Fprintf(w, "throughput: %.1f images/s (median step), %.1f images/s overall\n", res.ImagesPerS, res.OverallImagesPerS)
	if res.CPUMSPerStep > 0 {
		fmt.Fprintf(w, "CPU time: %.1f ms per step (whole process, all threads)\n", res.CPUMSPerStep)
	}
	if res.PeakRSSMiB > 0 {
		fmt.Fprintf(w, "peak RSS: %.1f MiB (whole process)\n", res.PeakRSSMiB)
	}
	fmt.Fprintf(w, "Go allocations: %.0f per step, %.2f MiB per step, %.2f GCs per step\n",
		res.AllocsPerStep, res.BytesPerStep/(1<<20), res.GCsPerStep)
	return nil
}

// peakRSSBytes is VmHWM from /proc/self/status (0 where there is none).
func peakRSSBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}
