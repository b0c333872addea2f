// Package hostileonnx builds a corpus of hostile ONNX files for tests:
// tensors whose shapes claim far more data than the file holds, dimensions
// that are negative or whose product overflows int64, raw data of the
// wrong length, external data that points outside the model's folder,
// malformed graphs (a cycle, a dangling input, duplicate outputs), unknown
// domains and opsets, protobuf length fields claiming gigabytes, and
// nesting deep enough to exhaust a recursive decoder.
//
// Every loader of ONNX files (infer, import) runs the same corpus with its
// own expected errors, and checks that it refuses each file with a clear
// error, without panicking and within a memory bound. It is used only by
// tests.
package hostileonnx

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Case is one hostile file.
type Case struct {
	Name string
	// Model is the model file's contents.
	Model []byte
	// Setup, if set, adds files to the model's folder dir (external
	// data); outside is another folder, not below dir, that a hostile
	// file may try to reach.
	Setup func(dir, outside string) error
}

// Install writes the case below root as a loader meets it: the model as
// model.onnx in a new folder root/model, beside a new folder
// root/outside, with Setup run on the two. It returns the model's path.
func (c Case) Install(root string) (string, error) {
	dir, outside := filepath.Join(root, "model"), filepath.Join(root, "outside")
	for _, d := range []string{dir, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(path, c.Model, 0o644); err != nil {
		return "", err
	}
	if c.Setup != nil {
		if err := c.Setup(dir, outside); err != nil {
			return "", err
		}
	}
	return path, nil
}

// Secret is the name of the file Setup functions write in the outside
// folder: what a hostile external-data location tries to read.
const Secret = "secret.bin"

// base is a valid model, y = Relu(x + w) with x of shape [1, 2, 1, 1] (an
// image batch, as importers want) and w an initializer of two floats,
// that the cases spoil.
func base() *onnxpb.ModelProto {
	f := int32(onnxpb.TensorProto_FLOAT)
	tensorType := func(dims ...int64) *onnxpb.TypeProto {
		shape := &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: f, Shape: shape}}}
	}
	raw := make([]byte, 8)
	binary.LittleEndian.PutUint32(raw, 0x3f800000)     // 1
	binary.LittleEndian.PutUint32(raw[4:], 0x40000000) // 2
	return &onnxpb.ModelProto{
		IrVersion:    8,
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Version: 13}},
		ProducerName: "hostileonnx",
		Graph: &onnxpb.GraphProto{
			Name:        "hostile",
			Input:       []*onnxpb.ValueInfoProto{{Name: "x", Type: tensorType(1, 2, 1, 1)}},
			Output:      []*onnxpb.ValueInfoProto{{Name: "y", Type: tensorType(1, 2, 1, 1)}},
			Initializer: []*onnxpb.TensorProto{{Name: "w", DataType: f, Dims: []int64{1, 2, 1, 1}, RawData: raw}},
			Node: []*onnxpb.NodeProto{
				{Name: "add", OpType: "Add", Input: []string{"x", "w"}, Output: []string{"s"}},
				{Name: "relu", OpType: "Relu", Input: []string{"s"}, Output: []string{"y"}},
			},
		},
	}
}

// Valid is the unspoiled base model, which every loader must accept.
func Valid() []byte { return marshal(base()) }

func marshal(m *onnxpb.ModelProto) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("hostileonnx: %v", err)) // the corpus is built from valid messages
	}
	return b
}

// spoil returns the base model changed by f.
func spoil(f func(m *onnxpb.ModelProto)) []byte {
	m := base()
	f(m)
	return marshal(m)
}

// weight returns the base model with its initializer changed by f.
func weight(f func(w *onnxpb.TensorProto)) []byte {
	return spoil(func(m *onnxpb.ModelProto) { f(m.Graph.Initializer[0]) })
}

// external makes the initializer external data at location (the other
// keys as given, "key", "value" pairs).
func external(location string, kv ...string) []byte {
	return weight(func(w *onnxpb.TensorProto) {
		w.RawData, w.DataLocation = nil, onnxpb.TensorProto_EXTERNAL
		w.ExternalData = []*onnxpb.StringStringEntryProto{{Key: "location", Value: location}}
		for i := 0; i+1 < len(kv); i += 2 {
			w.ExternalData = append(w.ExternalData, &onnxpb.StringStringEntryProto{Key: kv[i], Value: kv[i+1]})
		}
	})
}

// writeSecret writes 64 bytes to outside/Secret.
func writeSecret(dir, outside string) error {
	return os.WriteFile(filepath.Join(outside, Secret), make([]byte, 64), 0o644)
}

