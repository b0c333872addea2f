package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the log's flush timer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogWriterFlushes checks the access log's buffer: lines wait for the
// flush timer (no write per request), reach the stream by themselves within
// a few flush intervals, and Flush writes at once.
func TestLogWriterFlushes(t *testing.T) {
	var out syncBuffer
	l := newLogWriter(&out)
	l.Write([]byte("first\n"))
	if got := out.String(); got != "" {
		t.Fatalf("a line was written at once (%q); it should wait for the flush", got)
	}
	deadline := time.Now().Add(20 * flushEvery)
	for out.String() == "" && time.Now().Before(deadline) {
		time.Sleep(flushEvery / 10)
	}
	if got := out.String(); got != "first\n" {
		t.Fatalf("after %v the stream holds %q, want the line", 20*flushEvery, got)
	}
	l.Write([]byte("second\n"))
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "first\nsecond\n" {
		t.Fatalf("Flush: the stream holds %q", got)
	}
	// Concurrent writers: every line whole, none lost.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				l.Write([]byte(strings.Repeat(string(rune('a'+i)), 40) + "\n"))
			}
		}()
	}
	wg.Wait()
	l.Flush()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 802 {
		t.Fatalf("%d lines, want 802", len(lines))
	}
	for _, s := range lines[2:] {
		if len(s) != 40 || strings.Trim(s, s[:1]) != "" {
			t.Fatalf("a line was cut or mixed: %q", s)
		}
	}
}
