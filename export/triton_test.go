package export_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/pbtext"
	"github.com/resnetctl/resnetctl/models"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// tritonTensorWant is what one input or output of config.pbtxt must say.
type tritonTensorWant struct {
	name, dataType, format, labels string
	dims                           []int64
}

// tritonWant is what a config.pbtxt must say, field by field.
type tritonWant struct {
	name     string
	maxBatch int
	inputs   []tritonTensorWant
	outputs  []tritonTensorWant
	batching bool
}

// checkTritonConfig parses text as protobuf text format (schema-less,
// internal/pbtext) and checks every field against want, and that there is
// no other field.
func checkTritonConfig(t *testing.T, text string, want tritonWant) {
	t.Helper()
	m, err := pbtext.Parse(text)
	if err != nil {
		t.Fatalf("config.pbtxt does not parse as protobuf text format: %v\n%s", err, text)
	}
	fields := []string{"name", "platform", "max_batch_size", "input", "output"}
	if want.batching {
		fields = append(fields, "dynamic_batching")
	}
	if got := m.Names(); !slices.Equal(got, fields) {
		t.Errorf("fields %v, want %v", got, fields)
	}
	one := func(m *pbtext.Msg, field string, kind pbtext.Kind) string {
		t.Helper()
		v := m.Values(field)
		if len(v) != 1 || v[0].Kind != kind {
			t.Errorf("%s: %+v, want one value of kind %d", field, v, kind)
			return ""
		}
		return v[0].Text
	}
	if got := one(m, "name", pbtext.String); got != want.name {
		t.Errorf("name %q, want %q", got, want.name)
	}
	if got := one(m, "platform", pbtext.String); got != "onnxruntime_onnx" {
		t.Errorf("platform %q, want onnxruntime_onnx", got)
	}
	if got := one(m, "max_batch_size", pbtext.Number); got != strconv.Itoa(want.maxBatch) {
		t.Errorf("max_batch_size %s, want %d", got, want.maxBatch)
	}
	tensors := func(field string, want []tritonTensorWant, output bool) {
		t.Helper()
		vs := m.Values(field)
		if len(vs) != len(want) {
			t.Errorf("%s: %d entries, want %d", field, len(vs), len(want))
			return
		}
		for i, v := range vs {
			w := want[i]
			if v.Kind != pbtext.Message {
				t.Errorf("%s[%d] is not a message", field, i)
				continue
			}
			names := []string{"name", "data_type"}
			if w.format != "" {
				names = append(names, "format")
			}
			names = append(names, "dims")
			if w.labels != "" {
				names = append(names, "label_filename")
			}
			if got := v.Msg.Names(); !slices.Equal(got, names) {
				t.Errorf("%s[%d] fields %v, want %v", field, i, got, names)
			}
			if got := one(v.Msg, "name", pbtext.String); got != w.name {
				t.Errorf("%s[%d].name %q, want %q", field, i, got, w.name)
			}
			if got := one(v.Msg, "data_type", pbtext.Ident); got != w.dataType {
				t.Errorf("%s[%d].data_type %s, want %s", field, i, got, w.dataType)
			}
			if w.format != "" {
				if got := one(v.Msg, "format", pbtext.Ident); got != w.format {
					t.Errorf("%s[%d].format %s, want %s", field, i, got, w.format)
				}
			}
			var dims []int64
			for _, d := range v.Msg.Values("dims") {
				n, err := strconv.ParseInt(d.Text, 10, 64)
				if d.Kind != pbtext.Number || err != nil {
					t.Errorf("%s[%d].dims: %+v is not an integer", field, i, d)
				}
				dims = append(dims, n)
			}
			if !slices.Equal(dims, w.dims) {
				t.Errorf("%s[%d].dims %v, want %v", field, i, dims, w.dims)
			}
			if w.labels != "" {
				if got := one(v.Msg, "label_filename", pbtext.String); got != w.labels {
					t.Errorf("%s[%d].label_filename %q, want %q", field, i, got, w.labels)
				}
			}
		}
	}
	tensors("input", want.inputs, false)
	tensors("output", want.outputs, true)
	if want.batching {
		if v := m.Values("dynamic_batching"); len(v) != 1 || v[0].Kind != pbtext.Message || len(v[0].Msg.Fields) != 0 {
			t.Errorf("dynamic_batching %+v, want one empty message", v)
		}
	}
	checkTextFormatGrammar(t, text)
}

