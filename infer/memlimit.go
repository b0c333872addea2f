package infer

import (
	"math"
	"runtime/debug"
	"sync"
)

// defaultMemoryShare is the share of the process's memory limit a
// session's plan may take by default: the rest is for the Go runtime,
// the caller's own data (decoded images …) and other sessions.
const defaultMemoryShare = 0.75

// fallbackMemory stands in for physical memory where it cannot be read
// (not Linux).
const fallbackMemory = 8 << 30

// DefaultMaxMemory is the memory budget of a session whose
// Options.MaxMemory is 0: 3/4 of the smallest of the limits the process
// runs under, among physical memory (sysinfo; 8 GiB where it cannot be
// read), RLIMIT_AS and RLIMIT_DATA, the cgroup v2 memory.max of the
// process's cgroup and its parents (Linux), and the Go runtime's soft
// limit (GOMEMLIMIT). A process capped by ulimit or a container thus gets
// a refused plan (ErrMemoryBudget), never Go's fatal "out of memory".
// The limits are read once, at the first call.
func DefaultMaxMemory() int64 {
	defaultMemOnce.Do(func() {
		limit := uint64(math.MaxInt64)
		for _, l := range processLimits() {
			if l > 0 {
				limit = min(limit, l)
			}
		}
		if g := debug.SetMemoryLimit(-1); g > 0 && g < math.MaxInt64 { // -1 reads it
			limit = min(limit, uint64(g))
		}
		defaultMem = int64(float64(limit) * defaultMemoryShare)
	})
	return defaultMem
}

var (
	defaultMemOnce sync.Once
	defaultMem     int64
)
