package gorgonnx

import (
	"context"
	"testing"

	"github.com/resnetctl/resnetctl/internal/memcap"
)

// TestNoOutputs: a model whose graph declares no outputs (with which the
// gorgonnx engine made `predict --engine gorgonnx` panic; see
// open in package infer/gorgonnx) is refused by Run with one line, in the caller's
// process and in the child's, allocating under the corpus bound.
func TestNoOutputs(t *testing.T) {
	g, x := loadGolden(t)
	in, shape := firstImages(g, x, 1)
	relu := node("Relu", "relu", []string{"input"}, []string{"output"})
	gr := pb{}.msg(1, relu).str(2, "test").msg(11, valueInfoPB("input", -1, 3, 20, 20))
	model := pb{}.int(1, 7).msg(7, gr).msg(8, pb{}.int(2, 13))
	for name, run := range map[string]func() error{
		"Run":      func() error { _, err := Run(context.Background(), model, in, shape); return err },
		"runLocal": func() error { _, err := runLocal(model, in, shape); return err },
	} {
		var err error
		alloc := memcap.Allocated(func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("%s panicked: %v", name, p)
				}
			}()
			err = run()
		})
		if want := "gorgonnx: graph has no outputs"; err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", name, err, want)
		}
		memcap.Check(t, alloc, memcap.Limit(64<<20, len(model)), "refusing a model with no outputs (%s)", name)
	}
}
