package onnximport_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/export"
	onnximport "github.com/resnetctl/resnetctl/import"
)

func TestCheckpoint(t *testing.T) {
	parent := t.TempDir()
	src := filepath.Join(parent, "src.onnx")
	b := tinyExport(t, export.Options{Opset: 13, FoldBN: true, Softmax: true})
	m := decode(t, b)
	stripMetadata(m)
	if err := os.WriteFile(src, encode(t, m), 0o644); err != nil {
		t.Fatal(err)
	}
	g, r, err := onnximport.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	opts := onnximport.CheckpointOptions{
		Export: export.Options{Opset: r.Opset, FoldBN: r.BNFolded, Softmax: r.Softmax},
		Source: onnximport.SourceOf(r), CreatedBy: "test",
	}
	dir := filepath.Join(parent, "ckpt")
	man, err := onnximport.WriteCheckpoint(dir, g, opts)
	if err != nil {
		t.Fatal(err)
	}
	read, err := onnximport.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if read.Model != "model.onnx" || read.Spec == nil || read.Source.Path != src || read.Source.Method != onnximport.MethodRecognised ||
		!read.FoldedBN || !read.Softmax || read.Opset != 13 || read.Params != man.Params || read.Params == 0 {
		t.Errorf("manifest %+v", read)
	}
	// model.onnx is a resnetctl export: it imports exactly.
	g2, r2, err := onnximport.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if r2.Method != onnximport.MethodExact || !r2.BNFolded || !r2.Softmax {
		t.Errorf("re-import: %s (%s)", r2.Summary(), r2.Method)
	}
	if msg := sameParams(g, g2); msg != "" {
		t.Error(msg)
	}

	// A non-empty directory is refused without Force, replaced with it.
	if _, err := onnximport.WriteCheckpoint(dir, g, opts); !errors.Is(err, onnximport.ErrNotEmpty) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("overwrite without force: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stale"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opts.Force = true
	if _, err := onnximport.WriteCheckpoint(dir, g, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "stale")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--force kept a file of the old checkpoint: %v", err)
	}
	// An existing empty directory is fine.
	empty := filepath.Join(parent, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	opts.Force = false
	if _, err := onnximport.WriteCheckpoint(empty, g, opts); err != nil {
		t.Errorf("empty directory: %v", err)
	}
	// A missing parent is an error; nothing is left behind anywhere.
	if _, err := onnximport.WriteCheckpoint(filepath.Join(parent, "no", "such"), g, opts); err == nil {
		t.Error("missing parent accepted")
	}
	// A graph that cannot be exported leaves no directory.
	bad := filepath.Join(parent, "bad")
	if _, err := onnximport.WriteCheckpoint(bad, g, onnximport.CheckpointOptions{Export: export.Options{Opset: 99}}); err == nil {
		t.Error("opset 99 accepted")
	}
	entries, _ := os.ReadDir(parent)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "ckpt empty src.onnx" {
		t.Errorf("parent holds %v", names)
	}
	if _, err := onnximport.ReadManifest(parent); err == nil {
		t.Error("a directory without a manifest was read")
	}
}
