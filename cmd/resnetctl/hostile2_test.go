package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/memcap"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/regularfile/fifotest"
	"github.com/resnetctl/resnetctl/models"
)

// Models for issue #15's smaller points, edited from an exported ResNet-8
// (poisonedModel): each function changes the ONNX protobuf.

// setMeta sets (or, with value "", deletes) a metadata_props entry.
func setMeta(key, value string) func(*onnxpb.ModelProto) {
	return func(mp *onnxpb.ModelProto) {
		var kept []*onnxpb.StringStringEntryProto
		for _, kv := range mp.MetadataProps {
			if kv.GetKey() != key {
				kept = append(kept, kv)
			}
		}
		if value != "" {
			kept = append(kept, &onnxpb.StringStringEntryProto{Key: key, Value: value})
		}
		mp.MetadataProps = kept
	}
}

// predictSkipped is predict's last line after an image it named and
// skipped (the other images are still predicted, issue #14).
const predictSkipped = "\nresnetctl: 1 of 1 images could not be read or preprocessed (named above)"

func edits(fs ...func(*onnxpb.ModelProto)) func(*onnxpb.ModelProto) {
	return func(mp *onnxpb.ModelProto) {
		for _, f := range fs {
			f(mp)
		}
	}
}

func initializerNamed(mp *onnxpb.ModelProto, name string) *onnxpb.TensorProto {
	for _, t := range mp.GetGraph().GetInitializer() {
		if t.GetName() == name {
			return t
		}
	}
	panic("no initializer " + name)
}

// zeroClasses gives the classifier no classes: fc of [0, 64], output [N,
// classes], the class dimension given as dim (a number, or a name when
// symbolic).
func zeroClasses(symbolic bool) func(*onnxpb.ModelProto) {
	return edits(setMeta(export.MetaClasses, ""), setMeta(export.MetaLabelSet, ""), func(mp *onnxpb.ModelProto) {
		w, b := initializerNamed(mp, "fc.weight"), initializerNamed(mp, "fc.bias")
		w.Dims, w.FloatData, w.RawData = []int64{0, w.Dims[1]}, nil, nil
		b.Dims, b.FloatData, b.RawData = []int64{0}, nil, nil
		dim := mp.Graph.Output[0].GetType().GetTensorType().GetShape().GetDim()[1]
		if symbolic {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "classes"}
		} else {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 0}
		}
	})
}

// gatherOutOfRange reads the output through a Gather whose constant index
// (10) is outside the 10 classes: an error only a run finds.
func gatherOutOfRange(mp *onnxpb.ModelProto) {
	g := mp.Graph
	out := g.Output[0].GetName()
	g.Initializer = append(g.Initializer, &onnxpb.TensorProto{Name: "bad_index", Dims: []int64{1},
		DataType: int32(onnxpb.TensorProto_INT64), Int64Data: []int64{10}})
	g.Node = append(g.Node, &onnxpb.NodeProto{Name: "pick", OpType: "Gather", Input: []string{out + "_all", "bad_index"}, Output: []string{out},
		Attribute: []*onnxpb.AttributeProto{{Name: "axis", Type: onnxpb.AttributeProto_INT, I: 1}}})
	for _, n := range g.Node[:len(g.Node)-1] {
		for i, o := range n.Output {
			if o == out {
				n.Output[i] = out + "_all"
			}
		}
	}
	g.Output[0].GetType().GetTensorType().GetShape().GetDim()[1].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 1}
}

// externalData moves conv1.weight's data to the file "weights.bin" beside
// the model.
func externalData(mp *onnxpb.ModelProto) {
	w := initializerNamed(mp, "conv1.weight")
	w.FloatData, w.RawData = nil, nil
	w.DataLocation = onnxpb.TensorProto_EXTERNAL
	w.ExternalData = []*onnxpb.StringStringEntryProto{{Key: "location", Value: "weights.bin"}}
}

func noOutputs(mp *onnxpb.ModelProto) { mp.Graph.Output = nil }

