package onnximport_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/export"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/models"
)

// tinySpec is a ResNet small enough to fuzz with: two one-block stages of
// 2 and 4 channels on a 3x4x4 input, option-A shortcut.
func tinySpec() models.Spec {
	return models.Spec{
		Name: "tiny", Family: models.CIFAR, Block: models.Basic, Depths: []int{1, 1}, Widths: []int{2, 4},
		StemWidth: 2, Shortcut: models.ShortcutA, Groups: 1, WidthPerGroup: 64, Widen: 1, Classes: 3,
		Input:      models.Shape{C: 3, H: 4, W: 4},
		Preprocess: models.Preprocess{Scale: 1, Mean: []float32{0, 0, 0}, Std: []float32{1, 1, 1}},
	}
}

func tinyExport(t testing.TB, opts export.Options) []byte {
	b, err := export.Marshal(newGraph(t, tinySpec(), 1), opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// importOK checks that whatever FromBytes returned is consistent: an
// error wrapping a sentinel, or a valid graph that exports.
func importOK(t *testing.T, b []byte) error {
	t.Helper()
	g, r, err := onnximport.FromBytes(b)
	if err != nil {
		if !errors.Is(err, onnximport.ErrInvalidModel) && !errors.Is(err, onnximport.ErrUnsupported) {
			t.Errorf("error without a sentinel: %v", err)
		}
		if g != nil || r != nil {
			t.Errorf("a graph or report with an error")
		}
		return err
	}
	if err := g.Check(); err != nil {
		t.Errorf("imported graph fails Check: %v", err)
	}
	if _, err := export.Marshal(g, export.Options{Opset: max(r.Opset, export.MinOpset), Softmax: r.Softmax, FoldBN: r.BNFolded}); err != nil {
		t.Errorf("imported graph does not export: %v", err)
	}
	return nil
}

func TestCorruptFiles(t *testing.T) {
	good := tinyExport(t, export.Options{})
	if err := importOK(t, good); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(m *onnxpb.ModelProto)) []byte {
		m := decode(t, good)
		f(m)
		return encode(t, m)
	}
	for _, c := range []struct {
		name string
		b    []byte
		want string
		is   error
	}{
		{"empty", nil, "no IR version (is this an ONNX model?)", onnximport.ErrInvalidModel},
		{"text", []byte("this is not an ONNX model at all, just text\n"), "not an ONNX file", onnximport.ErrInvalidModel},
		{"truncated-10%", good[:len(good)/10], "truncated or not an ONNX file?", onnximport.ErrInvalidModel},
		{"truncated-50%", good[:len(good)/2], "truncated or not an ONNX file?", onnximport.ErrInvalidModel},
		{"truncated-last-byte", good[:len(good)-1], "truncated or not an ONNX file?", onnximport.ErrInvalidModel},
		{"no-graph", mutate(func(m *onnxpb.ModelProto) { m.Graph = nil }), "no graph", onnximport.ErrInvalidModel},
		{"opset-3", mutate(func(m *onnxpb.ModelProto) { m.OpsetImport[0].Version = 3 }), "opset 3", onnximport.ErrUnsupported},
		{"ir-99", mutate(func(m *onnxpb.ModelProto) { m.IrVersion = 99 }), "IR version 99", onnximport.ErrUnsupported},
		{"short-raw-data", mutate(func(m *onnxpb.ModelProto) {
			m.Graph.Initializer[0].RawData = m.Graph.Initializer[0].RawData[:7]
		}), `initializer "conv1.weight": invalid ONNX model: raw_data has 7 bytes`, onnximport.ErrInvalidModel},
		{"huge-dims", mutate(func(m *onnxpb.ModelProto) { m.Graph.Initializer[0].Dims = []int64{1 << 30, 1 << 30, 1 << 30} }), `initializer "conv1.weight": invalid ONNX model: dims`, onnximport.ErrInvalidModel},
		{"dangling-input", mutate(func(m *onnxpb.ModelProto) { m.Graph.Node[3].Input[0] = "nowhere" }), `reads "nowhere"`, onnximport.ErrInvalidModel},
		{"cycle", mutate(func(m *onnxpb.ModelProto) { m.Graph.Node[0].Input[0] = m.Graph.Node[2].Output[0] }), "cycle", onnximport.ErrInvalidModel},
		{"duplicate-output", mutate(func(m *onnxpb.ModelProto) { m.Graph.Node[2].Output[0] = m.Graph.Node[1].Output[0] }), "already defined", onnximport.ErrInvalidModel},
		{"two-inputs", mutate(func(m *onnxpb.ModelProto) { m.Graph.Input = append(m.Graph.Input, valueInfo("extra", -1, 3)) }), "2 inputs", onnximport.ErrUnsupported},
		{"dynamic-size", mutate(func(m *onnxpb.ModelProto) {
			m.Graph.Input[0] = valueInfo("input", -1, 3, -1, -1)
		}), "no fixed size", onnximport.ErrUnsupported},
		{"external-data", mutate(func(m *onnxpb.ModelProto) {
			tp := m.Graph.Initializer[0]
			tp.RawData, tp.DataLocation = nil, onnxpb.TensorProto_EXTERNAL
			tp.ExternalData = []*onnxpb.StringStringEntryProto{{Key: "location", Value: "weights.bin"}}
		}), "external file", onnximport.ErrUnsupported},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := importOK(t, c.b)
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, c.is) {
				t.Errorf("error %v, want %q (%v)", err, c.want, c.is)
			}
		})
	}
}

// TestBitFlips flips random bits and truncates at every length of a small
// export: never a panic, always a consistent answer.
func TestBitFlips(t *testing.T) {
	good := tinyExport(t, export.Options{Opset: 9})
	for n := range len(good) {
		importOK(t, good[:n])
	}
	r := rand.New(rand.NewPCG(1, 1))
	for range 3000 {
		b := append([]byte(nil), good...)
		for range 1 + r.IntN(4) {
			b[r.IntN(len(b))] ^= 1 << r.IntN(8)
		}
		importOK(t, b)
	}
}

// FuzzFromBytes: FromBytes never panics; what it returns is consistent.
func FuzzFromBytes(f *testing.F) {
	for _, opts := range []export.Options{{Opset: 9}, {Opset: 13, FoldBN: true, Softmax: true}, {Opset: 21}} {
		f.Add(tinyExport(f, opts))
	}
	f.Add(encode(f, plainCNN()))
	f.Add([]byte{})
	f.Add([]byte("\x08\x07\x3a\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		importOK(t, b)
	})
}
