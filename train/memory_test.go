package train

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	G "gorgonia.org/gorgonia"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/models"
)

// TestMemoryPlanShares: the activation gradients of a ResNet-20 share a
// handful of buffers, and no two gradients that share memory are alive at
// the same time.
func TestMemoryPlanShares(t *testing.T) {
	spec, _ := models.Lookup("resnet20")
	g, _ := build.New(spec, build.Options{Seed: 1})
	net, err := NewNet(g, 4, NetOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	order, _ := G.Sort(net.g)
	slices.Reverse(order)
	pos := map[*G.Node]int{}
	for k, nd := range order {
		pos[nd] = k
	}
	// Lifetimes by node: from the writer to the last reader of its value
	// (or of a view of it).
	type life struct {
		first, last int
		mem         *float32
		size        int
	}
	lives := map[*gbuf]*life{}
	for _, nd := range order {
		if w, ok := nd.Op().(gradWriter); ok {
			writes, _ := w.gradBufs()
			for _, b := range writes {
				if slices.Contains(net.env.grads, b) {
					d := b.t.Float32s()
					lives[b] = &life{first: pos[nd], last: pos[nd], mem: &d[0], size: len(d)}
				}
			}
		}
	}
	var value func(nd *G.Node) *gbuf
	value = func(nd *G.Node) *gbuf {
		switch op := nd.Op().(type) {
		case gradWriter:
			_, v := op.gradBufs()
			return v
		case *reshapeGradOp, *reshapeOp:
			return value(net.env.children[nd][0])
		}
		return nil
	}
	for _, nd := range order {
		for _, c := range net.env.children[nd] {
			if l := lives[value(c)]; l != nil {
				l.last = max(l.last, pos[nd])
			}
		}
	}
	slabs := map[*float32][]*life{}
	for _, l := range lives {
		slabs[l.mem] = append(slabs[l.mem], l)
	}
	for _, ls := range slabs {
		for i, a := range ls {
			for _, b := range ls[i+1:] {
				if a.first <= b.last && b.first <= a.last {
					t.Errorf("gradients alive over [%d, %d] and [%d, %d] share memory", a.first, a.last, b.first, b.last)
				}
			}
		}
	}
	t.Logf("%d activation gradients in %d buffers", len(lives), len(slabs))
	if len(slabs)*3 > len(lives) {
		t.Errorf("%d gradients use %d buffers", len(lives), len(slabs))
	}
}

// TestOpTimes prints where a ResNet-20 training step at batch 128 spends
// its time, by op kind, when TRAIN_OP_TIMES is set (to the number of
// steps):
//
//	TRAIN_OP_TIMES=5 GOMAXPROCS=2 go test -run OpTimes -v ./train/
func TestOpTimes(t *testing.T) {
	var steps int
	if _, err := fmt.Sscan(os.Getenv("TRAIN_OP_TIMES"), &steps); err != nil || steps < 1 {
		t.Skip("set TRAIN_OP_TIMES=<steps> to print per-op timings")
	}
	const batch = 128
	spec, _ := models.Lookup("resnet20")
	g, _ := build.New(spec, build.Options{Seed: 1})
	threads := 2
	if v, err := strconv.Atoi(os.Getenv("TRAIN_BENCH_THREADS")); err == nil && v > 0 {
		threads = v
	}
	net, err := NewNet(g, batch, NetOptions{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	if _, err := net.Step(make([]float32, batch*3*32*32), make([]int, batch)); err != nil {
		t.Fatal(err)
	}
	order, _ := G.Sort(net.g)
	slices.Reverse(order)
	vals := map[*G.Node]G.Value{}
	times := map[string]time.Duration{}
	var total time.Duration
	for s := 0; s < steps; s++ {
		t0 := time.Now()
		net.packWeights()
		times["(weight packing)"] += time.Since(t0)
		for _, nd := range order {
			kids, ok := net.env.children[nd]
			if nd.Op() == nil || !ok {
				vals[nd] = nd.Value()
				continue
			}
			args := make([]G.Value, len(kids))
			for i, c := range kids {
				args[i] = vals[c]
			}
			t1 := time.Now()
			v, err := nd.Op().Do(args...)
			if err != nil {
				t.Fatal(err)
			}
			times[nd.Op().(interface{ basePtr() *base }).basePtr().kind] += time.Since(t1)
			vals[nd] = v
		}
		total += time.Since(t0)
	}
	kinds := make([]string, 0, len(times))
	for k := range times {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return times[kinds[i]] > times[kinds[j]] })
	for _, k := range kinds {
		fmt.Printf("%-20s %7.2f ms/step\n", k, times[k].Seconds()*1e3/float64(steps))
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("total %.1f ms/step (%.0f img/s); live heap %.0f MiB\n", total.Seconds()*1e3/float64(steps),
		float64(steps*batch)/total.Seconds(), float64(ms.HeapAlloc)/(1<<20))
}
