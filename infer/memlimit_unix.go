//go:build unix

package infer

import (
	"math"

	"golang.org/x/sys/unix"
)

// rlimits returns the soft RLIMIT_AS and RLIMIT_DATA (0: unlimited).
func rlimits() []uint64 {
	var out []uint64
	for _, res := range []int{unix.RLIMIT_AS, unix.RLIMIT_DATA} {
		var rl unix.Rlimit
		if unix.Getrlimit(res, &rl) == nil && uint64(rl.Cur) != unix.RLIM_INFINITY && uint64(rl.Cur) < math.MaxInt64 {
			out = append(out, uint64(rl.Cur))
		}
	}
	return out
}
