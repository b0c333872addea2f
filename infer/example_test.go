package infer_test

import (
	"context"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/models"
)

// Loading a model and classifying an image: the model is ResNet-20 from the
// catalog (untrained, so its answers are arbitrary: the example prints
// what does not depend on them), exported with its class names and
// preprocessing, which package classify reads from its metadata.
func Example() {
	dir, err := os.MkdirTemp("", "infer-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	spec, err := models.Lookup("resnet20")
	if err != nil {
		log.Fatal(err)
	}
	g, err := build.New(spec, build.Options{Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "resnet20.onnx")
	if _, err := export.WriteFile(path, g, export.Options{Softmax: true}); err != nil {
		log.Fatal(err)
	}

	// Load validates the whole model up front.
	sess, err := infer.Load(path, infer.Options{Threads: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	md := sess.Metadata()
	fmt.Println("input:", md.Inputs[0].Name, md.Inputs[0].Shape)
	for _, o := range md.Outputs {
		fmt.Println("output:", o.Name, o.Shape)
	}

	// Input size, preprocessing and class names, from the metadata.
	setup, err := classify.ResolveSession(sess, classify.Flags{})
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range setup.Describe {
		fmt.Println("setup:", d)
	}
	img, err := imgproc.DecodeFile("../imgproc/testdata/images/natural.png")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("image: %dx%d\n", img.W, img.H)
	preds, err := setup.Classify(context.Background(), sess, []*imgproc.Image{img}, 3)
	if err != nil {
		log.Fatal(err)
	}
	sum := 0.0
	for _, p := range preds[0] {
		sum += p.Prob
		if p.Label != setup.Classes[p.Index] {
			log.Fatalf("prediction %+v is not named after its class", p)
		}
	}
	fmt.Printf("top %d of %d classes (%s … %s), probabilities summing to at most %.0f\n",
		len(preds[0]), len(setup.Classes), setup.Classes[0], setup.Classes[9], math.Ceil(sum))
	// Output:
	// input: input [-1 3 32 32]
	// output: logits [-1 10]
	// output: probabilities [-1 10]
	// setup: input 32x32 (the model's)
	// setup: preprocessing from metadata (cifar10)
	// setup: labels from metadata
	// setup: output probabilities holds probabilities (the graph ends in Softmax)
	// image: 93x61
	// top 3 of 10 classes (airplane … truck), probabilities summing to at most 1
}
