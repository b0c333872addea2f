//go:build ignore

// gen makes the embedded CIFAR-10 sample from the bit-exact records of the
// shared data (/work/shared/data/cifar10-exact-sample, see its README):
//
//	go run ./cifar/sample/gen.go [-shared ../shared/data] [-train 1000] [-test 200]
//
// run from the repository root. It writes into cifar/sample/:
//
//	train.png, test.png       the images, losslessly: image i is rows
//	                          32i..32i+31 of a 32-pixel-wide RGB PNG
//	train.labels, test.labels one label byte per image
//	SHA256SUMS                sha256 of the official records the files
//	                          encode (label byte + R, G, B planes), which
//	                          cifar.EmbeddedSample checks in its tests
//
// PNG's prediction filters store natural images in about 70% of the raw
// bytes (gzip of the raw records manages 92%), which is why the sample is
// PNG and not .bin.gz. Train images are the first records of the official
// data_batch_1.bin, test images the first of test_batch.bin.
package main

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"image"
	"image/png"
	"log"
	"os"
	"path/filepath"
)

const recordBytes = 3073

func main() {
	shared := flag.String("shared", filepath.Join("..", "shared", "data"), "the shared data folder")
	nTrain := flag.Int("train", 1000, "training images")
	nTest := flag.Int("test", 200, "test images")
	out := flag.String("out", filepath.Join("cifar", "sample"), "output folder")
	flag.Parse()
	var sums bytes.Buffer
	for _, s := range []struct {
		split, file string
		n           int
	}{
		{"train", "train_0000-3999.bin", *nTrain},
		{"test", "test_0000-0999.bin", *nTest},
	} {
		raw, err := os.ReadFile(filepath.Join(*shared, "cifar10-exact-sample", s.file))
		if err != nil {
			log.Fatal(err)
		}
		if len(raw) < s.n*recordBytes {
			log.Fatalf("%s has %d records, want at least %d", s.file, len(raw)/recordBytes, s.n)
		}
		raw = raw[:s.n*recordBytes]
		img := image.NewRGBA(image.Rect(0, 0, 32, 32*s.n))
		labels := make([]byte, s.n)
		for i := 0; i < s.n; i++ {
			rec := raw[i*recordBytes : (i+1)*recordBytes]
			labels[i] = rec[0]
			for p := 0; p < 1024; p++ {
				o := img.PixOffset(p%32, 32*i+p/32)
				img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = rec[1+p], rec[1+1024+p], rec[1+2048+p], 255
			}
		}
		var b bytes.Buffer
		enc := png.Encoder{CompressionLevel: png.BestCompression}
		if err := enc.Encode(&b, img); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*out, s.split+".png"), b.Bytes(), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*out, s.split+".labels"), labels, 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(&sums, "%x  %s records 0-%d (%d records of %s)\n", sha256.Sum256(raw), s.split, s.n-1, s.n, s.file)
		log.Printf("%s: %d images, %d bytes of PNG for %d bytes of records (%.0f%%)", s.split, s.n, b.Len(), len(raw), 100*float64(b.Len())/float64(len(raw)))
	}
	if err := os.WriteFile(filepath.Join(*out, "SHA256SUMS"), sums.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
