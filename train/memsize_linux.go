//go:build linux

package train

import "golang.org/x/sys/unix"

// maxTrainBytes is the physical memory of the machine (64 GiB when it
// cannot be read): the most a checkpoint's declared graph and batch may
// imply for training activations.
func maxTrainBytes() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil && si.Totalram > 0 {
		return int64(si.Totalram) * int64(si.Unit)
	}
	return 64 << 30
}