// TestHostileRound2 is issue #15's smaller points and FIFOs, through the
// CLI: each refusal is one line naming the file (and field), exit 1,
// nothing on stdout, and an attempt allocating under 64 MiB + 64 × the
// input's size.
func TestHostileRound2(t *testing.T) {
	_, bin, images := sampleFiles(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "x.png")
	fifotest.Make(t, fifo)
	fifoModel := filepath.Join(dir, "model.onnx")
	fifotest.Make(t, fifoModel)
	fifoData := filepath.Join(dir, "data.tar.gz")
	fifotest.Make(t, fifoData)
	brokenName := filepath.Join(dir, "broken\xff\x1b[2J.jpg")
	if err := os.WriteFile(brokenName, []byte("\xff\xd8\xff\xe0 truncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(dir, "set")
	for name, from := range map[string]string{"airplane/ok.png": images[0], "automobile/bad\xff\x1b[2J.png": ""} {
		b := []byte("\x89PNG\r\n\x1a\n truncated")
		if from != "" {
			var err error
			if b, err = os.ReadFile(from); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(folder, "test", filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ext := poisonedModel(t, nil, externalData)
	fifotest.Make(t, filepath.Join(filepath.Dir(ext), "weights.bin"))

	type model struct {
		edit func(*onnxpb.ModelProto)
		path string // instead of an edited model
	}
	tests := []struct {
		name  string
		model model
		args  func(model string) []string
		want  func(model string) string // stderr, without "resnetctl: " and the last newline
	}{
		{"zero classes/predict", model{edit: zeroClasses(false)},
			func(m string) []string { return []string{"predict", m, images[0]} },
			func(m string) string { return m + ": output logits has shape [-1 0]: the model has no classes" }},
		{"zero classes/evaluate", model{edit: zeroClasses(false)},
			func(m string) []string { return []string{"evaluate", m, "--data", bin} },
			func(m string) string { return m + ": output logits has shape [-1 0]: the model has no classes" }},
		{"zero classes, symbolic/predict", model{edit: zeroClasses(true)},
			func(m string) []string { return []string{"predict", m, images[0]} },
			func(m string) string { return m + ": output logits has shape [1 0]: the model has no classes" }},
		{"zero classes, symbolic/evaluate", model{edit: zeroClasses(true)},
			func(m string) []string { return []string{"evaluate", m, "--data", bin, "--batch", "50"} },
			func(m string) string { return m + ": output logits has shape [50 0]: the model has no classes" }},
		{"CMYK/predict", model{edit: setMeta(export.MetaPreprocess, `{"scale":0.00392156862745098,"mean":[0,0,0],"std":[1,1,1],"layout":"NCHW","color":"CMYK","input_size":[3,32,32]}`)},
			func(m string) []string { return []string{"predict", m, images[0]} },
			func(m string) string {
				return m + `: metadata "preprocess": color "CMYK" is not supported (want RGB or BGR)`
			}},
		{"Gather index/predict", model{edit: edits(setMeta(export.MetaClasses, ""), gatherOutOfRange)},
			func(m string) []string { return []string{"predict", m, images[0]} },
			func(m string) string {
				return m + `: infer: node "pick" (Gather): bad input: index 10 is out of range for a dimension of size 10`
			}},
		{"Gather index/evaluate", model{edit: edits(setMeta(export.MetaClasses, ""), gatherOutOfRange)},
			func(m string) []string { return []string{"evaluate", m, "--data", bin} },
			func(m string) string {
				return m + `: infer: node "pick" (Gather): bad input: index 10 is out of range for a dimension of size 10`
			}},
		{"Gather index/bench", model{edit: edits(setMeta(export.MetaClasses, ""), gatherOutOfRange)},
			func(m string) []string { return []string{"bench", m, "--iters", "1", "--warmup", "0", "--batch", "1"} },
			func(m string) string {
				return m + `: infer: node "pick" (Gather): bad input: index 10 is out of range for a dimension of size 10`
			}},
		{"no outputs/gorgonnx", model{edit: noOutputs},
			func(m string) []string { return []string{"predict", "--engine", "gorgonnx", m, images[0]} },
			func(m string) string { return m + ": infer: invalid ONNX model: the graph has no outputs" }},
		{"FIFO image/predict", model{},
			func(m string) []string { return []string{"predict", m, fifo} },
			func(string) string { return "open " + fifo + ": not a regular file (a named pipe)" + predictSkipped }},
		{"FIFO model/predict", model{path: fifoModel},
			func(m string) []string { return []string{"predict", m, images[0]} },
			func(m string) string { return "infer: open " + m + ": not a regular file (a named pipe)" }},
		{"FIFO model/import", model{path: fifoModel},
			func(m string) []string { return []string{"import", m, "--out", filepath.Join(dir, "imported")} },
			func(m string) string { return "open " + m + ": not a regular file (a named pipe)" }},
		{"FIFO external data/predict", model{path: ext},
			func(m string) []string { return []string{"predict", m, images[0]} },
			func(m string) string {
				// The loader lists its problems on the lines after (infer's format).
				return m + ": infer: invalid model, 1 problem:\n\tinitializer \"conv1.weight\": external data \"weights.bin\" is not a regular file"
			}},
		{"FIFO data/evaluate", model{},
			func(m string) []string { return []string{"evaluate", m, "--data", fifoData} },
			func(string) string { return "open " + fifoData + ": not a regular file (a named pipe)" }},
		{"broken image with a non-UTF-8 name/predict", model{},
			func(m string) []string { return []string{"predict", m, brokenName} },
			func(string) string {
				return filepath.Join(dir, `broken\xff\x1b[2J.jpg`) + ": unreadable jpeg header: truncated file (unexpected EOF)" + predictSkipped
			}},
		{"broken image with a non-UTF-8 name/evaluate", model{},
			func(m string) []string { return []string{"evaluate", m, "--data", folder} },
			func(string) string {
				return `set: test/automobile/bad\xff\x1b[2J.png: unreadable png header: truncated file (unexpected EOF)`
			}},
	}
	plain := poisonedModel(t, nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.model.path
			switch {
			case m != "":
			case tt.model.edit != nil:
				m = poisonedModel(t, nil, tt.model.edit)
			default:
				m = plain
			}
			size := 0
			if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() {
				size = int(st.Size())
			}
			var code int
			var out, errOut string
			alloc := memcap.Allocated(func() {
				fifotest.Prompt(t, tt.name, func() error {
					code, out, errOut = runCLI(tt.args(m)...)
					return nil
				})
			})
			want := "resnetctl: " + tt.want(m) + "\n"
			if code != exitError || errOut != want {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and the line\n%s", code, errOut, exitError, want)
			}
			if out != "" {
				t.Errorf("stdout on error: %q", out)
			}
			if strings.ContainsAny(errOut, "\x1b\r") || !utf8.ValidString(errOut) {
				t.Errorf("raw control characters or bytes that are not UTF-8 on stderr: %q", errOut)
			}
			if _, err := os.Lstat(filepath.Join(dir, "imported")); err == nil {
				t.Error("import wrote its output folder")
			}
			memcap.Check(t, alloc, memcap.Limit(64<<20, size), "refusing %s", tt.name)
			t.Logf("%s (%d bytes allocated)", strings.TrimSpace(errOut), alloc)
		})
	}
}

// rawControls are what must never reach a terminal raw: ESC, CR, BEL, a C1
// CSI, a right-to-left override, and a byte that is not UTF-8.
func rawControls(t *testing.T, what, s string) {
	t.Helper()
	if strings.ContainsAny(s, "\x1b\r\a\u009b\u202e") || !utf8.ValidString(s) {
		t.Errorf("%s holds raw control characters or bytes that are not UTF-8:\n%q", what, s)
	}
}

// TestHostileNamesRound2: class names from a model's metadata, a --labels
// file or a data set's label file, and image names, that hold terminal
// escape sequences or bytes that are not UTF-8, are printed quoted and
// escaped by predict and evaluate (they were printed raw) and exact in
// JSON; classes with no images show "-" in evaluate's text and null in its
// JSON (it printed "NaN%", and --json failed on the NaN).
func TestHostileNamesRound2(t *testing.T) {
	_, bin, images := sampleFiles(t)
	hostile, _ := models.Labels("cifar10")
	hostile = append([]string(nil), hostile...)
	copy(hostile, []string{"cat\x1b[2J", "dog\rbird", "\u009b31mred", "emu\u202eexe", "\x1b]52;c;ZXZpbA==\a"})
	quoted := []string{`"cat\x1b[2J"`, `"dog\rbird"`, `"\u009b31mred"`, `"emu\u202eexe"`, `"\x1b]52;c;ZXZpbA==\a"`}
	classes, _ := json.Marshal(hostile)
	model := poisonedModel(t, nil, setMeta(export.MetaClasses, string(classes)))
	dir := t.TempDir()
	img := filepath.Join(dir, "img\xff\x1b[1m.png")
	if b, err := os.ReadFile(images[0]); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("predict text", func(t *testing.T) {
		code, out, errOut := runCLI("predict", "--top", "10", model, img)
		if code != exitOK {
			t.Fatal(errOut)
		}
		rawControls(t, "stdout", out)
		rawControls(t, "stderr", errOut)
		if first, _, _ := strings.Cut(out, "\n"); first != `"`+dir+`/img\xff\x1b[1m.png"` {
			t.Errorf("image line %q", first)
		}
		for _, q := range quoted {
			if !strings.Contains(out, ". "+q+" ") {
				t.Errorf("stdout lacks %s:\n%s", q, out)
			}
		}
	})
	t.Run("predict JSON", func(t *testing.T) {
		code, out, errOut := runCLI("predict", "--json", "--top", "10", model, images[0])
		if code != exitOK {
			t.Fatal(errOut)
		}
		res := decodeLines(t, out) // JSON Lines
		for _, p := range res[0].Predictions {
			if p.Label != hostile[p.Index] {
				t.Errorf("label %q, want %q exactly", p.Label, hostile[p.Index])
			}
		}
		rawControls(t, "JSON", out)
	})
	t.Run("--labels file", func(t *testing.T) {
		labels := filepath.Join(dir, "labels.txt")
		names := append([]string{"frog\xff", "ship\x1b[8m"}, hostile[2:]...)
		if err := os.WriteFile(labels, []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI("predict", "--top", "10", "--labels", labels, model, images[0])
		if code != exitOK {
			t.Fatal(errOut)
		}
		rawControls(t, "stdout", out)
		for _, q := range []string{`"frog\xff"`, `"ship\x1b[8m"`} {
			if !strings.Contains(out, ". "+q+" ") {
				t.Errorf("stdout lacks %s:\n%s", q, out)
			}
		}
	})

	// A data set whose label file (beside the .bin) holds the same names,
	// so that they match the model's; 5 images leave 5 classes empty.
	data := filepath.Join(t.TempDir(), "test_sample.bin")
	if b, err := os.ReadFile(bin); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(data), "batches.meta.txt"), []byte(strings.Join(hostile, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("evaluate text", func(t *testing.T) {
		code, out, errOut := runCLI("evaluate", model, "--data", data, "--limit", "5")
		if code != exitOK {
			t.Fatal(errOut)
		}
		rawControls(t, "stdout", out)
		if strings.Contains(out, "NaN") {
			t.Errorf("NaN in:\n%s", out)
		}
		empty := 0
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[len(f)-2] == "-" && f[len(f)-1] == "0" {
				empty++
			}
		}
		if empty != 5 {
			t.Errorf("%d classes shown with \"-\" and 0 images, want 5:\n%s", empty, out)
		}
		for _, q := range quoted {
			if !strings.Contains(out, "\n"+q+" ") {
				t.Errorf("stdout lacks a line for %s:\n%s", q, out)
			}
		}
	})
	t.Run("evaluate JSON", func(t *testing.T) {
		code, out, errOut := runCLI("evaluate", model, "--data", data, "--limit", "5", "--json")
		if code != exitOK {
			t.Fatal(errOut)
		}
		var ev struct {
			PerClass []struct {
				Name     string   `json:"name"`
				Accuracy *float64 `json:"accuracy"`
				Images   int      `json:"images"`
			} `json:"per_class"`
		}
		if err := json.Unmarshal([]byte(out), &ev); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		nulls := 0
		for i, c := range ev.PerClass {
			if c.Name != hostile[i] {
				t.Errorf("class %d named %q, want %q exactly", i, c.Name, hostile[i])
			}
			if (c.Accuracy == nil) != (c.Images == 0) {
				t.Errorf("class %q: accuracy %v for %d images", c.Name, c.Accuracy, c.Images)
			}
			if c.Accuracy == nil {
				nulls++
			}
		}
		if len(ev.PerClass) != 10 || nulls != 5 || !strings.Contains(out, `"accuracy": null`) {
			t.Errorf("%d classes, %d null accuracies:\n%s", len(ev.PerClass), nulls, out)
		}
	})
}
