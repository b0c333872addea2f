package imgproc

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzMagic is the start of a file of each format, by Formats order: the
// fuzzer's second argument can force one, so that mutations of any seed
// reach every decoder.
var fuzzMagic = [][]byte{
	[]byte("\xff\xd8"),
	[]byte("\x89PNG\r\n\x1a\n"),
	[]byte("GIF89a"),
	[]byte("BM"),
	[]byte("RIFF\x00\x00\x00\x00WEBP"),
}

// fuzzDecoder bounds what one fuzz input may decode, so that a header
// claiming a large image cannot make every execution allocate hundreds of
// megabytes (the default limit is tested by TestDecompressionBombs).
var fuzzDecoder = Decoder{MaxPixels: 1 << 20, MaxBytes: 1 << 20}

// FuzzDecode decodes arbitrary bytes as each format and runs the
// preprocessing steps on whatever decodes: errors are fine, panics, hangs
// and out-of-range values are not. It is seeded with testdata/images.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "images", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= 20000 { // the big ones slow every mutation down
			f.Add(b, uint8(0))
		}
	}
	for i, m := range fuzzMagic {
		f.Add(append([]byte(nil), m...), uint8(i+1))
	}
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		if k := int(kind) % (len(fuzzMagic) + 1); k > 0 && !bytes.HasPrefix(data, fuzzMagic[k-1]) {
			data = append(append([]byte(nil), fuzzMagic[k-1]...), data...)
		}
		for _, ext := range []string{".jpg", ".png", ".gif", ".bmp", ".webp"} {
			name := "fuzz" + ext
			img, format, err := fuzzDecoder.Decode(data, name)
			if err != nil {
				if img != nil {
					t.Fatalf("%s: an image and an error", name)
				}
				if !strings.HasPrefix(err.Error(), name+": ") {
					t.Fatalf("%s: error does not name the file: %v", name, err)
				}
				continue
			}
			if img.W <= 0 || img.H <= 0 || len(img.Pix) != 3*img.W*img.H || int64(img.W)*int64(img.H) > fuzzDecoder.MaxPixels {
				t.Fatalf("%s (%s): decoded to %dx%d with %d bytes", name, format, img.W, img.H, len(img.Pix))
			}
			if ext != ".jpg" { // the name does not change the decoding
				continue
			}
			fuzzPreprocess(t, img)
		}
	})
}

// fuzzPreprocess runs the evaluation transforms on a decoded image and
// checks their outputs: sizes as asked, values finite and in range.
func fuzzPreprocess(t *testing.T, img *Image) {
	if r := Resize(img, 7, 5); r.W != 7 || r.H != 5 || len(r.Pix) != 3*35 {
		t.Fatalf("Resize to 7x5 gave %dx%d", r.W, r.H)
	}
	if c := CenterCrop(img, 4, 6); c.W != 4 || c.H != 6 || len(c.Pix) != 3*24 {
		t.Fatalf("CenterCrop to 4x6 gave %dx%d", c.W, c.H)
	}
	for _, p := range []*Preprocessor{{W: 8, H: 8}, {Resize: 10, W: 8, H: 8}} {
		dst := make([]float32, 3*8*8)
		if err := p.Write(dst, 0, img); err != nil {
			if errors.Is(err, ErrTooLarge) {
				continue // an extreme aspect ratio
			}
			t.Fatalf("preprocess %dx%d (resize %d): %v", img.W, img.H, p.Resize, err)
		}
		for _, v := range dst {
			if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 5 {
				t.Fatalf("preprocessed value %v", v)
			}
		}
	}
}
