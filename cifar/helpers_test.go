package cifar

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// records makes n records of format f. Record i has label labels(i) (and
// coarse label labels(i)%20 for CIFAR-100) and pixels derived from seed
// and i, so that tests can check which record landed where.
func records(f Format, n, seed int, labels func(i int) int) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		l := labels(i)
		if f == FormatCIFAR100 {
			b = append(b, byte(l%20), byte(l))
		} else {
			b = append(b, byte(l))
		}
		b = append(b, recordPixels(seed, i)...)
	}
	return b
}

func recordPixels(seed, i int) []byte {
	px := make([]byte, ImageBytes)
	for p := range px {
		px[p] = byte(seed*31 + i*7 + p*13)
	}
	return px
}

func mod(k int) func(int) int { return func(i int) int { return i % k } }

// file is a name and contents, for folders and archives.
type file struct {
	name string
	data []byte
}

func dirEntry(name string) file { return file{name: name + "/", data: nil} }

// writeTree writes files under root; names ending in "/" are folders.
func writeTree(t testing.TB, root string, files []file) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.name))
		if strings.HasSuffix(f.name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tarGz packs files, in the order given, into a gzip-compressed tar.
func tarGz(t testing.TB, files []file) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	writeTar(t, gz, files)
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeTar(t testing.TB, w interface{ Write([]byte) (int, error) }, files []file) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(f.name, "/") {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, p string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// solid makes a w×h image of one colour.
func solid(w, h int, c color.NRGBA) image.Image {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(m.Pix); i += 4 {
		m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	return m
}

func pngBytes(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// classColor is the colour test image folders use for a class, so labels
// can be checked from pixels.
func classColor(class string) color.NRGBA {
	h := 0
	for _, c := range class {
		h = h*31 + int(c)
	}
	return color.NRGBA{uint8(h), uint8(h >> 3), uint8(h >> 6), 255}
}

func errContains(t testing.TB, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error; want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
}
