// Package fifotest helps tests check that a reader refuses a FIFO at once
// instead of blocking on it (see internal/regularfile). It is used only by
// tests.
package fifotest

import (
	"testing"
	"time"
)

// Timeout is how long Prompt waits. Refusing a FIFO takes microseconds;
// the margin is for a loaded machine.
const Timeout = 20 * time.Second

// Prompt runs f in a goroutine and returns its error, failing the test
// (t.Fatalf) if f has not returned within Timeout: a reader that blocks on
// a FIFO makes the test fail instead of hanging the test binary.
func Prompt(t testing.TB, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(Timeout):
		t.Fatalf("%s: still blocked after %v (reading a FIFO?)", what, Timeout)
		return nil
	}
}
