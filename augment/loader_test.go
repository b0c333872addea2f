package augment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/models"
)

var _ Source = (*Loader)(nil)

func augmentations() []Augmentation { return []Augmentation{KerasDefaults(), PaperDefaults(), None{}} }

func TestLoaderDeterministic(t *testing.T) {
	d := tiled(t, 300)
	for _, aug := range augmentations() {
		cfg := Config{BatchSize: 32, Seed: 11, Augment: aug}
		a, b := newLoader(t, d, cfg), newLoader(t, d, cfg)
		cfg.Seed = 12
		c := newLoader(t, d, cfg)
		for epoch := 0; epoch < 2; epoch++ {
			da, _ := epochDigest(t, a, epoch, 0)
			db, _ := epochDigest(t, b, epoch, 0)
			dc, _ := epochDigest(t, c, epoch, 0)
			if len(da) != 10 || fmt.Sprint(da) != fmt.Sprint(db) {
				t.Errorf("%s epoch %d: the same seed gave different batches", aug, epoch)
			}
			for k := range da {
				if da[k] == dc[k] {
					t.Errorf("%s epoch %d batch %d: seeds 11 and 12 gave the same batch", aug, epoch, k)
				}
			}
		}
		d0, _ := epochDigest(t, a, 0, 0)
		d1, _ := epochDigest(t, a, 1, 0)
		for k := range d0 {
			if d0[k] == d1[k] {
				t.Errorf("%s: epochs 0 and 1 share batch %d", aug, k)
			}
		}
	}
}

// The batches do not depend on how many workers make them or how far they
// read ahead.
func TestLoaderWorkerCountIndependent(t *testing.T) {
	d := tiled(t, 250)
	for _, aug := range augmentations() {
		var want string
		for _, wp := range [][2]int{{1, 1}, {2, 0}, {3, 1}, {4, 9}, {7, 2}} {
			l := newLoader(t, d, Config{BatchSize: 24, Seed: 5, Augment: aug, Workers: wp[0], Prefetch: wp[1]})
			var got []string
			for epoch := 3; epoch < 5; epoch++ {
				dg, err := epochDigest(t, l, epoch, 0)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprint(dg))
			}
			if want == "" {
				want = strings.Join(got, "|")
			} else if strings.Join(got, "|") != want {
				t.Errorf("%s: %d workers, prefetch %d: different batches", aug, wp[0], wp[1])
			}
		}
	}
}

