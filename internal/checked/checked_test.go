package checked

import (
	"math"
	"math/big"
	"testing"
)

// TestAgainstBig compares Mul, Add and MulAdd with arbitrary-precision
// arithmetic on values around the int64 limits.
func TestAgainstBig(t *testing.T) {
	vals := []int{0, 1, -1, 2, -2, 3, 1 << 31, -(1 << 31), 1 << 32, 3037000499, 3037000500, -3037000500,
		math.MaxInt64, math.MinInt64, math.MaxInt64 / 2, math.MinInt64 / 2, math.MaxInt64/2 + 1, math.MinInt64/2 - 1}
	fits := func(z *big.Int) bool { return z.IsInt64() }
	for _, a := range vals {
		for _, b := range vals {
			want := new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(int64(b)))
			if got, ok := Mul(a, b); ok != fits(want) || (ok && int64(got) != want.Int64()) {
				t.Errorf("Mul(%d, %d) = %d, %v; want %v", a, b, got, ok, want)
			}
			want = new(big.Int).Add(big.NewInt(int64(a)), big.NewInt(int64(b)))
			if got, ok := Add(a, b); ok != fits(want) || (ok && int64(got) != want.Int64()) {
				t.Errorf("Add(%d, %d) = %d, %v; want %v", a, b, got, ok, want)
			}
			for _, c := range []int{0, 1, -1, math.MaxInt64, math.MinInt64} {
				p := new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(int64(b)))
				want = new(big.Int).Add(p, big.NewInt(int64(c)))
				got, ok := MulAdd(a, b, c)
				// MulAdd refuses an overflowing product even when adding c
				// would bring it back into range.
				wantOK := fits(p) && fits(want)
				if ok != wantOK || (ok && int64(got) != want.Int64()) {
					t.Errorf("MulAdd(%d, %d, %d) = %d, %v; want %v (%v)", a, b, c, got, ok, want, wantOK)
				}
			}
		}
	}
	if _, ok := Product(1<<32, 1<<32); ok {
		t.Error("Product(2^32, 2^32) did not overflow")
	}
	if p, ok := Product(3, 5, 7); !ok || p != 105 {
		t.Errorf("Product(3, 5, 7) = %d, %v", p, ok)
	}
	if _, ok := Sum(math.MaxInt64, 1); ok {
		t.Error("Sum(MaxInt64, 1) did not overflow")
	}
}
