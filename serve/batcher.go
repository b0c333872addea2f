package serve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/resnetctl/resnetctl/infer"
)

// batchMode is how a model's requests are combined into runs.
type batchMode int

const (
	// batchNone: the inputs share no batch dimension; each request runs
	// alone, as sent.
	batchNone batchMode = iota
	// batchDynamic: every input and output has a dynamic first dimension;
	// requests are concatenated along it.
	batchDynamic
	// batchFixed: every input has the same fixed first dimension B (and
	// every output too); requests are cut and padded into runs of B rows.
	batchFixed
)

// batchModeOf works out a model's batch mode from its declared shapes, and
// the fixed batch size B for batchFixed.
func batchModeOf(md infer.Metadata) (batchMode, int) {
	if len(md.Inputs) == 0 || len(md.Outputs) == 0 || len(md.Inputs[0].Shape) == 0 {
		return batchNone, 0
	}
	first := md.Inputs[0].Shape[0]
	for _, vs := range [][]infer.ValueInfo{md.Inputs, md.Outputs} {
		for _, v := range vs {
			if len(v.Shape) == 0 || v.Shape[0] != first {
				return batchNone, 0
			}
		}
	}
	switch {
	case first == -1:
		return batchDynamic, 0
	case first > 0:
		return batchFixed, first
	}
	return batchNone, 0
}

var (
	errQueueFull = errors.New("the model's queue is full")
	errStopped   = errors.New("the server is shutting down")
)

// runner runs a model: *infer.Session, or a stand-in in tests.
type runner interface {
	Run(ctx context.Context, inputs map[string]*infer.Tensor) (map[string]*infer.Tensor, error)
}

// job is one request's rows waiting to run.
type job struct {
	ctx     context.Context
	arrived time.Time
	// key identifies the per-sample shapes and types of the inputs: only
	// jobs with equal keys share a run.
	key    string
	rows   int
	inputs []*infer.Tensor // in the model's input order, each [rows, …]

	// Set by the runs (under mu), read by the request's goroutine after
	// done is closed.
	out  map[string]*infer.Tensor
	err  error
	done chan struct{}

	// taken is the batcher loop's own: rows placed in runs.
	taken int
	// mu guards answered and finished: with several instances, runs of
	// one job's rows may end at the same time.
	mu       sync.Mutex
	answered int
	finished bool
}

func newJob(ctx context.Context, key string, rows int, inputs []*infer.Tensor) *job {
	return &job{ctx: ctx, arrived: time.Now(), key: key, rows: rows, inputs: inputs, done: make(chan struct{})}
}

// finish answers the job, once: later calls do nothing. It reports
// whether this call answered it.
func (j *job) finish(err error) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.finishLocked(err)
}

func (j *job) finishLocked(err error) bool {
	if j.finished {
		return false
	}
	j.finished, j.err = true, err
	close(j.done)
	return true
}

// isFinished reports whether the job has been answered.
func (j *job) isFinished() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.finished
}

// segment is rows [lo, lo+n) of a job, placed in a run.
type segment struct {
	j     *job
	lo, n int
}

// batcher gathers one model's jobs into runs, in one goroutine, and hands
// each run to a free instance of the model: with one instance, runs follow
// one another, each using all of the session's threads; with several
// (each with its share of the threads), as many runs go at once. Requests
// arriving while every instance is busy wait for the next run, which is
// what fills batches under load.
type batcher struct {
	// free holds the instances not running a batch.
	free      chan runner
	instances int
	// wake receives (without blocking, capacity 1) when a request leaves
	// the count of those in flight (its handler returned): a wait for a
	// share of them may be over.
	wake   chan struct{}
	runs   sync.WaitGroup
	inputs []infer.ValueInfo
	mode   batchMode
	size   int           // rows per run: B (fixed) or the largest batch (dynamic)
	delay  time.Duration // how long the oldest job waits for others
	// observe records the rows of each run (metrics).
	observe func(rows int)
	// active, if set, counts the model's requests being handled (see
	// share): a lone request is not held back for company that is not
	// coming.
	active func() int64

	queue  chan *job
	ctx    context.Context // the runs' context, cancelled by close
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}
}

// newBatcher starts the batcher of a model with one or more instances
// (sessions of the same model).
func newBatcher(instances []runner, md infer.Metadata, maxBatch int, delay time.Duration, queue int, observe func(int)) *batcher {
	mode, b := batchModeOf(md)
	size := b
	if mode == batchDynamic {
		size = max(1, maxBatch)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bt := &batcher{inputs: md.Inputs, mode: mode, size: size, delay: delay, observe: observe,
		free: make(chan runner, len(instances)), instances: len(instances), wake: make(chan struct{}, 1),
		queue: make(chan *job, queue), ctx: ctx, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{})}
	for _, r := range instances {
		bt.free <- r
	}
	go bt.loop()
	return bt
}

