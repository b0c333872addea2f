package pbtext

import (
	"strings"
	"testing"
)

// TestParse reads the forms of the text format: comments, scalars of each
// kind, nested messages with and without ':', both bracket kinds, lists
// of scalars and of messages, repeated fields, separators, escapes and
// adjacent strings.
func TestParse(t *testing.T) {
	src := `# a comment
name: "m\"x\\y\n\101\x42" 'z'   # trailing comment
max_batch_size: 8;
ratio: -1.5e-3, flag: true
input [
  { name: "a" dims: [ 3, -1 ] },
  < name: "b" dims: 4 dims: 5 >
]
dynamic_batching { }
opt: { inner { k: ENUM_V } }
empty: []
`
	m, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Names(), " "); got != "name max_batch_size ratio flag input dynamic_batching opt empty" {
		t.Errorf("names %q", got)
	}
	if v := m.Values("name"); len(v) != 1 || v[0].Kind != String || v[0].Text != "m\"x\\y\nABz" {
		t.Errorf("name %+v", v)
	}
	if v := m.Values("max_batch_size"); len(v) != 1 || v[0].Kind != Number || v[0].Text != "8" {
		t.Errorf("max_batch_size %+v", v)
	}
	if v := m.Values("ratio"); len(v) != 1 || v[0].Text != "-1.5e-3" {
		t.Errorf("ratio %+v", v)
	}
	if v := m.Values("flag"); len(v) != 1 || v[0].Kind != Ident || v[0].Text != "true" {
		t.Errorf("flag %+v", v)
	}
	in := m.Values("input")
	if len(in) != 2 || in[0].Kind != Message || in[1].Kind != Message {
		t.Fatalf("input %+v", in)
	}
	var dims []string
	for _, v := range in[0].Msg.Values("dims") {
		dims = append(dims, v.Text)
	}
	if strings.Join(dims, ",") != "3,-1" {
		t.Errorf("input[0].dims %v", dims)
	}
	if v := in[1].Msg.Values("dims"); len(v) != 2 || v[0].Text != "4" || v[1].Text != "5" {
		t.Errorf("input[1].dims %+v", v)
	}
	if v := m.Values("dynamic_batching"); len(v) != 1 || v[0].Kind != Message || len(v[0].Msg.Fields) != 0 {
		t.Errorf("dynamic_batching %+v", v)
	}
	if v := m.Values("opt"); len(v) != 1 || v[0].Msg.Values("inner")[0].Msg.Values("k")[0].Text != "ENUM_V" {
		t.Errorf("opt %+v", v)
	}
	if v := m.Values("empty"); len(v) != 0 {
		t.Errorf("empty %+v", v)
	}
}

// TestParseErrors: malformed text is refused with the line.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`name "x"`, "needs ':'"},
		{`name: "x`, "unterminated string"},
		{"a: 1\nb { c: 2", "line 2: unexpected end of input"},
		{`dims: [ 1 2 ]`, "want ',' or ']'"},
		{`dims [ 1, 2 ]`, "needs ':'"},
		{`x: 1abc`, "not a number"},
		{`x: "\q"`, "unknown escape"},
		{`: 1`, "want a field name"},
		{`}`, "want a field name"},
	} {
		_, err := Parse(tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.src, err, tc.want)
		}
	}
}