// checkTextFormatGrammar parses text with Google's text-format parser
// (google.golang.org/protobuf/encoding/prototext), against message types
// built here with the field names of Triton's documentation. The text
// format names fields and enum values and never numbers them, so the
// field and enum numbers below are this test's own placeholders, not
// Triton's; what this checks is the syntax (lists, nested messages, enum
// identifiers, comments) and that no field is written twice where the
// schema has one.
func checkTextFormatGrammar(t *testing.T, text string) {
	t.Helper()
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	i32 := descriptorpb.FieldDescriptorProto_TYPE_INT32.Enum()
	i64 := descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum()
	msgT := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	enumT := descriptorpb.FieldDescriptorProto_TYPE_ENUM.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	field := func(name string, n int32, label *descriptorpb.FieldDescriptorProto_Label, typ *descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Label: label, Type: typ}
		if typeName != "" {
			f.TypeName = proto.String(".resnetctltest." + typeName)
		}
		return f
	}
	enum := func(name string, values ...string) *descriptorpb.EnumDescriptorProto {
		e := &descriptorpb.EnumDescriptorProto{Name: proto.String(name)}
		for i, v := range values {
			e.Value = append(e.Value, &descriptorpb.EnumValueDescriptorProto{Name: proto.String(v), Number: proto.Int32(int32(i))})
		}
		return e
	}
	fd := &descriptorpb.FileDescriptorProto{
		Name: proto.String("resnetctltest/triton_config_grammar.proto"), Package: proto.String("resnetctltest"), Syntax: proto.String("proto3"),
		EnumType: []*descriptorpb.EnumDescriptorProto{
			enum("DataType", "TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8",
				"TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING", "TYPE_BF16"),
			enum("Format", "FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW"),
		},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Input"), Field: []*descriptorpb.FieldDescriptorProto{
				field("name", 1, opt, str, ""), field("data_type", 2, opt, enumT, "DataType"),
				field("format", 3, opt, enumT, "Format"), field("dims", 4, rep, i64, ""),
			}},
			{Name: proto.String("Output"), Field: []*descriptorpb.FieldDescriptorProto{
				field("name", 1, opt, str, ""), field("data_type", 2, opt, enumT, "DataType"),
				field("dims", 3, rep, i64, ""), field("label_filename", 4, opt, str, ""),
			}},
			{Name: proto.String("Batching")},
			{Name: proto.String("Config"), Field: []*descriptorpb.FieldDescriptorProto{
				field("name", 1, opt, str, ""), field("platform", 2, opt, str, ""), field("max_batch_size", 3, opt, i32, ""),
				field("input", 4, rep, msgT, "Input"), field("output", 5, rep, msgT, "Output"),
				field("dynamic_batching", 6, opt, msgT, "Batching"),
			}},
		},
	}
	file, err := protodesc.NewFile(fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := dynamicpb.NewMessage(file.Messages().ByName("Config"))
	if err := prototext.Unmarshal([]byte(text), msg); err != nil {
		t.Errorf("Google's text-format parser rejects config.pbtxt: %v", err)
		return
	}
	// What it read agrees with the schema-less reading on a few fields.
	fields := msg.Descriptor().Fields()
	if got := msg.Get(fields.ByName("max_batch_size")).Int(); got < 0 {
		t.Errorf("max_batch_size %d", got)
	}
	ins := msg.Get(fields.ByName("input")).List()
	for i := 0; i < ins.Len(); i++ {
		in := ins.Get(i).Message()
		dt := in.Get(in.Descriptor().Fields().ByName("data_type")).Enum()
		if dt == 0 {
			t.Errorf("input %d: data_type left TYPE_INVALID", i)
		}
	}
}

