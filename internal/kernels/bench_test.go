package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the CPU time (user + system) this process has used. On a
// machine shared with other jobs, cpu-ms/op tracks the work a kernel does
// better than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPool returns the pool benchmarks run on: NumCPU threads, or
// $KERNELS_BENCH_THREADS if set (e.g. 1 to measure per-core efficiency).
// $KERNELS_BENCH_PATH selects a micro-kernel path (avx512, avx2, generic).
func benchPool() *Pool {
	if path := os.Getenv("KERNELS_BENCH_PATH"); path != "" {
		if err := SetKernelPath(path); err != nil {
			panic(err)
		}
	}
	n, _ := strconv.Atoi(os.Getenv("KERNELS_BENCH_THREADS"))
	return NewPool(n)
}

// Benchmarks. Run with GOMAXPROCS=2 on the 2-core target machine, e.g.
//
//	GOMAXPROCS=2 go test -run '^$' -bench . -benchtime 2s ./internal/kernels/
//
// Each reports GFLOP/s (2 flops per multiply-add) and allocations per op.

// resnetLayer is one convolution of a network, with the epilogue the
// runtime uses for it (BatchNorm folded into bias) and where its input and
// residual come from, so that activations flow through the caches as they
// do in the runtime.
type resnetLayer struct {
	name     string
	p        ConvParams
	residual bool // adds the block input (shortcut) before the ReLU
	relu     bool
	algo     ConvAlgo
	in, res  int // index of the layer whose output is the input / residual; -1: a separate buffer
}

func conv(inC, hw, outC, k, stride int) ConvParams {
	pad := (k - 1) / 2
	return ConvParams{InC: inC, InH: hw, InW: hw, OutC: outC, KH: k, KW: k, StrideH: stride, StrideW: stride,
		PadTop: pad, PadLeft: pad, PadBottom: pad, PadRight: pad}
}

// resnet50Layers lists the 53 convolutions of torchvision's ResNet-50 (v1.5,
// stride on the 3x3) at 224x224.
func resnet50Layers() []resnetLayer {
	ls := []resnetLayer{{name: "conv1", p: conv(3, 224, 64, 7, 2), relu: true, in: -1, res: -1}}
	in, hw := 64, 56
	x := -1 // block input: the max-pool output (a separate buffer) for layer1.0
	for s, st := range []struct{ width, blocks int }{{64, 3}, {128, 4}, {256, 6}, {512, 3}} {
		out := st.width * 4
		for b := 0; b < st.blocks; b++ {
			pre, stride := blockName(s, b)
			ohw := hw / stride
			c1 := len(ls)
			ls = append(ls,
				resnetLayer{name: pre + "conv1", p: conv(in, hw, st.width, 1, 1), relu: true, in: x, res: -1},
				resnetLayer{name: pre + "conv2", p: conv(st.width, hw, st.width, 3, stride), relu: true, in: c1, res: -1})
			short := x
			if b == 0 {
				short = len(ls)
				ls = append(ls, resnetLayer{name: pre + "downsample", p: conv(in, hw, out, 1, stride), in: x, res: -1})
			}
			ls = append(ls, resnetLayer{name: pre + "conv3", p: conv(st.width, ohw, out, 1, 1), residual: true, relu: true, in: c1 + 1, res: short})
			x = len(ls) - 1
			in, hw = out, ohw
		}
	}
	return ls
}

// blockName returns torchvision's name prefix of block b of stage s and
// its stride (2 for the first block of every stage but the first).
func blockName(s, b int) (string, int) {
	stride := 1
	if b == 0 && s > 0 {
		stride = 2
	}
	return fmt.Sprintf("layer%d.%d.", s+1, b), stride
}

// resnet18Layers lists the 20 convolutions of torchvision's ResNet-18 at
// 224x224 (basic blocks).
func resnet18Layers() []resnetLayer {
	ls := []resnetLayer{{name: "conv1", p: conv(3, 224, 64, 7, 2), relu: true, in: -1, res: -1}}
	in, hw := 64, 56
	x := -1
	for s, width := range []int{64, 128, 256, 512} {
		for b := 0; b < 2; b++ {
			pre, stride := blockName(s, b)
			ohw := hw / stride
			c1 := len(ls)
			ls = append(ls, resnetLayer{name: pre + "conv1", p: conv(in, hw, width, 3, stride), relu: true, in: x, res: -1})
			short := x
			if b == 0 && s > 0 {
				short = len(ls)
				ls = append(ls, resnetLayer{name: pre + "downsample", p: conv(in, hw, width, 1, stride), in: x, res: -1})
			}
			ls = append(ls, resnetLayer{name: pre + "conv2", p: conv(width, ohw, width, 3, 1), residual: true, relu: true, in: c1, res: short})
			x = len(ls) - 1
			in, hw = width, ohw
		}
	}
	return ls
}

