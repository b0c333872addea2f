package train_test

import (
	"context"
	"fmt"
	"log"
	"math"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/models"
	"github.com/resnetctl/resnetctl/train"
)

// Training a few steps: ResNet-8 on the embedded CIFAR-10 sample, three
// Adam steps of 16 images. The losses depend on the CPU's floating-point
// details; the example prints what does not.
func ExampleModel_Fit() {
	spec, err := models.Lookup("resnet8")
	if err != nil {
		log.Fatal(err)
	}
	trainSet, err := cifar.EmbeddedSample("train")
	if err != nil {
		log.Fatal(err)
	}
	data, err := train.NewDatasetSource(trainSet, spec.Preprocess, true)
	if err != nil {
		log.Fatal(err)
	}
	m, err := train.NewModel(spec, 1)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	recipe, err := train.LookupRecipe("tutorial") // Adam 1e-3 (Keras defaults)
	if err != nil {
		log.Fatal(err)
	}
	compile := recipe.CompileOptions()
	compile.Threads = 2
	if err := m.Compile(compile); err != nil {
		log.Fatal(err)
	}
	h, err := m.Fit(context.Background(), data, train.FitOptions{Epochs: 1, MaxSteps: 3, Batch: 16, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	last := h.Epochs[len(h.Epochs)-1]
	fmt.Println("steps:", m.Step(), "epochs recorded:", len(h.Epochs))
	fmt.Println("loss finite:", !math.IsNaN(last.Loss) && !math.IsInf(last.Loss, 0), "accuracy in [0, 1]:", last.Accuracy >= 0 && last.Accuracy <= 1)
	// Output:
	// steps: 3 epochs recorded: 1
	// loss finite: true accuracy in [0, 1]: true
}
