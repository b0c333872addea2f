package train

import "time"

// EpochMetrics is one epoch of a run's history.
type EpochMetrics struct {
	Epoch    int     `json:"epoch"` // 1-based
	Step     int     `json:"step"`  // optimiser steps taken by the end of the epoch
	LR       float64 `json:"lr"`    // learning rate of the epoch's last step
	Loss     float64 `json:"loss"`  // mean training loss over the epoch's batches
	Accuracy float64 `json:"accuracy"`
	// Validation metrics (Validated is false when Fit had no validation
	// data), computed by the inference runtime on the exported model.
	Validated   bool    `json:"validated"`
	ValLoss     float64 `json:"val_loss,omitempty"`
	ValAccuracy float64 `json:"val_accuracy,omitempty"`
	Seconds     float64 `json:"seconds"` // training time of the epoch (without validation)
	ImagesPerS  float64 `json:"images_per_second"`
}

// Metric returns the named metric: loss, accuracy, val_loss or
// val_accuracy.
func (m EpochMetrics) Metric(name string) (float64, bool) {
	switch name {
	case "loss":
		return m.Loss, true
	case "accuracy":
		return m.Accuracy, true
	case "val_loss":
		return m.ValLoss, m.Validated
	case "val_accuracy":
		return m.ValAccuracy, m.Validated
	}
	return 0, false
}

// History is what Fit measured, one entry per epoch (including epochs of
// earlier runs a resumed model carried in its checkpoint).
type History struct {
	Epochs []EpochMetrics `json:"epochs"`
	// Stopped says why training ended before its last epoch ("early
	// stopping: ...", "max steps"), empty otherwise.
	Stopped string `json:"stopped,omitempty"`
}

// BatchInfo describes a finished training step, for progress reporting.
type BatchInfo struct {
	Epoch, Epochs   int // 1-based epoch, and the number of epochs
	Batch, Batches  int // 1-based batch within the epoch, and batches an epoch
	Step, Steps     int // optimiser steps taken, and the run's total
	Loss, Accuracy  float64
	EpochLoss       float64 // running mean over the epoch so far
	EpochAccuracy   float64
	LR              float64
	ImagesPerSecond float64 // over this Fit call so far
	// Elapsed is the time since Fit started; ETA the estimated time to
	// the end of the run, the remaining end-of-epoch validations included
	// (each estimated from the last one's duration, or before the first
	// from the training speed).
	Elapsed, ETA time.Duration
}

// ValidationInfo describes progress through an end-of-epoch validation.
type ValidationInfo struct {
	Epoch, Epochs int // 1-based epoch being validated, and the number of epochs
	Done, Total   int // samples evaluated so far, and the validation set's size
	Elapsed       time.Duration
	// ETA is the estimated time to the end of the run: the rest of this
	// validation and of the run's remaining epochs.
	ETA time.Duration
}

// ValidationCallback is implemented by a Callback that also wants
// progress through each end-of-epoch validation (CallbackFuncs does).
type ValidationCallback interface {
	OnValidationBatch(ValidationInfo)
}

// EpochInfo describes a finished epoch.
type EpochInfo struct {
	Metrics EpochMetrics
	// Checkpoint is the epoch's checkpoint directory ("" without
	// checkpointing); Best reports whether it became the best one.
	Checkpoint string
	Best       bool
}

// Callback observes training. Fit calls it on its own goroutine; a slow
// callback slows training.
type Callback interface {
	OnBatchEnd(BatchInfo)
	OnEpochEnd(EpochInfo)
}

// CallbackFuncs is a Callback made of optional functions.
type CallbackFuncs struct {
	BatchEnd        func(BatchInfo)
	EpochEnd        func(EpochInfo)
	ValidationBatch func(ValidationInfo)
}

// OnValidationBatch implements ValidationCallback.
func (c CallbackFuncs) OnValidationBatch(v ValidationInfo) {
	if c.ValidationBatch != nil {
		c.ValidationBatch(v)
	}
}

// OnBatchEnd implements Callback.
func (c CallbackFuncs) OnBatchEnd(b BatchInfo) {
	if c.BatchEnd != nil {
		c.BatchEnd(b)
	}
}

// OnEpochEnd implements Callback.
func (c CallbackFuncs) OnEpochEnd(e EpochInfo) {
	if c.EpochEnd != nil {
		c.EpochEnd(e)
	}
}
