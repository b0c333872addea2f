package export_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/models"
)

// Exporting a catalog model: ResNet-20 for CIFAR-10 (here with fresh
// weights; a trained model's Graph exports the same way), with a Softmax
// output next to the logits and the BatchNorms folded into the
// convolutions.
func ExampleWriteFile() {
	dir, err := os.MkdirTemp("", "export-example")
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
	info, err := export.WriteFile(filepath.Join(dir, "resnet20.onnx"), g, export.Options{Softmax: true, FoldBN: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("opset", info.Opset, "IR version", info.IRVersion)
	fmt.Println("inputs", info.Inputs, "outputs", info.Outputs)
	fmt.Println(info.Nodes, "nodes,", info.Params, "parameters")
	// Output:
	// opset 17 IR version 8
	// inputs [input] outputs [logits probabilities]
	// 55 nodes, 269034 parameters
}
