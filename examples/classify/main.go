// Command classify prints the top classes of images with an ONNX image
// classifier, using only the public packages a Go program embedding
// resnetctl's runtime needs: infer (the runtime), imgproc (decoding and
// preprocessing as torchvision does) and classify (setup from the model's
// metadata, top-k with class names).
//
//	go run ./examples/classify [-k 3] model.onnx image.jpg...
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/infer"
)

func main() {
	log.SetFlags(0)
	k := flag.Int("k", 3, "classes to print per image")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: classify [-k 3] model.onnx image...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 2 {
		flag.Usage()
		os.Exit(2)
	}

	// Load validates the whole model; the session is safe for concurrent use.
	sess, err := infer.Load(flag.Arg(0), infer.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	// Input size, preprocessing and class names, from the model's metadata.
	setup, err := classify.ResolveSession(sess, classify.Flags{})
	if err != nil {
		log.Fatal(err)
	}

	paths := flag.Args()[1:]
	images := make([]*imgproc.Image, len(paths))
	for i, p := range paths {
		if images[i], err = imgproc.DecodeFile(p); err != nil {
			log.Fatal(err)
		}
	}
	preds, err := setup.Classify(context.Background(), sess, images, *k)
	if err != nil {
		log.Fatal(err)
	}
	for i, p := range paths {
		fmt.Println(p)
		for _, pr := range preds[i] {
			fmt.Printf("  %d. %-12s %5.1f%%\n", pr.Rank, pr.Label, 100*pr.Prob)
		}
	}
}
