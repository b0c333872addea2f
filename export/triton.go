package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/resnetctl/resnetctl/internal/atomicfile"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// A Triton model repository (Triton Inference Server's model_repository.md
// and model_configuration.md) holds one directory per model:
//
//	ROOT/NAME/config.pbtxt    the ModelConfig in protobuf text format
//	ROOT/NAME/labels.txt      class names, one a line, for the
//	                          classification extension (label_filename)
//	ROOT/NAME/1/model.onnx    version 1, the ONNX Runtime backend's file
//
// WriteTriton writes NAME under a temporary name in ROOT and renames it
// into place, so a model directory appears complete or not at all.
const (
	TritonPlatform        = "onnxruntime_onnx"
	TritonConfigFile      = "config.pbtxt"
	TritonLabelsFile      = "labels.txt"
	TritonModelFile       = "model.onnx"
	DefaultTritonMaxBatch = 32
)

// TritonOptions control WriteTriton.
type TritonOptions struct {
	// Name is the model's name and directory.
	Name string
	// MaxBatch is the max_batch_size written for a model whose inputs and
	// outputs all have a dynamic first (batch) dimension; 0 means
	// DefaultTritonMaxBatch. A model with a fixed batch dimension gets
	// max_batch_size 0 and its full dims whatever MaxBatch says.
	MaxBatch int
	// Version is the version directory; 0 means 1.
	Version int
	// Force replaces an existing ROOT/NAME.
	Force bool
	// Comment, if set, is written as a "#" comment line at the top of
	// config.pbtxt (one line).
	Comment string
	// Classes, if set, are the class names for labels.txt instead of the
	// model's MetaClasses metadata (for files without it); some output
	// must then score exactly that many classes.
	Classes []string
}

// TritonTensor is one input or output of a TritonConfig (ModelInput and
// ModelOutput of Triton's ModelConfig).
type TritonTensor struct {
	Name     string `json:"name"`
	DataType string `json:"data_type"` // TYPE_FP32 …
	// Format is FORMAT_NCHW for an image input whose layout the model's
	// metadata states, else empty (Triton accepts it only with three dims).
	Format string  `json:"format,omitempty"`
	Dims   []int64 `json:"dims"` // without the batch dimension when MaxBatchSize > 0; -1 for a variable size
	// LabelFilename names the labels file, relative to the model's
	// directory, on outputs that score the classes.
	LabelFilename string `json:"label_filename,omitempty"`
}

// TritonConfig is the part of Triton's ModelConfig that WriteTriton writes.
type TritonConfig struct {
	Name            string         `json:"name"`
	Platform        string         `json:"platform"`
	MaxBatchSize    int            `json:"max_batch_size"`
	Input           []TritonTensor `json:"input"`
	Output          []TritonTensor `json:"output"`
	DynamicBatching bool           `json:"dynamic_batching"`
}

// TritonInfo describes a written model directory.
type TritonInfo struct {
	Dir     string       `json:"dir"`    // ROOT/NAME
	Config  string       `json:"config"` // ROOT/NAME/config.pbtxt
	Model   string       `json:"model"`  // ROOT/NAME/VERSION/model.onnx
	Labels  string       `json:"labels,omitempty"`
	Classes int          `json:"classes,omitempty"`
	Bytes   int64        `json:"bytes"` // of model.onnx
	Spec    TritonConfig `json:"triton_config"`
	// Replaced is set when an existing ROOT/NAME was replaced (Force).
	Replaced bool `json:"replaced,omitempty"`
}

// ErrTritonExists is wrapped when ROOT/NAME exists and Force is not set.
var ErrTritonExists = errors.New("model directory exists")

// tritonTypes maps ONNX element types to Triton's model-configuration
// data types (model_configuration.md, "Datatypes").
var tritonTypes = map[onnxpb.TensorProto_DataType]string{
	onnxpb.TensorProto_BOOL:     "TYPE_BOOL",
	onnxpb.TensorProto_UINT8:    "TYPE_UINT8",
	onnxpb.TensorProto_UINT16:   "TYPE_UINT16",
	onnxpb.TensorProto_UINT32:   "TYPE_UINT32",
	onnxpb.TensorProto_UINT64:   "TYPE_UINT64",
	onnxpb.TensorProto_INT8:     "TYPE_INT8",
	onnxpb.TensorProto_INT16:    "TYPE_INT16",
	onnxpb.TensorProto_INT32:    "TYPE_INT32",
	onnxpb.TensorProto_INT64:    "TYPE_INT64",
	onnxpb.TensorProto_FLOAT16:  "TYPE_FP16",
	onnxpb.TensorProto_FLOAT:    "TYPE_FP32",
	onnxpb.TensorProto_DOUBLE:   "TYPE_FP64",
	onnxpb.TensorProto_STRING:   "TYPE_STRING",
	onnxpb.TensorProto_BFLOAT16: "TYPE_BF16",
}

