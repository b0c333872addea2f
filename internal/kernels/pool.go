package kernels

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is a persistent pool of worker goroutines used by every kernel in this
// package to spread work over CPU cores.
//
// A nil *Pool is valid and runs everything on the calling goroutine. A Pool
// may be shared by several goroutines calling Parallel (directly or through
// kernels) at the same time; their work items are queued on the same workers
// and a waiting caller helps to run queued items, so nested calls cannot
// deadlock.
type Pool struct {
	threads int
	work    chan poolItem
	done    sync.WaitGroup
	closed  atomic.Bool
	free    freeList[poolBatch]
}

// poolItem is one contiguous range of a Parallel call, queued for a worker.
type poolItem struct {
	b      *poolBatch
	lo, hi int
}

// poolBatch tracks one Parallel call: the function and the number of queued
// ranges still running. Batches are recycled through Pool.free.
type poolBatch struct {
	fn      func(lo, hi int)
	pending atomic.Int32
	fin     chan struct{} // receives exactly one token when pending reaches 0
	// panicked is the first panic of the batch's ranges, re-raised by
	// Parallel on its caller's goroutine once every range has finished.
	panicked atomic.Pointer[TaskPanic]
}

// TaskPanic is what Parallel panics with, on its caller's goroutine, when
// fn panicked in one of the ranges (on a worker or on the caller itself).
// A panic on a worker goroutine cannot be recovered by anyone else, so
// it would end the process; caught there and handed to the caller, it
// reaches the caller's recover (infer.Session.Run turns it into an error
// of that run) and the pool stays usable.
type TaskPanic struct {
	Value any    // what fn panicked with
	Stack []byte // the stack of the goroutine that panicked, at the panic
}

func (p *TaskPanic) Error() string { return fmt.Sprintf("panic in a kernel task: %v", p.Value) }

// call runs the batch's fn over [lo, hi), recording a panic instead of
// letting it unwind the goroutine. (The deferred closure does not escape:
// no allocation unless fn panics.)
func (b *poolBatch) call(lo, hi int) {
	defer func() {
		if r := recover(); r != nil {
			tp, ok := r.(*TaskPanic) // a nested Parallel's, kept as is
			if !ok {
				tp = &TaskPanic{Value: r, Stack: debug.Stack()}
			}
			b.panicked.CompareAndSwap(nil, tp)
		}
	}()
	b.fn(lo, hi)
}

// NewPool starts a pool with the given number of threads (the calling
// goroutine counts as one, so threads-1 worker goroutines are started).
// threads <= 0 means runtime.NumCPU().
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	p := &Pool{threads: threads, work: make(chan poolItem, 64*threads)}
	for i := 1; i < threads; i++ {
		p.done.Add(1)
		go p.worker()
	}
	return p
}

// Threads returns the number of threads Parallel spreads work over (1 for a
// nil pool).
func (p *Pool) Threads() int {
	if p == nil {
		return 1
	}
	return p.threads
}

// Close stops the worker goroutines and waits for them to exit. It must not
// be called while Parallel calls are running; Parallel must not be called
// after Close. Close on a nil pool, or a second Close, does nothing.
func (p *Pool) Close() {
	if p == nil || !p.closed.CompareAndSwap(false, true) {
		return
	}
	close(p.work)
	p.done.Wait()
}

// spinWait is how long an idle worker polls the queue, and a caller
// polls for its last ranges to finish, before blocking. Kernels call
// Parallel back to back (one call per layer, several per training op); a
// thread that is still polling picks the next call up at once. A blocked
// thread costs a scheduler wake-up, and on a virtual machine whose idle
// vCPU the host has descheduled that wake-up was measured at 0.1 to 1 ms:
// longer than most kernel calls, so a blocked worker never got its share
// and 2 threads ran no faster than 1.
var spinWait = envDuration("RESNETCTL_SPIN", 2*time.Millisecond)

// envDuration reads a duration from the environment (a Go duration
// string), or returns def.
func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