// submit queues j without blocking: the queue holds as many jobs as
// requests may be in flight, so it is full only if that limit is broken.
func (b *batcher) submit(j *job) error {
	select {
	case <-b.stop:
		return errStopped
	default:
	}
	select {
	case b.queue <- j:
		return nil
	default:
		return errQueueFull
	}
}

// close stops the batcher after the jobs it holds; runs still going are
// cancelled. Callers stop submitting first.
func (b *batcher) close() {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
	b.cancel()
}

func (b *batcher) loop() {
	defer close(b.done)
	defer b.runs.Wait()
	var pending []*job
	for {
		if len(pending) == 0 {
			select {
			case j := <-b.queue:
				pending = append(pending, j)
			case <-b.stop:
				for {
					select {
					case j := <-b.queue:
						j.finish(errStopped)
					default:
						return
					}
				}
			}
		}
		// Wait for an instance; jobs arriving meanwhile stay queued and
		// join this run.
		r := <-b.free
		freed := time.Now()
		pending = b.receive(pending)
		pending = dropEnded(pending)
		if len(pending) == 0 {
			b.free <- r
			continue
		}
		if b.mode == batchNone {
			b.start(r, []segment{{j: pending[0], n: pending[0].rows}}, b.runAlone)
			pending = pending[1:]
			continue
		}
		key := pending[0].key
		if b.delay > 0 && available(pending, key) < b.size && len(pending) < b.share() {
			pending = b.wait(pending, key, b.deadline(pending[0].arrived, freed))
		}
		var segs []segment
		segs, pending = take(pending, key, b.size)
		b.start(r, segs, b.run)
	}
}

// deadline is when a run stops waiting for company: the oldest job's
// arrival plus the delay, or, with several instances, the delay after the
// instance became free if that is later: a job that arrived while every
// instance was busy would otherwise run at once with the few jobs that
// came after the last run started, and the instances would settle into
// one full run and many tiny ones.
func (b *batcher) deadline(arrived, freed time.Time) time.Time {
	if b.instances > 1 && freed.After(arrived) {
		arrived = freed
	}
	return arrived.Add(b.delay)
}

// share is how many jobs a run waits for (at most the delay): its share
// of the model's requests in flight (admitted, not yet answered), those
// running on other instances included. One client, or as many clients as
// instances, never wait; eight clients on one instance wait for the eight,
// not for a full batch that cannot come. Without an active count (tests),
// a run waits for a full batch.
func (b *batcher) share() int {
	if b.active == nil {
		return math.MaxInt
	}
	return (int(b.active()) + b.instances - 1) / b.instances
}

// start runs segs on instance r: on the loop's goroutine with one
// instance, else on a goroutine of its own, which gives r back when done.
func (b *batcher) start(r runner, segs []segment, run func(runner, []segment)) {
	if b.instances == 1 {
		run(r, segs)
		b.free <- r
		return
	}
	b.runs.Add(1)
	go func() {
		defer b.runs.Done()
		run(r, segs)
		b.free <- r
	}()
}

// receive appends the jobs already queued.
func (b *batcher) receive(pending []*job) []*job {
	for {
		select {
		case j := <-b.queue:
			pending = append(pending, j)
		default:
			return pending
		}
	}
}

// wait gathers jobs until there are rows enough for a full run of key or
// the run's share of jobs, the deadline passes or the batcher is stopped.
func (b *batcher) wait(pending []*job, key string, deadline time.Time) []*job {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for available(pending, key) < b.size && len(pending) < b.share() {
		select {
		case j := <-b.queue:
			pending = append(pending, j)
		case <-b.wake: // fewer requests in flight: look at the share again
		case <-t.C:
			return pending
		case <-b.stop:
			return pending
		}
	}
	return pending
}

// dropEnded answers the jobs whose request has gone (timed out, client
// left) and removes them with those already answered (failed).
func dropEnded(pending []*job) []*job {
	kept := pending[:0]
	for _, j := range pending {
		if err := j.ctx.Err(); err != nil {
			j.finish(err)
		}
		if !j.isFinished() {
			kept = append(kept, j)
		}
	}
	return kept
}

// available counts the rows of key not yet placed in a run.
func available(pending []*job, key string) int {
	n := 0
	for _, j := range pending {
		if j.key == key {
			n += j.rows - j.taken
		}
	}
	return n
}

// take places up to size rows of key, oldest jobs first, and returns the
// segments and the jobs with rows left. A job may be split across runs.
func take(pending []*job, key string, size int) ([]segment, []*job) {
	var segs []segment
	rows := 0
	rest := pending[:0]
	for _, j := range pending {
		if j.key == key && rows < size {
			n := min(j.rows-j.taken, size-rows)
			segs = append(segs, segment{j: j, lo: j.taken, n: n})
			j.taken += n
			rows += n
		}
		if j.taken < j.rows {
			rest = append(rest, j)
		}
	}
	return segs, rest
}

