package cifar

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/resnetctl/resnetctl/internal/numfmt"
	"github.com/resnetctl/resnetctl/models"
)

// The binary format. A CIFAR-10 record is 1 label byte and 3,072 pixel
// bytes; a CIFAR-100 record is 2 label bytes (coarse, fine) and the pixels.
// Pixels are the 32×32 red plane, then green, then blue, row-major.
const (
	Side           = 32
	ImageBytes     = 3 * Side * Side // 3,072
	RecordBytes10  = 1 + ImageBytes  // 3,073
	RecordBytes100 = 2 + ImageBytes  // 3,074
)

// Format names a kind of data set.
type Format string

// The formats. FormatAuto detects: official file names first, then a
// file's size (a whole number of records of one kind only), and image
// files make an image folder.
const (
	FormatAuto        Format = ""
	FormatCIFAR10     Format = "cifar10"
	FormatCIFAR100    Format = "cifar100"
	FormatImageFolder Format = "folder"
)

func (f Format) recordBytes() int {
	if f == FormatCIFAR100 {
		return RecordBytes100
	}
	return RecordBytes10
}

func (f Format) title() string {
	if f == FormatCIFAR100 {
		return "CIFAR-100"
	}
	return "CIFAR-10"
}

// The official releases' folders inside their archives.
const (
	dir10  = "cifar-10-batches-bin"
	dir100 = "cifar-100-binary"
)

// binRole is what an official file name says about a .bin file.
type binRole struct {
	format Format // FormatAuto: not an official name
	split  string // "train" or "test"; "" when unknown
	order  int    // position in the split
	want   int    // the official record count
}

var batchName = regexp.MustCompile(`^data_batch_([1-5])\.bin$`)

// roleOf classifies a .bin file by its base name and, for CIFAR-100's
// generic names, its folder (or the folder it is read from, dirHint).
func roleOf(name, dirHint string) binRole {
	base := path.Base(name)
	dir := path.Base(path.Dir(name))
	if dir == "." {
		dir = dirHint
	}
	if m := batchName.FindStringSubmatch(base); m != nil {
		k, _ := strconv.Atoi(m[1])
		return binRole{FormatCIFAR10, "train", k, 10000}
	}
	switch {
	case base == "test_batch.bin":
		return binRole{FormatCIFAR10, "test", 0, 10000}
	case base == "train.bin" && dir == dir100:
		return binRole{FormatCIFAR100, "train", 0, 50000}
	case base == "test.bin" && dir == dir100:
		return binRole{FormatCIFAR100, "test", 0, 10000}
	}
	return binRole{}
}

// detectFormat picks the record kind of a file of size bytes with no
// official name: the one kind it is a whole number of records of.
func detectFormat(name string, size int64) (Format, error) {
	ok10, ok100 := size%RecordBytes10 == 0, size%RecordBytes100 == 0
	switch {
	case size == 0:
		return "", fmt.Errorf("%s: empty file", name)
	case ok10 && !ok100:
		return FormatCIFAR10, nil
	case ok100 && !ok10:
		return FormatCIFAR100, nil
	case ok10 && ok100:
		return "", fmt.Errorf("%s: %s bytes is a whole number of both CIFAR-10 (3,073-byte) and CIFAR-100 (3,074-byte) records; say which (Options.Format)", name, numfmt.Commas(size))
	}
	return "", fmt.Errorf("%s: %s bytes is not a whole number of CIFAR-10 (3,073-byte) or CIFAR-100 (3,074-byte) records", name, numfmt.Commas(size))
}

// checkSize checks a file's size before its records are read.
func checkSize(name string, size int64, f Format, role binRole, anyCount bool) error {
	rb := int64(f.recordBytes())
	if size == 0 {
		return fmt.Errorf("%s: empty file (no %s records)", name, f.title())
	}
	if size%rb != 0 {
		return fmt.Errorf("%s: %s bytes is not a whole number of %s-byte %s records (%s records and %s bytes over)",
			name, numfmt.Commas(size), numfmt.Commas(rb), f.title(), numfmt.Commas(size/rb), numfmt.Commas(size%rb))
	}
	if role.want > 0 && !anyCount && size/rb != int64(role.want) {
		return fmt.Errorf("%s: %s records; the official file has %s (a truncated or altered copy? Options.AnyCount accepts it)",
			name, numfmt.Commas(size/rb), numfmt.Commas(int64(role.want)))
	}
	return nil
}

// appendRecords validates the records in data and appends their pixels and
// labels (fine labels for CIFAR-100 unless coarse).
func appendRecords(d *Dataset, name string, data []byte, f Format, coarse bool) error {
	rb := f.recordBytes()
	if len(data)%rb != 0 {
		return fmt.Errorf("%s: %s bytes is not a whole number of %s-byte %s records", name, numfmt.Commas(int64(len(data))), numfmt.Commas(int64(rb)), f.title())
	}
	n := len(data) / rb
	first := d.Len()
	d.Pixels = growBytes(d.Pixels, n*ImageBytes)
	d.Labels = growInts(d.Labels, n)
	for i := 0; i < n; i++ {
		rec := data[i*rb : (i+1)*rb]
		var label int
		if f == FormatCIFAR100 {
			c, fine := int(rec[0]), int(rec[1])
			if c >= 20 {
				return fmt.Errorf("%s: record %s: coarse label %d, but CIFAR-100 has 20 superclasses", name, numfmt.Commas(int64(i)), c)
			}
			if fine >= 100 {
				return fmt.Errorf("%s: record %s: fine label %d, but CIFAR-100 has 100 classes", name, numfmt.Commas(int64(i)), fine)
			}
			label = fine
			if coarse {
				label = c
			}
		} else if label = int(rec[0]); label >= 10 {
			return fmt.Errorf("%s: record %s: label %d, but CIFAR-10 has 10 classes", name, numfmt.Commas(int64(i)), label)
		}
		d.Labels = append(d.Labels, label)
		d.Pixels = append(d.Pixels, rec[rb-ImageBytes:]...)
	}
	d.spans = append(d.spans, span{name: name, first: first, n: n})
	return nil
}

func growBytes(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		return nb
	}
	return b
}

func growInts(b []int, n int) []int {
	if cap(b)-len(b) < n {
		nb := make([]int, len(b), len(b)+n)
		copy(nb, b)
		return nb
	}
	return b
}

// parseLabelNames reads a label file of the official releases
// (batches.meta.txt, fine_label_names.txt, coarse_label_names.txt): one
// name a line, blank lines ignored.
func parseLabelNames(name string, data []byte, want int) ([]string, error) {
	var names []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names = append(names, l)
		}
	}
	if len(names) != want {
		return nil, fmt.Errorf("%s: %d class names, want %d", name, len(names), want)
	}
	return names, nil
}

// defaultClasses are the official label names.
func defaultClasses(f Format, coarse bool) ([]string, error) {
	switch {
	case f == FormatCIFAR100 && coarse:
		return models.Labels("cifar100-coarse")
	case f == FormatCIFAR100:
		return models.Labels("cifar100")
	}
	return models.Labels("cifar10")
}

// labelFile is the name of the label file the release ships for f.
func labelFile(f Format, coarse bool) (string, int) {
	switch {
	case f == FormatCIFAR100 && coarse:
		return "coarse_label_names.txt", 20
	case f == FormatCIFAR100:
		return "fine_label_names.txt", 100
	}
	return "batches.meta.txt", 10
}
