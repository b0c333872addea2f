// Package pbtext reads protobuf text format without a schema, for tests
// that check files other programs parse with their own message types
// (Triton's config.pbtxt): fields by name, scalars as written, nested
// messages, and repeated fields whether written as repeated "name: value"
// lines or as one "name: [ … ]" list.
//
// The grammar is the text format's: a message is a sequence of fields;
// a field is a name, then ":" and a scalar (a quoted string — adjacent
// ones are concatenated — a number or an identifier), or an optional ":"
// and a message in "{ }" or "< >", or ":" and a "[ ]" list of either
// (the ":" is optional before a list of messages); a field may end with
// ";" or ","; "#" starts a comment that runs to the end of the line.
package pbtext

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind says what a Value is.
type Kind int

// The kinds of values.
const (
	String  Kind = iota // a quoted string, unescaped in Text
	Number              // a number as written
	Ident               // an identifier (an enum value, true, false)
	Message             // a nested message, in Msg
)

// Value is one value of a field.
type Value struct {
	Kind Kind
	Text string
	Msg  *Msg
}

// Field is one occurrence of a field: a list gives it several values.
type Field struct {
	Name   string
	List   bool // written as [ … ]
	Values []Value
	Line   int
}

// Msg is a message: its fields in the order written.
type Msg struct {
	Fields []*Field
}

// Values returns every value of the named field, across all its
// occurrences, in order.
func (m *Msg) Values(name string) []Value {
	var out []Value
	for _, f := range m.Fields {
		if f.Name == name {
			out = append(out, f.Values...)
		}
	}
	return out
}

// Names returns the field names in the order written, repeated ones once.
func (m *Msg) Names() []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range m.Fields {
		if !seen[f.Name] {
			seen[f.Name] = true
			out = append(out, f.Name)
		}
	}
	return out
}

// Parse reads a whole text-format message.
func Parse(src string) (*Msg, error) {
	p := &parser{src: src, line: 1}
	m, err := p.message("")
	if err != nil {
		return nil, err
	}
	return m, nil
}

type parser struct {
	src  string
	pos  int
	line int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("pbtext: line %d: %s", p.line, fmt.Sprintf(format, args...))
}

