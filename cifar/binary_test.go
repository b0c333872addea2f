package cifar

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

var tenNames = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// release10 is a small CIFAR-10 release: n records a batch, batch k's
// labels starting at k so that the order can be checked.
func release10(n int, order []string) []file {
	batches := map[string][]byte{
		"batches.meta.txt": []byte(stringsJoinLines(tenNames) + "\n\n"),
		"test_batch.bin":   records(FormatCIFAR10, n, 6, func(i int) int { return (i + 6) % 10 }),
		"readme.html":      []byte("<html></html>"),
	}
	for k := 1; k <= 5; k++ {
		k := k
		batches[fmt.Sprintf("data_batch_%d.bin", k)] = records(FormatCIFAR10, n, k, func(i int) int { return (i + k) % 10 })
	}
	files := []file{dirEntry(dir10)}
	for _, name := range order {
		files = append(files, file{dir10 + "/" + name, batches[name]})
	}
	return files
}

var scrambled = []string{"data_batch_4.bin", "readme.html", "test_batch.bin", "data_batch_3.bin", "batches.meta.txt", "data_batch_2.bin", "data_batch_5.bin", "data_batch_1.bin"}

func stringsJoinLines(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(x)
	}
	return b.String()
}

func without(files []file, name string) []file {
	var out []file
	for _, f := range files {
		if filepath.Base(f.name) != name {
			out = append(out, f)
		}
	}
	return out
}

func replace(files []file, name string, data []byte) []file {
	out := slices.Clone(files)
	for i := range out {
		if filepath.Base(out[i].name) == name {
			out[i].data = data
		}
	}
	return out
}

