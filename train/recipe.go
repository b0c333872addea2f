package train

import (
	"fmt"
	"sort"
	"strings"
)

// Recipe is a complete training configuration as plain data: what the CLI
// prints (as JSON), lets users override field by field, and stores in every
// checkpoint. Compile and FitOptions split it into what Model.Compile and
// Model.Fit take.
type Recipe struct {
	Name  string `json:"name"`
	About string `json:"about,omitempty"`
	// Epochs is the number of passes over the training data; MaxSteps, if
	// positive, stops training after that many optimiser steps, even within
	// an epoch. The schedule spans min(Epochs·steps per epoch, MaxSteps).
	Epochs   int `json:"epochs"`
	MaxSteps int `json:"max_steps,omitempty"`
	Batch    int `json:"batch"`

	Optimizer OptimizerConfig `json:"optimizer"`
	Schedule  ScheduleConfig  `json:"schedule"`
	// Loss is "sparse_categorical_crossentropy" (softmax cross-entropy
	// on class indices, mean over the batch), with optional label
	// smoothing ε in PyTorch's sense.
	Loss           string  `json:"loss"`
	LabelSmoothing float64 `json:"label_smoothing,omitempty"`
	// Augment names the augmentation of the training data for the data
	// pipeline (package augment): "paper" (pad 4, random crop, horizontal
	// flip), "keras" (the Keras tutorial's ImageDataGenerator) or "none".
	// The train package itself does not interpret it.
	Augment string `json:"augment"`

	EarlyStopping EarlyStopping `json:"early_stopping,omitempty"`
	// Seed drives data order (and, through the data pipeline,
	// augmentation); model initialisation has its own seed.
	Seed uint64 `json:"seed"`

	// Freeze is FreezeNone (or "") or FreezeBackbone: train only the
	// head (see FrozenParams). Resume continues with the same freeze.
	Freeze string `json:"freeze,omitempty"`
	// BNReestimate, if positive, records that the BatchNorm running
	// statistics were re-estimated over that many batches before training
	// (Model.ReestimateBN); resuming does not repeat it.
	BNReestimate int `json:"bn_reestimate,omitempty"`
	// OnlyClasses, if set, records that the model was trained on these
	// classes of the data set only, relabelled 0, 1, … in this order;
	// the data pipeline (the CLI's --only-classes) applies it, the train
	// package does not interpret it.
	OnlyClasses []int `json:"only_classes,omitempty"`

	// ValidationTTA is the test-time augmentation of the end-of-epoch
	// validation: "" (none) or TTAFlip (each image evaluated as itself
	// and mirrored left-right, the two softmax probability vectors
	// averaged; accuracy and loss come from the average).
	ValidationTTA string `json:"validation_tta,omitempty"`
	// EMADecay, if positive (it must be below 1), keeps an exponential
	// moving average of the weights, updated after every optimiser step
	// (ema = d·ema + (1−d)·w; BatchNorm running statistics are copied):
	// validation and every checkpoint's model.onnx use the average, the
	// raw weights keep training. 0 turns it off.
	EMADecay float64 `json:"ema_decay,omitempty"`
}

// TTAFlip is the flip test-time augmentation (Recipe.ValidationTTA).
const TTAFlip = "flip"

// SparseCategoricalCrossentropy is the loss every recipe uses: softmax
// cross-entropy against class indices (Keras' name).
const SparseCategoricalCrossentropy = "sparse_categorical_crossentropy"

// EarlyStopping stops training when a monitored metric has not improved
// by more than MinDelta for Patience epochs. Patience 0 disables it.
type EarlyStopping struct {
	// Monitor is "val_loss" (default), "val_accuracy", "loss" or
	// "accuracy"; validation metrics need validation data.
	Monitor  string  `json:"monitor,omitempty"`
	Patience int     `json:"patience,omitempty"`
	MinDelta float64 `json:"min_delta,omitempty"`
}