// runRows is the batch size a run of rows is padded to. Dynamic batches
// are padded to 1, 2, 4, 8, then multiples of 8 (and the largest batch):
// the runtime plans, and keeps buffers for, each input shape it sees, so
// every size from 1 to 32 would mean 32 plans, replanned as its cache of
// 16 evicts them, while these are 7; the padding costs at most 7 rows of
// compute, and nothing under steady load, where runs are full.
func (b *batcher) runRows(rows int) int {
	if b.mode == batchFixed {
		return b.size
	}
	p := 1
	for p < rows && p < 8 {
		p *= 2
	}
	if p < rows {
		p = (rows + 7) / 8 * 8
	}
	return min(p, max(b.size, rows))
}

// run runs one batch on r and hands each job its rows of the outputs.
func (b *batcher) run(r runner, segs []segment) {
	rows := 0
	for _, s := range segs {
		rows += s.n
	}
	b.observe(rows)
	total := b.runRows(rows)
	whole := len(segs) == 1 && segs[0].n == segs[0].j.rows && total == rows
	inputs := make(map[string]*infer.Tensor, len(b.inputs))
	for i, vi := range b.inputs {
		if whole { // one request as it came: no copy
			inputs[vi.Name] = segs[0].j.inputs[i]
			continue
		}
		src := segs[0].j.inputs[i]
		t := newTensor(src.Type(), append([]int{total}, src.Shape[1:]...)) // padding rows stay zero
		at := 0
		for _, s := range segs {
			copyRows(t, at, s.j.inputs[i], s.lo, s.n)
			at += s.n
		}
		inputs[vi.Name] = t
	}
	out, err := r.Run(b.ctx, inputs)
	if err == nil {
		for name, t := range out {
			if len(t.Shape) == 0 || t.Shape[0] != total {
				err = fmt.Errorf("output %q has shape %v, not one row per input row (%d)", name, t.Shape, total)
				break
			}
		}
	}
	if err != nil {
		for _, s := range segs {
			s.j.finish(err)
		}
		return
	}
	if whole {
		j := segs[0].j
		j.mu.Lock()
		if !j.finished {
			j.out = out
			j.finishLocked(nil)
		}
		j.mu.Unlock()
		return
	}
	at := 0
	for _, s := range segs {
		s.answer(out, at)
		at += s.n
	}
}

// answer copies the segment's rows of a run's outputs, from row at, into
// its job's outputs, and answers the job once all its rows are there.
func (s segment) answer(out map[string]*infer.Tensor, at int) {
	j := s.j
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.finished {
		return
	}
	if j.out == nil {
		j.out = make(map[string]*infer.Tensor, len(out))
	}
	for name, t := range out {
		dst := j.out[name]
		if dst == nil {
			dst = newTensor(t.Type(), append([]int{j.rows}, t.Shape[1:]...))
			j.out[name] = dst
		}
		copyRows(dst, s.lo, t, at, s.n)
	}
	j.answered += s.n
	if j.answered == j.rows {
		j.finishLocked(nil)
	}
}

// runAlone runs a job of a model without batching, as sent.
func (b *batcher) runAlone(r runner, segs []segment) {
	j := segs[0].j
	b.observe(1)
	inputs := make(map[string]*infer.Tensor, len(b.inputs))
	for i, vi := range b.inputs {
		inputs[vi.Name] = j.inputs[i]
	}
	out, err := r.Run(b.ctx, inputs)
	j.mu.Lock()
	defer j.mu.Unlock()
	if err == nil && !j.finished {
		j.out = out
	}
	j.finishLocked(err)
}

// copyRows copies n rows of src from row si to dst from row di; both have
// the same type and row length.
func copyRows(dst *infer.Tensor, di int, src *infer.Tensor, si, n int) {
	per := 1
	for _, d := range src.Shape[1:] {
		per *= d
	}
	a, b, c := di*per, si*per, n*per
	switch src.Type() {
	case infer.Float32:
		copy(dst.Float32[a:a+c], src.Float32[b:b+c])
	case infer.Float64:
		copy(dst.Float64[a:a+c], src.Float64[b:b+c])
	case infer.Int32:
		copy(dst.Int32[a:a+c], src.Int32[b:b+c])
	case infer.Int64:
		copy(dst.Int64[a:a+c], src.Int64[b:b+c])
	case infer.Bool:
		copy(dst.Bool[a:a+c], src.Bool[b:b+c])
	case infer.Uint8:
		copy(dst.Uint8[a:a+c], src.Uint8[b:b+c])
	case infer.Int8:
		copy(dst.Int8[a:a+c], src.Int8[b:b+c])
	case infer.Float16:
		copy(dst.Float16[a:a+c], src.Float16[b:b+c])
	}
}

// left tells a waiting run that a request has left the count of those in
// flight.
func (b *batcher) left() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}
