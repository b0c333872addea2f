// Command tutorial is the chapter this project grew from, step by step, in
// Go: load CIFAR-10, build a ResNet-20 from the catalog, compile it with
// Adam and sparse categorical cross-entropy, fit it with Keras-style
// augmentation, evaluate it on the test set, save it as ONNX, and predict
// the top-3 classes of a test image.
//
//	go run ./examples/tutorial                      # embedded sample, 2 epochs
//	go run ./examples/tutorial -data ../shared/data/cifar10-jpeg.tar.gz -epochs 10
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/models"
	"github.com/resnetctl/resnetctl/train"
)

func main() {
	data := flag.String("data", "", "CIFAR-10 (binary or image folders); empty: the embedded sample")
	epochs := flag.Int("epochs", 2, "epochs (the chapter uses 10)")
	out := flag.String("out", "resnet20_tutorial.onnx", "where to save the trained model")
	flag.Parse()
	if err := run(context.Background(), *data, *epochs, *out); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, data string, epochs int, out string) error {
	// 1. The data: training and test splits, 32x32 RGB, 10 classes.
	var trainSet, testSet *cifar.Dataset
	var err error
	if data == "" {
		if trainSet, err = cifar.EmbeddedSample("train"); err == nil {
			testSet, err = cifar.EmbeddedSample("test")
		}
	} else if trainSet, err = cifar.Load(ctx, data, cifar.Options{Split: "train"}); err == nil {
		testSet, err = cifar.Load(ctx, data, cifar.Options{Split: "test"})
	}
	if err != nil {
		return err
	}
	fmt.Printf("train: %d images, test: %d images, classes %v\n", trainSet.Len(), testSet.Len(), trainSet.Classes)

	// 2. The model: ResNet-20 from the catalog (plain data; change any field).
	spec, err := models.Lookup("resnet20")
	if err != nil {
		return err
	}
	model, err := train.NewModel(spec, 1)
	if err != nil {
		return err
	}

	// 3. Compile: the chapter's Adam (Keras defaults) and sparse categorical
	// cross-entropy.
	recipe, err := train.LookupRecipe("tutorial")
	if err != nil {
		return err
	}
	if err := model.Compile(recipe.CompileOptions()); err != nil {
		return err
	}

	// 4. Fit with the chapter's augmentation (rotation 15°, shifts 0.1,
	// horizontal flip, zoom 0.1), validating on the test set every epoch.
	augmented, err := train.NewAugmentedSource(trainSet, "keras", spec.Preprocess, 0)
	if err != nil {
		return err
	}
	test, err := train.NewDatasetSource(testSet, spec.Preprocess, false)
	if err != nil {
		return err
	}
	fit := recipe.FitOptions()
	fit.Epochs, fit.Validation = epochs, test
	fit.Callbacks = []train.Callback{train.CallbackFuncs{EpochEnd: func(e train.EpochInfo) {
		m := e.Metrics
		fmt.Printf("epoch %d: loss %.4f accuracy %.4f val_loss %.4f val_accuracy %.4f\n", m.Epoch, m.Loss, m.Accuracy, m.ValLoss, m.ValAccuracy)
	}}}
	if _, err := model.Fit(ctx, augmented, fit); err != nil {
		return err
	}

	// 5. Evaluate on the test set.
	metrics, err := model.Evaluate(ctx, test, 256)
	if err != nil {
		return err
	}
	fmt.Printf("test: %+v\n", metrics)

	// 6. Save as ONNX (what evaluate and predict measure is what ships).
	if _, err := export.WriteFile(out, model.Graph, export.Options{}); err != nil {
		return err
	}
	fmt.Println("saved", out)

	// 7. Predict one test image, top-3 with class names.
	norm, err := imgproc.NewNormalizer(imgproc.Norm{Mode: imgproc.ModeCustom, Scale: spec.Preprocess.Scale, Mean: spec.Preprocess.Mean, Std: spec.Preprocess.Std})
	if err != nil {
		return err
	}
	x := make([]float32, 3*32*32)
	if err := testSet.WriteBatch(x, make([]int, 1), []int{0}, norm); err != nil {
		return err
	}
	logits, err := model.Predict(ctx, x, 1)
	if err != nil {
		return err
	}
	fmt.Printf("test image 0 (a %s):\n", testSet.Classes[testSet.Labels[0]])
	for _, p := range classify.TopK(logits, 3, false, testSet.Classes) {
		fmt.Printf("  %d. %-10s %.2f%%\n", p.Rank, p.Label, 100*p.Prob)
	}
	return nil
}

func init() { log.SetFlags(0); log.SetOutput(os.Stderr) }
