package kernels

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestPoolParallel(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := NewPool(threads)
		if p.Threads() != threads {
			t.Fatalf("Threads() = %d, want %d", p.Threads(), threads)
		}
		for _, n := range []int{0, 1, 2, 5, 100} {
			hits := make([]int32, n)
			var calls atomic.Int32
			p.Parallel(n, func(lo, hi int) {
				calls.Add(1)
				for i := lo; i < hi; i++ {
					atomic.AddInt32(&hits[i], 1)
				}
			})
			for i, h := range hits {
				if h != 1 {
					t.Fatalf("threads %d n %d: index %d covered %d times", threads, n, i, h)
				}
			}
			if want := min(n, threads); int(calls.Load()) != want {
				t.Fatalf("threads %d n %d: %d calls, want %d", threads, n, calls.Load(), want)
			}
		}
		p.Close()
		p.Close() // second Close is a no-op
	}
	var nilPool *Pool
	if nilPool.Threads() != 1 {
		t.Fatal("nil pool Threads() != 1")
	}
	ran := false
	nilPool.Parallel(3, func(lo, hi int) { ran = lo == 0 && hi == 3 })
	if !ran {
		t.Fatal("nil pool did not run fn(0, 3)")
	}
	nilPool.Close()
}

// TestPoolConcurrentAndNested runs Parallel from several goroutines at once
// and from inside Parallel (the caller helps with queued work, so this must
// not deadlock).
func TestPoolConcurrentAndNested(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	var wg sync.WaitGroup
	var total atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := 0; it < 50; it++ {
				p.Parallel(4, func(lo, hi int) {
					p.Parallel(3, func(lo2, hi2 int) {
						total.Add(int64((hi - lo) * (hi2 - lo2)))
					})
				})
			}
		}()
	}
	wg.Wait()
	if want := int64(8 * 50 * 4 * 3); total.Load() != want {
		t.Fatalf("total = %d, want %d", total.Load(), want)
	}
}

func TestPoolNoAllocs(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	var sink atomic.Int64
	fn := func(lo, hi int) { sink.Add(int64(hi - lo)) }
	p.Parallel(2, fn)
	if a := testing.AllocsPerRun(100, func() { p.Parallel(2, fn) }); a != 0 {
		t.Errorf("Parallel allocates %v per call", a)
	}
}

// TestSteadyStateNoAllocs checks that Conv.Forward, Gemm and the simple
// kernels do not allocate once warmed up.
func TestSteadyStateNoAllocs(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	prm := ConvParams{InC: 16, InH: 20, InW: 20, OutC: 32, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}
	c, err := NewConv(prm, make([]float32, 32*16*9), make([]float32, 32))
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 2*16*400)
	out := make([]float32, 2*32*400)
	res := make([]float32, len(out))
	ws := make([]float32, c.WorkspaceSize(2, p.Threads()))
	a, b, cc := make([]float32, 64*64), make([]float32, 64*300), make([]float32, 64*300)
	pp := Pool2DParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}
	pout := make([]float32, 2*32*100)
	scale := make([]float32, 32)
	run := func() {
		c.Forward(p, 2, x, res, true, out, ws)
		Gemm(p, false, false, 64, 300, 64, 1, a, 64, b, 300, 0, cc, 300)
		MaxPool2D(p, pp, 2, 32, 20, 20, out, pout)
		AvgPool2D(p, pp, 2, 32, 20, 20, out, pout)
		BatchNorm(p, 2, 32, 400, out, scale, scale, true, out)
		ReLU(p, out, out)
		Add(p, out, res, true, out)
		GlobalAvgPool(p, 2, 32, 400, out, pout)
	}
	run()
	if a := testing.AllocsPerRun(20, run); a != 0 {
		t.Errorf("steady state allocates %v per run", a)
	}
}

// TestPoolPanicInWorker: a panic raised in a range running on a worker
// goroutine (which no recover of the caller could catch) comes back to
// Parallel's caller as a *TaskPanic, after every range has finished, and
// the pool keeps working. The caller's own range waits until the other
// range has started, so the panic is on a worker for sure.
func TestPoolPanicInWorker(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	for round := range 3 {
		started := make(chan struct{})
		var finished atomic.Int32
		got := func() (r any) {
			defer func() { r = recover() }()
			p.Parallel(2, func(lo, hi int) {
				defer finished.Add(1)
				if lo == 0 {
					<-started // the other range runs elsewhere: on the worker
					return
				}
				close(started)
				var s []int
				_ = s[lo+5] // an index out of range, as a hostile geometry would cause
			})
			return nil
		}()
		tp, ok := got.(*TaskPanic)
		if !ok {
			t.Fatalf("round %d: Parallel's caller recovered %#v, want a *TaskPanic", round, got)
		}
		if !strings.Contains(tp.Error(), "index out of range") || !strings.Contains(string(tp.Stack), "TestPoolPanicInWorker") {
			t.Errorf("round %d: %v, stack:\n%s", round, tp, tp.Stack)
		}
		if n := finished.Load(); n != 2 {
			t.Errorf("round %d: Parallel returned with %d of 2 ranges finished", round, n)
		}
		// The pool still works, on both threads.
		var sum atomic.Int64
		p.Parallel(100, func(lo, hi int) { sum.Add(int64(hi - lo)) })
		if sum.Load() != 100 {
			t.Fatalf("round %d: after the panic, Parallel covered %d of 100", round, sum.Load())
		}
	}
	// A panic in the caller's own range is re-raised the same way, once the
	// worker's range is done.
	got := func() (r any) {
		defer func() { r = recover() }()
		p.Parallel(2, func(lo, hi int) {
			if lo == 0 {
				panic("caller's range")
			}
		})
		return nil
	}()
	if tp, ok := got.(*TaskPanic); !ok || tp.Value != "caller's range" {
		t.Errorf("caller's range panic: recovered %#v", got)
	}
}
