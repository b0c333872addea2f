package kernels

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestLayerTimes prints, for every convolution of ResNet-18 and ResNet-50
// (batch 1) and
// ResNet-20 (batch 128), the fastest of several runs, and their sums. It
// runs only when KERNELS_LAYER_TIMES is set (to the number of runs), e.g.
//
//	KERNELS_LAYER_TIMES=20 GOMAXPROCS=2 go test -run LayerTimes -v ./internal/kernels/
//
// On a machine shared with other jobs the minimum over runs estimates the
// uncontended time far better than an average.
func TestLayerTimes(t *testing.T) {
	reps, _ := strconv.Atoi(os.Getenv("KERNELS_LAYER_TIMES"))
	if reps <= 0 {
		t.Skip("set KERNELS_LAYER_TIMES=<runs> to print per-layer timings")
	}
	pool := benchPool()
	defer pool.Close()
	for _, net := range []struct {
		name string
		ls   []resnetLayer
		n    int
	}{
		{"resnet18", resnet18Layers(), 1},
		{"resnet18-gemm", withAlgo(resnet18Layers(), AlgoGEMM), 1},
		{"resnet50", resnet50Layers(), 1},
		{"resnet50-gemm", withAlgo(resnet50Layers(), AlgoGEMM), 1},
		{"resnet20", resnet20Layers(), 128},
		{"resnet20-gemm", withAlgo(resnet20Layers(), AlgoGEMM), 128},
	} {
		pcs := prepare(nil, net.ls, net.n, pool.Threads())
		best := make([]time.Duration, len(pcs))
		for r := 0; r <= reps; r++ {
			for i := range pcs {
				pc := &pcs[i]
				t0 := time.Now()
				pc.c.Forward(pool, net.n, pc.x, pc.res, pc.l.relu, pc.out, pc.ws)
				if d := time.Since(t0); r > 0 && (best[i] == 0 || d < best[i]) {
					best[i] = d
				}
			}
		}
		var total time.Duration
		var flops float64
		for i, pc := range pcs {
			total += best[i]
			f := convFlops(pc.l.p, net.n)
			flops += f
			if testing.Verbose() {
				fmt.Printf("%-14s %-22s %-9v %8.3f ms %7.1f GFLOP/s\n", net.name, pc.l.name, pc.c.Algo(net.n), best[i].Seconds()*1e3, f/best[i].Seconds()/1e9)
			}
		}
		fmt.Printf("%-14s threads=%d batch=%d: sum of per-layer minima %.2f ms, %.1f GFLOP/s (direct-conv FLOPs)\n",
			net.name, pool.Threads(), net.n, total.Seconds()*1e3, flops/total.Seconds()/1e9)
	}
}

// TestWinoVsGEMM times, alternating, every Winograd-eligible convolution of
// ResNet-18 and ResNet-50 at batch 1 (and ResNet-20 at batch 128) with
// Winograd and with the GEMM, the fastest of several runs each: the
// measurements behind winoMinTiles. It runs only when KERNELS_WINO_AB is
// set (to the number of runs), e.g.
//
//	KERNELS_WINO_AB=40 GOMAXPROCS=2 go test -run WinoVsGEMM -v ./internal/kernels/
func TestWinoVsGEMM(t *testing.T) {
	reps, _ := strconv.Atoi(os.Getenv("KERNELS_WINO_AB"))
	if reps <= 0 {
		t.Skip("set KERNELS_WINO_AB=<runs> to print per-layer timings")
	}
	pool := benchPool()
	defer pool.Close()
	for _, net := range []struct {
		name string
		ls   []resnetLayer
		n    int
	}{
		{"resnet18", resnet18Layers(), 1},
		{"resnet50", resnet50Layers(), 1},
		{"resnet20", resnet20Layers(), 128},
	} {
		var ls []resnetLayer
		for _, l := range net.ls {
			if winoUsable(l.p.normalized()) && l.p.InC >= 16 && l.p.OutC >= 16 {
				l.in, l.res = -1, -1
				ls = append(ls, l)
			}
		}
		pw := prepare(nil, withAlgo(slices.Clone(ls), AlgoWinograd), net.n, pool.Threads())
		pg := prepare(nil, withAlgo(slices.Clone(ls), AlgoGEMM), net.n, pool.Threads())
		var sw, sg time.Duration
		for i := range ls {
			bw, bg := time.Duration(0), time.Duration(0)
			for r := 0; r <= reps; r++ {
				for k, pc := range []*preparedConv{&pw[i], &pg[i]} {
					t0 := time.Now()
					pc.c.Forward(pool, net.n, pc.x, nil, pc.l.relu, pc.out, pc.ws)
					d := time.Since(t0)
					b := &bw
					if k == 1 {
						b = &bg
					}
					if r > 0 && (*b == 0 || d < *b) {
						*b = d
					}
				}
			}
			sw += bw
			sg += bg
			p := ls[i].p
			tiles := net.n * ((p.OutH() + 3) / 4) * ((p.OutW() + 3) / 4)
			fmt.Printf("%-9s %-18s %4d-%-4d %3dx%-3d tiles %5d  winograd %7.3f ms  gemm %7.3f ms  gemm/wino %.2f\n",
				net.name, ls[i].name, p.InC, p.OutC, p.InH, p.InW, tiles, bw.Seconds()*1e3, bg.Seconds()*1e3, bg.Seconds()/bw.Seconds())
		}
		fmt.Printf("%-9s sum: winograd %.2f ms, gemm %.2f ms\n", net.name, sw.Seconds()*1e3, sg.Seconds()*1e3)
	}
}
