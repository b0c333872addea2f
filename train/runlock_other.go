//go:build !unix

package train

// LockRun is a no-op where flock is not available: a second process on
// the same folder is not detected there.
func LockRun(dir string) (release func() error, err error) {
	return func() error { return nil }, nil
}
