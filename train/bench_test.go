package train

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/models"
)

// BenchmarkTrainStep measures training steps (forward, backward, SGD
// update) of a CIFAR ResNet-20 ($TRAIN_BENCH_MODEL names another) at batch
// $TRAIN_BENCH_BATCH (default 128)
// on $TRAIN_BENCH_THREADS threads (default 2), reporting img/s, CPU time
// per step and, from /proc/self/status, the peak RSS:
//
//	GOMAXPROCS=2 go test -run '^$' -bench TrainStep -benchtime 20x ./train/
func BenchmarkTrainStep(b *testing.B) {
	threads := 2
	if v, err := strconv.Atoi(os.Getenv("TRAIN_BENCH_THREADS")); err == nil && v > 0 {
		threads = v
	}
	batch := benchBatch()
	model := "resnet20"
	if m := os.Getenv("TRAIN_BENCH_MODEL"); m != "" {
		model = m
	}
	spec, err := models.Lookup(model)
	if err != nil {
		b.Fatal(err)
	}
	g, err := build.New(spec, build.Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	net, err := NewNet(g, batch, NetOptions{Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	opt, _ := NewOptimizer(OptimizerConfig{Name: SGD, LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4})
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, batch*3*32*32)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	labels := make([]int, batch)
	for i := range labels {
		labels[i] = r.IntN(10)
	}
	step := func() {
		if _, err := net.Step(x, labels); err != nil {
			b.Fatal(err)
		}
		if err := opt.Step(net.Params(), 0.01, 0.9); err != nil {
			b.Fatal(err)
		}
	}
	step() // warm-up: first-step allocations
	b.ReportAllocs()
	b.ResetTimer()
	t0, c0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		step()
	}
	el, cpu := time.Since(t0), cpuTime()-c0
	b.ReportMetric(float64(b.N*batch)/el.Seconds(), "img/s")
	// On a machine shared with other jobs wall time overstates the cost;
	// CPU time per step shows the work done.
	b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu-ms/step")
	if rss := peakRSS(); rss > 0 {
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	}
}

// benchBatch is $TRAIN_BENCH_BATCH, default 128.
func benchBatch() int {
	if v, err := strconv.Atoi(os.Getenv("TRAIN_BENCH_BATCH")); err == nil && v > 1 {
		return v
	}
	return 128
}

// peakRSS returns VmHWM from /proc/self/status in bytes (0 if unknown).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

var _ = runtime.NumCPU

// cpuTime is the CPU time (user + system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
