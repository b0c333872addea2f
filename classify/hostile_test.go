package classify

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/memcap"
	"github.com/resnetctl/resnetctl/internal/regularfile"
	"github.com/resnetctl/resnetctl/internal/regularfile/fifotest"
)

// TestResolveRefuses: metadata and graphs Resolve used to accept (a
// colour model images cannot give, fed RGB; an output of no classes) or
// panic on (no outputs, as the gorgonnx engine loads them) are refused
// with one line naming the field, allocating under the corpus bound.
func TestResolveRefuses(t *testing.T) {
	md := func(outputs []infer.ValueInfo, color string) infer.Metadata {
		m := infer.Metadata{
			Inputs:  []infer.ValueInfo{{Name: "input", DType: infer.Float32, Shape: []int{-1, 3, 32, 32}}},
			Outputs: outputs,
			Props:   map[string]string{},
		}
		if color != "-" {
			m.Props[export.MetaPreprocess] = `{"scale":1,"mean":[0,0,0],"std":[1,1,1],"layout":"NCHW","color":"` + color + `","input_size":[3,32,32]}`
		}
		return m
	}
	logits := []infer.ValueInfo{{Name: "logits", DType: infer.Float32, Shape: []int{-1, 10}}}
	tests := []struct {
		name string
		md   infer.Metadata
		want string // "" accepts
	}{
		{"CMYK", md(logits, "CMYK"), `metadata "preprocess": color "CMYK" is not supported (want RGB or BGR)`},
		{"grayscale", md(logits, "L"), `metadata "preprocess": color "L" is not supported (want RGB or BGR)`},
		{"escape in color", md(logits, `\u001b[2J`), `metadata "preprocess": color "\x1b[2J" is not supported (want RGB or BGR)`},
		{"no outputs", md(nil, "RGB"), "the model has no outputs"},
		{"zero classes", md([]infer.ValueInfo{{Name: "logits", DType: infer.Float32, Shape: []int{-1, 0}}}, "RGB"), "output logits has shape [-1 0]: the model has no classes"},
		{"zero-class probabilities", md(append(logits, infer.ValueInfo{Name: export.ProbabilitiesName, DType: infer.Float32, Shape: []int{-1, 0}}), "-"),
			"output probabilities has shape [-1 0]: the model has no classes"},
		{"RGB", md(logits, "RGB"), ""},
		{"BGR", md(logits, "BGR"), ""},
		{"bgr", md(logits, "bgr"), ""},
		{"no color", md(logits, ""), ""},
		{"no preprocessing", md(logits, "-"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s *Setup
			var err error
			alloc := memcap.Allocated(func() { s, err = Resolve(tt.md, Flags{}) })
			if tt.want == "" {
				if err != nil || s.Output != "logits" {
					t.Fatalf("setup %+v, %v", s, err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			memcap.Check(t, alloc, memcap.Limit(64<<20, len(tt.md.Props[export.MetaPreprocess])), "refusing %s", tt.name)
		})
	}
}

// TestLabelsFIFO: --labels naming a FIFO is refused at once (it blocked
// forever).
func TestLabelsFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "labels.txt")
	fifotest.Make(t, fifo)
	err := fifotest.Prompt(t, "LoadLabels", func() error { _, err := LoadLabels(fifo); return err })
	if !errors.Is(err, regularfile.ErrNotRegular) || !strings.Contains(err.Error(), "open "+fifo+": not a regular file (a named pipe)") {
		t.Fatalf("error %v", err)
	}
}

// TestWriteTextHostile: a class with no images shows "-" (it showed
// "NaN%"), and class names holding terminal escapes, carriage returns or
// bytes that are not UTF-8 are printed quoted and escaped, never raw.
func TestWriteTextHostile(t *testing.T) {
	e := NewEval([]string{"cat\x1b[2J", "dog\rbird", "emu\xff"}, 3)
	if err := e.Add(0, []float32{3, 1, 0}); err != nil {
		t.Fatal(err)
	}
	if err := e.Add(1, []float32{3, 1, 0}); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	e.WriteText(&b)
	want := `images: 2
top-1 accuracy: 50.00%
top-5 accuracy: 100.00%

class         accuracy  images
"cat\x1b[2J"   100.00%       1
"dog\rbird"      0.00%       1
"emu\xff"            -       0

confusion matrix (rows: true class, columns: predicted)
                 0     1     2
"cat\x1b[2J"     1     0     0
"dog\rbird"      1     0     0
"emu\xff"        0     0     0
`
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
	if strings.ContainsAny(b.String(), "\x1b\r") || strings.Contains(b.String(), "NaN") {
		t.Error("raw control characters or NaN in the text")
	}
	var empty bytes.Buffer
	NewEval(nil, 2).WriteText(&empty)
	if !strings.Contains(empty.String(), "top-1 accuracy: -\ntop-5 accuracy: -\n") || strings.Contains(empty.String(), "NaN") {
		t.Errorf("no images:\n%s", empty.String())
	}
}
