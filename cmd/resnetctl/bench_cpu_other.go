//go:build !unix

package main

import "time"

// processCPUTime is unknown here; bench --train then reports no CPU time.
func processCPUTime() time.Duration { return 0 }