// tritonModel exports a catalog model's graph (seed 1).
func tritonModel(t *testing.T, name string, opts export.Options) ([]byte, *build.Graph) {
	t.Helper()
	spec, err := models.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := build.New(spec, build.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := export.Marshal(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, g
}

// readLines reads a file's lines (without the final newline).
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		t.Errorf("%s does not end with a newline", path)
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// TestWriteTritonResNet20: the repository entry of an exported ResNet-20
// (dynamic batch): config.pbtxt field by field, labels.txt the CIFAR-10
// classes in index order, 1/model.onnx the exported bytes, which the
// runtime loads and runs at a batch of max_batch_size.
func TestWriteTritonResNet20(t *testing.T) {
	model, g := tritonModel(t, "resnet20", export.Options{})
	root := filepath.Join(t.TempDir(), "repo") // created by WriteTriton
	info, err := export.WriteTriton(root, model, export.TritonOptions{Name: "resnet20", Comment: "written by a test\nsecond line"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "resnet20")
	if info.Dir != dir || info.Config != filepath.Join(dir, "config.pbtxt") || info.Model != filepath.Join(dir, "1", "model.onnx") ||
		info.Labels != filepath.Join(dir, "labels.txt") || info.Classes != 10 || info.Replaced {
		t.Errorf("info %+v", info)
	}
	text, err := os.ReadFile(info.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("config.pbtxt:\n%s", text)
	if !strings.HasPrefix(string(text), "# written by a test second line\n") {
		t.Errorf("the comment is not one line at the top:\n%s", text)
	}
	checkTritonConfig(t, string(text), tritonWant{
		name: "resnet20", maxBatch: export.DefaultTritonMaxBatch, batching: true,
		inputs:  []tritonTensorWant{{name: "input", dataType: "TYPE_FP32", format: "FORMAT_NCHW", dims: []int64{3, 32, 32}}},
		outputs: []tritonTensorWant{{name: "logits", dataType: "TYPE_FP32", dims: []int64{10}, labels: "labels.txt"}},
	})
	labels, err := models.Labels(g.Spec.Labels)
	if err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, info.Labels); !slices.Equal(got, labels) {
		t.Errorf("labels.txt %q, want %q", got, labels)
	}
	written, err := os.ReadFile(info.Model)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(written, model) {
		t.Error("1/model.onnx differs from the exported bytes")
	}
	sess, err := infer.Load(info.Model, infer.Options{Threads: 2})
	if err != nil {
		t.Fatalf("the runtime does not load the repository's model: %v", err)
	}
	defer sess.Close()
	n := export.DefaultTritonMaxBatch
	res, err := sess.Run(context.Background(), map[string]*infer.Tensor{"input": infer.NewFloat32([]int{n, 3, 32, 32}, make([]float32, n*3*32*32))})
	if err != nil {
		t.Fatal(err)
	}
	if y := res["logits"]; y == nil || !slices.Equal(y.Shape, []int{n, 10}) {
		t.Errorf("a batch of max_batch_size gives %+v, want [%d 10] logits", y, n)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "resnet20" {
		t.Errorf("the repository holds %v, want only resnet20 (no temporary directory left)", entries)
	}
}

// TestWriteTritonShapes: a fixed batch dimension gives max_batch_size 0
// and full dims (no format: Triton takes it only with three dims; no
// dynamic batching); --softmax's two outputs both get labels; a file
// without metadata gets neither labels nor format; names are escaped.
func TestWriteTritonShapes(t *testing.T) {
	root := t.TempDir()
	model, _ := tritonModel(t, "resnet20", export.Options{})
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(model, m); err != nil {
		t.Fatal(err)
	}
	for _, v := range append(m.Graph.Input, m.Graph.Output...) {
		v.GetType().GetTensorType().GetShape().Dim[0].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 1}
	}
	fixed, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	info, err := export.WriteTriton(root, fixed, export.TritonOptions{Name: "fixed", MaxBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(info.Config)
	checkTritonConfig(t, string(text), tritonWant{
		name: "fixed", maxBatch: 0,
		inputs:  []tritonTensorWant{{name: "input", dataType: "TYPE_FP32", dims: []int64{1, 3, 32, 32}}},
		outputs: []tritonTensorWant{{name: "logits", dataType: "TYPE_FP32", dims: []int64{1, 10}, labels: "labels.txt"}},
	})
	if sess, err := infer.Load(info.Model, infer.Options{Threads: 1}); err != nil {
		t.Errorf("fixed-batch model: %v", err)
	} else {
		sess.Close()
	}

	soft, _ := tritonModel(t, "resnet8", export.Options{Softmax: true, Opset: 13})
	info, err = export.WriteTriton(root, soft, export.TritonOptions{Name: "r8.soft-max_1", MaxBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	text, _ = os.ReadFile(info.Config)
	checkTritonConfig(t, string(text), tritonWant{
		name: "r8.soft-max_1", maxBatch: 8, batching: true,
		inputs: []tritonTensorWant{{name: "input", dataType: "TYPE_FP32", format: "FORMAT_NCHW", dims: []int64{3, 32, 32}}},
		outputs: []tritonTensorWant{
			{name: "logits", dataType: "TYPE_FP32", dims: []int64{10}, labels: "labels.txt"},
			{name: "probabilities", dataType: "TYPE_FP32", dims: []int64{10}, labels: "labels.txt"},
		},
	})

	// Someone else's file: no metadata, odd tensor names.
	m.MetadataProps = nil
	for _, v := range append(m.Graph.Input, m.Graph.Output...) {
		v.GetType().GetTensorType().GetShape().Dim[0].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}
	}
	rename := map[string]string{"input": `in"put\1`, "logits": "onnx::Gemm_7\t"}
	for _, v := range append(m.Graph.Input, m.Graph.Output...) {
		v.Name = rename[v.Name]
	}
	for _, n := range m.Graph.Node {
		for i, s := range n.Input {
			if r, ok := rename[s]; ok {
				n.Input[i] = r
			}
		}
		for i, s := range n.Output {
			if r, ok := rename[s]; ok {
				n.Output[i] = r
			}
		}
	}
	plain, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	info, err = export.WriteTriton(root, plain, export.TritonOptions{Name: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Labels != "" || info.Classes != 0 {
		t.Errorf("labels from a file without class names: %+v", info)
	}
	if _, err := os.Stat(filepath.Join(root, "plain", "labels.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("labels.txt written for a file without class names (%v)", err)
	}
	text, _ = os.ReadFile(info.Config)
	checkTritonConfig(t, string(text), tritonWant{
		name: "plain", maxBatch: export.DefaultTritonMaxBatch, batching: true,
		inputs:  []tritonTensorWant{{name: `in"put\1`, dataType: "TYPE_FP32", dims: []int64{3, 32, 32}}},
		outputs: []tritonTensorWant{{name: "onnx::Gemm_7\t", dataType: "TYPE_FP32", dims: []int64{10}}},
	})

	// Class names given for such a file: labels.txt and label_filename;
	// a count that no output has is refused.
	names := []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c 9"}
	info, err = export.WriteTriton(root, plain, export.TritonOptions{Name: "plain-labelled", Classes: names})
	if err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, info.Labels); !slices.Equal(got, names) {
		t.Errorf("labels.txt %q, want %q", got, names)
	}
	text, _ = os.ReadFile(info.Config)
	checkTritonConfig(t, string(text), tritonWant{
		name: "plain-labelled", maxBatch: export.DefaultTritonMaxBatch, batching: true,
		inputs:  []tritonTensorWant{{name: `in"put\1`, dataType: "TYPE_FP32", dims: []int64{3, 32, 32}}},
		outputs: []tritonTensorWant{{name: "onnx::Gemm_7\t", dataType: "TYPE_FP32", dims: []int64{10}, labels: "labels.txt"}},
	})
	for _, bad := range [][]string{names[:9], {"a\nb", "c", "d", "e", "f", "g", "h", "i", "j", "k"}} {
		if _, err := export.WriteTriton(root, plain, export.TritonOptions{Name: "bad", Classes: bad}); err == nil {
			t.Errorf("classes %q accepted", bad)
		}
	}
}

// TestWriteTritonReplaceAndRefuse: an existing model directory is kept
// unless Force, and replaced whole with it; bad names, versions and files
// are refused before anything is written.
func TestWriteTritonReplaceAndRefuse(t *testing.T) {
	root := t.TempDir()
	r8, _ := tritonModel(t, "resnet8", export.Options{})
	r14, _ := tritonModel(t, "resnet14", export.Options{})
	if _, err := export.WriteTriton(root, r8, export.TritonOptions{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(root, "m", "stale.txt")
	if err := os.WriteFile(stale, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := export.WriteTriton(root, r14, export.TritonOptions{Name: "m"})
	if !errors.Is(err, export.ErrTritonExists) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second write without Force: %v, want ErrTritonExists", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "m", "1", "model.onnx")); !slices.Equal(b, r8) {
		t.Error("a refused write changed the model")
	}
	info, err := export.WriteTriton(root, r14, export.TritonOptions{Name: "m", Force: true, Version: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Replaced || info.Model != filepath.Join(root, "m", "3", "model.onnx") {
		t.Errorf("info %+v", info)
	}
	if b, _ := os.ReadFile(info.Model); !slices.Equal(b, r14) {
		t.Error("Force did not write the new model")
	}
	for _, gone := range []string{stale, filepath.Join(root, "m", "1")} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the replacement (%v)", gone, err)
		}
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 {
		t.Errorf("the repository holds %v after a replacement, want only m", entries)
	}

	for _, tc := range []struct {
		name  string
		model []byte
		opts  export.TritonOptions
		want  string
	}{
		{"empty name", r8, export.TritonOptions{}, "needs a name"},
		{"path in name", r8, export.TritonOptions{Name: "a/b"}, "model name"},
		{"dot name", r8, export.TritonOptions{Name: ".."}, "model name"},
		{"negative batch", r8, export.TritonOptions{Name: "x", MaxBatch: -1}, "max batch size"},
		{"bad version", r8, export.TritonOptions{Name: "x", Version: -2}, "version"},
		{"not onnx", []byte("not a model"), export.TritonOptions{Name: "x"}, "not an ONNX protobuf"},
	} {
		if _, err := export.WriteTriton(root, tc.model, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("refused writes left %v", entries)
	}
}
