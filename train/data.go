package train

import (
	"fmt"
	"math/rand/v2"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/models"
)

// Source is labelled image data, served one pass (epoch) at a time as NCHW
// float32 batches, already preprocessed (and, for training, augmented). It
// is how Fit and Evaluate read data; the augmentation pipeline implements
// it, and DatasetSource is a plain one.
//
// Reproducibility contract: the batches of a pass must be a function of
// (epoch, seed, batch) alone. Fit draws each epoch's seed from its own
// random generator, whose state is part of every checkpoint, so a resumed
// run is fed exactly the batches an uninterrupted run would have been.
type Source interface {
	// Len is the number of samples in one pass.
	Len() int
	// Shape is the shape of one sample.
	Shape() models.Shape
	// Epoch starts pass number epoch (0-based) with the given seed and
	// batch size.
	Epoch(epoch int, seed uint64, batch int) (Batches, error)
}

// Batches is one pass over a Source.
type Batches interface {
	// Next writes the next samples into x (len(labels)×C×H×W values) and
	// labels, at most len(labels) of them, and returns how many it wrote:
	// 0 at the end of the pass. Only the last call before the end may
	// return fewer than len(labels). Training, which needs full batches,
	// drops such a remainder (shuffling puts other samples in it next
	// epoch); evaluation uses it.
	Next(x []float32, labels []int) (int, error)
}

// DatasetSource serves a cifar.Dataset, normalised with a model's
// preprocessing, in order or shuffled (a permutation drawn from each
// epoch's seed), without augmentation.
type DatasetSource struct {
	ds      *cifar.Dataset
	z       *imgproc.Normalizer
	shuffle bool
	shape   models.Shape
}

// NewDatasetSource returns a Source over ds. Shuffled sources permute the
// samples every epoch from the epoch's seed.
func NewDatasetSource(ds *cifar.Dataset, pre models.Preprocess, shuffle bool) (*DatasetSource, error) {
	if err := ds.Validate(); err != nil {
		return nil, err
	}
	z, err := imgproc.NewNormalizer(imgproc.Norm{Mode: imgproc.ModeCustom, Scale: pre.Scale, Mean: pre.Mean, Std: pre.Std})
	if err != nil {
		return nil, fmt.Errorf("train: preprocessing %s: %w", pre.Name, err)
	}
	return &DatasetSource{ds: ds, z: z, shuffle: shuffle, shape: models.Shape{C: 3, H: ds.H, W: ds.W}}, nil
}

// Len implements Source.
func (s *DatasetSource) Len() int { return s.ds.Len() }

// Shape implements Source.
func (s *DatasetSource) Shape() models.Shape { return s.shape }

// Epoch implements Source.
func (s *DatasetSource) Epoch(epoch int, seed uint64, batch int) (Batches, error) {
	if batch < 1 {
		return nil, fmt.Errorf("train: batch size %d", batch)
	}
	order := make([]int, s.ds.Len())
	for i := range order {
		order[i] = i
	}
	if s.shuffle {
		r := rand.New(rand.NewPCG(seed, uint64(epoch)))
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	return &datasetBatches{s: s, order: order}, nil
}

type datasetBatches struct {
	s     *DatasetSource
	order []int
	next  int
}

func (b *datasetBatches) Next(x []float32, labels []int) (int, error) {
	n := min(len(labels), len(b.order)-b.next)
	if n <= 0 {
		return 0, nil
	}
	idx := b.order[b.next : b.next+n]
	b.next += n
	if err := b.s.ds.WriteBatch(x, labels, idx, b.s.z); err != nil {
		return 0, err
	}
	return n, nil
}
