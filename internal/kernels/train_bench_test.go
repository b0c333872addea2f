package kernels

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestTrainLayerTimes prints, for the distinct convolution shapes of a CIFAR
// ResNet-20 at batch 128, the best time of Forward, BackwardData and
// BackwardFilter. It runs only when KERNELS_TRAIN_TIMES is set (to the
// number of runs):
//
//	KERNELS_TRAIN_TIMES=5 GOMAXPROCS=2 go test -run TrainLayerTimes -v ./internal/kernels/
func TestTrainLayerTimes(t *testing.T) {
	reps, _ := strconv.Atoi(os.Getenv("KERNELS_TRAIN_TIMES"))
	if reps <= 0 {
		t.Skip("set KERNELS_TRAIN_TIMES=<runs> to print per-layer timings")
	}
	pool := NewPool(0)
	defer pool.Close()
	const n = 128
	layers := []struct {
		name  string
		p     ConvParams
		count int // occurrences in ResNet-20
	}{
		{"conv1 3->16 32x32", trConv(3, 32, 16, 3, 1), 1},
		{"16->16 32x32", trConv(16, 32, 16, 3, 1), 6},
		{"16->32 s2", trConv(16, 32, 32, 3, 2), 1},
		{"32->32 16x16", trConv(32, 16, 32, 3, 1), 5},
		{"32->64 s2", trConv(32, 16, 64, 3, 2), 1},
		{"64->64 8x8", trConv(64, 8, 64, 3, 1), 5},
	}
	r := rand.New(rand.NewPCG(3, 4))
	var total, totalCPU [4]time.Duration
	for _, l := range layers {
		p := trConvNorm(l.p)
		x := trRand(r, n*p.InC*p.InH*p.InW)
		w := trRand(r, p.OutC*p.InC*p.KH*p.KW)
		dy := trRand(r, n*p.OutC*p.OutH()*p.OutW())
		c, err := NewConvTrain(p, AlgoAuto)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float32, len(dy))
		dx := make([]float32, len(x))
		dw := make([]float32, len(w))
		var best, cpu [4]time.Duration
		for rep := 0; rep <= reps; rep++ {
			for k, f := range []func(){
				func() { _ = c.SetWeights(w, nil) },
				func() { c.Forward(pool, n, x, out) },
				func() { c.BackwardData(pool, n, w, dy, nil, dx) },
				func() { c.BackwardFilter(pool, n, x, dy, dw, nil) },
			} {
				t0, c0 := time.Now(), trCPUTime()
				f()
				if d := time.Since(t0); rep > 0 && (best[k] == 0 || d < best[k]) {
					best[k] = d
				}
				if d := trCPUTime() - c0; rep > 0 && (cpu[k] == 0 || d < cpu[k]) {
					cpu[k] = d
				}
			}
		}
		flops := 2 * float64(n*p.OutC*p.OutH()*p.OutW()*p.InC*p.KH*p.KW)
		fmt.Printf("%-18s x%d  setw %5.2f ms  fwd %6.2f ms (cpu %6.2f)  bwd-data %6.2f ms (cpu %6.2f)  bwd-filter %6.2f ms (cpu %6.2f, %4.0f GF/s/core)\n",
			l.name, l.count, trMS(best[0]), trMS(best[1]), trMS(cpu[1]), trMS(best[2]), trMS(cpu[2]),
			trMS(best[3]), trMS(cpu[3]), flops/cpu[3].Seconds()/1e9)
		for k := range total {
			total[k] += time.Duration(l.count) * best[k]
			totalCPU[k] += time.Duration(l.count) * cpu[k]
		}
	}
	fmt.Printf("ResNet-20 convs, batch %d, %d threads: wall (cpu) ms: setw %.1f (%.1f), fwd %.1f (%.1f), bwd-data %.1f (%.1f), bwd-filter %.1f (%.1f)\n",
		n, pool.Threads(), trMS(total[0]), trMS(totalCPU[0]), trMS(total[1]), trMS(totalCPU[1]), trMS(total[2]), trMS(totalCPU[2]), trMS(total[3]), trMS(totalCPU[3]))
}

func trMS(d time.Duration) float64 { return d.Seconds() * 1e3 }

// trCPUTime is the CPU time (user + system) the process has used.
func trCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkConvTrainFilter16(b *testing.B) {
	pool := NewPool(0)
	defer pool.Close()
	const n = 128
	p := trConvNorm(trConv(16, 32, 16, 3, 1))
	r := rand.New(rand.NewPCG(3, 4))
	x := trRand(r, n*p.InC*p.InH*p.InW)
	w := trRand(r, p.OutC*p.InC*p.KH*p.KW)
	dy := trRand(r, n*p.OutC*p.OutH()*p.OutW())
	c, _ := NewConvTrain(p, AlgoAuto)
	dw := make([]float32, len(w))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.BackwardFilter(pool, n, x, dy, dw, nil)
	}
}

func BenchmarkConvTrainDataS2(b *testing.B) {
	pool := NewPool(0)
	defer pool.Close()
	const n = 128
	p := trConvNorm(trConv(16, 32, 32, 3, 2))
	r := rand.New(rand.NewPCG(3, 4))
	x := trRand(r, n*p.InC*p.InH*p.InW)
	w := trRand(r, p.OutC*p.InC*p.KH*p.KW)
	dy := trRand(r, n*p.OutC*p.OutH()*p.OutW())
	c, _ := NewConvTrain(p, AlgoAuto)
	_ = c.SetWeights(w, nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.BackwardData(pool, n, w, dy, nil, x)
	}
}

func BenchmarkBatchNormTrain(b *testing.B) {
	pool := NewPool(0)
	defer pool.Close()
	const n, c, h = 128, 16, 32
	r := rand.New(rand.NewPCG(3, 4))
	x := trRand(r, n*c*h*h)
	dy := trRand(r, n*c*h*h)
	out := make([]float32, len(x))
	dx := make([]float32, len(x))
	gamma, beta := trRand(r, c), trRand(r, c)
	dg, db := make([]float32, c), make([]float32, c)
	bn, _ := NewBatchNormTrain(n, c, h, h, 1e-5)
	sc := Shortcut{X: trRand(r, len(x)), C: c, H: h, W: h, Stride: 1}
	b.Run("forward", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			bn.Forward(pool, x, gamma, beta, sc, true, out)
		}
		b.SetBytes(int64(4 * 4 * len(x)))
	})
	b.Run("backward", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			bn.Backward(pool, x, gamma, out, dy, true, dg, db, nil, dx, Shortcut{})
		}
		b.SetBytes(int64(4 * 6 * len(x)))
	})
	b.Run("copy", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			copy(dx, x)
		}
		b.SetBytes(int64(4 * 2 * len(x)))
	})
}
