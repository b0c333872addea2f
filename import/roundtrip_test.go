package onnximport_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/internal/interop"
	"github.com/resnetctl/resnetctl/models"
	"google.golang.org/protobuf/proto"
)

type roundTrip struct {
	name   string
	arch   string // catalog name the report must give
	spec   models.Spec
	opts   export.Options
	before string // the original export
	after  string // the re-export of the import
}

// roundTripCases: every catalog model at opset 17 with BN kept, and
// resnet20 (A and B) and resnet18 at opsets 9, 13 and 21, folded and not.
func roundTripCases(t *testing.T) []*roundTrip {
	var cases []*roundTrip
	for _, name := range models.Names() {
		s := spec(t, name)
		if testing.Short() && s.Reference.Params > 30e6 {
			continue
		}
		cases = append(cases, &roundTrip{name: name + "/opset17", arch: name, spec: s, opts: export.Options{Opset: 17}})
	}
	for _, m := range []struct {
		name   string
		model  string
		mutate []func(*models.Spec)
	}{{"resnet20", "resnet20", nil}, {"resnet20B", "resnet20", []func(*models.Spec){shortcutB}}, {"resnet18", "resnet18", nil}} {
		for _, opset := range []int{9, 13, 21} {
			for _, fold := range []bool{false, true} {
				c := &roundTrip{
					name: fmt.Sprintf("%s/opset%d/fold=%v", m.name, opset, fold), arch: m.model,
					spec: spec(t, m.model, m.mutate...), opts: export.Options{Opset: opset, FoldBN: fold, Softmax: fold},
				}
				cases = append(cases, c)
			}
		}
	}
	return cases
}

