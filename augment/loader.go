package augment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/models"
)

// Config says how a Loader makes batches.
type Config struct {
	BatchSize int  // images per batch, ≥ 1
	DropLast  bool // leave out a last, partial batch
	NoShuffle bool // keep the dataset's order (evaluation); training shuffles
	Seed      uint64
	// Augment transforms each image; nil means None.
	Augment Augmentation
	// Norm is the per-channel normalisation applied after augmentation,
	// x = (pixel*Scale - Mean[c]) / Std[c], e.g. models.PreprocessPreset
	// ("cifar10"). Required; the same values belong in the trained model's
	// metadata (Loader.Preprocess returns them).
	Norm models.Preprocess
	// Workers is the number of goroutines augmenting batches; 0 means
	// min(2, GOMAXPROCS). The batches do not depend on it.
	Workers int
	// Prefetch is the number of batches made ahead of the consumer; 0
	// means 2 per worker. Memory is (Prefetch+1) batches.
	Prefetch int
}

// Batch is one batch of a training epoch: N images as NCHW float32 and
// their labels. Its slices belong to the Loader and stay valid until the
// next call to Next or Close on the Batches that returned it.
type Batch struct {
	X      []float32 // N×3×H×W, augmented and normalised
	Labels []int     // N class indices
	Index  []int     // N dataset indices: which images these are
	N      int       // BatchSize, or fewer for a last partial batch
	Epoch  int
	Step   int // the batch's number within the epoch, from 0
}

// Batches streams the batches of one epoch in order, to one goroutine at a
// time.
type Batches interface {
	// Next returns the next batch, io.EOF after the last, or the context's
	// error once it is cancelled.
	Next() (*Batch, error)
	// Close stops the epoch's goroutines and waits for them. It must be
	// called (once Next has returned io.EOF it only recycles buffers), and
	// may be called more than once.
	Close() error
}

// Source is what a training loop needs from the data pipeline; *Loader
// implements it.
type Source interface {
	// Epoch streams epoch's batches from batch number step on: step 0 for
	// a whole epoch, k to resume after k batches.
	Epoch(ctx context.Context, epoch, step int) Batches
	// BatchesPerEpoch is the number of batches of every epoch.
	BatchesPerEpoch() int
}

// Loader makes the training batches of a dataset: shuffled, augmented and
// normalised, in parallel, and the same for a given seed and epoch however
// it is run (see the package documentation). It is safe for concurrent use;
// each Epoch has its own goroutines. The dataset must not change while the
// Loader is in use.
type Loader struct {
	ds              *cifar.Dataset
	cfg             Config
	aug             Augmentation
	none            bool // aug is None: no pixel map needed
	lut             [3][256]float32
	w, h, size      int // image width, height and 3*w*h
	batches         int
	workers, nslots int
	mu              sync.Mutex
	spare           []*buffers // buffers of closed epochs, for the next
	desc            string
}

// New checks cfg against ds and returns a Loader.
func New(ds *cifar.Dataset, cfg Config) (*Loader, error) {
	if ds == nil {
		return nil, errors.New("augment: no dataset")
	}
	if err := ds.Validate(); err != nil {
		return nil, fmt.Errorf("augment: %w", err)
	}
	n := ds.Len()
	switch {
	case n == 0:
		return nil, fmt.Errorf("augment: %s has no images", ds.Name)
	case cfg.BatchSize < 1:
		return nil, fmt.Errorf("augment: batch size %d (want ≥ 1)", cfg.BatchSize)
	case cfg.DropLast && n < cfg.BatchSize:
		return nil, fmt.Errorf("augment: %s has %d images, not one full batch of %d (DropLast)", ds.Name, n, cfg.BatchSize)
	case cfg.Workers < 0:
		return nil, fmt.Errorf("augment: %d workers", cfg.Workers)
	case cfg.Prefetch < 0:
		return nil, fmt.Errorf("augment: prefetch %d", cfg.Prefetch)
	}
	l := &Loader{ds: ds, cfg: cfg, aug: cfg.Augment, w: ds.W, h: ds.H, size: ds.ImageSize()}
	if l.aug == nil {
		l.aug = None{}
	}
	if c, ok := l.aug.(checker); ok {
		if err := c.Check(); err != nil {
			return nil, err
		}
	}
	_, l.none = l.aug.(None)
	if err := l.setNorm(cfg.Norm); err != nil {
		return nil, err
	}
	if l.batches = n / cfg.BatchSize; !cfg.DropLast && n%cfg.BatchSize != 0 {
		l.batches++
	}
	if l.workers = cfg.Workers; l.workers == 0 {
		l.workers = min(2, runtime.GOMAXPROCS(0))
	}
	prefetch := cfg.Prefetch
	if prefetch == 0 {
		prefetch = 2 * l.workers
	}
	l.nslots = prefetch + 1
	l.desc = fmt.Sprintf("%s: batch %d, %d batches an epoch, %s, normalised (x*%v - %v) / %v",
		ds.Name, cfg.BatchSize, l.batches, l.aug, cfg.Norm.Scale, cfg.Norm.Mean, cfg.Norm.Std)
	return l, nil
}

