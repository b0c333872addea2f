package cifar

import (
	"bytes"
	"embed"
	"fmt"
	"image"
	"image/png"

	"github.com/resnetctl/resnetctl/models"
)

// The embedded sample: the first 1,000 records of the official CIFAR-10
// data_batch_1.bin and the first 200 of test_batch.bin, bit-exact, stored
// as PNG (2.6 MB for 3.7 MB of records). cifar/sample/gen.go makes the
// files from the shared exact records; cifar/sample/SHA256SUMS holds the
// checksums of the records they encode.
//
//go:embed sample/train.png sample/train.labels sample/test.png sample/test.labels
var sampleFiles embed.FS

// sampleSplits are the splits EmbeddedSample has, and their sizes.
var sampleSplits = map[string]int{"train": 1000, "test": 200}

// EmbeddedSample returns the embedded CIFAR-10 sample's split "train" (1,000
// images) or "test" (200) as a Dataset of 32×32 images, so that training
// and evaluation work with no data set on disk. Origin names the official
// record each image is ("data_batch_1.bin#12").
func EmbeddedSample(split string) (*Dataset, error) {
	n, ok := sampleSplits[split]
	if !ok {
		return nil, fmt.Errorf("the embedded sample has no split %q (want train or test)", split)
	}
	pngData, err := sampleFiles.ReadFile("sample/" + split + ".png")
	if err != nil {
		return nil, err
	}
	labels, err := sampleFiles.ReadFile("sample/" + split + ".labels")
	if err != nil {
		return nil, err
	}
	m, err := png.Decode(bytes.NewReader(pngData))
	if err != nil {
		return nil, fmt.Errorf("embedded sample %s: %w", split, err)
	}
	if m.Bounds() != image.Rect(0, 0, Side, Side*n) || len(labels) != n {
		return nil, fmt.Errorf("embedded sample %s: %v image with %d labels, want %d images", split, m.Bounds(), len(labels), n)
	}
	classes, err := models.Labels("cifar10")
	if err != nil {
		return nil, err
	}
	file := "data_batch_1.bin"
	if split == "test" {
		file = "test_batch.bin"
	}
	d := &Dataset{Name: "embedded sample " + split, Classes: classes, H: Side, W: Side,
		Pixels: make([]uint8, n*ImageBytes), Labels: make([]int, n), spans: []span{{name: file, n: n}}}
	rgba, ok := m.(*image.RGBA)
	if !ok {
		return nil, fmt.Errorf("embedded sample %s: decoded as %T, want *image.RGBA", split, m)
	}
	const plane = Side * Side
	for i := 0; i < n; i++ {
		d.Labels[i] = int(labels[i])
		px := d.Pixels[i*ImageBytes : (i+1)*ImageBytes]
		for p := 0; p < plane; p++ {
			o := rgba.PixOffset(p%Side, Side*i+p/Side)
			px[p], px[plane+p], px[2*plane+p] = rgba.Pix[o], rgba.Pix[o+1], rgba.Pix[o+2]
		}
	}
	return d, d.Validate()
}
