// Package cifar reads image classification data sets: CIFAR-10 and
// CIFAR-100 in their official binary format, and image folders
// (split/class/image.jpg), each from a folder or from a .tar.gz (or .tar)
// read as a stream without unpacking. It downloads the official archives
// (Fetch) and embeds a small CIFAR-10 sample so training works offline
// (EmbeddedSample).
//
// Two ways to read, one for each use:
//
//   - Load gives a Dataset: every image in memory, all the same size, with
//     random access by index, which is what a training loop with shuffling
//     and augmentation needs. Images are planar 8-bit RGB (3×H×W, the CIFAR
//     record layout and the channel layout of NCHW tensors).
//   - Open + Source.Walk streams samples one at a time (images decoded in
//     parallel, delivered in order), each image at its own size, which is
//     what evaluating a 224×224 model on a folder of photos needs: memory
//     stays flat, and a preprocessing step (Options.Transform) can run in
//     the decoding workers.
//
// Everything read is validated, and errors name the file: a binary file
// whose size is not a whole number of records, an official batch with the
// wrong record count, a label byte beyond the classes, a truncated archive,
// a file in a class folder that is not an image, an image that does not
// decode, an empty class folder.
package cifar

import (
	"fmt"
	"sort"

	"github.com/resnetctl/resnetctl/imgproc"
)

// Dataset is a labelled image set held in memory. Every image is 3×H×W
// bytes, planar: the H×W red plane, then green, then blue, each row-major
// (exactly a CIFAR record's pixel bytes). Image i occupies
// Pixels[i*3*H*W : (i+1)*3*H*W] and has label Labels[i], an index into
// Classes.
//
// A Dataset is plain data: training code may shuffle an index permutation
// and read images through Image(i) (a view, no copy) to augment them;
// Subset copies a selection.
type Dataset struct {
	Name    string   // where it came from, for messages ("test_batch.bin", "cifar10-jpeg.tar.gz test")
	Classes []string // label names in label order
	H, W    int      // image height and width
	Pixels  []uint8  // N×3×H×W
	Labels  []int    // N labels, each in [0, len(Classes))
	// Origins names each image's source ("cifar10/test/cat/0000.jpg"), or
	// is nil when the images are records of binary files (see Origin).
	Origins []string

	spans []span // binary: which file each run of records came from
}

// span says records [first, first+n) came from file name, record 0 on.
type span struct {
	name     string
	first, n int
}

// Len is the number of images.
func (d *Dataset) Len() int { return len(d.Labels) }

// ImageSize is the number of bytes of one image, 3×H×W.
func (d *Dataset) ImageSize() int { return 3 * d.H * d.W }

// Image returns image i as an imgproc.Image sharing d.Pixels.
func (d *Dataset) Image(i int) *imgproc.Image {
	n := d.ImageSize()
	return &imgproc.Image{W: d.W, H: d.H, Pix: d.Pixels[i*n : (i+1)*n : (i+1)*n]}
}

// Origin names where image i came from: a file name, or a binary file and
// record number ("data_batch_3.bin#1234").
func (d *Dataset) Origin(i int) string {
	if d.Origins != nil {
		return d.Origins[i]
	}
	k := sort.Search(len(d.spans), func(k int) bool { return d.spans[k].first+d.spans[k].n > i })
	if k < len(d.spans) && i >= d.spans[k].first {
		return fmt.Sprintf("%s#%d", d.spans[k].name, i-d.spans[k].first)
	}
	return fmt.Sprintf("%s#%d", d.Name, i)
}

// ClassCounts returns the number of images of each class.
func (d *Dataset) ClassCounts() []int {
	counts := make([]int, len(d.Classes))
	for _, l := range d.Labels {
		if l >= 0 && l < len(counts) {
			counts[l]++
		}
	}
	return counts
}

// Validate checks that the fields agree: sizes, label range, origins.
func (d *Dataset) Validate() error {
	switch {
	case d.H <= 0 || d.W <= 0:
		return fmt.Errorf("%s: image size %dx%d", d.Name, d.W, d.H)
	case len(d.Pixels) != len(d.Labels)*d.ImageSize():
		return fmt.Errorf("%s: %d pixel bytes for %d images of 3x%dx%d", d.Name, len(d.Pixels), len(d.Labels), d.H, d.W)
	case d.Origins != nil && len(d.Origins) != len(d.Labels):
		return fmt.Errorf("%s: %d origins for %d images", d.Name, len(d.Origins), len(d.Labels))
	case len(d.Classes) == 0:
		return fmt.Errorf("%s: no classes", d.Name)
	}
	for i, l := range d.Labels {
		if l < 0 || l >= len(d.Classes) {
			return fmt.Errorf("%s: image %d (%s) has label %d, outside the %d classes", d.Name, i, d.Origin(i), l, len(d.Classes))
		}
	}
	return nil
}

// Subset returns a new Dataset holding copies of the images idx, in that
// order (indices may repeat).
func (d *Dataset) Subset(idx []int) (*Dataset, error) {
	n := d.ImageSize()
	s := &Dataset{Name: d.Name, Classes: append([]string(nil), d.Classes...), H: d.H, W: d.W,
		Pixels: make([]uint8, 0, len(idx)*n), Labels: make([]int, 0, len(idx)), Origins: make([]string, 0, len(idx))}
	for _, i := range idx {
		if i < 0 || i >= d.Len() {
			return nil, fmt.Errorf("%s: no image %d (%d images)", d.Name, i, d.Len())
		}
		s.Pixels = append(s.Pixels, d.Pixels[i*n:(i+1)*n]...)
		s.Labels = append(s.Labels, d.Labels[i])
		s.Origins = append(s.Origins, d.Origin(i))
	}
	return s, nil
}

// WriteBatch writes images idx as an NCHW float32 batch into dst (at least
// len(idx)×3×H×W values) through z, and their labels into labels (at
// least len(idx)). It allocates nothing.
func (d *Dataset) WriteBatch(dst []float32, labels []int, idx []int, z *imgproc.Normalizer) error {
	n := d.ImageSize()
	if len(dst) < len(idx)*n || len(labels) < len(idx) {
		return fmt.Errorf("%s: batch of %d images needs %d floats and %d labels, got %d and %d", d.Name, len(idx), len(idx)*n, len(idx), len(dst), len(labels))
	}
	for b, i := range idx {
		if i < 0 || i >= d.Len() {
			return fmt.Errorf("%s: no image %d (%d images)", d.Name, i, d.Len())
		}
		if err := z.WritePlanar(dst[b*n:(b+1)*n], d.Pixels[i*n:(i+1)*n]); err != nil {
			return err
		}
		labels[b] = d.Labels[i]
	}
	return nil
}
