//go:build !linux

package train

import "errors"

// exchange is not available: callers fall back to two renames.
func exchange(a, b string) error { return errors.New("atomic exchange not supported") }
