package cifar

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// isArchiveName reports whether a file name looks like a tar archive.
func isArchiveName(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, ".tar.gz") || strings.HasSuffix(n, ".tgz") || strings.HasSuffix(n, ".tar")
}

// member is one regular file of an archive, handed to a walkArchive
// callback with its contents as a stream.
type member struct {
	Name string // cleaned, slash-separated, no leading "./"
	Size int64
}

// errStop ends walkArchive early without an error.
var errStop = errors.New("stop")

// walkArchive streams the regular files and directories of the tar or
// tar.gz archive at file (gzip is recognised by its magic bytes) to fn,
// which may read r or not. Directories are reported with r == nil. When the
// archive ends, the rest of the gzip stream is read so that its checksum is
// verified. Errors name the archive and, where it applies, the member.
func walkArchive(ctx context.Context, file string, fn func(m member, isDir bool, r io.Reader) error) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	base := filepath.Base(file)
	br := bufio.NewReaderSize(f, 1<<20)
	var src io.Reader = br
	var gz *gzip.Reader
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		if gz, err = gzip.NewReader(br); err != nil {
			return fmt.Errorf("%s: %w", base, archiveErr(err))
		}
		gz.Multistream(false)
		src = gz
	}
	tr := tar.NewReader(src)
	current := "" // the last member, and how much of it fn read
	var cur *memberReader
	var curSize int64
	for n := 0; ; n++ {
		if n%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if n == 0 && errors.Is(err, tar.ErrHeader) {
				return fmt.Errorf("%s: not a tar archive (%v)", base, err)
			}
			where := after(current)
			if cur != nil && cur.n < curSize {
				where = " in " + current // it broke while skipping the rest of it
			}
			return fmt.Errorf("%s: %w%s", base, archiveErr(err), where)
		}
		name := cleanName(hdr.Name)
		current, cur, curSize = name, nil, 0
		var ferr error
		switch hdr.Typeflag {
		case tar.TypeDir:
			ferr = fn(member{Name: name}, true, nil)
		case tar.TypeReg, tar.TypeRegA:
			cur, curSize = &memberReader{r: tr}, hdr.Size
			ferr = fn(member{Name: name, Size: hdr.Size}, false, cur)
		default:
			continue // links, devices: not data
		}
		if ferr == errStop {
			return nil
		}
		if ferr != nil {
			var re *readError
			if errors.As(ferr, &re) {
				return fmt.Errorf("%s: %w in %s", base, archiveErr(re.err), name)
			}
			return ferr
		}
	}
	if gz != nil {
		if _, err := io.Copy(io.Discard, gz); err != nil {
			return fmt.Errorf("%s: %w after the last member", base, archiveErr(err))
		}
	}
	return nil
}

// memberReader marks errors that come from reading the archive, so that
// walkArchive can tell them from a callback's own errors.
type memberReader struct {
	r io.Reader
	n int64 // bytes read
}

type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func (m *memberReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	m.n += int64(n)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

func after(member string) string {
	if member == "" {
		return ""
	}
	return " after " + member
}

// archiveErr puts the decompressor's and tar reader's errors into words.
func archiveErr(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("truncated archive (%w)", err)
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return fmt.Errorf("corrupt gzip data (%w)", err)
	}
	return err
}

func cleanName(name string) string {
	name = path.Clean(strings.TrimPrefix(filepath.ToSlash(name), "./"))
	return strings.TrimPrefix(name, "/")
}

// readMember reads a whole member of known size.
func readMember(r io.Reader, size int64) ([]byte, error) {
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}
