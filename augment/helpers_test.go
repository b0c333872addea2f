package augment

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/models"
)

// remap applies a pixel map to planar w×h RGB bytes (-1 gives 0).
func remap(src []uint8, m []int32, w, h int) []uint8 {
	n := w * h
	out := make([]uint8, 3*n)
	for c := 0; c < 3; c++ {
		for p, q := range m[:n] {
			if q >= 0 {
				out[c*n+p] = src[c*n+int(q)]
			}
		}
	}
	return out
}

// pattern returns a w×h image whose pixel (x, y) has R = x, G = y and
// B = 100+x+y, so that a pixel shows where it came from.
func pattern(w, h int) []uint8 {
	n := w * h
	pix := make([]uint8, 3*n)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			pix[y*w+x], pix[n+y*w+x], pix[2*n+y*w+x] = uint8(x), uint8(y), uint8(100+x+y)
		}
	}
	return pix
}

func cifarNorm(t testing.TB) models.Preprocess {
	p, err := models.PreprocessPreset("cifar10")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var sampleCache *cifar.Dataset

// sample returns the embedded CIFAR-10 training sample (1,000 images),
// shared: tests must not change it.
func sample(t testing.TB) *cifar.Dataset {
	if sampleCache == nil {
		d, err := cifar.EmbeddedSample("train")
		if err != nil {
			t.Fatal(err)
		}
		sampleCache = d
	}
	return sampleCache
}

// tiled returns a dataset of n images cycling through the sample.
func tiled(t testing.TB, n int) *cifar.Dataset {
	s := sample(t)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i % s.Len()
	}
	d, err := s.Subset(idx)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newLoader(t testing.TB, d *cifar.Dataset, cfg Config) *Loader {
	t.Helper()
	if cfg.Norm.Scale == 0 {
		cfg.Norm = cifarNorm(t)
	}
	l, err := New(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// epochDigest runs one epoch from step on and returns a SHA-256 of every
// batch (values, labels, indices, N, epoch, step) in order, and the batch
// count.
func epochDigest(t testing.TB, l *Loader, epoch, step int) ([][32]byte, error) {
	t.Helper()
	bs := l.Epoch(context.Background(), epoch, step)
	defer bs.Close()
	var out [][32]byte
	for {
		b, err := bs.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, batchDigest(b))
	}
}

func batchDigest(b *Batch) [32]byte {
	h := sha256.New()
	var buf [8]byte
	for _, v := range b.X {
		binary.LittleEndian.PutUint32(buf[:4], math.Float32bits(v))
		h.Write(buf[:4])
	}
	for _, s := range [][]int{b.Labels, b.Index, {b.N, b.Epoch, b.Step}} {
		for _, v := range s {
			binary.LittleEndian.PutUint64(buf[:], uint64(v))
			h.Write(buf[:])
		}
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}
