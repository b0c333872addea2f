//go:build unix

package train

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// LockRun takes an exclusive lock on the run folder dir (flock on
// LockName in it, which is created if needed) for as long as the process
// runs or until release is called. A second process asking for it gets an
// error wrapping ErrRunLocked, naming the holder's process ID. The lock is
// the kernel's: a process that dies, even by kill -9, releases it.
func LockRun(dir string) (release func() error, err error) {
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := ""
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(string(bytes.TrimSpace(b))); perr == nil && pid > 0 {
					holder = fmt.Sprintf(" (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("%s: %w by another resnetctl train%s", dir, ErrRunLocked, holder)
		}
		return nil, fmt.Errorf("%s: locking: %w", dir, err)
	}
	// Record who holds it, for the message a second process prints.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() error {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return f.Close()
	}, nil
}
