package main

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// chanWriter hands every write to the test over a channel (the log's
// flush timer writes from its own goroutine).
type chanWriter chan string

func (c chanWriter) Write(p []byte) (int, error) {
	c <- string(p)
	return len(p), nil
}

// TestLogWriterFlushes checks the access log's buffer: lines wait for the
// flush timer (no write per request), reach the stream by themselves within
// a few flush intervals, and Flush writes at once.
func TestLogWriterFlushes(t *testing.T) {
	out := make(chanWriter, 1000)
	l := newLogWriter(out)
	l.Write([]byte("first\n"))
	l.Write([]byte("second\n"))
	select {
	case got := <-out:
		t.Fatalf("%q was written at once; lines should wait for the flush", got)
	default:
	}
	select {
	case got := <-out:
		if got != "first\nsecond\n" {
			t.Fatalf("the timer's flush wrote %q, want both lines in one write", got)
		}
	case <-time.After(20 * flushEvery):
		t.Fatalf("nothing written %v after the lines", 20*flushEvery)
	}
	l.Write([]byte("third\n"))
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-out:
		if got != "third\n" {
			t.Fatalf("Flush wrote %q", got)
		}
	default:
		t.Fatal("Flush wrote nothing")
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
	var all strings.Builder
	for len(out) > 0 {
		all.WriteString(<-out)
	}
	lines := strings.Split(strings.TrimSuffix(all.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, s := range lines {
		if len(s) != 40 || strings.Trim(s, s[:1]) != "" {
			t.Fatalf("a line was cut or mixed: %q", s)
		}
	}
}