// setNorm copies p and builds the per-channel tables through imgproc, so
// that the values are bit-identical to evaluation's preprocessing.
func (l *Loader) setNorm(p models.Preprocess) error {
	if p.Scale == 0 || len(p.Mean) != 3 || len(p.Std) != 3 {
		return fmt.Errorf("augment: Config.Norm needs a scale and 3 means and standard deviations (got scale %v, %d, %d; see models.PreprocessPreset)", p.Scale, len(p.Mean), len(p.Std))
	}
	z, err := imgproc.NewNormalizer(imgproc.Norm{Mode: imgproc.ModeCustom, Scale: p.Scale, Mean: p.Mean, Std: p.Std})
	if err != nil {
		return fmt.Errorf("augment: Config.Norm: %w", err)
	}
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			l.lut[c][v] = z.Value(c, uint8(v))
		}
	}
	l.cfg.Norm = models.Preprocess{Name: p.Name, Scale: p.Scale,
		Mean: append([]float32(nil), p.Mean...), Std: append([]float32(nil), p.Std...)}
	return nil
}

// Preprocess returns the normalisation the batches have (a copy), for the
// model's metadata.
func (l *Loader) Preprocess() models.Preprocess {
	p := l.cfg.Norm
	p.Mean = append([]float32(nil), p.Mean...)
	p.Std = append([]float32(nil), p.Std...)
	return p
}

// Augmentation returns the augmentation in use (None when Config had nil).
func (l *Loader) Augmentation() Augmentation { return l.aug }

// BatchesPerEpoch implements Source.
func (l *Loader) BatchesPerEpoch() int { return l.batches }

// String describes the pipeline in one line, for logs.
func (l *Loader) String() string { return l.desc }

