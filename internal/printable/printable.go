// Package printable makes untrusted text safe to print on a terminal:
// class names from a model's metadata, a labels file or a data set's
// folders, and file or archive member names, which may hold terminal
// escape sequences (ESC [ 2 J clears the screen, OSC 52 writes the
// clipboard), carriage returns that overwrite a line, or bytes that are not
// UTF-8. JSON output needs none of this: encoding/json escapes control
// characters itself, but not all: see JSON.
package printable

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Name returns s unchanged when it is valid UTF-8 made only of printable
// characters (strconv.IsPrint: letters, marks, numbers, punctuation,
// symbols and the ASCII space), else Go-quoted (strconv.Quote): control
// characters, invalid bytes and invisible format characters such as U+202E
// (right-to-left override) are escaped, and the quotes keep the name
// unambiguous ("cat\x1b[2J" is not the class cat).
func Name(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// Text escapes the control characters (C0 but newline and tab, DEL, C1)
// and invalid UTF-8 bytes of s, as \x1b, \u009b, \xff, leaving everything
// else as it is: for messages such as errors, which may span lines on
// purpose and may quote a name from anywhere below.
func Text(s string) string {
	clean := func(r rune, size int) bool {
		return !(r == utf8.RuneError && size == 1) && (r == '\n' || r == '\t' || !unicode.IsControl(r))
	}
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !clean(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case clean(r, size):
			b.WriteString(s[i : i+size])
		case size == 1 && r == utf8.RuneError: // an invalid byte
			fmt.Fprintf(&b, `\x%02x`, s[i])
		default: // QuoteRune's escape without its quotes: \x1b, \u009b
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// JSON returns a writer that passes encoding/json's output to w with the
// non-ASCII characters that are not printable (C1 controls such as U+009B,
// which some terminals take as CSI; format characters such as U+202E)
// escaped as \uXXXX, which encoding/json leaves raw (it escapes only
// ASCII controls, U+2028 and U+2029). The JSON decodes to the same
// strings. Each Write must hold whole characters, as json.Encoder's one
// Write per value does; ASCII passes through (the JSON's own layout).
func JSON(w io.Writer) io.Writer { return jsonWriter{w} }

type jsonWriter struct{ w io.Writer }

func (j jsonWriter) Write(p []byte) (int, error) {
	clean := true
	for _, r := range string(p) {
		if r >= utf8.RuneSelf && r != utf8.RuneError && !strconv.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return j.w.Write(p)
	}
	var b bytes.Buffer
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		i += size
		if r < utf8.RuneSelf || r == utf8.RuneError || strconv.IsPrint(r) {
			b.Write(p[i-size : i])
			continue
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		} else {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	if _, err := j.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}
