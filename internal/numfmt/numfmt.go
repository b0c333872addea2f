// Package numfmt formats numbers for messages and tables.
package numfmt

import (
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