// recipes are the named recipes; each function returns a fresh copy.
var recipes = map[string]func() Recipe{
	"paper": func() Recipe {
		return Recipe{
			Name:  "paper",
			About: "He et al. 2015, section 4.2: SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k; pad-crop-flip augmentation",
			// 64k iterations at 390 steps an epoch (50k images, batch
			// 128) end in epoch 165; MaxSteps stops there.
			Epochs: 165, MaxSteps: 64000, Batch: 128,
			Optimizer: OptimizerConfig{Name: SGD, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4},
			Schedule:  ScheduleConfig{Kind: Steps, Milestones: []int{32000, 48000}, Gamma: 0.1},
			Loss:      SparseCategoricalCrossentropy, Augment: "paper", Seed: 1,
		}
	},
	"fast": func() Recipe {
		return Recipe{
			Name:   "fast",
			About:  "30 epochs: SGD Nesterov momentum 0.9, weight decay 5e-4, batch 128, lr 0.1 with a 1-epoch linear warm-up then cosine to 0; pad-crop-flip augmentation",
			Epochs: 30, Batch: 128,
			Optimizer: OptimizerConfig{Name: SGD, LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4},
			Schedule:  ScheduleConfig{Kind: Cosine, WarmupEpochs: 1},
			Loss:      SparseCategoricalCrossentropy, Augment: "paper", Seed: 1,
		}
	},
	// quick is the shortest measured wall time to 87% with ResNet-20 on
	// CIFAR-10 on two CPU cores (issue #19; the README has the candidates'
	// curves): PyTorch's one-cycle schedule, label smoothing and flip TTA
	// in validation, on the fast recipe's optimiser and augmentation.
	"quick": func() Recipe {
		return Recipe{
			Name:   "quick",
			About:  "25 epochs: SGD Nesterov, weight decay 5e-4, batch 128, one-cycle lr (PyTorch's OneCycleLR defaults, peak 0.2), label smoothing 0.1, flip TTA in validation; pad-crop-flip augmentation",
			Epochs: 25, Batch: 128,
			Optimizer:      OptimizerConfig{Name: SGD, LR: 0.2, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4},
			Schedule:       OneCycleDefaults(0), // the peak is Optimizer.LR
			Loss:           SparseCategoricalCrossentropy,
			LabelSmoothing: 0.1,
			Augment:        "paper", Seed: 1,
			ValidationTTA: TTAFlip,
		}
	},
	"tutorial": func() Recipe {
		return Recipe{
			Name:   "tutorial",
			About:  "the Keras tutorial: Adam (lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-7), sparse categorical cross-entropy, batch 32, 10 epochs; Keras-style augmentation",
			Epochs: 10, Batch: 32,
			Optimizer: OptimizerConfig{Name: Adam, LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-7},
			Schedule:  ScheduleConfig{Kind: Constant},
			Loss:      SparseCategoricalCrossentropy, Augment: "keras", Seed: 1,
		}
	},
}

// RecipeNames lists the named recipes.
func RecipeNames() []string {
	names := make([]string, 0, len(recipes))
	for n := range recipes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LookupRecipe returns a copy of a named recipe.
func LookupRecipe(name string) (Recipe, error) {
	f, ok := recipes[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return Recipe{}, fmt.Errorf("unknown recipe %q (want %s)", name, strings.Join(RecipeNames(), ", "))
	}
	return f(), nil
}

// Validate reports the first invalid setting.
func (r Recipe) Validate() error {
	if r.Epochs < 1 {
		return fmt.Errorf("recipe %s: epochs %d must be at least 1", r.Name, r.Epochs)
	}
	if r.MaxSteps < 0 {
		return fmt.Errorf("recipe %s: max steps %d must be ≥ 0", r.Name, r.MaxSteps)
	}
	if r.Batch < 2 {
		return fmt.Errorf("recipe %s: batch %d must be at least 2 (BatchNorm needs a batch)", r.Name, r.Batch)
	}
	if r.Loss != SparseCategoricalCrossentropy && r.Loss != "" {
		return fmt.Errorf("recipe %s: loss %q is not %s", r.Name, r.Loss, SparseCategoricalCrossentropy)
	}
	if !(r.LabelSmoothing >= 0 && r.LabelSmoothing < 1) {
		return fmt.Errorf("recipe %s: label smoothing %g must be in [0, 1)", r.Name, r.LabelSmoothing)
	}
	switch r.EarlyStopping.Monitor {
	case "", "val_loss", "val_accuracy", "loss", "accuracy":
	default:
		return fmt.Errorf("recipe %s: early stopping monitors %q (want val_loss, val_accuracy, loss or accuracy)", r.Name, r.EarlyStopping.Monitor)
	}
	if r.EarlyStopping.Patience < 0 {
		return fmt.Errorf("recipe %s: early-stopping patience %d must be ≥ 0", r.Name, r.EarlyStopping.Patience)
	}
	if r.ValidationTTA != "" && r.ValidationTTA != TTAFlip {
		return fmt.Errorf("recipe %s: validation_tta %q (want %q or none)", r.Name, r.ValidationTTA, TTAFlip)
	}
	if !validEMADecay(r.EMADecay) {
		return fmt.Errorf("recipe %s: ema_decay %g must be 0 (off) or in (0, 1)", r.Name, r.EMADecay)
	}
	if err := r.Optimizer.Validate(); err != nil {
		return fmt.Errorf("recipe %s: %w", r.Name, err)
	}
	if f := normFreeze(r.Freeze); f != "" && f != FreezeBackbone {
		return fmt.Errorf("recipe %s: freeze %q (want %s or %s)", r.Name, r.Freeze, FreezeNone, FreezeBackbone)
	}
	if err := r.Schedule.Validate(); err != nil {
		return fmt.Errorf("recipe %s: %w", r.Name, err)
	}
	return nil
}
