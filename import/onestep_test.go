package onnximport_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/internal/testmodel"
	"github.com/resnetctl/resnetctl/models"
	"github.com/resnetctl/resnetctl/train"
)

// randomSource is n random images of a shape with labels i mod classes.
type randomSource struct {
	shape      models.Shape
	n, classes int
}

func (s randomSource) Len() int            { return s.n }
func (s randomSource) Shape() models.Shape { return s.shape }
func (s randomSource) Epoch(epoch int, seed uint64, batch int) (train.Batches, error) {
	return &randomBatches{s: s, r: rand.New(rand.NewPCG(seed, uint64(epoch)))}, nil
}

type randomBatches struct {
	s    randomSource
	r    *rand.Rand
	next int
}

func (b *randomBatches) Next(x []float32, labels []int) (int, error) {
	n := min(len(labels), b.s.n-b.next)
	per := b.s.shape.C * b.s.shape.H * b.s.shape.W
	for i := 0; i < n; i++ {
		for j := range per {
			x[i*per+j] = float32(b.r.NormFloat64())
		}
		labels[i] = (b.next + i) % b.s.classes
	}
	b.next += n
	return n, nil
}

// TestImportTrainExportReimport is the onnx-gomlx round trip: import an
// ONNX file, train one SGD step (momentum, weight decay), export,
// re-import; every parameter of the re-import is bit-equal to the trained
// in-memory one, and the first convolution's weight and the head's
// weight differ from the file's. With the backbone frozen, the backbone
// comes back bit-equal to the file and only the head changed. Files: our
// own export of a ResNet-8, the same made PyTorch-style (renamed
// initializers, Identity/Constant noise; see pytorchStyle), a general
// (non-ResNet) graph, and, when PyTorch is installed, files written by
// PyTorch's exporter (ResNet-20 option A and B, BN kept and folded).
func TestImportTrainExportReimport(t *testing.T) {
	own, err := export.Marshal(newGraph(t, spec(t, "resnet8"), 5), export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type file struct {
		name        string
		b           []byte
		conv1, head string // parameter names after import
	}
	files := []file{
		{"resnetctl-resnet8", own, "conv1.weight", "fc.weight"},
		{"pytorch-style-resnet8", encode(t, pytorchStyle(t, own)), "conv1.weight", "fc.weight"},
		{"general-graph", encode(t, plainCNN()), "c1.w", "fc.w"},
	}
	run := func(t *testing.T, f file) {
		for _, freeze := range []string{train.FreezeNone, train.FreezeBackbone} {
			t.Run("freeze="+freeze, func(t *testing.T) {
				g, rep, err := onnximport.FromBytes(f.b)
				if err != nil {
					t.Fatal(err)
				}
				orig := map[string][]float32{}
				for _, p := range g.Params {
					orig[p.Name] = append([]float32(nil), p.Data...)
				}
				m := train.FromGraph(g)
				defer m.Close()
				opt := train.OptimizerConfig{Name: train.SGD, LR: 0.1, Momentum: 0.9, WeightDecay: 5e-4}
				if err := m.Compile(train.CompileOptions{Optimizer: opt, Threads: 2, Freeze: freeze}); err != nil {
					t.Fatal(err)
				}
				data := randomSource{shape: g.Spec.Input, n: 8, classes: g.Spec.Classes}
				if _, err := m.Fit(context.Background(), data, train.FitOptions{Epochs: 1, MaxSteps: 1, Batch: 8}); err != nil {
					t.Fatal(err)
				}
				b, err := export.Marshal(m.Graph, export.Options{})
				if err != nil {
					t.Fatal(err)
				}
				g2, rep2, err := onnximport.FromBytes(b)
				if err != nil {
					t.Fatal(err)
				}
				if rep2.Method != onnximport.MethodExact && rep.Method != onnximport.MethodGeneral {
					t.Errorf("re-import of a %s import: method %s", rep.Method, rep2.Method)
				}
				if len(g2.Params) != len(m.Graph.Params) {
					t.Fatalf("re-import has %d parameters, the trained model %d", len(g2.Params), len(m.Graph.Params))
				}
				for _, p := range m.Graph.Params {
					q := g2.Param(p.Name)
					if q == nil || !testmodel.BitsEqual(q.Data, p.Data) {
						t.Errorf("%s: the re-import is not the trained weight", p.Name)
					}
				}
				changed := func(name string) bool { return !testmodel.BitsEqual(g2.Param(name).Data, orig[name]) }
				if !changed(f.head) {
					t.Errorf("%s: the head did not change", f.head)
				}
				if frozen := freeze == train.FreezeBackbone; changed(f.conv1) == frozen {
					t.Errorf("%s changed: %v with freeze %s", f.conv1, changed(f.conv1), freeze)
				}
				if freeze == train.FreezeBackbone {
					for _, p := range g2.Params {
						if p.Name != f.head && !isHead(g2, p.Name) && changed(p.Name) {
							t.Errorf("frozen %s changed", p.Name)
						}
					}
				}
			})
		}
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) { run(t, f) })
	}
	t.Run("pytorch", func(t *testing.T) {
		if testing.Short() {
			t.Skip("PyTorch exports take a while")
		}
		dir, exports := torchExports(t)
		for _, e := range exports {
			if e.Opset != 17 || !strings.HasPrefix(e.Name, "resnet20") {
				continue
			}
			b := mustRead(t, filepath.Join(dir, e.Path))
			t.Run(e.Path, func(t *testing.T) { run(t, file{e.Path, b, "conv1.weight", "fc.weight"}) })
		}
	})
}

// isHead reports whether name is a parameter of the graph's last Dense.
func isHead(g *build.Graph, name string) bool {
	var head *build.Node
	for _, n := range g.Nodes {
		if n.Kind == build.Dense {
			head = n
		}
	}
	return head != nil && (head.Params[0] == name || head.Params[1] == name)
}
