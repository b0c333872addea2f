package train

import (
	"context"
	"errors"
	"io"

	"github.com/resnetctl/resnetctl/augment"
	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/models"
)

// AugmentedSource serves a cifar.Dataset through the augmentation pipeline
// (package augment): shuffled, augmented, normalised, prefetched by
// parallel workers. Each epoch's batches depend on (epoch seed, batch) only,
// as Source requires, because the pipeline is seeded with the epoch's seed.
type AugmentedSource struct {
	ds      *cifar.Dataset
	aug     augment.Augmentation
	pre     models.Preprocess
	workers int
}

// NewAugmentedSource returns a Source over ds with the named augmentation
// ("paper", "keras" or "none") and the model's preprocessing.
func NewAugmentedSource(ds *cifar.Dataset, augmentation string, pre models.Preprocess, workers int) (*AugmentedSource, error) {
	a, err := augment.Lookup(augmentation)
	if err != nil {
		return nil, err
	}
	if err := ds.Validate(); err != nil {
		return nil, err
	}
	return &AugmentedSource{ds: ds, aug: a, pre: pre, workers: workers}, nil
}

// Len implements Source.
func (s *AugmentedSource) Len() int { return s.ds.Len() }

// Shape implements Source.
func (s *AugmentedSource) Shape() models.Shape { return models.Shape{C: 3, H: s.ds.H, W: s.ds.W} }

// Epoch implements Source: a pipeline seeded with the epoch's seed, read
// as its epoch 0.
func (s *AugmentedSource) Epoch(epoch int, seed uint64, batch int) (Batches, error) {
	l, err := augment.New(s.ds, augment.Config{BatchSize: batch, DropLast: true, Seed: seed, Augment: s.aug, Norm: s.pre, Workers: s.workers})
	if err != nil {
		return nil, err
	}
	return &augmentedBatches{b: l.Epoch(context.Background(), 0, 0), per: 3 * s.ds.H * s.ds.W}, nil
}

type augmentedBatches struct {
	b    augment.Batches
	per  int
	done bool
}

// Next copies the pipeline's next batch; at the end it closes the pipeline.
func (a *augmentedBatches) Next(x []float32, labels []int) (int, error) {
	if a.done {
		return 0, nil
	}
	b, err := a.b.Next()
	if errors.Is(err, io.EOF) {
		a.done = true
		return 0, a.b.Close()
	}
	if err != nil {
		a.done = true
		a.b.Close()
		return 0, err
	}
	n := min(b.N, len(labels))
	copy(x, b.X[:n*a.per])
	copy(labels, b.Labels[:n])
	return n, nil
}

// Close stops the pipeline before the end of the pass (idempotent).
func (a *augmentedBatches) Close() error {
	if a.done {
		return nil
	}
	a.done = true
	return a.b.Close()
}
