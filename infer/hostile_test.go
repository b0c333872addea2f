package infer

import (
	"errors"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/internal/hostileonnx"
	"github.com/resnetctl/resnetctl/internal/memcap"
)

// hostileWant is the error each hostile file must give: a substring that
// names the problem, and the sentinel it wraps.
var hostileWant = map[string]struct {
	want string
	sent error
}{
	"tensor-1e12-elements-10-bytes":        {`initializer "w": dims [1000000 1000000] have 1000000000000 elements, more than a tensor may hold`, ErrInvalidModel},
	"tensor-1e9-elements-10-bytes":         {`initializer "w": raw_data has 10 bytes, dims [1000000000] of float32 need 4000000000`, ErrInvalidModel},
	"tensor-1e12-elements-float-data":      {`initializer "w": dims [1000000 1000000] have 1000000000000 elements`, ErrInvalidModel},
	"negative-dim":                         {`initializer "w": dimension -1 in dims [-1 -2]`, ErrInvalidModel},
	"dim-max-int64":                        {`initializer "w": dimension 9223372036854775807 in dims [9223372036854775807]`, ErrInvalidModel},
	"dims-product-overflows-int64":         {`initializer "w": dims [2147483647 2147483647 2147483647] have more elements than a tensor may hold`, ErrInvalidModel},
	"dims-product-wraps-to-zero":           {`initializer "w": dimension 4294967296 in dims [4294967296 4294967296]`, ErrInvalidModel},
	"raw-data-short":                       {`initializer "w": raw_data has 8 bytes, dims [2 3] of float32 need 24`, ErrInvalidModel},
	"raw-data-long":                        {`initializer "w": raw_data has 8 bytes, dims [1] of float32 need 4`, ErrInvalidModel},
	"raw-data-odd-length":                  {`initializer "w": raw_data has 12 bytes, dims [2] of int64 need 16`, ErrInvalidModel},
	"input-negative-dim":                   {`graph input "x": negative dimension -2`, ErrInvalidModel},
	"external-dotdot":                      {`external data location "../secret.bin" escapes the model's folder`, ErrInvalidModel},
	"external-dotdot-inside":               {`external data location "sub/../../secret.bin" escapes the model's folder`, ErrInvalidModel},
	"external-absolute":                    {`external data location "/etc/passwd" is an absolute path`, ErrInvalidModel},
	"external-symlink-outside":             {`external data file "link.bin": openat link.bin: path escapes from parent (it must be a file inside the model's folder)`, ErrInvalidModel},
	"external-1e9-elements-8-bytes":        {`external data "w.bin" has 8 bytes, the tensor needs 4000000000 from offset 0`, ErrInvalidModel},
	"external-length-huge":                 {`external data "w.bin": length 4000000000, the tensor needs 8 bytes`, ErrInvalidModel},
	"external-offset-max":                  {`external data "w.bin" has 8 bytes, the tensor needs 8 from offset 9223372036854775807`, ErrInvalidModel},
	"cycle":                                {`the graph has a cycle through nodes "add", "relu"`, ErrInvalidModel},
	"dangling-input":                       {`node "relu" (Relu): input "nowhere" is not an initializer, a graph input or the output of any node`, ErrInvalidModel},
	"duplicate-node-output":                {`node "again" (Relu): output "y" is already defined by another node`, ErrInvalidModel},
	"duplicate-graph-output":               {`graph output "y" is listed twice`, ErrInvalidModel},
	"output-shadows-initializer":           {`node "add" (Add): output "w" is already defined by an initializer`, ErrInvalidModel},
	"unknown-domain":                       {`node "relu" (Relu): op domain "com.evil" is not supported (only ai.onnx)`, ErrUnsupported},
	"only-unknown-domain":                  {`no ai.onnx opset import`, ErrInvalidModel},
	"opset-99":                             {`ai.onnx opset 99 (this runtime runs opsets 7 to 21)`, ErrUnsupported},
	"ir-version-99":                        {`IR version 99 (this runtime reads IR versions 3 to 10)`, ErrUnsupported},
	"unknown-element-type":                 {`initializer "w": element type DataType(99)`, ErrUnsupported},
	"string-tensor-1e12":                   {`initializer "w": element type STRING`, ErrUnsupported},
	"constant-1e12-elements":               {`node "const" (Constant): attribute "value": dims [1000000 1000000] have 1000000000000 elements`, ErrInvalidModel},
	"protobuf-graph-claims-2GiB":           {`cannot decode the ONNX protobuf (truncated or not an ONNX file?)`, ErrInvalidModel},
	"protobuf-raw-data-claims-3GiB":        {`cannot decode the ONNX protobuf (truncated or not an ONNX file?)`, ErrInvalidModel},
	"protobuf-length-overflows-varint":     {`cannot decode the ONNX protobuf (truncated or not an ONNX file?)`, ErrInvalidModel},
	"protobuf-nested-20000-deep":           {`exceeded maximum recursion depth`, ErrInvalidModel},
	"maxpool-dilation-overflows":           {`node "pool" (MaxPool): kernel_shape [3 1] with dilations [4611686018427387904 1]: the dilated window overflows`, ErrInvalidModel},
	"conv-dilation-overflows":              {`node "conv" (Conv): kernel_shape [3 3] with dilations [4611686018427387904 4611686018427387904]: the dilated window overflows`, ErrInvalidModel},
	"maxpool-pads-not-smaller-than-kernel": {`node "pool" (MaxPool): pads [1 1 1 1]: pads must be smaller than the kernel (kernel_shape [1 1]), as in ONNX Runtime`, ErrInvalidModel},
	"pad-3x8GiB":                           {`memory budget exceeded: the plan for input shapes [[1 2 1 1]] needs 32.0 GiB, over the budget of 1.0 GiB (Options.MaxMemory); largest tensors: "p1" float32 [1 2 1 1073741823] 8.0 GiB, "p2" float32 [1 2 1 1073741823] 8.0 GiB, "p3" float32 [1 2 1 1073741823] 8.0 GiB`, ErrMemoryBudget},
	"constantofshape-3x8GiB":               {`memory budget exceeded: the plan for input shapes [[1 2 1 1]] needs 32.0 GiB, over the budget of 1.0 GiB (Options.MaxMemory); largest tensors: "c1" float32 [1 2 1 1073741823] 8.0 GiB, "c2" float32 [1 2 1 1073741823] 8.0 GiB, "c3" float32 [1 2 1 1073741823] 8.0 GiB`, ErrMemoryBudget},
	"input-100000x100000":                  {`memory budget exceeded: the declared inputs need 74.5 GiB, over the budget of 1.0 GiB (Options.MaxMemory): "x" float32 [1 2 100000 100000] 74.5 GiB`, ErrMemoryBudget},
	"unsqueeze-200000-axes":                {`node "unsqueeze" (Unsqueeze): axis 7 is repeated in [0 1 2 3 4 5 6 7 … 199992 199993 199994 199995 199996 199997 199998 7] (200000 values)`, ErrInvalidModel},
}

