// Package checked is overflow-checked integer arithmetic for the shape
// and window computations of the inference runtime and its kernels. A
// model file declares kernel sizes, dilations, pads, strides and shapes
// as int64s; computed unchecked, a product such as (k-1)*dilation wraps
// around and yields a plausible but wrong size (a silent wrong answer, or
// an index out of range in a worker goroutine). Every such computation
// goes through MulAdd (or Mul, Add), and an overflow becomes an error of
// the caller.
package checked

import (
	"math"
	"math/bits"
)

// MulAdd returns a*b + c and whether it was computed without overflowing
// int (the result is meaningless when ok is false).
func MulAdd(a, b, c int) (r int, ok bool) {
	p, ok := Mul(a, b)
	if !ok {
		return 0, false
	}
	return Add(p, c)
}

// Mul returns a*b and whether it fits in an int.
func Mul(a, b int) (int, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	neg := (a < 0) != (b < 0)
	hi, lo := bits.Mul64(abs(a), abs(b))
	if hi != 0 {
		return 0, false
	}
	if neg {
		if lo > uint64(math.MaxInt)+1 {
			return 0, false
		}
		return -int(lo-1) - 1, true // no overflow for lo = MaxInt+1
	}
	if lo > uint64(math.MaxInt) {
		return 0, false
	}
	return int(lo), true
}

// Add returns a+b and whether it fits in an int.
func Add(a, b int) (int, bool) {
	s := a + b
	// Overflow iff a and b have the same sign and s has the other.
	return s, (a >= 0) != (b >= 0) || (s >= 0) == (a >= 0)
}

// Sum returns the sum of vs and whether no step overflowed.
func Sum(vs ...int) (int, bool) {
	s := 0
	for _, v := range vs {
		var ok bool
		if s, ok = Add(s, v); !ok {
			return 0, false
		}
	}
	return s, true
}

// Product returns the product of vs and whether no step overflowed.
func Product(vs ...int) (int, bool) {
	p := 1
	for _, v := range vs {
		var ok bool
		if p, ok = Mul(p, v); !ok {
			return 0, false
		}
	}
	return p, true
}

func abs(a int) uint64 {
	if a < 0 {
		return uint64(-(a + 1)) + 1 // no overflow for MinInt64
	}
	return uint64(a)
}
