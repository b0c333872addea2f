// Package regularfile reads input files (models, images, data sets,
// checkpoints, label lists) only when they are regular files. Anything else
// is refused before a byte is read: opening a FIFO for reading waits for a
// writer (forever, for a FIFO named x.png that nobody writes), a character
// device such as /dev/zero never ends, and a directory or socket is not
// data.
package regularfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/resnetctl/resnetctl/internal/numfmt"
)

// ErrNotRegular is wrapped by the errors about paths that are not regular
// files (after following symlinks).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by ReadFile's error about a file over its limit.
var ErrTooLarge = errors.New("file too large")

// Check returns nil when mode is a regular file's, else an error naming
// path and what it is: "open x.png: not a regular file (a named pipe)". It
// is for callers that already hold a FileInfo (os.Stat, fs.DirEntry); a
// file that is opened should be checked by Open, on the opened file.
func Check(path string, mode fs.FileMode) error {
	if mode.IsRegular() {
		return nil
	}
	kind := "a special file"
	switch {
	case mode.IsDir():
		kind = "a directory"
	case mode&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	case mode&fs.ModeSocket != 0:
		kind = "a socket"
	case mode&fs.ModeDevice != 0: // character devices have ModeDevice too
		kind = "a device"
	case mode&fs.ModeSymlink != 0:
		kind = "a symbolic link"
	}
	return &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, kind)}
}

// Open opens path for reading if it is a regular file (symlinks are
// followed). It opens with O_NONBLOCK where the system has it, so that
// opening a FIFO returns at once instead of waiting for a writer (the flag
// changes nothing for reads of a regular file), and checks the mode of the
// file it opened (f.Stat, not a Stat of the path first), so that nothing
// can be swapped in between the check and the reads.
func Open(path string) (*os.File, error) {
	f, _, err := open(path)
	return f, err
}

// OpenFlag is the flag Open opens with: read-only, and O_NONBLOCK where
// the system has it. For callers that open files another way (os.Root's
// OpenFile); they must then check f.Stat() themselves.
const OpenFlag = os.O_RDONLY | nonblock

func open(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, OpenFlag, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil {
		err = Check(path, st.Mode())
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// ReadFile reads the regular file at path, as os.ReadFile does, refusing
// anything else (see Open) and files over maxBytes (0: no limit) before
// reading them. At most maxBytes+1 bytes are read, so that a file that
// grows while it is read is refused too rather than read whole.
func ReadFile(path string, maxBytes int64) ([]byte, error) {
	f, st, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := st.Size()
	if maxBytes > 0 && size > maxBytes {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: %s bytes, over the limit of %s",
			ErrTooLarge, numfmt.Commas(size), numfmt.Commas(maxBytes))}
	}
	var r io.Reader = f
	if maxBytes > 0 {
		r = io.LimitReader(f, maxBytes+1)
	}
	// Sized from the file as os.ReadFile does (+512: a file that grew a
	// little needs no second allocation); the size was bounded above.
	b := make([]byte, 0, size+512)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
	}
	if maxBytes > 0 && int64(len(b)) > maxBytes {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: it grew past the limit of %s bytes while read",
			ErrTooLarge, numfmt.Commas(maxBytes))}
	}
	return b, nil
}
