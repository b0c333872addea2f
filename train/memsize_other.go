//go:build !linux

package train

// maxTrainBytes bounds the training activations a checkpoint may imply
// where physical memory is not read: 64 GiB.
func maxTrainBytes() int64 { return 64 << 30 }
