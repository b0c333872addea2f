// Package memcap measures the memory a call allocates, for the tests that
// feed hostile input (ONNX files, images, archives) to a loader and check
// that it is refused without allocating what its headers claim.
//
// The measure is the growth of runtime.MemStats.TotalAlloc, which counts
// an allocation even if it is freed at once: a buffer sized from a
// hostile header shows however briefly it lived. Allocations by other
// goroutines running at the time count too, so a test that measures
// should not run in parallel with others. It is used only by tests.
package memcap

import (
	"fmt"
	"runtime"
	"testing"
)

// PerByte is the bytes a loader may allocate per byte of its input, on
// top of a fixed base, while refusing it: parsing may copy the input a
// few times, never allocate what it claims.
const PerByte = 64

// Allocated returns the bytes allocated while f runs.
func Allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Limit is the cap on refusing an input of size bytes: base + PerByte ×
// size.
func Limit(base uint64, size int) uint64 {
	return base + PerByte*uint64(size)
}

// Check reports, with t.Errorf (the test goes on), alloc bytes over
// limit: "allocated <alloc> bytes <doing> (limit <limit>)", where doing
// is format with args, naming what was being refused.
func Check(t testing.TB, alloc, limit uint64, format string, args ...any) {
	t.Helper()
	if alloc > limit {
		t.Errorf("allocated %d bytes %s (limit %d)", alloc, fmt.Sprintf(format, args...), limit)
	}
}
