//go:build unix

package regularfile

import "syscall"

// nonblock makes opening a FIFO return at once (see Open).
const nonblock = syscall.O_NONBLOCK
