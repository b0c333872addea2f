package train_test

import (
	"context"
	"fmt"
	"log"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/models"
	"github.com/resnetctl/resnetctl/train"
)

// The Keras tutorial, in Go: build, compile, fit with validation and
// checkpoints, evaluate, predict, export.
func Example() {
	spec, _ := models.Lookup("resnet20")
	trainSet, _ := cifar.EmbeddedSample("train")
	testSet, _ := cifar.EmbeddedSample("test")
	// Without augmentation; the augment package provides augmented Sources.
	trainData, _ := train.NewDatasetSource(trainSet, spec.Preprocess, true)
	testData, _ := train.NewDatasetSource(testSet, spec.Preprocess, false)

	recipe, _ := train.LookupRecipe("tutorial") // Adam 1e-3, batch 32, 10 epochs
	m, err := train.NewModel(spec, 1)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	if err := m.Compile(recipe.CompileOptions()); err != nil {
		log.Fatal(err)
	}
	fit := recipe.FitOptions()
	fit.Validation = testData
	fit.CheckpointDir = "runs/resnet20"
	fit.Callbacks = []train.Callback{train.CallbackFuncs{
		BatchEnd: func(b train.BatchInfo) {
			fmt.Printf("\repoch %d/%d batch %d/%d loss %.3f acc %.3f %.0f img/s ETA %v",
				b.Epoch, b.Epochs, b.Batch, b.Batches, b.EpochLoss, b.EpochAccuracy, b.ImagesPerSecond, b.ETA)
		},
		EpochEnd: func(e train.EpochInfo) {
			fmt.Printf("\nval_loss %.3f val_accuracy %.3f (checkpoint %s)\n", e.Metrics.ValLoss, e.Metrics.ValAccuracy, e.Checkpoint)
		},
	}}
	if _, err := m.Fit(context.Background(), trainData, fit); err != nil {
		log.Fatal(err)
	}
	res, _ := m.Evaluate(context.Background(), testData, 0)
	fmt.Printf("test accuracy %.3f\n", res.Accuracy)
	if _, err := export.WriteFile("resnet20.onnx", m.Graph, export.Options{}); err != nil {
		log.Fatal(err)
	}
}