// hostileBudget is the memory budget the corpus is loaded with: a fixed
// one (not the machine's default) so that the errors are exact.
const hostileBudget = 1 << 30

// TestHostileModels loads every file of the hostile corpus
// (internal/hostileonnx) with Load, from a folder of its own, and checks
// the error: the substring and sentinel of hostileWant, no panic. Memory
// is bounded by the file, not by what it claims: the bytes allocated
// while loading (runtime.MemStats.TotalAlloc, which counts an allocation
// even if it is freed at once) must stay under 64 MiB + 64 × the file
// size, so a tensor declaring 10^12 elements or a length field claiming
// gigabytes is refused before anything of that size is allocated, and so
// is a plan whose tensors together are over the memory budget (a fixed
// one, hostileBudget, for exact errors).
func TestHostileModels(t *testing.T) {
	cases := hostileonnx.Cases()
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			w, ok := hostileWant[c.Name]
			if !ok {
				t.Fatalf("no expected error for hostile case %s", c.Name)
			}
			path, err := c.Install(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			alloc := memcap.Allocated(func() {
				var s *Session
				if s, err = Load(path, Options{Threads: 1, MaxMemory: hostileBudget}); err == nil {
					s.Close()
				}
			})
			if err == nil || !errors.Is(err, w.sent) || !strings.Contains(err.Error(), w.want) {
				t.Errorf("error %v\nwant %v containing %q", err, w.sent, w.want)
			}
			memcap.Check(t, alloc, memcap.Limit(64<<20, len(c.Model)), "loading a %d-byte file", len(c.Model))
			t.Logf("allocated %d bytes loading a %d-byte file", alloc, len(c.Model))
			// From bytes, without a folder, the same (external data is
			// refused outright).
			if c.Setup == nil && !strings.HasPrefix(c.Name, "external-") {
				alloc := memcap.Allocated(func() {
					var s *Session
					if s, err = LoadBytes(c.Model, Options{Threads: 1, MaxMemory: hostileBudget}); err == nil {
						s.Close()
					}
				})
				if err == nil || !errors.Is(err, w.sent) || !strings.Contains(err.Error(), w.want) {
					t.Errorf("LoadBytes: error %v\nwant %v containing %q", err, w.sent, w.want)
				}
				memcap.Check(t, alloc, memcap.Limit(64<<20, len(c.Model)), "in LoadBytes of a %d-byte file", len(c.Model))
			}
		})
	}
	for name := range hostileWant {
		if !seen[name] {
			t.Errorf("expected error for %s, which is not in the corpus", name)
		}
	}
	// The unspoiled base loads.
	s, err := LoadBytes(hostileonnx.Valid(), Options{Threads: 1})
	if err != nil {
		t.Fatalf("the corpus's valid base model: %v", err)
	}
	s.Close()
}

