package infer

import (
	"bufio"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// processLimits returns the memory limits the process runs under, in
// bytes (0 or absent: none): physical memory, RLIMIT_AS, RLIMIT_DATA and
// the cgroup v2 memory.max of the process's cgroup and its ancestors.
func processLimits() []uint64 {
	var out []uint64
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		out = append(out, uint64(si.Totalram)*uint64(max(si.Unit, 1)))
	} else {
		out = append(out, fallbackMemory)
	}
	out = append(out, rlimits()...)
	return append(out, cgroupLimits()...)
}

// cgroupLimits reads memory.max ("max" is no limit) of the process's
// cgroup v2 and every ancestor up to /sys/fs/cgroup itself: a limit set
// on a parent caps the children too.
func cgroupLimits() []uint64 {
	dir := "/"
	if f, err := os.Open("/proc/self/cgroup"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok { // the v2 hierarchy
				dir = path.Clean("/" + p)
			}
		}
		f.Close()
	}
	var out []uint64
	for {
		b, err := os.ReadFile(path.Join("/sys/fs/cgroup", dir, "memory.max"))
		if err == nil {
			if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
				out = append(out, v)
			}
		}
		if dir == "/" {
			return out
		}
		dir = path.Dir(dir)
	}
}
