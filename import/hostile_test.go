package onnximport_test

import (
	"errors"
	"strings"
	"testing"

	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/internal/hostileonnx"
	"github.com/resnetctl/resnetctl/internal/memcap"
)

// TestHostileModels imports every file of the hostile corpus
// (internal/hostileonnx) with Load, from a folder of its own: each must
// be refused with an error wrapping a sentinel and naming the problem,
// without a panic, and allocating (runtime.MemStats.TotalAlloc, freed or
// not) under 64 MiB + 64 × the file size.
func TestHostileModels(t *testing.T) {
	want := map[string]struct {
		want string
		is   error
	}{
		"tensor-1e12-elements-10-bytes":        {`initializer "w": invalid ONNX model: dims [1000000 1000000] have 1000000000000 elements, more than a tensor may hold`, onnximport.ErrInvalidModel},
		"tensor-1e9-elements-10-bytes":         {`initializer "w": invalid ONNX model: raw_data has 10 bytes, dims [1000000000] of float32 need 4000000000`, onnximport.ErrInvalidModel},
		"tensor-1e12-elements-float-data":      {`initializer "w": invalid ONNX model: dims [1000000 1000000] have 1000000000000 elements, more than a tensor may hold`, onnximport.ErrInvalidModel},
		"negative-dim":                         {`initializer "w": invalid ONNX model: dimension -1 in dims [-1 -2]`, onnximport.ErrInvalidModel},
		"dim-max-int64":                        {`initializer "w": invalid ONNX model: dimension 9223372036854775807 in dims [9223372036854775807]`, onnximport.ErrInvalidModel},
		"dims-product-overflows-int64":         {`initializer "w": invalid ONNX model: dims [2147483647 2147483647 2147483647] have more elements than a tensor may hold (their product overflows int64)`, onnximport.ErrInvalidModel},
		"dims-product-wraps-to-zero":           {`initializer "w": invalid ONNX model: dimension 4294967296 in dims [4294967296 4294967296]`, onnximport.ErrInvalidModel},
		"raw-data-short":                       {`initializer "w": invalid ONNX model: raw_data has 8 bytes, dims [2 3] of float32 need 24`, onnximport.ErrInvalidModel},
		"raw-data-long":                        {`initializer "w": invalid ONNX model: raw_data has 8 bytes, dims [1] of float32 need 4`, onnximport.ErrInvalidModel},
		"raw-data-odd-length":                  {`initializer "w": invalid ONNX model: raw_data has 12 bytes, dims [2] of int64 need 16`, onnximport.ErrInvalidModel},
		"input-negative-dim":                   {`the input "x" has no fixed size on axis 1 (shape [1, ?, 1, 1])`, onnximport.ErrUnsupported},
		"external-dotdot":                      {`initializer "w": invalid ONNX model: external data location "../secret.bin" escapes the model's folder`, onnximport.ErrInvalidModel},
		"external-dotdot-inside":               {`initializer "w": invalid ONNX model: external data location "sub/../../secret.bin" escapes the model's folder`, onnximport.ErrInvalidModel},
		"external-absolute":                    {`initializer "w": invalid ONNX model: external data location "/etc/passwd" is an absolute path`, onnximport.ErrInvalidModel},
		"external-symlink-outside":             {`initializer "w": invalid ONNX model: external data file "link.bin": openat link.bin: path escapes from parent (it must be a file inside the model's folder)`, onnximport.ErrInvalidModel},
		"external-1e9-elements-8-bytes":        {`initializer "w": invalid ONNX model: external data "w.bin" has 8 bytes, the tensor needs 4000000000 from offset 0`, onnximport.ErrInvalidModel},
		"external-length-huge":                 {`initializer "w": invalid ONNX model: external data "w.bin": length 4000000000, the tensor needs 8 bytes`, onnximport.ErrInvalidModel},
		"external-offset-max":                  {`initializer "w": invalid ONNX model: external data "w.bin" has 8 bytes, the tensor needs 8 from offset 9223372036854775807`, onnximport.ErrInvalidModel},
		"cycle":                                {`the graph has a cycle through nodes "add", "relu"`, onnximport.ErrInvalidModel},
		"dangling-input":                       {`node 1 (Relu "relu") reads "nowhere", which is not an initializer, a graph input or a node output`, onnximport.ErrInvalidModel},
		"duplicate-node-output":                {`node 2 (Relu) output "y" is already defined`, onnximport.ErrInvalidModel},
		"duplicate-graph-output":               {`the graph has 2 outputs (y, y)`, onnximport.ErrUnsupported},
		"output-shadows-initializer":           {`node 0 (Add) output "w" is already defined`, onnximport.ErrInvalidModel},
		"unknown-domain":                       {`node "relu" (Relu): op domain "com.evil" (only the standard ai.onnx ops are imported)`, onnximport.ErrUnsupported},
		"only-unknown-domain":                  {`no ai.onnx opset import`, onnximport.ErrInvalidModel},
		"opset-99":                             {`ai.onnx opset 99 (this importer reads opsets 7 to 21)`, onnximport.ErrUnsupported},
		"ir-version-99":                        {`IR version 99 (this importer reads IR versions 3 to 10)`, onnximport.ErrUnsupported},
		"unknown-element-type":                 {`initializer "w": cannot import: element type DataType(99)`, onnximport.ErrUnsupported},
		"string-tensor-1e12":                   {`initializer "w": invalid ONNX model: dims [1000000 1000000] have 1000000000000 elements, more than a tensor may hold`, onnximport.ErrInvalidModel},
		"constant-1e12-elements":               {`node "const" (Constant): invalid ONNX model: dims [1000000 1000000] have 1000000000000 elements, more than a tensor may hold`, onnximport.ErrInvalidModel},
		"protobuf-graph-claims-2GiB":           {`cannot decode the ONNX protobuf (truncated or not an ONNX file?)`, onnximport.ErrInvalidModel},
		"protobuf-raw-data-claims-3GiB":        {`cannot decode the ONNX protobuf (truncated or not an ONNX file?)`, onnximport.ErrInvalidModel},
		"protobuf-length-overflows-varint":     {`cannot decode the ONNX protobuf (truncated or not an ONNX file?)`, onnximport.ErrInvalidModel},
		"protobuf-nested-20000-deep":           {`exceeded maximum recursion depth`, onnximport.ErrInvalidModel},
		"maxpool-dilation-overflows":           {`node "pool" (MaxPool): kernel_shape [3 1]; build.Graph pools with square 2-D windows`, onnximport.ErrUnsupported},
		"conv-dilation-overflows":              {`node "conv" (Conv): dilations [4611686018427387904 4611686018427387904]; build.Graph needs one positive value for both axes`, onnximport.ErrUnsupported},
		"maxpool-pads-not-smaller-than-kernel": {`node "pool" (MaxPool): padding 1 is not smaller than the 1x1 window`, onnximport.ErrUnsupported},
		"pad-3x8GiB":                           {`node "pad1" (Pad): pads [0 0 0 0 0 0 0 1073741822]; cropping is not imported`, onnximport.ErrUnsupported},
		"constantofshape-3x8GiB":               {`node "c1" (ConstantOfShape): dimension 1073741823`, onnximport.ErrUnsupported},
		"input-100000x100000":                  {`the output "y" is a [2 100000 100000] map per sample; resnetctl models output (N, classes) scores`, onnximport.ErrUnsupported},
		"unsqueeze-200000-axes":                {`node "unsqueeze" (Unsqueeze): op Unsqueeze has no build.Graph equivalent`, onnximport.ErrUnsupported},
	}
	seen := map[string]bool{}
	for _, c := range hostileonnx.Cases() {
		seen[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			w, ok := want[c.Name]
			if !ok {
				t.Fatalf("no expected error for hostile case %s", c.Name)
			}
			path, err := c.Install(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			alloc := memcap.Allocated(func() { _, _, err = onnximport.Load(path) })
			if err == nil || !errors.Is(err, w.is) || !strings.Contains(err.Error(), w.want) {
				t.Errorf("error %v\nwant %v containing %q", err, w.is, w.want)
			}
			memcap.Check(t, alloc, memcap.Limit(64<<20, len(c.Model)), "importing a %d-byte file", len(c.Model))
			t.Logf("allocated %d bytes importing a %d-byte file", alloc, len(c.Model))
		})
	}
	// The unspoiled base is refused only for what it is (no classifier).
	if _, _, err := onnximport.FromBytes(hostileonnx.Valid()); !errors.Is(err, onnximport.ErrUnsupported) {
		t.Errorf("the corpus's valid base model: %v", err)
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("expected error for %s, which is not in the corpus", name)
		}
	}
}