// TestHostileConstants: tiny models whose constants (computed while
// planning) would have up to MaxElements elements load without
// allocating them: a plan computes at most foldBudget elements of
// constants, and past it the nodes run at run time, in buffers that the
// memory budget covers (here a large one, 1 TiB, so that the plans are
// accepted whatever the machine). With a small MaxElements the same
// models are refused at load.
func TestHostileConstants(t *testing.T) {
	const huge = 1<<31 - 1 // 8 GiB of float32
	for _, c := range []struct {
		name string
		g    *gb
		want string // the error with MaxElements 1<<20
	}{
		{"ConstantOfShape", newGB(13).out("y", Float32).init("s", i64(sh(1), huge)).
			node("ConstantOfShape", []string{"s"}, []string{"y"}), "shape [2147483647] has an invalid dimension"},
		{"folded Add", newGB(13).out("y", Float32).init("a", f32(sh(1<<15, 1), make([]float32, 1<<15)...)).init("b", f32(sh(1, 1<<16-1), make([]float32, 1<<16-1)...)).
			node("Add", []string{"a", "b"}, []string{"y"}), "output 0 would have shape [32768 65535]"},
		{"Dropout mask", newGB(13).in("x", Float32, 1, 1<<30).out("y", Float32).out("m", Bool).
			node("Dropout", []string{"x"}, []string{"y", "m"}), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := c.g.bytes(t)
			var err error
			alloc := memcap.Allocated(func() {
				var s *Session
				if s, err = LoadBytes(b, Options{Threads: 1, MaxMemory: 1 << 40}); err == nil {
					s.Close()
				}
			})
			if err != nil {
				t.Errorf("load: %v", err)
			}
			memcap.Check(t, alloc, memcap.Limit(64<<20, len(b)), "loading a %d-byte file", len(b))
			if c.want == "" {
				return
			}
			_, err = LoadBytes(b, Options{Threads: 1, MaxElements: 1 << 20})
			if !errors.Is(err, ErrInvalidModel) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("with MaxElements 1<<20: error %v, want %q", err, c.want)
			}
		})
	}
}