// resnet20Layers lists the 19 convolutions of the CIFAR ResNet-20 (option A
// shortcuts need no convolution) at 32x32.
func resnet20Layers() []resnetLayer {
	ls := []resnetLayer{{name: "conv1", p: conv(3, 32, 16, 3, 1), relu: true, in: -1, res: -1}}
	in, hw := 16, 32
	x := 0
	for s, w := range []int{16, 32, 64} {
		for b := 0; b < 3; b++ {
			stride := 1
			if b == 0 && s > 0 {
				stride = 2
			}
			pre := fmt.Sprintf("layer%d.%d.", s+1, b)
			short := x
			if stride != 1 {
				short = -1 // option A: subsampled, zero-padded input (a separate buffer)
			}
			c1 := len(ls)
			ls = append(ls,
				resnetLayer{name: pre + "conv1", p: conv(in, hw, w, 3, stride), relu: true, in: x, res: -1},
				resnetLayer{name: pre + "conv2", p: conv(w, hw/stride, w, 3, 1), residual: true, relu: true, in: c1, res: short})
			x = len(ls) - 1
			in, hw = w, hw/stride
		}
	}
	return ls
}

func grouped(p ConvParams, g int) ConvParams {
	p.Group = g
	return p
}

func convFlops(p ConvParams, n int) float64 {
	return 2 * float64(n) * float64(p.OutC*p.OutH()*p.OutW()) * float64(p.InC/max(p.Group, 1)*p.KH*p.KW)
}

// preparedConv is a layer ready to run: packed conv and its buffers.
type preparedConv struct {
	l               resnetLayer
	c               *Conv
	x, res, out, ws []float32
}

func prepare(b *testing.B, ls []resnetLayer, n, threads int) []preparedConv {
	r := rand.New(rand.NewPCG(7, 8))
	pcs := make([]preparedConv, len(ls))
	for i, l := range ls {
		p := l.p
		// He-uniform weights keep chained activations in a realistic range.
		fanIn := p.InC / max(p.Group, 1) * p.KH * p.KW
		w := randSlice(r, p.OutC*fanIn)
		scale := float32(math.Sqrt(6 / float64(fanIn)))
		for i := range w {
			w[i] *= scale
		}
		c, err := NewConvAlgo(p, w, randSlice(r, p.OutC), l.algo)
		if err != nil {
			if b != nil {
				b.Fatal(err)
			}
			panic(err)
		}
		pc := preparedConv{l: l, c: c,
			out: make([]float32, n*p.OutC*p.OutH()*p.OutW()),
			ws:  make([]float32, c.WorkspaceSize(n, threads))}
		if l.in >= 0 {
			pc.x = pcs[l.in].out
		} else {
			pc.x = randSlice(r, n*p.InC*p.InH*p.InW)
		}
		if l.residual {
			if l.res >= 0 {
				pc.res = pcs[l.res].out
			} else {
				pc.res = randSlice(r, len(pc.out))
			}
		}
		if len(pc.x) != n*p.InC*p.InH*p.InW || (pc.res != nil && len(pc.res) != len(pc.out)) {
			panic(fmt.Sprintf("%s: chained buffer shape mismatch", l.name))
		}
		pcs[i] = pc
	}
	return pcs
}

func benchLayers(b *testing.B, ls []resnetLayer, n int) {
	pool := benchPool()
	defer pool.Close()
	pcs := prepare(b, ls, n, pool.Threads())
	var flops float64
	for _, l := range ls {
		flops += convFlops(l.p, n)
	}
	run := func() {
		for i := range pcs {
			pc := &pcs[i]
			pc.c.Forward(pool, n, pc.x, pc.res, pc.l.relu, pc.out, pc.ws)
		}
	}
	run() // warm up: first use of job objects and pool batches
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		run()
	}
	cpu := (cpuTime() - cpu0).Seconds() / float64(b.N)
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec*1e3, "ms/op")
	b.ReportMetric(cpu*1e3, "cpu-ms/op")
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
}

// BenchmarkResNet50Convs runs all 53 ResNet-50 convolutions at batch 1 in
// sequence (the number that matters for inference latency).
func BenchmarkResNet50Convs(b *testing.B) { benchLayers(b, resnet50Layers(), 1) }

// BenchmarkResNet20Convs runs all 19 CIFAR ResNet-20 convolutions at batch 128.
func BenchmarkResNet20Convs(b *testing.B) { benchLayers(b, resnet20Layers(), 128) }

// BenchmarkResNet50ConvsGEMM and BenchmarkResNet20ConvsGEMM are the same
// without Winograd.
func BenchmarkResNet50ConvsGEMM(b *testing.B) {
	benchLayers(b, withAlgo(resnet50Layers(), AlgoGEMM), 1)
}

func BenchmarkResNet20ConvsGEMM(b *testing.B) {
	benchLayers(b, withAlgo(resnet20Layers(), AlgoGEMM), 128)
}

func withAlgo(ls []resnetLayer, algo ConvAlgo) []resnetLayer {
	for i := range ls {
		ls[i].algo = algo
	}
	return ls
}