// Epoch implements Source. It shuffles (a fraction of a millisecond for
// CIFAR) and starts the workers, which fill batches ahead of Next. An epoch
// or step out of range gives Batches whose Next fails.
func (l *Loader) Epoch(ctx context.Context, epoch, step int) Batches {
	if epoch < 0 || step < 0 || step > l.batches {
		return failed{fmt.Errorf("augment: no epoch %d step %d (an epoch has %d batches)", epoch, step, l.batches)}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	buf := l.getBuffers()
	if l.cfg.NoShuffle {
		identityInts(buf.perm)
	} else {
		r := NewRand(streamKey(l.cfg.Seed, epoch, streamShuffle, 0))
		permutation(buf.perm, &r)
	}
	it := &iter{l: l, ctx: ctx, epoch: epoch, buf: buf,
		free:  make(chan *slot, l.nslots),
		jobs:  make(chan *slot, l.nslots),
		queue: make(chan *slot, l.nslots),
		stop:  make(chan struct{}),
	}
	for _, s := range buf.slots {
		it.free <- s
	}
	it.wg.Add(1 + l.workers)
	go it.dispatch(step, l.batches)
	for w := 0; w < l.workers; w++ {
		go it.work(buf.scratch[w])
	}
	return it
}

func identityInts(p []int) {
	for i := range p {
		p[i] = i
	}
}

// slot is one batch buffer and the signal that a worker has filled it.
type slot struct {
	batch         Batch
	x             []float32
	labels, index []int
	step          int
	done          chan struct{} // capacity 1
}

// buffers is everything an epoch writes to, kept for the next epoch.
type buffers struct {
	slots   []*slot
	perm    []int
	scratch []*scratch // one per worker
}

// scratch is a worker's own: the pixel map and generator of the image at
// hand (allocated once; padded so that two workers' generators never share
// a cache line).
type scratch struct {
	m []int32
	r Rand
	_ [64]byte
}

func (l *Loader) getBuffers() *buffers {
	l.mu.Lock()
	if k := len(l.spare); k > 0 {
		b := l.spare[k-1]
		l.spare = l.spare[:k-1]
		l.mu.Unlock()
		return b
	}
	l.mu.Unlock()
	b := &buffers{perm: make([]int, l.ds.Len())}
	bs := l.cfg.BatchSize
	for k := 0; k < l.nslots; k++ {
		b.slots = append(b.slots, &slot{x: make([]float32, bs*l.size), labels: make([]int, bs), index: make([]int, bs), done: make(chan struct{}, 1)})
	}
	for w := 0; w < l.workers; w++ {
		b.scratch = append(b.scratch, &scratch{m: make([]int32, l.w*l.h)})
	}
	return b
}

func (l *Loader) putBuffers(b *buffers) {
	for _, s := range b.slots {
		select {
		case <-s.done:
		default:
		}
	}
	l.mu.Lock()
	l.spare = append(l.spare, b)
	l.mu.Unlock()
}

// iter is the Batches of one epoch. A dispatcher hands batch numbers, in
// order, each with a free slot, to the workers and to an ordered queue; Next
// takes the queue's head once its worker is done, and gives the slot it
// returned last time back to the free list. Slots bound the memory and
// the read-ahead.
type iter struct {
	l                 *Loader
	ctx               context.Context
	epoch             int
	buf               *buffers
	free, jobs, queue chan *slot
	stop              chan struct{}
	wg                sync.WaitGroup
	held              *slot // returned by the last Next
	err               error // sticky: io.EOF, the context's error
	closed            bool
}

var errClosed = errors.New("augment: Next after Close")

func (it *iter) dispatch(from, to int) {
	defer it.wg.Done()
	defer close(it.queue)
	defer close(it.jobs)
	for step := from; step < to; step++ {
		var s *slot
		select {
		case s = <-it.free:
		case <-it.stop:
			return
		case <-it.ctx.Done():
			return
		}
		s.step = step
		it.jobs <- s // never blocks: each channel holds all slots
		it.queue <- s
	}
}

func (it *iter) work(w *scratch) {
	defer it.wg.Done()
	for s := range it.jobs {
		select {
		case <-it.stop:
			return
		default:
		}
		if it.ctx.Err() != nil {
			continue // Next reports it; drain until the dispatcher stops
		}
		it.l.fill(s, it.epoch, it.buf.perm, w)
		s.done <- struct{}{}
	}
}

func (it *iter) Next() (*Batch, error) {
	if it.closed {
		return nil, errClosed
	}
	if it.err != nil {
		return nil, it.err
	}
	if err := it.ctx.Err(); err != nil {
		it.err = err
		return nil, err
	}
	if it.held != nil {
		it.free <- it.held // never blocks
		it.held = nil
	}
	var s *slot
	select {
	case q, ok := <-it.queue:
		if !ok {
			if it.err = it.ctx.Err(); it.err == nil {
				it.err = io.EOF
			}
			return nil, it.err
		}
		s = q
	case <-it.ctx.Done():
		it.err = it.ctx.Err()
		return nil, it.err
	}
	select {
	case <-s.done:
	case <-it.ctx.Done():
		it.err = it.ctx.Err()
		return nil, it.err
	}
	it.held = s
	return &s.batch, nil
}

func (it *iter) Close() error {
	if it.closed {
		return nil
	}
	it.closed = true
	close(it.stop)
	it.wg.Wait()
	it.held = nil
	it.l.putBuffers(it.buf)
	return nil
}

// failed is the Batches of an Epoch call with bad arguments.
type failed struct{ err error }

func (f failed) Next() (*Batch, error) { return nil, f.err }
func (f failed) Close() error          { return nil }

// fill makes batch s.step of epoch: positions [step*B, step*B+B) of the
// permutation perm, each image augmented with its own generator.
func (l *Loader) fill(s *slot, epoch int, perm []int, w *scratch) {
	bs := l.cfg.BatchSize
	lo := s.step * bs
	hi := min(lo+bs, len(perm))
	n := hi - lo
	s.batch = Batch{X: s.x[:n*l.size], Labels: s.labels[:n], Index: s.index[:n], N: n, Epoch: epoch, Step: s.step}
	for k := 0; k < n; k++ {
		i := perm[lo+k]
		src := l.ds.Pixels[i*l.size : (i+1)*l.size]
		dst := s.x[k*l.size : (k+1)*l.size]
		if l.none {
			l.normalize(dst, src)
		} else {
			w.r = NewRand(streamKey(l.cfg.Seed, epoch, streamImage, i))
			l.aug.Sample(w.m, l.w, l.h, &w.r)
			l.gather(dst, src, w.m)
		}
		s.labels[k] = l.ds.Labels[i]
		s.index[k] = i
	}
}

// gather writes the normalised pixels src[m[p]] of each plane (zero where
// m[p] < 0) into dst.
func (l *Loader) gather(dst []float32, src []uint8, m []int32) {
	n := l.w * l.h
	m = m[:n]
	r, g, b := src[:n], src[n:2*n], src[2*n:3*n]
	or, og, ob := dst[:n], dst[n:2*n], dst[2*n:3*n]
	lr, lg, lb := &l.lut[0], &l.lut[1], &l.lut[2]
	for p, q := range m {
		if q < 0 {
			or[p], og[p], ob[p] = lr[0], lg[0], lb[0]
		} else {
			or[p], og[p], ob[p] = lr[r[q]], lg[g[q]], lb[b[q]]
		}
	}
}

func (l *Loader) normalize(dst []float32, src []uint8) {
	n := l.w * l.h
	for c := 0; c < 3; c++ {
		lut := &l.lut[c]
		out := dst[c*n : (c+1)*n : (c+1)*n]
		for p, v := range src[c*n : (c+1)*n] {
			out[p] = lut[v]
		}
	}
}
