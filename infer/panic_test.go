package infer

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestPanicInPoolTask injects a panic into a task that a worker goroutine
// of the kernel pool runs (through taskHook, a test-only hook): before,
// nothing could recover it and the process died. Session.Run must return
// an error naming the node and wrapping ErrInternal, and the same session
// must then run normal inputs correctly, several times over.
func TestPanicInPoolTask(t *testing.T) {
	const rows, cols = 64, 1024
	x := f32(sh(rows, cols), seq(rows*cols, 1, 0)...)
	m := newGB(13).in("x", Float32, rows, cols).out("y", Float32).
		node("Transpose", []string{"x"}, []string{"y"}, aInts("perm", 1, 0)).bytes(t)
	s, err := LoadBytes(m, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run := func() (*Tensor, error) {
		out, err := s.Run(context.Background(), map[string]*Tensor{"x": x})
		if err != nil {
			return nil, err
		}
		return out["y"], nil
	}
	ref, err := run()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { taskHook = nil }()
	for round := range 3 {
		// The caller's own range waits for another range to start, which
		// then runs on the worker goroutine for sure, and panics there.
		started := make(chan struct{})
		taskHook = func(lo, hi int) {
			if lo == 0 {
				select {
				case <-started:
				case <-time.After(10 * time.Second):
				}
				return
			}
			close(started)
			panic("injected into a worker's task")
		}
		_, err := run()
		taskHook = nil
		want := `infer: node "Transpose:y" (Transpose): internal error: panic in a kernel task: injected into a worker's task`
		if err == nil || err.Error() != want || !errors.Is(err, ErrInternal) {
			t.Fatalf("round %d: error %v\nwant %s", round, err, want)
		}
		select {
		case <-started:
		default:
			t.Fatalf("round %d: no range ran on a worker", round)
		}
		// The session (its plan, run context and pool) still works.
		for range 2 {
			got, err := run()
			if err != nil {
				t.Fatalf("round %d: after the panic: %v", round, err)
			}
			if !slices.Equal(got.Shape, ref.Shape) || !slices.Equal(got.Float32, ref.Float32) {
				t.Fatalf("round %d: after the panic the output differs", round)
			}
		}
	}
}