// graphTag is a ModelProto holding an IR version and an opset import,
// then the tag of its graph field, without the field's length.
func graphTag() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType) // ir_version
	b = protowire.AppendVarint(b, 8)
	opset := protowire.AppendTag(nil, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, 13)
	b = protowire.AppendTag(b, 8, protowire.BytesType) // opset_import
	b = protowire.AppendBytes(b, opset)
	return protowire.AppendTag(b, 7, protowire.BytesType) // graph
}

// claim is graphTag with a length prefix claiming n bytes, followed by
// tail.
func claim(n uint64, tail []byte) []byte {
	return append(protowire.AppendVarint(graphTag(), n), tail...)
}

// nested is a model whose graph holds a node whose attribute holds a
// graph … depth times over.
func nested(depth int) []byte {
	g := &onnxpb.GraphProto{Name: "leaf"}
	for range depth {
		g = &onnxpb.GraphProto{Node: []*onnxpb.NodeProto{{OpType: "If", Attribute: []*onnxpb.AttributeProto{
			{Name: "then_branch", Type: onnxpb.AttributeProto_GRAPH, G: g}}}}}
	}
	m := base()
	m.Graph.Node = append(m.Graph.Node, g.Node...)
	return marshal(m)
}

// graph replaces the base model's nodes (the input x of shape
// [1, 2, 1, 1] and the initializer w stay; the output is y, its shape
// declared as outDims, or undeclared if there are none) and adds the
// given initializers.
func graph(outDims []int64, inits []*onnxpb.TensorProto, nodes ...*onnxpb.NodeProto) []byte {
	return spoil(func(m *onnxpb.ModelProto) {
		m.Graph.Node = nodes
		m.Graph.Initializer = append(m.Graph.Initializer, inits...)
		shape := &onnxpb.TensorShapeProto{}
		for _, d := range outDims {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		m.Graph.Output[0].GetType().GetTensorType().Shape = shape
	})
}

// ints64 is an INT64 initializer holding vs (as raw_data, 8 bytes each).
func ints64(name string, vs ...int64) *onnxpb.TensorProto {
	raw := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return &onnxpb.TensorProto{Name: name, DataType: int32(onnxpb.TensorProto_INT64), Dims: []int64{int64(len(vs))}, RawData: raw}
}

// floats is a FLOAT initializer of the given dims, all zeros.
func floats(name string, dims ...int64) *onnxpb.TensorProto {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return &onnxpb.TensorProto{Name: name, DataType: int32(onnxpb.TensorProto_FLOAT), Dims: dims, RawData: make([]byte, 4*n)}
}

// op is a node with INTS attributes given as name, values pairs.
func op(name, opType string, in []string, out string, attrs ...any) *onnxpb.NodeProto {
	n := &onnxpb.NodeProto{Name: name, OpType: opType, Input: in, Output: []string{out}}
	for i := 0; i+1 < len(attrs); i += 2 {
		n.Attribute = append(n.Attribute, &onnxpb.AttributeProto{Name: attrs[i].(string), Type: onnxpb.AttributeProto_INTS, Ints: attrs[i+1].([]int64)})
	}
	return n
}

// Cases returns the corpus. Each call builds it afresh.
func Cases() []Case {
	f := int32(onnxpb.TensorProto_FLOAT)
	tenBytes := []byte("0123456789")
	// The initializer's data is in the model's folder as w.bin (8 bytes).
	weights := func(dir, outside string) error {
		return os.WriteFile(filepath.Join(dir, "w.bin"), []byte("\x00\x00\x80\x3f\x00\x00\x00\x40"), 0o644)
	}
	// A graph field claiming 3 GiB that holds an initializer whose
	// raw_data claims 3 GiB too, then 16 bytes.
	var init []byte
	init = protowire.AppendTag(init, 5, protowire.BytesType) // graph.initializer
	init = protowire.AppendVarint(init, 3<<30)
	init = protowire.AppendTag(init, 9, protowire.BytesType) // tensor.raw_data
	init = protowire.AppendVarint(init, 3<<30-16)
	init = append(init, make([]byte, 16)...)
	return []Case{
		{Name: "tensor-1e12-elements-10-bytes", Model: weight(func(w *onnxpb.TensorProto) {
			w.Dims, w.RawData = []int64{1000000, 1000000}, tenBytes
		})},
		{Name: "tensor-1e9-elements-10-bytes", Model: weight(func(w *onnxpb.TensorProto) {
			w.Dims, w.RawData = []int64{1000000000}, tenBytes
		})},
		{Name: "tensor-1e12-elements-float-data", Model: weight(func(w *onnxpb.TensorProto) {
			w.Dims, w.RawData, w.FloatData = []int64{1000000, 1000000}, nil, make([]float32, 10)
		})},
		{Name: "negative-dim", Model: weight(func(w *onnxpb.TensorProto) { w.Dims = []int64{-1, -2} })},
		{Name: "dim-max-int64", Model: weight(func(w *onnxpb.TensorProto) { w.Dims = []int64{1<<63 - 1} })},
		// Each dimension fits in an int32; their product overflows int64.
		{Name: "dims-product-overflows-int64", Model: weight(func(w *onnxpb.TensorProto) {
			w.Dims = []int64{1<<31 - 1, 1<<31 - 1, 1<<31 - 1}
		})},
		// 2^32 × 2^32 wraps to 0 in int64.
		{Name: "dims-product-wraps-to-zero", Model: weight(func(w *onnxpb.TensorProto) {
			w.Dims, w.RawData = []int64{1 << 32, 1 << 32}, nil
		})},
		{Name: "raw-data-short", Model: weight(func(w *onnxpb.TensorProto) { w.Dims = []int64{2, 3} })},
		{Name: "raw-data-long", Model: weight(func(w *onnxpb.TensorProto) { w.Dims = []int64{1} })},
		{Name: "raw-data-odd-length", Model: weight(func(w *onnxpb.TensorProto) {
			w.DataType, w.Dims, w.RawData = int32(onnxpb.TensorProto_INT64), []int64{2}, make([]byte, 12)
		})},
		{Name: "input-negative-dim", Model: spoil(func(m *onnxpb.ModelProto) {
			m.Graph.Input[0].GetType().GetTensorType().GetShape().Dim[1].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: -2}
		})},
		{Name: "external-dotdot", Model: external("../" + Secret), Setup: writeSecret},
		{Name: "external-dotdot-inside", Model: external("sub/../../" + Secret), Setup: writeSecret},
		{Name: "external-absolute", Model: external("/etc/passwd")},
		{Name: "external-symlink-outside", Model: external("link.bin"), Setup: func(dir, outside string) error {
			if err := writeSecret(dir, outside); err != nil {
				return err
			}
			return os.Symlink(filepath.Join(outside, Secret), filepath.Join(dir, "link.bin"))
		}},
		{Name: "external-1e9-elements-8-bytes", Model: weight(func(w *onnxpb.TensorProto) {
			w.Dims, w.RawData, w.DataLocation = []int64{1000000000}, nil, onnxpb.TensorProto_EXTERNAL
			w.ExternalData = []*onnxpb.StringStringEntryProto{{Key: "location", Value: "w.bin"}}
		}), Setup: weights},
		{Name: "external-length-huge", Model: external("w.bin", "length", "4000000000"), Setup: weights},
		{Name: "external-offset-max", Model: external("w.bin", "offset", "9223372036854775807"), Setup: weights},
		{Name: "cycle", Model: spoil(func(m *onnxpb.ModelProto) { m.Graph.Node[0].Input[0] = "y" })},
		{Name: "dangling-input", Model: spoil(func(m *onnxpb.ModelProto) { m.Graph.Node[1].Input[0] = "nowhere" })},
		{Name: "duplicate-node-output", Model: spoil(func(m *onnxpb.ModelProto) {
			m.Graph.Node = append(m.Graph.Node, &onnxpb.NodeProto{Name: "again", OpType: "Relu", Input: []string{"x"}, Output: []string{"y"}})
		})},
		{Name: "duplicate-graph-output", Model: spoil(func(m *onnxpb.ModelProto) {
			m.Graph.Output = append(m.Graph.Output, m.Graph.Output[0])
		})},
		{Name: "output-shadows-initializer", Model: spoil(func(m *onnxpb.ModelProto) { m.Graph.Node[0].Output[0] = "w"; m.Graph.Node[1].Input[0] = "w" })},
		{Name: "unknown-domain", Model: spoil(func(m *onnxpb.ModelProto) {
			m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: "com.evil", Version: 1})
			m.Graph.Node[1].Domain = "com.evil"
		})},
		{Name: "only-unknown-domain", Model: spoil(func(m *onnxpb.ModelProto) {
			m.OpsetImport = []*onnxpb.OperatorSetIdProto{{Domain: "com.evil", Version: 1}}
		})},
		{Name: "opset-99", Model: spoil(func(m *onnxpb.ModelProto) { m.OpsetImport[0].Version = 99 })},
		{Name: "ir-version-99", Model: spoil(func(m *onnxpb.ModelProto) { m.IrVersion = 99 })},
		{Name: "unknown-element-type", Model: weight(func(w *onnxpb.TensorProto) { w.DataType = 99 })},
		{Name: "string-tensor-1e12", Model: weight(func(w *onnxpb.TensorProto) {
			w.DataType, w.Dims, w.RawData, w.StringData = int32(onnxpb.TensorProto_STRING), []int64{1000000, 1000000}, nil, [][]byte{tenBytes}
		})},
		{Name: "constant-1e12-elements", Model: spoil(func(m *onnxpb.ModelProto) {
			m.Graph.Initializer = nil
			m.Graph.Node = append([]*onnxpb.NodeProto{{Name: "const", OpType: "Constant", Output: []string{"w"}, Attribute: []*onnxpb.AttributeProto{
				{Name: "value", Type: onnxpb.AttributeProto_TENSOR, T: &onnxpb.TensorProto{DataType: f, Dims: []int64{1000000, 1000000}, RawData: tenBytes}}}}},
				m.Graph.Node...)
		})},
		{Name: "protobuf-graph-claims-2GiB", Model: claim(1<<31+1, make([]byte, 16))},
		{Name: "protobuf-raw-data-claims-3GiB", Model: claim(3<<30, init)},
		// An 11-byte varint: over 64 bits.
		{Name: "protobuf-length-overflows-varint", Model: append(graphTag(), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00)},
		{Name: "protobuf-nested-20000-deep", Model: nested(20000)},

		// Window arithmetic that overflows int64: (3-1)*2^62 wraps around.
		// The pooling one crashed the process from a worker goroutine; the
		// convolution one gave a wrong answer silently.
		{Name: "maxpool-dilation-overflows", Model: graph(nil, nil,
			op("pool", "MaxPool", []string{"x"}, "y", "kernel_shape", []int64{3, 1}, "dilations", []int64{1 << 62, 1}, "pads", []int64{2, 0, 2, 0}))},
		{Name: "conv-dilation-overflows", Model: graph(nil, []*onnxpb.TensorProto{floats("cw", 2, 2, 3, 3)},
			op("conv", "Conv", []string{"x", "cw"}, "y", "dilations", []int64{1 << 62, 1 << 62}, "pads", []int64{1 << 62, 1 << 62, 1 << 62, 1 << 62}))},
		// ONNX Runtime refuses pads >= kernel ("Pad should be smaller than
		// kernel"): a window wholly in the padding has nothing to pool.
		{Name: "maxpool-pads-not-smaller-than-kernel", Model: graph(nil, nil,
			op("pool", "MaxPool", []string{"x"}, "y", "kernel_shape", []int64{1, 1}, "pads", []int64{1, 1, 1, 1}))},
		// Three tensors of 2^31-2 float32s (8 GiB) each, alive together: each
		// under the per-tensor limit, 32 GiB with the output.
		{Name: "pad-3x8GiB", Model: graph([]int64{1, 2, 1, 1<<30 - 1}, []*onnxpb.TensorProto{ints64("pads", 0, 0, 0, 0, 0, 0, 0, 1<<30-2)},
			op("pad1", "Pad", []string{"x", "pads"}, "p1"), op("pad2", "Pad", []string{"x", "pads"}, "p2"), op("pad3", "Pad", []string{"x", "pads"}, "p3"),
			&onnxpb.NodeProto{Name: "sum", OpType: "Sum", Input: []string{"p1", "p2", "p3"}, Output: []string{"y"}})},
		{Name: "constantofshape-3x8GiB", Model: graph([]int64{1, 2, 1, 1<<30 - 1}, []*onnxpb.TensorProto{ints64("shape", 1, 2, 1, 1<<30-1)},
			op("c1", "ConstantOfShape", []string{"shape"}, "c1"), op("c2", "ConstantOfShape", []string{"shape"}, "c2"), op("c3", "ConstantOfShape", []string{"shape"}, "c3"),
			&onnxpb.NodeProto{Name: "sum", OpType: "Sum", Input: []string{"x", "c1", "c2", "c3"}, Output: []string{"y"}})},
		// An image input of 100000x100000 pixels: 80 GB for one image.
		{Name: "input-100000x100000", Model: spoil(func(m *onnxpb.ModelProto) {
			for _, io := range []*onnxpb.ValueInfoProto{m.Graph.Input[0], m.Graph.Output[0]} {
				d := io.GetType().GetTensorType().GetShape().Dim
				d[2].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 100000}
				d[3].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 100000}
			}
		})},
		// 200,000 axes (1.6 MB), one repeated at the very end: validating
		// them took 11 to 15 s (a quadratic search).
		{Name: "unsqueeze-200000-axes", Model: graph(nil, []*onnxpb.TensorProto{ints64("axes", manyAxes(200000)...)},
			op("unsqueeze", "Unsqueeze", []string{"x", "axes"}, "y"))},
	}
}

// manyAxes is 0 … n-2, then 7 again.
func manyAxes(n int) []int64 {
	axes := make([]int64, n)
	for i := range axes {
		axes[i] = int64(i)
	}
	axes[n-1] = 7
	return axes
}
