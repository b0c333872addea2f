// Package numfmt formats numbers for messages and tables.
package numfmt

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Commas formats n with thousands separators: 30730000 as "30,730,000",
// -12345 as "-12,345".
func Commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Bytes formats a byte count in binary units: "512 B", "306.7 KiB",
// "24.9 MiB", "8.0 GiB"; math.MaxInt64 as "more than 8 EiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	if n == math.MaxInt64 {
		return "more than 8 EiB"
	}
	f, u := float64(n), 0
	for f >= unit && u < 5 {
		f /= unit
		u++
	}
	return fmt.Sprintf("%.1f %s", f, []string{"", "KiB", "MiB", "GiB", "TiB", "PiB"}[u])
}
