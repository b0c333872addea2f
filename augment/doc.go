// Package augment is the training-data pipeline: it turns a cifar.Dataset
// into a stream of shuffled, augmented, normalised NCHW float32 batches,
// made ahead of the training loop by parallel workers.
//
//	norm, _ := models.PreprocessPreset("cifar10")
//	aug, _ := augment.Lookup("paper") // or "keras", "none"
//	l, err := augment.New(train, augment.Config{BatchSize: 128, DropLast: true,
//		Seed: 1, Augment: aug, Norm: norm})
//	for epoch := start; epoch < epochs; epoch++ {
//		bs := l.Epoch(ctx, epoch, 0)
//		for {
//			b, err := bs.Next() // b.X: b.N×3×32×32, b.Labels
//			if err == io.EOF { break }
//			...
//		}
//		bs.Close()
//	}
//
// # Augmentations
//
// Keras reproduces ImageDataGenerator(rotation_range=15,
// width_shift_range=0.1, height_shift_range=0.1, zoom_range=0.1,
// horizontal_flip=True, fill_mode='nearest'): one affine warp composed and
// sampled exactly as Keras' apply_affine_transform does (see Keras; a golden
// test compares with a numpy re-implementation). Paper is He et al.'s pad 4,
// random crop, horizontal flip. None copies. Every augmentation is a pixel
// map (each output pixel copies one input pixel or is zero), applied to the
// uint8 image; normalisation x = (p*Scale - mean[c]) / std[c] comes after,
// through the same tables as imgproc's evaluation preprocessing, so training
// and inference see identical values for identical pixels.
//
// # Determinism and resuming
//
// Every random number a run uses comes from one of these streams, each a
// SplitMix64 generator ([Rand]) keyed by a hash of (Seed, epoch, stream,
// item):
//
//	the order of epoch e        key(Seed, e, shuffle, 0): a Fisher–Yates
//	                            shuffle of 0..N-1
//	the augmentation of image i key(Seed, e, image, i), i the index in
//	in epoch e                  the dataset (not the position in the batch)
//
// Nothing carries over from one epoch, batch or image to the next, so:
//
//   - batch k of epoch e is a function of (Seed, e, k) and the
//     configuration alone; the number of workers, the prefetch depth and the
//     order in which workers finish do not matter;
//   - a resumed run needs only (Seed, epoch, step) from its checkpoint:
//     Epoch(ctx, e, k) gives exactly the batches k, k+1, ... that an
//     uninterrupted run got in epoch e;
//   - the generator, the key hash, the shuffle and the bounded integers
//     (Lemire's method) are defined in this package, not borrowed from
//     math/rand, so the batches do not change with the Go version.
//
// Changing anything in this scheme changes every augmented batch of every
// seed; tests pin it.
package augment