// tritonIO is one graph input or output as the file declares it.
type tritonIO struct {
	name  string
	dtype string
	dims  []int64 // -1: dynamic
}

// TritonConfigOf derives the Triton configuration of an ONNX model and
// its class names (from the MetaClasses metadata; nil without). Inputs
// are the graph inputs that are not initializers. If every input and
// output has rank two or more and a dynamic first dimension, the model
// batches: max_batch_size is opts.MaxBatch (default
// DefaultTritonMaxBatch), dims leave the batch dimension out, and dynamic
// batching is on. Otherwise max_batch_size is 0 and dims are the full
// shapes. Outputs whose elements are one score per class get
// label_filename when there are class names (opts.Classes, else the
// metadata's); the class names are returned only when an output has it.
// model is the ONNX file's bytes.
func TritonConfigOf(model []byte, opts TritonOptions) (*TritonConfig, []string, error) {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(model, m); err != nil {
		return nil, nil, fmt.Errorf("export: triton: the model is not an ONNX protobuf: %w", err)
	}
	return tritonConfigOf(m, opts)
}

// tritonConfigOf is TritonConfigOf of a decoded model.
func tritonConfigOf(m *onnxpb.ModelProto, opts TritonOptions) (*TritonConfig, []string, error) {
	if err := checkTritonName(opts.Name); err != nil {
		return nil, nil, err
	}
	if opts.MaxBatch < 0 {
		return nil, nil, fmt.Errorf("export: triton: max batch size %d", opts.MaxBatch)
	}
	g := m.GetGraph()
	if g == nil {
		return nil, nil, fmt.Errorf("export: triton: the model has no graph")
	}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	var ins, outs []tritonIO
	for _, v := range g.GetInput() {
		if inits[v.GetName()] {
			continue
		}
		io, err := tritonValue(v, "input")
		if err != nil {
			return nil, nil, err
		}
		ins = append(ins, io)
	}
	for _, v := range g.GetOutput() {
		io, err := tritonValue(v, "output")
		if err != nil {
			return nil, nil, err
		}
		outs = append(outs, io)
	}
	if len(ins) == 0 || len(outs) == 0 {
		return nil, nil, fmt.Errorf("export: triton: the model has %d inputs and %d outputs; Triton needs at least one of each", len(ins), len(outs))
	}
	props := map[string]string{}
	for _, p := range m.GetMetadataProps() {
		props[p.GetKey()] = p.GetValue()
	}
	classes := opts.Classes
	if s, ok := props[MetaClasses]; ok && classes == nil {
		if err := json.Unmarshal([]byte(s), &classes); err != nil {
			return nil, nil, fmt.Errorf("export: triton: metadata %s: %w", MetaClasses, err)
		}
	}
	if classes != nil {
		for i, c := range classes {
			if c == "" || strings.ContainsAny(c, "\r\n") {
				return nil, nil, fmt.Errorf("export: triton: class %d (%q) cannot be a line of %s", i, c, TritonLabelsFile)
			}
		}
	}
	nchw := false
	if s, ok := props[MetaPreprocess]; ok {
		var p Preprocessing
		nchw = json.Unmarshal([]byte(s), &p) == nil && p.Layout == "NCHW"
	}

	batching := true
	for _, io := range append(append([]tritonIO(nil), ins...), outs...) {
		if len(io.dims) < 2 || io.dims[0] != -1 {
			batching = false
		}
	}
	c := &TritonConfig{Name: opts.Name, Platform: TritonPlatform}
	if batching {
		c.MaxBatchSize, c.DynamicBatching = opts.MaxBatch, true
		if c.MaxBatchSize == 0 {
			c.MaxBatchSize = DefaultTritonMaxBatch
		}
	}
	dims := func(io tritonIO) []int64 {
		if batching {
			return append([]int64(nil), io.dims[1:]...)
		}
		return append([]int64(nil), io.dims...)
	}
	for _, io := range ins {
		t := TritonTensor{Name: io.name, DataType: io.dtype, Dims: dims(io)}
		if nchw && len(ins) == 1 && len(t.Dims) == 3 {
			t.Format = "FORMAT_NCHW"
		}
		c.Input = append(c.Input, t)
	}
	for _, io := range outs {
		t := TritonTensor{Name: io.name, DataType: io.dtype, Dims: dims(io)}
		if len(classes) > 0 && scoresClasses(t.Dims, len(classes)) {
			t.LabelFilename = TritonLabelsFile
		}
		c.Output = append(c.Output, t)
	}
	if !slices.ContainsFunc(c.Output, func(t TritonTensor) bool { return t.LabelFilename != "" }) {
		if opts.Classes != nil {
			hint := ""
			if !batching {
				hint = " (with a fixed batch dimension only a batch of 1 has one: Triton ranks the whole output tensor)"
			}
			return nil, nil, fmt.Errorf("export: triton: %d class names, but no output has one score per class%s", len(opts.Classes), hint)
		}
		classes = nil // nothing would read labels.txt
	}
	return c, classes, nil
}

