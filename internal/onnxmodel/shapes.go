package onnxmodel

import (
	"fmt"
	"math"
)

// Numel multiplies dims, refusing negative dimensions and counts far
// beyond any tensor held (16 × 2³¹ elements), so that it never overflows.
func Numel(dims []int) (int, error) {
	n := 1
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", dims)
		}
		if d != 0 && n > math.MaxInt32*int(16)/d {
			return 0, fmt.Errorf("shape %v is too large", dims)
		}
		n *= d
	}
	return n, nil
}

// Strides returns the row-major strides of dims.
func Strides(dims []int) []int {
	st := make([]int, len(dims))
	s := 1
	for i := len(dims) - 1; i >= 0; i-- {
		st[i] = s
		s *= dims[i]
	}
	return st
}

// Broadcast returns the numpy broadcast of the shapes, false when they
// cannot be broadcast together.
func Broadcast(shapes ...[]int) ([]int, bool) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make([]int, rank)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			switch o := out[off+i]; {
			case d == o || d == 1:
			case o == 1:
				out[off+i] = d
			default:
				return nil, false
			}
		}
	}
	return out, true
}

// NormAxis maps a possibly negative axis into [0, rank), false when it
// is out of range.
func NormAxis(axis int64, rank int) (int, bool) {
	if axis < -int64(rank) || axis >= int64(rank) {
		return 0, false
	}
	if axis < 0 {
		axis += int64(rank)
	}
	return int(axis), true
}