// BenchmarkConv times representative single layers.
func BenchmarkConv(b *testing.B) {
	cases := []struct {
		name string
		p    ConvParams
		n    int
	}{
		{"r50_stem_7x7s2_3-64_224", conv(3, 224, 64, 7, 2), 1},
		{"r50_3x3_64-64_56", conv(64, 56, 64, 3, 1), 1},
		{"r50_1x1_256-64_56", conv(256, 56, 64, 1, 1), 1},
		{"r50_1x1_64-256_56", conv(64, 56, 256, 1, 1), 1},
		{"r50_1x1s2_256-512_56", conv(256, 56, 512, 1, 2), 1},
		{"r50_1x1_512-128_28", conv(512, 28, 128, 1, 1), 1},
		{"r50_3x3_128-128_28", conv(128, 28, 128, 3, 1), 1},
		{"r50_3x3_256-256_14", conv(256, 14, 256, 3, 1), 1},
		{"r50_1x1_1024-256_14", conv(1024, 14, 256, 1, 1), 1},
		{"r50_3x3_512-512_7", conv(512, 7, 512, 3, 1), 1},
		{"r50_1x1_512-2048_7", conv(512, 7, 2048, 1, 1), 1},
		{"r20_3x3_16-16_32_b128", conv(16, 32, 16, 3, 1), 128},
		{"r20_3x3_32-32_16_b128", conv(32, 16, 32, 3, 1), 128},
		{"r20_3x3_64-64_8_b128", conv(64, 8, 64, 3, 1), 128},
		{"resnext_3x3_g32_128-128_56", grouped(conv(128, 56, 128, 3, 1), 32), 1},
		{"resnext_3x3_g32_256-256_28", grouped(conv(256, 28, 256, 3, 1), 32), 1},
		{"resnext_3x3_g32_512-512_14", grouped(conv(512, 14, 512, 3, 1), 32), 1},
		{"resnext_3x3_g32_1024-1024_7", grouped(conv(1024, 7, 1024, 3, 1), 32), 1},
		{"depthwise_3x3_256_28", grouped(conv(256, 28, 256, 3, 1), 256), 1},
	}
	for _, cs := range cases {
		for _, algo := range []ConvAlgo{AlgoAuto, AlgoGEMM} {
			name := cs.name
			if algo == AlgoGEMM {
				if !winoUsable(cs.p.normalized()) {
					continue
				}
				name += "_gemm"
			}
			b.Run(name, func(b *testing.B) {
				benchLayers(b, []resnetLayer{{name: cs.name, p: cs.p, relu: true, algo: algo, in: -1, res: -1}}, cs.n)
			})
		}
	}
}

// BenchmarkGemm times Gemm (A packed per call) at ResNet-like shapes.
func BenchmarkGemm(b *testing.B) {
	pool := benchPool()
	defer pool.Close()
	for _, s := range []struct{ m, n, k int }{
		{64, 3136, 576}, {256, 3136, 64}, {128, 784, 1152}, {256, 196, 2304}, {512, 49, 4608}, {2048, 49, 512}, {1000, 1, 2048}, {512, 512, 512},
	} {
		b.Run(fmt.Sprintf("m%d_n%d_k%d", s.m, s.n, s.k), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			a, bb, c := randSlice(r, s.m*s.k), randSlice(r, s.k*s.n), make([]float32, s.m*s.n)
			Gemm(pool, false, false, s.m, s.n, s.k, 1, a, s.k, bb, s.n, 0, c, s.n)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				Gemm(pool, false, false, s.m, s.n, s.k, 1, a, s.k, bb, s.n, 0, c, s.n)
			}
			b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkParallel measures the fork/join overhead of one Parallel call.
func BenchmarkParallel(b *testing.B) {
	p := benchPool()
	defer p.Close()
	var sink [16]int64
	fn := func(lo, hi int) { sink[lo*8%16] += int64(hi) }
	b.ReportAllocs()
	for b.Loop() {
		p.Parallel(p.Threads(), fn)
	}
}

// BenchmarkParallelSplit times a Parallel call whose ranges each take
// about 10 µs (independent float64 additions): on 2 threads it should take
// about half of what it takes with GOMAXPROCS=1 (-cpu 1,2). Before the pool
// spun while waiting, a worker that had gone to sleep was woken too late on
// the 2-vCPU VM to take its range, and 2 threads ran no faster than 1.
func BenchmarkParallelSplit(b *testing.B) {
	p := benchPool()
	defer p.Close()
	var sink [8][16]float64
	fn := func(lo, hi int) {
		for k := lo; k < hi; k++ {
			s := 0.0
			for i := 0; i < 10000; i++ {
				s += float64(i) * 1.0000001
			}
			sink[k%8][0] = s
		}
	}
	for b.Loop() {
		p.Parallel(p.Threads(), fn)
	}
}

// BenchmarkGemmFC times a fully connected layer at batch 8 the way ONNX
// Gemm stores it (weights [out, in], transB).
func BenchmarkGemmFC(b *testing.B) {
	pool := benchPool()
	defer pool.Close()
	m, n, k := 8, 1000, 2048
	r := rand.New(rand.NewPCG(1, 1))
	a, w, c := randSlice(r, m*k), randSlice(r, n*k), make([]float32, m*n)
	Gemm(pool, false, true, m, n, k, 1, a, k, w, k, 0, c, n)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Gemm(pool, false, true, m, n, k, 1, a, k, w, k, 0, c, n)
	}
	b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