// scoresClasses reports whether an output of these dims (batch dimension
// left out) holds one value per class: its last dimension is the class
// count and every other is 1.
func scoresClasses(dims []int64, classes int) bool {
	if len(dims) == 0 || dims[len(dims)-1] != int64(classes) {
		return false
	}
	for _, d := range dims[:len(dims)-1] {
		if d != 1 {
			return false
		}
	}
	return true
}

// tritonValue reads a graph input or output's name, element type and
// shape.
func tritonValue(v *onnxpb.ValueInfoProto, what string) (tritonIO, error) {
	tt := v.GetType().GetTensorType()
	if tt == nil {
		return tritonIO{}, fmt.Errorf("export: triton: %s %q is not a tensor", what, v.GetName())
	}
	dtype, ok := tritonTypes[onnxpb.TensorProto_DataType(tt.GetElemType())]
	if !ok {
		return tritonIO{}, fmt.Errorf("export: triton: %s %q has element type %v, which Triton's ONNX Runtime backend does not take",
			what, v.GetName(), onnxpb.TensorProto_DataType(tt.GetElemType()))
	}
	if tt.GetShape() == nil {
		return tritonIO{}, fmt.Errorf("export: triton: %s %q declares no shape; Triton's configuration needs its dims", what, v.GetName())
	}
	io := tritonIO{name: v.GetName(), dtype: dtype}
	for _, d := range tt.GetShape().GetDim() {
		switch x := d.GetValue().(type) {
		case *onnxpb.TensorShapeProto_Dimension_DimValue:
			if x.DimValue < 1 {
				return tritonIO{}, fmt.Errorf("export: triton: %s %q has a dimension of %d", what, v.GetName(), x.DimValue)
			}
			io.dims = append(io.dims, x.DimValue)
		default: // a symbolic or unknown dimension
			io.dims = append(io.dims, -1)
		}
	}
	if len(io.dims) == 0 {
		return tritonIO{}, fmt.Errorf("export: triton: %s %q is a scalar; Triton's dims cannot be empty", what, v.GetName())
	}
	if v.GetName() == "" {
		return tritonIO{}, fmt.Errorf("export: triton: an %s has no name", what)
	}
	return io, nil
}

// checkTritonName accepts a model name that is one plain directory name.
func checkTritonName(name string) error {
	if name == "" {
		return fmt.Errorf("export: triton: the model needs a name")
	}
	if len(name) > 200 || name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("export: triton: model name %q: want letters, digits, '_', '-' and '.', not starting with '.' or '-'", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("export: triton: model name %q: want letters, digits, '_', '-' and '.', not starting with '.' or '-'", name)
		}
	}
	return nil
}

