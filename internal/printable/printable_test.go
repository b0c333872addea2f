package printable

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

func TestName(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"cat", "cat"},
		{"great white shark", "great white shark"},
		{"crème brûlée", "crème brûlée"},
		{"猫", "猫"},
		{"", ""},
		{"cat\x1b[2J", `"cat\x1b[2J"`},
		{"\x1b]52;c;ZXZpbA==\x07", `"\x1b]52;c;ZXZpbA==\a"`},
		{"dog\rcat", `"dog\rcat"`},
		{"a\nb", `"a\nb"`},
		{"tab\there", `"tab\there"`},
		{"img\xff.png", `"img\xff.png"`},
		{"\u009b31m", `"\u009b31m"`},
		{"gnp.\u202eexe", `"gnp.\u202eexe"`},
		{"non\u00a0breaking", `"non\u00a0breaking"`},
		{"\uFFFD", "\uFFFD"},
	} {
		if got := Name(tt.in); got != tt.want {
			t.Errorf("Name(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"x.onnx: invalid model, 1 problem:\n\tthe graph has no outputs", "x.onnx: invalid model, 1 problem:\n\tthe graph has no outputs"},
		{"open cat\x1b[2J.png: no such file", `open cat\x1b[2J.png: no such file`},
		{"a\rb\x7fc", `a\rb\x7fc`},
		{"img\xff\xfe.png", `img\xff\xfe.png`},
		{"\u009b31m red", `\u009b31m red`},
		{"crème \u202e", "crème \u202e"},
		{"\uFFFD is a real character", "\uFFFD is a real character"},
		{"\t\x00", "\t" + `\x00`},
	} {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestJSON: encoding/json leaves C1 controls and format characters raw;
// the writer escapes them, and the JSON decodes to the same strings.
func TestJSON(t *testing.T) {
	in := []string{"cat\x1b[2J", "\u009b31mred", "emu\u202eexe", "tag\U000E0001", "crème 猫", "\uFFFD"}
	var b bytes.Buffer
	if err := json.NewEncoder(JSON(&b)).Encode(in); err != nil {
		t.Fatal(err)
	}
	want := `["cat\u001b[2J","\u009b31mred","emu\u202eexe","tag\udb40\udc01","crème 猫","` + "\uFFFD" + `"]` + "\n"
	if b.String() != want {
		t.Errorf("JSON %s, want %s", b.String(), want)
	}
	var out []string
	if err := json.Unmarshal(b.Bytes(), &out); err != nil || !slices.Equal(out, in) {
		t.Errorf("decoded %q, %v; want %q", out, err, in)
	}
}