func TestBinary(t *testing.T) {
	const n = 4
	rel := release10(n, scrambled)
	rel100 := []file{
		dirEntry(dir100),
		{dir100 + "/test.bin", records(FormatCIFAR100, 3, 1, func(i int) int { return 90 + i })},
		{dir100 + "/train.bin", records(FormatCIFAR100, 5, 2, func(i int) int { return 40 + i })},
		{dir100 + "/coarse_label_names.txt", []byte(stringsJoinLines(repeatNames("super", 20)))},
		{dir100 + "/fine_label_names.txt", []byte(stringsJoinLines(repeatNames("fine", 100)))},
	}
	tooMany := records(FormatCIFAR10, 3, 0, mod(10))
	tooMany[2*RecordBytes10] = 10 // record 2's label
	badFine := records(FormatCIFAR100, 3, 0, mod(100))
	badFine[RecordBytes100+1] = 100
	badCoarse := records(FormatCIFAR100, 3, 0, mod(100))
	badCoarse[2*RecordBytes100] = 20

	type layout int
	const (
		single  layout = iota // files[0] alone, opened as a file
		folder                // files written under a folder, the folder opened
		archive               // files packed as .tar.gz
	)
	tests := []struct {
		name   string
		layout layout
		files  []file
		opts   Options
		open   string // path to open, relative to the temp dir ("" = default)
		// want
		err      string
		count    int
		labels   []int  // first labels
		origin0  string // Origin(0)
		classes0 string
		format   Format
	}{
		{name: "single cifar10 file", layout: single, files: []file{{"mine.bin", records(FormatCIFAR10, 7, 3, mod(10))}},
			count: 7, labels: []int{0, 1, 2, 3, 4, 5, 6}, origin0: "mine.bin#0", classes0: "airplane", format: FormatCIFAR10},
		{name: "single cifar100 file fine", layout: single, files: []file{{"c100.bin", records(FormatCIFAR100, 5, 3, func(i int) int { return 50 + i })}},
			count: 5, labels: []int{50, 51, 52, 53, 54}, classes0: "apple", format: FormatCIFAR100},
		{name: "single cifar100 file coarse", layout: single, files: []file{{"c100.bin", records(FormatCIFAR100, 5, 3, func(i int) int { return 50 + i })}},
			opts: Options{Coarse: true}, count: 5, labels: []int{10, 11, 12, 13, 14}, classes0: "aquatic_mammals", format: FormatCIFAR100},
		{name: "size not whole records", layout: single, files: []file{{"data_batch_3.bin", append(records(FormatCIFAR10, 10, 0, mod(10)), 1, 2, 3, 4, 5)}},
			err: "data_batch_3.bin: 30,735 bytes is not a whole number of 3,073-byte CIFAR-10 records (10 records and 5 bytes over)"},
		{name: "official count", layout: single, files: []file{{"data_batch_1.bin", records(FormatCIFAR10, 3, 0, mod(10))}},
			err: "data_batch_1.bin: 3 records; the official file has 10,000"},
		{name: "official count accepted", layout: single, files: []file{{"data_batch_1.bin", records(FormatCIFAR10, 3, 0, mod(10))}},
			opts: Options{AnyCount: true}, count: 3},
		{name: "label byte beyond classes", layout: single, files: []file{{"x.bin", tooMany}},
			err: "x.bin: record 2: label 10, but CIFAR-10 has 10 classes"},
		{name: "fine label beyond classes", layout: single, files: []file{{"x.bin", badFine}}, opts: Options{Format: FormatCIFAR100},
			err: "x.bin: record 1: fine label 100, but CIFAR-100 has 100 classes"},
		{name: "coarse label beyond classes", layout: single, files: []file{{"x.bin", badCoarse}}, opts: Options{Format: FormatCIFAR100},
			err: "x.bin: record 2: coarse label 20, but CIFAR-100 has 20 superclasses"},
		{name: "neither record size", layout: single, files: []file{{"x.bin", make([]byte, 100)}},
			err: "x.bin: 100 bytes is not a whole number of CIFAR-10 (3,073-byte) or CIFAR-100 (3,074-byte) records"},
		{name: "both record sizes", layout: single, files: []file{{"x.bin", make([]byte, RecordBytes10*RecordBytes100)}},
			err: "x.bin: 9,446,402 bytes is a whole number of both"},
		{name: "both record sizes, format given", layout: single, files: []file{{"x.bin", make([]byte, RecordBytes10*RecordBytes100)}},
			opts: Options{Format: FormatCIFAR100}, count: RecordBytes10},
		{name: "empty file", layout: single, files: []file{{"x.bin", nil}}, err: "x.bin: empty file"},
		{name: "official file, other split", layout: single, files: []file{{"test_batch.bin", records(FormatCIFAR10, 2, 0, mod(10))}},
			opts: Options{Split: "train", AnyCount: true}, err: "test_batch.bin is the official test file, not train data"},
		{name: "official file, wrong format", layout: single, files: []file{{"test_batch.bin", records(FormatCIFAR10, 2, 0, mod(10))}},
			opts: Options{Format: FormatCIFAR100}, err: "test_batch.bin is a CIFAR-10 file, but format CIFAR-100 was asked for"},

		{name: "release folder train", layout: folder, files: rel, opts: Options{Split: "train", AnyCount: true}, open: dir10,
			count: 5 * n, labels: []int{1, 2, 3, 4, 2, 3, 4, 5, 3}, origin0: "data_batch_1.bin#0", classes0: "airplane"},
		{name: "release folder test", layout: folder, files: rel, opts: Options{Split: "test", AnyCount: true}, open: dir10,
			count: n, labels: []int{6, 7, 8, 9}, origin0: "test_batch.bin#0"},
		{name: "release parent folder", layout: folder, files: rel, opts: Options{Split: "test", AnyCount: true}, open: ".",
			count: n, labels: []int{6, 7, 8, 9}},
		{name: "release folder, no split", layout: folder, files: rel, opts: Options{AnyCount: true}, open: dir10,
			err: "cifar-10-batches-bin is the CIFAR-10 release: choose a split, train or test"},
		{name: "release folder, unknown split", layout: folder, files: rel, opts: Options{Split: "val", AnyCount: true}, open: dir10,
			err: `no split "val" (want train or test)`},
		{name: "release folder, batch missing", layout: folder, files: without(rel, "data_batch_4.bin"), opts: Options{Split: "train", AnyCount: true}, open: dir10,
			err: "cifar-10-batches-bin: data_batch_4.bin is missing"},
		{name: "release folder, official counts", layout: folder, files: rel, opts: Options{Split: "test"}, open: dir10,
			err: "test_batch.bin: 4 records; the official file has 10,000"},
		{name: "release folder, bad meta", layout: folder, files: replace(rel, "batches.meta.txt", []byte("a\nb\n")), opts: Options{Split: "test", AnyCount: true}, open: dir10,
			err: "batches.meta.txt: 2 class names, want 10"},
		{name: "release folder, own label list", layout: folder, files: rel, opts: Options{Split: "test", AnyCount: true, Classes: repeatNames("c", 10)}, open: dir10,
			count: n, classes0: "c0"},
		{name: "release folder, short label list", layout: folder, files: rel, opts: Options{Split: "test", AnyCount: true, Classes: repeatNames("c", 3)}, open: dir10,
			err: "has label 6, outside the 3 classes"},
		{name: "cifar100 folder", layout: folder, files: rel100, opts: Options{Split: "train", AnyCount: true}, open: dir100,
			count: 5, labels: []int{40, 41, 42, 43, 44}, classes0: "fine0", format: FormatCIFAR100},
		{name: "cifar100 folder coarse", layout: folder, files: rel100, opts: Options{Split: "test", AnyCount: true, Coarse: true}, open: dir100,
			count: 3, labels: []int{10, 11, 12}, classes0: "super0", format: FormatCIFAR100},
		{name: "cifar100 official count", layout: folder, files: rel100, opts: Options{Split: "train"}, open: dir100,
			err: "train.bin: 5 records; the official file has 50,000"},
		{name: "folder of sample files", layout: folder, open: ".", opts: Options{Split: "test"}, files: []file{
			{"train_0000-0003.bin", records(FormatCIFAR10, 4, 1, mod(10))}, {"test_0000-0001.bin", records(FormatCIFAR10, 2, 2, func(i int) int { return 9 - i })}},
			count: 2, labels: []int{9, 8}, origin0: "test_0000-0001.bin#0"},
		{name: "folder of sample files, no match", layout: folder, open: ".", opts: Options{Split: "val"}, files: []file{
			{"train_0000-0003.bin", records(FormatCIFAR10, 4, 1, mod(10))}},
			err: `no .bin file for split "val" (found train_0000-0003.bin)`},

		{name: "release archive, scrambled order", layout: archive, files: rel, opts: Options{Split: "train", AnyCount: true},
			count: 5 * n, labels: []int{1, 2, 3, 4, 2, 3, 4, 5, 3}, origin0: "cifar-10-batches-bin/data_batch_1.bin#0", classes0: "airplane"},
		{name: "release archive test", layout: archive, files: rel, opts: Options{Split: "test", AnyCount: true},
			count: n, labels: []int{6, 7, 8, 9}},
		{name: "release archive, bad batch size", layout: archive, files: replace(rel, "data_batch_2.bin", make([]byte, 3*RecordBytes10+1)), opts: Options{Split: "train", AnyCount: true},
			err: "cifar-10-batches-bin/data_batch_2.bin: 9,220 bytes is not a whole number of 3,073-byte CIFAR-10 records"},
		{name: "release archive, batch missing", layout: archive, files: without(rel, "data_batch_5.bin"), opts: Options{Split: "train", AnyCount: true},
			err: "data_batch_5.bin is missing"},
		{name: "cifar100 archive", layout: archive, files: rel100, opts: Options{Split: "test", AnyCount: true},
			count: 3, labels: []int{90, 91, 92}, classes0: "fine0"},
		{name: "archive with 10 and 100", layout: archive, files: append(slices.Clone(rel), rel100[1:]...), opts: Options{Split: "test", AnyCount: true},
			err: "holds both CIFAR-10 and CIFAR-100 files"},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var p string
			switch tc.layout {
			case single:
				p = writeFile(t, filepath.Join(dir, tc.files[0].name), tc.files[0].data)
			case folder:
				writeTree(t, dir, tc.files)
				p = filepath.Join(dir, tc.open)
			case archive:
				p = writeFile(t, filepath.Join(dir, "data.tar.gz"), tarGz(t, tc.files))
			}
			d, err := Load(ctx, p, tc.opts)
			errContains(t, err, tc.err)
			if err != nil {
				return
			}
			if d.Len() != tc.count {
				t.Errorf("%d records, want %d", d.Len(), tc.count)
			}
			if tc.labels != nil && !slices.Equal(d.Labels[:len(tc.labels)], tc.labels) {
				t.Errorf("labels %v, want %v…", d.Labels[:min(len(d.Labels), 12)], tc.labels)
			}
			if tc.origin0 != "" && d.Origin(0) != tc.origin0 {
				t.Errorf("Origin(0) = %q, want %q", d.Origin(0), tc.origin0)
			}
			if tc.classes0 != "" && d.Classes[0] != tc.classes0 {
				t.Errorf("Classes[0] = %q, want %q", d.Classes[0], tc.classes0)
			}
			if d.H != 32 || d.W != 32 || len(d.Pixels) != d.Len()*ImageBytes {
				t.Errorf("%dx%d, %d pixel bytes", d.W, d.H, len(d.Pixels))
			}
			if tc.format != "" {
				s, err := Open(ctx, p, tc.opts)
				if err != nil || s.Format != tc.format {
					t.Errorf("format %v (%v), want %s", s.Format, err, tc.format)
				}
			}
		})
	}
}

func repeatNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(prefix+"%d", i)
	}
	return out
}

// TestBinaryPixels checks that record bytes land in the right place, in
// the right order, across batches of a release archive.
func TestBinaryPixels(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, filepath.Join(dir, "r.tar.gz"), tarGz(t, release10(3, scrambled)))
	d, err := Load(context.Background(), p, Options{Split: "train", AnyCount: true})
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 5; k++ {
		for i := 0; i < 3; i++ {
			idx := (k-1)*3 + i
			if !bytes.Equal(d.Image(idx).Pix, recordPixels(k, i)) {
				t.Fatalf("image %d (%s) is not record %d of batch %d", idx, d.Origin(idx), i, k)
			}
		}
	}
}

func TestArchiveDamage(t *testing.T) {
	dir := t.TempDir()
	good := tarGz(t, release10(20, scrambled))
	corrupt := slices.Clone(good)
	for i := len(corrupt) / 2; i < len(corrupt)/2+64; i++ {
		corrupt[i] ^= 0x55
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated.tar.gz", good[:len(good)*6/10], "truncated.tar.gz: truncated archive"},
		{"cut-trailer.tar.gz", good[:len(good)-4], "cut-trailer.tar.gz: truncated archive (unexpected EOF) after the last member"},
		{"corrupt.tar.gz", corrupt, "corrupt.tar.gz: "},
		{"notatar.tar.gz", gzipBytes(t, bytes.Repeat([]byte("not a tar "), 100)), "notatar.tar.gz: not a tar archive"},
		{"empty.tar.gz", tarGz(t, nil), "empty.tar.gz: no CIFAR .bin files and no images"},
		{"plain.tar", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data
			if tc.name == "plain.tar" {
				var b bytes.Buffer
				writeTar(t, &b, release10(2, scrambled))
				data = b.Bytes()
			}
			p := writeFile(t, filepath.Join(dir, tc.name), data)
			_, err := Load(context.Background(), p, Options{Split: "train", AnyCount: true})
			errContains(t, err, tc.want)
		})
	}
	// The truncation error names the member being read.
	_, err := Load(context.Background(), writeFile(t, filepath.Join(dir, "t.tar.gz"), good[:len(good)/3]), Options{Split: "train", AnyCount: true})
	errContains(t, err, "in cifar-10-batches-bin/")
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	_, err := Open(ctx, filepath.Join(dir, "missing"), Options{})
	errContains(t, err, "no such file")
	_, err = Open(ctx, writeFile(t, filepath.Join(dir, "x.txt"), []byte("x")), Options{})
	errContains(t, err, "not a data set")
	_, err = Open(ctx, dir, Options{Format: "mnist"})
	errContains(t, err, `unknown data set format "mnist"`)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = Open(cancelled, writeFile(t, filepath.Join(dir, "r.tar.gz"), tarGz(t, release10(2, scrambled))), Options{Split: "test", AnyCount: true})
	errContains(t, err, "context canceled")
	// Both releases unpacked side by side.
	writeTree(t, filepath.Join(dir, "both"), []file{dirEntry("both/" + dir10), dirEntry("both/" + dir100)})
	_, err = Open(ctx, filepath.Join(dir, "both", "both"), Options{})
	errContains(t, err, "holds both cifar-10-batches-bin and cifar-100-binary")
}

func gzipBytes(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	gz.Write(data)
	gz.Close()
	return b.Bytes()
}
