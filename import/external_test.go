package onnximport_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/export"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// TestExternalData: Load reads initializers whose data is in a file next
// to the model (as onnx.save(..., save_as_external_data=True) writes),
// under the same confinement rules as infer.Load; a location that leaves
// the model's folder is refused, and so is external data from bytes.
func TestExternalData(t *testing.T) {
	good := tinyExport(t, export.Options{Opset: 13})
	want, _, err := onnximport.FromBytes(good)
	if err != nil {
		t.Fatal(err)
	}
	// external writes the model with every initializer's data moved into
	// weights.bin (after 16 bytes of padding) and returns its path.
	external := func(location string) string {
		dir := filepath.Join(t.TempDir(), "model")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		m := decode(t, good)
		data := make([]byte, 16)
		for _, tp := range m.GetGraph().GetInitializer() {
			if len(tp.RawData) == 0 {
				continue
			}
			tp.ExternalData = []*onnxpb.StringStringEntryProto{
				{Key: "location", Value: location},
				{Key: "offset", Value: strconv.Itoa(len(data))},
				{Key: "length", Value: strconv.Itoa(len(tp.RawData))},
			}
			data = append(data, tp.RawData...)
			tp.RawData, tp.DataLocation = nil, onnxpb.TensorProto_EXTERNAL
		}
		if err := os.WriteFile(filepath.Join(dir, "weights.bin"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		// The same bytes, one folder up, for the escaping location.
		if err := os.WriteFile(filepath.Join(dir, "..", "weights.bin"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "model.onnx")
		if err := os.WriteFile(path, encode(t, m), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}

	path := external("weights.bin")
	g, r, err := onnximport.Load(path)
	if err != nil {
		t.Fatalf("Load with external data: %v", err)
	}
	if r.Method != onnximport.MethodExact || len(g.Params) != len(want.Params) {
		t.Fatalf("method %s, %d params, want exact and %d", r.Method, len(g.Params), len(want.Params))
	}
	for _, p := range want.Params {
		if q := g.Param(p.Name); q == nil || !slices.Equal(q.Data, p.Data) {
			t.Errorf("parameter %s differs from the one imported with its data inside", p.Name)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := onnximport.FromBytes(b); !errors.Is(err, onnximport.ErrUnsupported) || !strings.Contains(err.Error(), `external file "weights.bin"`) {
		t.Errorf("FromBytes with external data: %v, want %v", err, onnximport.ErrUnsupported)
	}

	_, _, err = onnximport.Load(external("../weights.bin"))
	if !errors.Is(err, onnximport.ErrInvalidModel) || !strings.Contains(err.Error(), `external data location "../weights.bin" escapes the model's folder`) {
		t.Errorf("escaping location: %v, want %v", err, onnximport.ErrInvalidModel)
	}
}