// TestRoundTrip exports each case, imports it and exports the import with
// the same options: the report must name the architecture, the two files
// must be byte-identical (so every initializer is bit-identical), and ONNX
// Runtime must give identical outputs on both.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cases := roundTripCases(t)
	start := time.Now()
	for i, c := range cases {
		c.opts.ProducerVersion = "roundtrip"
		g := newGraph(t, c.spec, uint64(i+1))
		b1, err := export.Marshal(g, c.opts)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		g2, r, err := onnximport.FromBytes(b1)
		if err != nil {
			t.Errorf("%s: import: %v", c.name, err)
			continue
		}
		if r.Method != onnximport.MethodExact || r.Architecture != c.arch || r.BNFolded != c.opts.FoldBN || r.Softmax != c.opts.Softmax {
			t.Errorf("%s: report %q method %s folded %v softmax %v", c.name, r.Summary(), r.Method, r.BNFolded, r.Softmax)
		}
		if !c.opts.FoldBN {
			if msg := sameParams(g, g2); msg != "" {
				t.Errorf("%s: %s", c.name, msg)
			}
		}
		b2, err := export.Marshal(g2, export.Options{Opset: r.Opset, FoldBN: r.BNFolded, Softmax: r.Softmax, ProducerVersion: "roundtrip"})
		if err != nil {
			t.Errorf("%s: re-export: %v", c.name, err)
			continue
		}
		if msg := sameInitializers(decode(t, b1), decode(t, b2)); msg != "" {
			t.Errorf("%s: %s", c.name, msg)
		}
		if !bytes.Equal(b1, b2) {
			t.Errorf("%s: the re-export differs from the original file", c.name)
		}
		c.before = filepath.Join(dir, fmt.Sprintf("%d-before.onnx", i))
		c.after = filepath.Join(dir, fmt.Sprintf("%d-after.onnx", i))
		if err := os.WriteFile(c.before, b1, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.after, b2, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d models exported, imported and re-exported in %v", len(cases), time.Since(start).Round(time.Millisecond))

	t.Run("ONNXRuntime", func(t *testing.T) {
		interop.RequireORT(t)
		var jobs []interop.Job
		var ran []*roundTrip
		for i, c := range cases {
			if c.before == "" {
				continue
			}
			in := randomInput(uint64(i+100), 2, c.spec.Input.C, c.spec.Input.H, c.spec.Input.W)
			for _, p := range []string{c.before, c.after} {
				jobs = append(jobs, interop.Job{Model: p, Inputs: map[string]interop.Tensor{export.InputName: in}})
			}
			ran = append(ran, c)
		}
		start := time.Now()
		res, err := interop.ORT(context.Background(), jobs)
		if err != nil {
			t.Fatal(err)
		}
		for k, c := range ran {
			a, b := res[2*k], res[2*k+1]
			if a.Err != "" || b.Err != "" {
				t.Errorf("%s: ONNX Runtime: %s %s", c.name, a.Err, b.Err)
				continue
			}
			for _, out := range a.OutputNames {
				x, y := a.Outputs[out], b.Outputs[out]
				if !slices.Equal(x.Dims, y.Dims) || !slices.Equal(x.Data, y.Data) || len(x.Data) == 0 {
					t.Errorf("%s: output %s differs between the original and the re-export", c.name, out)
				}
			}
		}
		t.Logf("ONNX Runtime gave identical outputs for %d pairs in %v", len(ran), time.Since(start).Round(time.Millisecond))
	})
}

// sameParams checks that two graphs hold the same parameters, bit for bit,
// under the same names and in the same order.
func sameParams(a, b *build.Graph) string {
	if len(a.Params) != len(b.Params) {
		return fmt.Sprintf("%d parameters, imported %d", len(a.Params), len(b.Params))
	}
	for i, p := range a.Params {
		q := b.Params[i]
		if p.Name != q.Name || !slices.Equal(p.Shape, q.Shape) || p.Trainable != q.Trainable {
			return fmt.Sprintf("parameter %d: %s %v, imported %s %v", i, p.Name, p.Shape, q.Name, q.Shape)
		}
		for k := range p.Data {
			if p.Data[k] != q.Data[k] {
				return fmt.Sprintf("parameter %s differs at %d", p.Name, k)
			}
		}
	}
	return ""
}

// TestRecogniseOwnExports strips resnetctl's metadata from exports, so they
// are imported by structure alone, and checks that the architecture is
// named and that exporting the import again gives the original nodes and
// initializers (names from the builder, weights from the file).
func TestRecogniseOwnExports(t *testing.T) {
	for i, c := range []struct {
		name, model string
		mutate      []func(*models.Spec)
		opts        export.Options
		summary     string
	}{
		{"resnet20/opset9", "resnet20", nil, export.Options{Opset: 9}, "resnet20, 10 classes, BN kept"},
		{"resnet20/opset11/fold", "resnet20", nil, export.Options{Opset: 11, FoldBN: true}, "resnet20, 10 classes, BN folded"},
		{"resnet20/opset21", "resnet20", nil, export.Options{Opset: 21, Softmax: true}, "resnet20, 10 classes, BN kept"},
		{"resnet56B/opset13", "resnet56", []func(*models.Spec){shortcutB}, export.Options{Opset: 13}, "resnet56 (shortcut B), 10 classes, BN kept"},
		{"resnet32/classes100", "resnet32", []func(*models.Spec){func(s *models.Spec) { s.Classes = 100; s.Labels = "cifar100" }}, export.Options{}, "resnet32, 100 classes, BN kept"},
		{"resnet38", "resnet38", nil, export.Options{}, "resnet38, 10 classes, BN kept"},
		{"resnet164", "resnet164", nil, export.Options{FoldBN: true}, "resnet164, 10 classes, BN folded"},
		{"preact_resnet164", "preact_resnet164", nil, export.Options{}, "preact_resnet164, 10 classes, BN kept"},
		{"preact_resnet164/fold", "preact_resnet164", nil, export.Options{FoldBN: true}, "preact_resnet164, 10 classes, BN folded"},
		{"wide_resnet28_10", "wide_resnet28_10", nil, export.Options{}, "wide_resnet28_10, 10 classes, BN kept"},
		{"resnet18/fold", "resnet18", []func(*models.Spec){input(3, 64, 64)}, export.Options{FoldBN: true}, "resnet18, 1000 classes, BN folded"},
		{"resnet34", "resnet34", []func(*models.Spec){input(3, 64, 64)}, export.Options{Opset: 9}, "resnet34, 1000 classes, BN kept"},
		{"resnet50", "resnet50", []func(*models.Spec){input(3, 64, 64)}, export.Options{}, "resnet50, 1000 classes, BN kept"},
		{"resnext50_32x4d", "resnext50_32x4d", []func(*models.Spec){input(3, 64, 64)}, export.Options{FoldBN: true}, "resnext50_32x4d, 1000 classes, BN folded"},
		{"wide_resnet50_2", "wide_resnet50_2", []func(*models.Spec){input(3, 64, 64), func(s *models.Spec) { s.Classes = 5; s.Labels = "" }}, export.Options{}, "wide_resnet50_2, 5 classes, BN kept"},
		{"custom", "resnet18", []func(*models.Spec){input(1, 48, 48), func(s *models.Spec) {
			s.Name, s.Depths, s.Widths, s.StemWidth, s.Classes, s.Labels = "mine", []int{1, 1, 2}, []int{8, 16, 24}, 8, 4, ""
			s.Preprocess = models.Preprocess{Scale: 1, Mean: []float32{0.5}, Std: []float32{0.25}}
		}}, export.Options{}, "ResNet outside the catalog (imagenet stem, basic blocks [1 1 2], shortcut B), 4 classes, BN kept"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := spec(t, c.model, c.mutate...)
			g := newGraph(t, s, uint64(i+1))
			b1, err := export.Marshal(g, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			m := decode(t, b1)
			stripMetadata(m)
			g2, r, err := onnximport.FromBytes(encode(t, m))
			if err != nil {
				t.Fatal(err)
			}
			if r.Method != onnximport.MethodRecognised || r.Summary() != c.summary || r.Softmax != c.opts.Softmax {
				t.Errorf("report %q (%s), softmax %v; want %q", r.Summary(), r.Method, r.Softmax, c.summary)
			}
			if r.Spec == nil || structure(*r.Spec) != structure(s) {
				t.Errorf("spec %+v, want %+v", r.Spec, s)
			}
			b2, err := export.Marshal(g2, export.Options{Opset: r.Opset, FoldBN: r.BNFolded, Softmax: r.Softmax})
			if err != nil {
				t.Fatal(err)
			}
			m2 := decode(t, b2)
			if msg := sameInitializers(m, m2); msg != "" {
				t.Error(msg)
			}
			if len(m.Graph.Node) != len(m2.Graph.Node) {
				t.Fatalf("%d nodes, re-export %d", len(m.Graph.Node), len(m2.Graph.Node))
			}
			for k := range m.Graph.Node {
				if !proto.Equal(m.Graph.Node[k], m2.Graph.Node[k]) {
					t.Fatalf("node %d: %v\nre-export: %v", k, m.Graph.Node[k], m2.Graph.Node[k])
				}
			}
		})
	}
}

// structure is the part of a Spec the graph determines.
func structure(s models.Spec) string {
	return fmt.Sprintf("%s %s %v %v %d %s %v %d %d %d %d %v", s.Family, s.Block, s.Depths, s.Widths, s.StemWidth, s.Shortcut, s.PreAct, s.Groups, s.WidthPerGroup, s.Widen, s.Classes, s.Input)
}
