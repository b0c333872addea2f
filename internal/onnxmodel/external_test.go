package onnxmodel

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

func TestExternalData(t *testing.T) {
	dir := t.TempDir()
	data := le32(0, 0, 0x41200000, 0x41a00000) // float32 10 and 20 from offset 8
	if err := os.WriteFile(filepath.Join(dir, "w.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	tensor := func(location, offset string) *onnxpb.TensorProto {
		return &onnxpb.TensorProto{DataType: int32(Float), Dims: []int64{2}, DataLocation: onnxpb.TensorProto_EXTERNAL,
			ExternalData: []*onnxpb.StringStringEntryProto{{Key: "location", Value: location}, {Key: "offset", Value: offset}}}
	}
	ext := NewExternalData(filepath.Join(dir, "sub"))
	defer ext.Close()
	for _, c := range []struct{ location, offset, err string }{
		{"../w.bin", "8", `external data location "../w.bin" escapes the model's folder`},
		{"/etc/passwd", "0", `is an absolute path`},
		{"missing.bin", "0", `not found next to the model`},
		{".", "0", `is not a regular file`},
	} {
		if _, err := DecodeTensor(tensor(c.location, c.offset), ext); !errors.Is(err, ErrInvalidModel) || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.location, err, c.err)
		}
	}
	ext2 := NewExternalData(dir)
	defer ext2.Close()
	d, err := DecodeTensor(tensor("w.bin", "8"), ext2)
	if err != nil || len(d.Float32) != 2 || d.Float32[0] != 10 || d.Float32[1] != 20 {
		t.Errorf("w.bin at 8: %v, %v", d, err)
	}
	if _, err := DecodeTensor(tensor("w.bin", "12"), ext2); !errors.Is(err, ErrInvalidModel) {
		t.Errorf("past the end: %v", err)
	}
}
