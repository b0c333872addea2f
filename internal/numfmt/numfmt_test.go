package numfmt

import (
	"math"
	"testing"
)

func TestCommas(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0", 999: "999", 1000: "1,000", 11689512: "11,689,512", 30730000: "30,730,000", -12345: "-12,345",
		math.MinInt64: "-9,223,372,036,854,775,808",
	} {
		if got := Commas(n); got != want {
			t.Errorf("Commas(%d) = %q, want %q", n, got, want)
		}
	}
}
