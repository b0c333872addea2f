package cifar

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"github.com/resnetctl/resnetctl/internal/regularfile"
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
// verified. Errors name the archive and, where it applies, the member. A
// member whose name is absolute or has a ".." component fails the whole
// walk with an error wrapping ErrUnsafeName, and a file name that appears
// twice one wrapping ErrDuplicateMember.
func walkArchive(ctx context.Context, file string, fn func(m member, isDir bool, r io.Reader) error) error {
	f, err := regularfile.Open(file) // a FIFO would block forever
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
	current := ""             // the last member, and how much of it fn read
	seen := map[string]bool{} // regular files' names, to refuse duplicates
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
		if err := checkMemberName(hdr.Name); err != nil {
			return fmt.Errorf("%s: %w", base, err)
		}
		name := cleanName(hdr.Name)
		current, cur, curSize = name, nil, 0
		var ferr error
		switch hdr.Typeflag {
		case tar.TypeDir:
			ferr = fn(member{Name: name}, true, nil)
		case tar.TypeReg, tar.TypeRegA:
			if seen[name] {
				return fmt.Errorf("%s: %w: %q appears twice in the archive", base, ErrDuplicateMember, name)
			}
			seen[name] = true
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

// ErrUnsafeName is wrapped by errors about archive members whose names
// are absolute or climb out of the archive with "..": such an archive is
// refused as a whole, since extracting it would write outside the target
// folder.
var ErrUnsafeName = errors.New("unsafe member name")

// ErrDuplicateMember is wrapped by errors about an archive holding two
// files of the same name (after cleaning: "./a.png" and "a.png" are one).
// tar keeps the last one on extraction, but read in place the archive
// would give the image twice, counted twice in training and evaluation:
// with labelled data it is safer to refuse than to guess which copy is
// meant.
var ErrDuplicateMember = errors.New("duplicate member")

// checkMemberName refuses absolute member names (/x, C:/x, \\server\x)
// and names with a ".." component.
func checkMemberName(name string) error {
	n := strings.ReplaceAll(filepath.ToSlash(name), `\`, "/")
	if strings.HasPrefix(n, "/") || (len(n) >= 2 && n[1] == ':') {
		return fmt.Errorf("%w: member %q is an absolute path", ErrUnsafeName, name)
	}
	for _, c := range strings.Split(n, "/") {
		if c == ".." {
			return fmt.Errorf("%w: member %q climbs out of the archive (..)", ErrUnsafeName, name)
		}
	}
	return nil
}

func cleanName(name string) string {
	name = path.Clean(strings.TrimPrefix(filepath.ToSlash(name), "./"))
	return strings.TrimPrefix(name, "/")
}

// maxMemberBytes is the largest archive member read into memory: 1 GiB,
// seven times CIFAR-100's train.bin (a variable so that tests can lower
// it).
var maxMemberBytes int64 = 1 << 30

// readMember reads a whole member of the size its header gives. The size
// is not trusted for the allocation: a header may claim gigabytes in front
// of a few bytes, so beyond 1 MiB the buffer grows with the data read.
func readMember(r io.Reader, size int64) ([]byte, error) {
	if size < 0 || size > maxMemberBytes {
		return nil, fmt.Errorf("member of %d bytes, over the limit of %d", size, maxMemberBytes)
	}
	const chunk = 1 << 20
	buf := make([]byte, 0, min(size, chunk))
	for int64(len(buf)) < size {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, min(size, 2*int64(cap(buf)))-int64(cap(buf)))...)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(int64(cap(buf)), size)])
		buf = buf[:len(buf)+n]
		if err == io.EOF && int64(len(buf)) < size {
			return nil, io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
	}
	return buf, nil
}
