//go:build !unix

package main

import (
	"os"
	"strconv"
)

// terminalWidth is the number of columns of the terminal f is, taken from
// $COLUMNS here; 0 when unknown.
func terminalWidth(f *os.File) int {
	n, err := strconv.Atoi(os.Getenv("COLUMNS"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
