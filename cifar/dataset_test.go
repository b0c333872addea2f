package cifar

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/resnetctl/resnetctl/imgproc"
)

func TestDatasetMethods(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, filepath.Join(dir, "x.bin"), records(FormatCIFAR10, 6, 2, func(i int) int { return 9 - i }))
	d, err := Load(context.Background(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 6 || d.ImageSize() != 3072 {
		t.Fatalf("len %d, image size %d", d.Len(), d.ImageSize())
	}
	if got := d.ClassCounts(); got[9] != 1 || got[0] != 0 || got[4] != 1 {
		t.Errorf("class counts %v", got)
	}
	img := d.Image(2)
	if !bytes.Equal(img.Pix, recordPixels(2, 2)) || img.W != 32 {
		t.Error("Image(2) is not record 2")
	}
	img.Pix[0]++ // a view
	if d.Pixels[2*3072] != img.Pix[0] {
		t.Error("Image is not a view of Pixels")
	}
	img.Pix[0]--

	s, err := d.Subset([]int{4, 1, 4})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 || s.Labels[0] != 5 || s.Labels[1] != 8 || s.Origin(1) != "x.bin#1" || !bytes.Equal(s.Image(2).Pix, d.Image(4).Pix) {
		t.Errorf("subset labels %v origins %v", s.Labels, s.Origins)
	}
	s.Pixels[0]++
	if d.Pixels[4*3072] == s.Pixels[0] {
		t.Error("Subset shares pixels")
	}
	if _, err := d.Subset([]int{6}); err == nil {
		t.Error("Subset accepted index 6 of 6")
	}

	z, err := imgproc.NewNormalizer(imgproc.Norm{Mode: imgproc.ModeRaw})
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]float32, 2*3072)
	labels := make([]int, 2)
	if err := d.WriteBatch(batch, labels, []int{3, 0}, z); err != nil {
		t.Fatal(err)
	}
	if labels[0] != 6 || labels[1] != 9 || batch[0] != float32(d.Pixels[3*3072]) || batch[3072+5] != float32(d.Pixels[5]) {
		t.Errorf("batch labels %v", labels)
	}
	if allocs := testing.AllocsPerRun(10, func() { d.WriteBatch(batch, labels, []int{1, 2}, z) }); allocs != 0 {
		t.Errorf("WriteBatch allocates %v times", allocs)
	}
	errContains(t, d.WriteBatch(batch[:100], labels, []int{1, 2}, z), "needs 6144 floats")
	errContains(t, d.WriteBatch(batch, labels, []int{1, 7}, z), "no image 7")

	bad := *d
	bad.Labels = append([]int(nil), d.Labels...)
	bad.Labels[3] = 10
	errContains(t, bad.Validate(), "image 3 (x.bin#3) has label 10, outside the 10 classes")
	bad = *d
	bad.Pixels = bad.Pixels[:100]
	errContains(t, bad.Validate(), "100 pixel bytes for 6 images")
	bad = *d
	bad.Classes = nil
	errContains(t, bad.Validate(), "no classes")
}

// FuzzBinary feeds arbitrary bytes to the binary reader, as the contents
// of a .bin file of either kind: it must never panic, and whatever it
// accepts must be whole records with labels in range and pixels in place.
func FuzzBinary(f *testing.F) {
	f.Add(records(FormatCIFAR10, 1, 1, mod(10)), false)
	f.Add(records(FormatCIFAR100, 1, 1, mod(100)), true)
	f.Add([]byte{}, false)
	f.Add([]byte{10}, false)
	f.Add(make([]byte, RecordBytes10+1), true)
	f.Fuzz(func(t *testing.T, data []byte, hundred bool) {
		format := FormatCIFAR10
		if hundred {
			format = FormatCIFAR100
		}
		for _, opts := range []Options{{}, {Format: format}, {Format: format, Coarse: true}} {
			s := &Source{opts: opts}
			if err := s.binBytes("fuzz.bin", data, binRole{}, nil); err != nil {
				if s.data != nil {
					t.Fatal("a data set and an error")
				}
				continue
			}
			d := s.data
			rb := RecordBytes10
			if s.Format == FormatCIFAR100 {
				rb = RecordBytes100
			}
			if d.Len()*rb != len(data) || d.Validate() != nil {
				t.Fatalf("accepted %d bytes as %d records of %d bytes", len(data), d.Len(), rb)
			}
			for i := 0; i < d.Len(); i++ {
				if !bytes.Equal(d.Image(i).Pix, data[i*rb+rb-ImageBytes:(i+1)*rb]) {
					t.Fatalf("record %d's pixels moved", i)
				}
			}
		}
	})
}

// FuzzArchive feeds arbitrary bytes to the archive reader, as a .tar.gz
// holding a release or an image folder.
func FuzzArchive(f *testing.F) {
	f.Add(tarGz(f, release10(1, scrambled)))
	f.Add(tarGz(f, imageTree(f, "x", map[string]map[string]int{"test": {"a": 1, "b": 1}})))
	f.Add([]byte{0x1f, 0x8b})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "fuzz.tar.gz")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := Load(context.Background(), p, Options{Split: "test", AnyCount: true, Decoder: imgproc.Decoder{MaxPixels: 1 << 16}})
		if err == nil && d.Validate() != nil {
			t.Fatalf("accepted an invalid data set: %v", d.Validate())
		}
	})
}