// Text is the configuration in protobuf text format, laid out as Triton's
// documentation writes it; comment (one line, may be empty) goes first.
func (c *TritonConfig) Text(comment string) string {
	var b strings.Builder
	if comment != "" {
		fmt.Fprintf(&b, "# %s\n", strings.Join(strings.Fields(comment), " "))
	}
	fmt.Fprintf(&b, "name: %s\n", pbString(c.Name))
	fmt.Fprintf(&b, "platform: %s\n", pbString(c.Platform))
	fmt.Fprintf(&b, "max_batch_size: %d\n", c.MaxBatchSize)
	list := func(field string, ts []TritonTensor) {
		fmt.Fprintf(&b, "%s [\n", field)
		for i, t := range ts {
			b.WriteString("  {\n")
			fmt.Fprintf(&b, "    name: %s\n", pbString(t.Name))
			fmt.Fprintf(&b, "    data_type: %s\n", t.DataType)
			if t.Format != "" {
				fmt.Fprintf(&b, "    format: %s\n", t.Format)
			}
			dims := make([]string, len(t.Dims))
			for j, d := range t.Dims {
				dims[j] = strconv.FormatInt(d, 10)
			}
			fmt.Fprintf(&b, "    dims: [ %s ]\n", strings.Join(dims, ", "))
			if t.LabelFilename != "" {
				fmt.Fprintf(&b, "    label_filename: %s\n", pbString(t.LabelFilename))
			}
			if i < len(ts)-1 {
				b.WriteString("  },\n")
			} else {
				b.WriteString("  }\n")
			}
		}
		b.WriteString("]\n")
	}
	list("input", c.Input)
	list("output", c.Output)
	if c.DynamicBatching {
		b.WriteString("dynamic_batching { }\n")
	}
	return b.String()
}

// pbString quotes s as a protobuf text-format string: backslash escapes
// for quotes, backslashes and control bytes; UTF-8 passes through.
func pbString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// WriteTriton writes the ONNX model (its bytes as they are) as the model
// opts.Name of the Triton model repository at root, which is created if
// missing: config.pbtxt, labels.txt when the model names its classes, and
// VERSION/model.onnx. The model directory is assembled under a temporary
// name in root and renamed into place; an existing one is only replaced
// with opts.Force (moved aside, the new one renamed in, the old removed).
func WriteTriton(root string, model []byte, opts TritonOptions) (*TritonInfo, error) {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(model, m); err != nil {
		return nil, fmt.Errorf("export: triton: the model is not an ONNX protobuf: %w", err)
	}
	cfg, classes, err := tritonConfigOf(m, opts)
	if err != nil {
		return nil, err
	}
	version := opts.Version
	if version == 0 {
		version = 1
	}
	if version < 1 {
		return nil, fmt.Errorf("export: triton: version %d: versions are positive integers", version)
	}
	dest := filepath.Join(root, opts.Name)
	fail := func(err error) (*TritonInfo, error) {
		return nil, fmt.Errorf("export: triton %s: %w", dest, err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fail(err)
	}
	exists := false
	switch st, err := os.Lstat(dest); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fail(err)
	case !st.IsDir():
		return fail(errors.New("exists and is not a directory"))
	case !opts.Force:
		return fail(fmt.Errorf("%w (use --force to replace it)", ErrTritonExists))
	default:
		exists = true
	}

	tmp, err := os.MkdirTemp(root, "."+opts.Name+".tmp-")
	if err != nil {
		return fail(err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	vdir := filepath.Join(tmp, strconv.Itoa(version))
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(err)
	}
	if err := os.Mkdir(vdir, 0o755); err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(vdir, TritonModelFile), model, 0o644); err != nil {
		return fail(err)
	}
	if len(classes) > 0 {
		if err := atomicfile.WriteFile(filepath.Join(tmp, TritonLabelsFile), []byte(strings.Join(classes, "\n")+"\n"), 0o644); err != nil {
			return fail(err)
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, TritonConfigFile), []byte(cfg.Text(opts.Comment)), 0o644); err != nil {
		return fail(err)
	}
	for _, d := range []string{vdir, tmp} {
		if err := syncTritonDir(d); err != nil {
			return fail(err)
		}
	}
	old := ""
	if exists {
		// os.Rename does not replace a directory: reserve a name, free it,
		// move the old model there.
		o, err := os.MkdirTemp(root, "."+opts.Name+".old-")
		if err == nil {
			err = os.Remove(o)
		}
		if err == nil {
			err = os.Rename(dest, o)
		}
		if err != nil {
			return fail(err)
		}
		old = o
	}
	if err := os.Rename(tmp, dest); err != nil {
		if old != "" {
			os.Rename(old, dest)
		}
		return fail(err)
	}
	done = true
	if old != "" {
		os.RemoveAll(old)
	}
	syncTritonDir(root)
	info := &TritonInfo{
		Dir: dest, Config: filepath.Join(dest, TritonConfigFile),
		Model: filepath.Join(dest, strconv.Itoa(version), TritonModelFile),
		Bytes: int64(len(model)), Spec: *cfg, Replaced: exists, Classes: len(classes),
	}
	if len(classes) > 0 {
		info.Labels = filepath.Join(dest, TritonLabelsFile)
	}
	return info, nil
}

func syncTritonDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
