//go:build !unix

package regularfile

// nonblock is 0 where there are no FIFOs that block an open.
const nonblock = 0