// A run resumed at (epoch, step) gets exactly the batches an uninterrupted
// run got, whatever the earlier epochs did.
func TestLoaderResume(t *testing.T) {
	d := tiled(t, 200)
	cfg := Config{BatchSize: 16, DropLast: true, Seed: 99, Augment: KerasDefaults()}
	full := newLoader(t, d, cfg)
	var epochs [][][32]byte
	for e := 0; e < 3; e++ {
		dg, err := epochDigest(t, full, e, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(dg) != 12 {
			t.Fatalf("epoch %d: %d batches, want 12 (200/16, last dropped)", e, len(dg))
		}
		epochs = append(epochs, dg)
	}
	// A fresh loader, as after a restart; interrupt epoch 1 half way first.
	resumed := newLoader(t, d, cfg)
	bs := resumed.Epoch(context.Background(), 1, 0)
	for k := 0; k < 5; k++ {
		if _, err := bs.Next(); err != nil {
			t.Fatal(err)
		}
	}
	bs.Close()
	for _, step := range []int{5, 0, 11, 12} {
		dg, err := epochDigest(t, resumed, 1, step)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(dg) != fmt.Sprint(epochs[1][step:]) {
			t.Errorf("epoch 1 from step %d differs from the uninterrupted run", step)
		}
	}
	if dg, _ := epochDigest(t, newLoader(t, d, cfg), 2, 0); fmt.Sprint(dg) != fmt.Sprint(epochs[2]) {
		t.Error("epoch 2 on a fresh loader differs from the uninterrupted run")
	}
}

func TestLoaderEpochContents(t *testing.T) {
	d := tiled(t, 70)
	norm := cifarNorm(t)
	for _, c := range []struct {
		cfg     Config
		batches int
		last    int
	}{
		{Config{BatchSize: 16}, 5, 6},
		{Config{BatchSize: 16, DropLast: true}, 4, 16},
		{Config{BatchSize: 70, DropLast: true}, 1, 70},
		{Config{BatchSize: 100}, 1, 70},
		{Config{BatchSize: 7, NoShuffle: true, Augment: PaperDefaults()}, 10, 7},
	} {
		c.cfg.Norm = norm
		l := newLoader(t, d, c.cfg)
		if l.BatchesPerEpoch() != c.batches {
			t.Errorf("%+v: %d batches per epoch, want %d", c.cfg, l.BatchesPerEpoch(), c.batches)
		}
		for epoch := 0; epoch < 2; epoch++ {
			bs := l.Epoch(context.Background(), epoch, 0)
			seen := make([]int, d.Len())
			pos, k := 0, 0
			for ; ; k++ {
				b, err := bs.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				want := c.cfg.BatchSize
				if k == c.batches-1 {
					want = c.last
				}
				if b.N != want || len(b.X) != want*3072 || len(b.Labels) != want || len(b.Index) != want || b.Step != k || b.Epoch != epoch {
					t.Fatalf("%+v: batch %d has N %d (%d values, %d labels), step %d, epoch %d; want N %d", c.cfg, k, b.N, len(b.X), len(b.Labels), b.Step, b.Epoch, want)
				}
				for j, i := range b.Index {
					seen[i]++
					if b.Labels[j] != d.Labels[i] {
						t.Fatalf("label of image %d is %d, want %d", i, b.Labels[j], d.Labels[i])
					}
					if c.cfg.NoShuffle && i != pos {
						t.Fatalf("NoShuffle: position %d holds image %d", pos, i)
					}
					pos++
				}
			}
			if _, err := bs.Next(); err != io.EOF {
				t.Errorf("Next after the end: %v", err)
			}
			bs.Close()
			if k != c.batches {
				t.Errorf("%+v: %d batches", c.cfg, k)
			}
			total := 0
			for _, s := range seen {
				if s > 1 {
					t.Fatalf("%+v: an image twice in one epoch", c.cfg)
				}
				total += s
			}
			if total != c.batches*c.cfg.BatchSize-(c.cfg.BatchSize-c.last) {
				t.Errorf("%+v: %d images in the epoch", c.cfg, total)
			}
		}
	}
}

// Without augmentation and shuffling, batches are exactly what evaluation's
// preprocessing (cifar.WriteBatch through imgproc) makes.
func TestLoaderNoneMatchesEvaluation(t *testing.T) {
	d := tiled(t, 40)
	norm := cifarNorm(t)
	l := newLoader(t, d, Config{BatchSize: 16, NoShuffle: true, Norm: norm})
	z, err := imgproc.NewNormalizer(imgproc.Norm{Mode: imgproc.ModeCustom, Scale: norm.Scale, Mean: norm.Mean, Std: norm.Std})
	if err != nil {
		t.Fatal(err)
	}
	bs := l.Epoch(context.Background(), 0, 0)
	defer bs.Close()
	want := make([]float32, 16*3072)
	labels := make([]int, 16)
	for {
		b, err := bs.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WriteBatch(want, labels, b.Index, z); err != nil {
			t.Fatal(err)
		}
		for i, v := range b.X {
			if v != want[i] {
				t.Fatalf("batch %d value %d: %v, evaluation gives %v", b.Step, i, v, want[i])
			}
		}
	}
}

// Item k of a batch is image Index[k] augmented with the generator
// key(seed, epoch, image, Index[k]) and then normalised, as documented;
// padding is pixel value 0 normalised.
func TestLoaderPerImageStream(t *testing.T) {
	d := tiled(t, 50)
	norm := cifarNorm(t)
	for _, aug := range augmentations() {
		l := newLoader(t, d, Config{BatchSize: 20, Seed: 3, Augment: aug, Norm: norm})
		bs := l.Epoch(context.Background(), 4, 1)
		b, err := bs.Next()
		if err != nil {
			t.Fatal(err)
		}
		m := make([]int32, 1024)
		for k, i := range b.Index {
			r := NewRand(streamKey(3, 4, streamImage, i))
			aug.Sample(m, 32, 32, &r)
			for c := 0; c < 3; c++ {
				for p, q := range m {
					v := float32(0)
					if q >= 0 {
						v = float32(d.Pixels[i*3072+c*1024+int(q)])
					}
					want := (v/255 - norm.Mean[c]) / norm.Std[c]
					if got := b.X[k*3072+c*1024+p]; got != want {
						t.Fatalf("%s: item %d channel %d pixel %d: %v, want %v", aug, k, c, p, got, want)
					}
				}
			}
		}
		bs.Close()
	}
}

func TestLoaderPreprocess(t *testing.T) {
	norm := cifarNorm(t)
	l := newLoader(t, tiled(t, 10), Config{BatchSize: 4, Norm: norm, Augment: PaperDefaults()})
	p := l.Preprocess()
	if p.Name != "cifar10" || p.Scale != norm.Scale || p.Mean[2] != norm.Mean[2] || p.Std[1] != norm.Std[1] {
		t.Errorf("Preprocess %+v", p)
	}
	p.Mean[0] = 9
	norm.Std[0] = 9
	if q := l.Preprocess(); q.Mean[0] == 9 || q.Std[0] == 9 {
		t.Error("Preprocess shares slices")
	}
	if l.Augmentation() != PaperDefaults() || !strings.Contains(l.String(), "paper(pad=4") {
		t.Errorf("augmentation %v, %s", l.Augmentation(), l)
	}
	if newLoader(t, tiled(t, 10), Config{BatchSize: 4}).Augmentation() != (None{}) {
		t.Error("nil Augment is not None")
	}
}

func TestLoaderErrors(t *testing.T) {
	d := tiled(t, 10)
	norm := cifarNorm(t)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{BatchSize: 0, Norm: norm}, "batch size"},
		{Config{BatchSize: 11, DropLast: true, Norm: norm}, "not one full batch"},
		{Config{BatchSize: 4, Workers: -1, Norm: norm}, "workers"},
		{Config{BatchSize: 4, Prefetch: -1, Norm: norm}, "prefetch"},
		{Config{BatchSize: 4}, "Config.Norm"},
		{Config{BatchSize: 4, Norm: models.Preprocess{Scale: 1, Mean: []float32{0, 0, 0}, Std: []float32{1, 0, 1}}}, "standard deviation"},
		{Config{BatchSize: 4, Norm: norm, Augment: Keras{Zoom: 2}}, "zoom"},
		{Config{BatchSize: 4, Norm: norm, Augment: Paper{Pad: -4}}, "padding"},
	} {
		if _, err := New(d, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
	if _, err := New(nil, Config{BatchSize: 1, Norm: norm}); err == nil {
		t.Error("nil dataset accepted")
	}
	bad := *d
	bad.Labels = bad.Labels[:5]
	if _, err := New(&bad, Config{BatchSize: 1, Norm: norm}); err == nil {
		t.Error("inconsistent dataset accepted")
	}

	l := newLoader(t, d, Config{BatchSize: 4})
	for _, es := range [][2]int{{-1, 0}, {0, -1}, {0, 4}} {
		bs := l.Epoch(context.Background(), es[0], es[1])
		if _, err := bs.Next(); err == nil || err == io.EOF {
			t.Errorf("epoch %d step %d: %v", es[0], es[1], err)
		}
		bs.Close()
	}
	bs := l.Epoch(context.Background(), 0, 2) // the last batch only
	if b, err := bs.Next(); err != nil || b.N != 2 {
		t.Errorf("from step 2: %v", err)
	}
	if _, err := bs.Next(); err != io.EOF {
		t.Errorf("from step 2, second batch: %v", err)
	}
	bs.Close()
	bs = l.Epoch(context.Background(), 0, 3) // the epoch's end: nothing
	if _, err := bs.Next(); err != io.EOF {
		t.Errorf("from step 3: %v", err)
	}
	bs.Close()
	if _, err := bs.Next(); err == nil || err == io.EOF {
		t.Errorf("Next after Close: %v", err)
	}
	if err := bs.Close(); err != nil {
		t.Error(err)
	}
}

// settle waits for the goroutine count to come down to n.
func settle(n int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := runtime.NumGoroutine()
		if g <= n || time.Now().After(deadline) {
			return g
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLoaderCancelAndNoLeaks(t *testing.T) {
	d := tiled(t, 400)
	base := runtime.NumGoroutine()
	l := newLoader(t, d, Config{BatchSize: 8, Seed: 1, Augment: KerasDefaults(), Workers: 3, Prefetch: 2})

	// Cancelled mid-epoch: Next reports it, and stays failed.
	ctx, cancel := context.WithCancel(context.Background())
	bs := l.Epoch(ctx, 0, 0)
	for k := 0; k < 3; k++ {
		if _, err := bs.Next(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if _, err := bs.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
	if _, err := bs.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel, again: %v", err)
	}
	// The epoch's goroutines end on cancellation even before Close.
	if g := settle(base); g > base {
		t.Errorf("%d goroutines after cancellation, %d before", g, base)
	}
	bs.Close()

	// Closed early, with workers blocked on a full read-ahead.
	bs = l.Epoch(context.Background(), 1, 0)
	if _, err := bs.Next(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	bs.Close()
	// Closed without a single Next; and read to the end.
	l.Epoch(context.Background(), 2, 0).Close()
	if _, err := epochDigest(t, l, 3, 0); err != nil {
		t.Fatal(err)
	}
	// A context cancelled before the epoch starts.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	bs = l.Epoch(ctx, 4, 0)
	if _, err := bs.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before the start: %v", err)
	}
	bs.Close()
	if g := settle(base); g > base {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines left, %d before:\n%s", g, base, buf[:runtime.Stack(buf, true)])
	}
	// Buffers are recycled: later epochs still produce the same batches.
	again, _ := epochDigest(t, l, 3, 0)
	fresh, _ := epochDigest(t, newLoader(t, d, Config{BatchSize: 8, Seed: 1, Augment: KerasDefaults(), Workers: 1}), 3, 0)
	if fmt.Sprint(again) != fmt.Sprint(fresh) {
		t.Error("recycled buffers changed the batches")
	}
}

// Two epochs of one Loader may run at the same time (a Loader is safe for
// concurrent use); each gets its own buffers.
func TestLoaderConcurrentEpochs(t *testing.T) {
	d := tiled(t, 120)
	l := newLoader(t, d, Config{BatchSize: 10, Seed: 8, Augment: PaperDefaults()})
	want0, _ := epochDigest(t, l, 0, 0)
	want1, _ := epochDigest(t, l, 1, 0)
	a, b := l.Epoch(context.Background(), 0, 0), l.Epoch(context.Background(), 1, 0)
	defer a.Close()
	defer b.Close()
	for k := 0; k < len(want0); k++ {
		x, err1 := a.Next()
		y, err2 := b.Next()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if batchDigest(x) != want0[k] || batchDigest(y) != want1[k] {
			t.Fatalf("batch %d differs when two epochs interleave", k)
		}
	}
}