// worker runs queued items until the pool is closed.
func (p *Pool) worker() {
	defer p.done.Done()
	for {
		var it poolItem
		ok := false
		var start time.Time
	poll:
		for i := 0; ; i++ {
			select {
			case it, ok = <-p.work:
				break poll
			default:
			}
			if i&255 == 0 {
				if i == 0 {
					start = time.Now()
				} else if time.Since(start) > spinWait {
					break
				}
				runtime.Gosched() // let other goroutines have this thread
			}
		}
		if !ok {
			if it, ok = <-p.work; !ok {
				return
			}
		}
		it.run()
	}
}

// run calls the item's range and signals the caller after the last one.
func (it poolItem) run() {
	it.b.call(it.lo, it.hi)
	if it.b.pending.Add(-1) == 0 {
		it.b.fin <- struct{}{}
	}
}

// splitRange returns the i-th of parts contiguous, nearly equal sub-ranges of
// [0, n).
func splitRange(n, parts, i int) (lo, hi int) {
	return i * n / parts, (i + 1) * n / parts
}

// Parallel splits [0, n) into min(n, Threads()) contiguous, nearly equal
// ranges and calls fn once per range, concurrently, returning when all calls
// have returned. The first range runs on the calling goroutine. With a nil or
// single-thread pool, or n == 1, it simply calls fn(0, n). n <= 0 does nothing.
//
// The ranges are deterministic: with t = min(n, Threads()), range i is
// [i*n/t, (i+1)*n/t). Calling Parallel(Threads(), fn) therefore gives each
// call a distinct lo that can index per-thread scratch memory.
//
// Parallel itself does not allocate in steady state. Note that a closure
// that captures variables escapes to the heap at its creation site; hot paths
// should create their func value once and reuse it.
//
// A panic in fn, on any goroutine, is re-raised by Parallel on the
// calling goroutine as a *TaskPanic, after every range has finished (so
// that no worker still writes into the caller's buffers); the pool stays
// usable. With a nil or single-thread pool, or n == 1, fn's panic simply
// unwinds the caller.
func (p *Pool) Parallel(n int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if p == nil || p.threads == 1 || n == 1 {
		fn(0, n)
		return
	}
	parts := min(n, p.threads)
	b := p.getBatch()
	b.fn = fn
	b.pending.Store(int32(parts - 1))
	for i := 1; i < parts; i++ {
		lo, hi := splitRange(n, parts, i)
		p.work <- poolItem{b: b, lo: lo, hi: hi}
	}
	lo, hi := splitRange(n, parts, 0)
	b.call(lo, hi)
	// Poll (helping with queued items) for up to spinWait, then block.
	var start time.Time
	block := false
	for i := 0; ; i++ {
		if i&255 == 0 && !block {
			if i == 0 {
				start = time.Now()
			} else if time.Since(start) > spinWait {
				block = true
			} else {
				runtime.Gosched()
			}
		}
		if p.waitStep(b, block) {
			tp := b.panicked.Swap(nil)
			b.fn = nil
			p.putBatch(b)
			if tp != nil {
				panic(tp)
			}
			return
		}
	}
}

// waitStep reports whether batch b is done; otherwise it runs one queued
// item if there is one. With block, it waits for one or the other.
func (p *Pool) waitStep(b *poolBatch, block bool) bool {
	if block {
		select {
		case <-b.fin:
			return true
		case it := <-p.work:
			it.run()
			return false
		}
	}
	select {
	case <-b.fin:
		return true
	case it := <-p.work:
		it.run()
	default:
	}
	return false
}

// getBatch takes a recycled batch (or makes one).
func (p *Pool) getBatch() *poolBatch {
	if b := p.free.get(); b != nil {
		return b
	}
	return &poolBatch{fin: make(chan struct{}, 1)}
}

// putBatch recycles a finished batch.
func (p *Pool) putBatch(b *poolBatch) {
	p.free.put(b)
}