// skip passes white space and comments.
func (p *parser) skip() {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == '\n':
			p.line++
			p.pos++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			p.pos++
		case c == '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

// peek returns the next significant byte, 0 at the end.
func (p *parser) peek() byte {
	p.skip()
	if p.pos == len(p.src) {
		return 0
	}
	return p.src[p.pos]
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func (p *parser) ident() string {
	start := p.pos
	for p.pos < len(p.src) && isIdentPart(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

// message reads fields up to close ("" for the end of the input).
func (p *parser) message(close string) (*Msg, error) {
	m := &Msg{}
	for {
		c := p.peek()
		if close == "" && c == 0 {
			return m, nil
		}
		if close != "" && c == close[0] {
			p.pos++
			return m, nil
		}
		if c == 0 {
			return nil, p.errorf("unexpected end of input, want %q", close)
		}
		if !isIdentStart(c) {
			if c == '[' {
				return nil, p.errorf("extension and Any fields ([…]) are not supported")
			}
			return nil, p.errorf("unexpected %q, want a field name", c)
		}
		f := &Field{Line: p.line, Name: p.ident()}
		colon := false
		if p.peek() == ':' {
			p.pos++
			colon = true
		}
		switch c := p.peek(); {
		case c == '[':
			p.pos++
			f.List = true
			if p.peek() == ']' {
				p.pos++
				break
			}
			for {
				v, err := p.value(colon, f.Name)
				if err != nil {
					return nil, err
				}
				f.Values = append(f.Values, v)
				if p.peek() == ',' {
					p.pos++
					continue
				}
				if p.peek() != ']' {
					return nil, p.errorf("field %s: want ',' or ']' in the list", f.Name)
				}
				p.pos++
				break
			}
			if !colon {
				for _, v := range f.Values {
					if v.Kind != Message {
						return nil, p.errorf("field %s: a list of scalars needs ':'", f.Name)
					}
				}
			}
		default:
			v, err := p.value(colon, f.Name)
			if err != nil {
				return nil, err
			}
			f.Values = append(f.Values, v)
		}
		m.Fields = append(m.Fields, f)
		if c := p.peek(); c == ';' || c == ',' {
			p.pos++
		}
	}
}

// value reads a scalar (after a ':') or a message.
func (p *parser) value(colon bool, field string) (Value, error) {
	switch c := p.peek(); {
	case c == '{' || c == '<':
		p.pos++
		close := "}"
		if c == '<' {
			close = ">"
		}
		m, err := p.message(close)
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: Message, Msg: m}, nil
	case !colon:
		return Value{}, p.errorf("field %s: a scalar value needs ':'", field)
	case c == '"' || c == '\'':
		var b strings.Builder
		for {
			s, err := p.quoted()
			if err != nil {
				return Value{}, p.errorf("field %s: %v", field, err)
			}
			b.WriteString(s)
			if c := p.peek(); c != '"' && c != '\'' {
				break
			}
		}
		return Value{Kind: String, Text: b.String()}, nil
	case c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9':
		start := p.pos
		p.pos++
		for p.pos < len(p.src) && (isIdentPart(p.src[p.pos]) || p.src[p.pos] == '.' ||
			(p.src[p.pos] == '-' || p.src[p.pos] == '+') && (p.src[p.pos-1] == 'e' || p.src[p.pos-1] == 'E')) {
			p.pos++
		}
		text := p.src[start:p.pos]
		num := strings.TrimRight(strings.TrimLeft(text, "+-"), "fF")
		if _, err := strconv.ParseFloat(num, 64); err != nil {
			if _, err := strconv.ParseUint(num, 0, 64); err != nil && !strings.EqualFold(num, "inf") && !strings.EqualFold(num, "infinity") && !strings.EqualFold(num, "nan") {
				return Value{}, p.errorf("field %s: %q is not a number", field, text)
			}
		}
		return Value{Kind: Number, Text: text}, nil
	case isIdentStart(c):
		return Value{Kind: Ident, Text: p.ident()}, nil
	default:
		return Value{}, p.errorf("field %s: unexpected %q", field, c)
	}
}

// quoted reads one quoted string and unescapes it.
func (p *parser) quoted() (string, error) {
	q := p.src[p.pos]
	p.pos++
	var b strings.Builder
	for {
		if p.pos >= len(p.src) || p.src[p.pos] == '\n' {
			return "", fmt.Errorf("unterminated string")
		}
		c := p.src[p.pos]
		p.pos++
		if c == q {
			return b.String(), nil
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if p.pos >= len(p.src) {
			return "", fmt.Errorf("unterminated string")
		}
		e := p.src[p.pos]
		p.pos++
		switch e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case '\\', '\'', '"', '?':
			b.WriteByte(e)
		case 'x', 'X':
			n := 0
			for n < 2 && p.pos+n < len(p.src) && strings.IndexByte("0123456789abcdefABCDEF", p.src[p.pos+n]) >= 0 {
				n++
			}
			if n == 0 {
				return "", fmt.Errorf(`\x without hex digits`)
			}
			v, _ := strconv.ParseUint(p.src[p.pos:p.pos+n], 16, 8)
			b.WriteByte(byte(v))
			p.pos += n
		case '0', '1', '2', '3', '4', '5', '6', '7':
			n := 1
			for n < 3 && p.pos-1+n < len(p.src) && p.src[p.pos-1+n] >= '0' && p.src[p.pos-1+n] <= '7' {
				n++
			}
			v, err := strconv.ParseUint(p.src[p.pos-1:p.pos-1+n], 8, 16)
			if err != nil || v > 255 {
				return "", fmt.Errorf("octal escape out of range")
			}
			b.WriteByte(byte(v))
			p.pos += n - 1
		default:
			return "", fmt.Errorf("unknown escape \\%c", e)
		}
	}
}
