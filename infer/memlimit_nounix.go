//go:build !unix

package infer

// rlimits: no resource limits outside Unix.
func rlimits() []uint64 { return nil }
