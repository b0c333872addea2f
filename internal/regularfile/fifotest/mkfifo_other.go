//go:build !unix

package fifotest

import "testing"

// Make skips the test: the system has no FIFOs that block an open.
func Make(t testing.TB, path string) {
	t.Helper()
	t.Skip("no FIFOs on this system")
}
