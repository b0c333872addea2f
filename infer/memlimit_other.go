//go:build !linux

package infer

// processLimits returns the memory limits the process runs under, where
// they can be read: the rlimits on Unix systems other than Linux, and
// fallbackMemory standing in for physical memory, which is not read here.
func processLimits() []uint64 {
	return append(rlimits(), fallbackMemory)
}
