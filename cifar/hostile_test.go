package cifar

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/internal/memcap"
)

// pngBomb is a PNG signature and IHDR chunk claiming w×h RGB pixels, and
// nothing more.
func pngBomb(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32([]byte("IHDR"), w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	b := binary.BigEndian.AppendUint32([]byte("\x89PNG\r\n\x1a\n"), 13)
	b = append(b, ihdr...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(ihdr))
}

// TestUnsafeArchiveNames: an archive with a member whose name is absolute
// or climbs out with ".." is refused as a whole, whatever the member is
// (image, .bin file, folder), with an error naming it.
func TestUnsafeArchiveNames(t *testing.T) {
	good := imageTree(t, "set", map[string]map[string]int{"test": {"a": 1, "b": 1}})
	img := good[1].data
	for _, c := range []struct {
		name, member, want string
	}{
		{"dotdot image", "set/test/a/../../../../evil.jpg", `member "set/test/a/../../../../evil.jpg" climbs out of the archive (..)`},
		{"leading dotdot", "../test/a/x.png", `member "../test/a/x.png" climbs out of the archive (..)`},
		{"dotdot bin", "../test_batch.bin", `member "../test_batch.bin" climbs out of the archive (..)`},
		{"absolute", "/etc/set/test/a/x.jpg", `member "/etc/set/test/a/x.jpg" is an absolute path`},
		{"absolute folder", "/tmp/", `member "/tmp/" is an absolute path`},
		{"drive letter", "C:/set/test/a/x.jpg", `member "C:/set/test/a/x.jpg" is an absolute path`},
		{"backslashes", `set\test\a\..\..\..\..\x.jpg`, `member "set\\test\\a\\..\\..\\..\\..\\x.jpg" climbs out of the archive (..)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := append([]file(nil), good...)
			if strings.HasSuffix(c.member, "/") {
				files = append(files, file{name: c.member})
			} else {
				files = append(files, file{c.member, img})
			}
			p := writeFile(t, filepath.Join(t.TempDir(), "x.tar.gz"), tarGz(t, files))
			_, err := Load(context.Background(), p, Options{Split: "test"})
			if !errors.Is(err, ErrUnsafeName) || !strings.Contains(err.Error(), "x.tar.gz: unsafe member name: "+c.want) {
				t.Errorf("error %v, want ErrUnsafeName with %q", err, c.want)
			}
		})
	}
	// The same archive without the bad member loads.
	p := writeFile(t, filepath.Join(t.TempDir(), "x.tar.gz"), tarGz(t, good))
	if _, err := Load(context.Background(), p, Options{Split: "test"}); err != nil {
		t.Fatal(err)
	}
	// Zip archives are not read at all: refused by name.
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	if w, err := zw.Create("../evil.jpg"); err != nil {
		t.Fatal(err)
	} else {
		w.Write(img)
	}
	zw.Close()
	p = writeFile(t, filepath.Join(t.TempDir(), "x.zip"), zb.Bytes())
	if _, err := Open(context.Background(), p, Options{}); err == nil || !strings.Contains(err.Error(), "not a data set") {
		t.Errorf("zip archive: %v", err)
	}
}

// hugeMemberTar is a tar whose member name claims size bytes but holds
// only a few before the archive ends.
func hugeMemberTar(t *testing.T, name string, size int64) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatGNU}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(make([]byte, 3073)); err != nil {
		t.Fatal(err)
	}
	tw.Flush() // fails: the member is short, which is the point
	return append(b.Bytes(), make([]byte, 1024)...)
}

// TestHugeMemberClaims: tar headers claiming huge members in front of a
// few bytes are refused without allocating what they claim: bytes
// allocated (TotalAlloc) stay under 16 MiB + 64 × the archive size.
func TestHugeMemberClaims(t *testing.T) {
	for _, c := range []struct {
		name   string
		member string
		size   int64
		opts   Options
		want   string
	}{
		{"bin 1 TiB", "test_batch.bin", 1 << 40, Options{Split: "test"}, "reading test_batch.bin: member of 1099511627776 bytes, over the limit of 1073741824"},
		{"bin 900 MiB", "test_batch.bin", 3073 * 300000, Options{Split: "test"}, "x.tar: truncated archive (unexpected EOF) in test_batch.bin"},
		{"image 300 MiB", "set/test/a/0.png", 300 << 20, Options{Split: "test"}, "x.tar: truncated archive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := hugeMemberTar(t, c.member, c.size)
			p := writeFile(t, filepath.Join(t.TempDir(), "x.tar"), data)
			var err error
			alloc := memcap.Allocated(func() { _, err = Load(context.Background(), p, c.opts) })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
			memcap.Check(t, alloc, memcap.Limit(16<<20, len(data)), "for a %d-byte archive", len(data))
		})
	}
}

// TestImageBombs: image folders, plain or archived, holding an image
// whose header claims 100000×100000 pixels are refused by the decoder's
// pixel limit before any pixel buffer is allocated (bytes allocated stay
// under 16 MiB + 64 × the data), with an error naming the file.
func TestImageBombs(t *testing.T) {
	files := append(imageTree(t, "", map[string]map[string]int{"test": {"a": 2, "b": 2}}), file{"test/b/bomb.png", pngBomb(100000, 100000)})
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "folder"), files)
	archive := writeFile(t, filepath.Join(dir, "set.tar.gz"), tarGz(t, files))
	for _, p := range []string{filepath.Join(dir, "folder"), archive} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			var err error
			alloc := memcap.Allocated(func() { _, err = Load(context.Background(), p, Options{Split: "test", Workers: 1}) })
			if !errors.Is(err, imgproc.ErrTooLarge) || !strings.Contains(err.Error(), "test/b/bomb.png: image too large: 100000x100000 is 10000000000 pixels") {
				t.Errorf("error %v, want the bomb refused", err)
			}
			memcap.Check(t, alloc, 16<<20, "refusing the bomb")
		})
	}
	// An image file over the decoder's byte limit is not read whole.
	big := filepath.Join(dir, "big", "test", "a", "big.png")
	writeFile(t, big, append(pngBomb(10, 10), make([]byte, 8<<20)...))
	var err error
	alloc := memcap.Allocated(func() {
		_, err = Load(context.Background(), filepath.Join(dir, "big"), Options{Workers: 1, Decoder: imgproc.Decoder{MaxBytes: 1 << 20}})
	})
	if !errors.Is(err, imgproc.ErrTooLarge) || !strings.Contains(err.Error(), "over the limit of 1048576") {
		t.Errorf("big file: %v", err)
	}
	memcap.Check(t, alloc, 4<<20, "reading the big file")
	if _, err := os.Stat(big); err != nil {
		t.Fatal(err)
	}
}
