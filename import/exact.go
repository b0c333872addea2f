package onnximport

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/models"
	"google.golang.org/protobuf/proto"
)

// exactImport rebuilds a resnetctl export from its "architecture" metadata:
// the builder makes the Spec's graph (folded as the "folded_batchnorm"
// metadata says), every parameter is loaded from the initializer of the
// same name, and the graph is accepted only if exporting it again gives
// the file's nodes, initializers, inputs and outputs exactly. Any
// difference is returned as an error; the caller then falls back to
// recognising the structure.
func exactImport(mp *onnxpb.ModelProto, og *onnxGraph) (*build.Graph, bool, error) {
	var spec models.Spec
	if err := json.Unmarshal([]byte(og.meta[export.MetaArchitecture]), &spec); err != nil {
		return nil, false, fmt.Errorf("metadata %q is not a Spec: %v", export.MetaArchitecture, err)
	}
	if og.opset < export.MinOpset {
		return nil, false, fmt.Errorf("opset %d is older than resnetctl writes", og.opset)
	}
	// Every block exports at least three nodes: a Spec claiming more blocks
	// than that cannot be this file's (and would take long to build).
	blocks := 0
	for _, d := range spec.Depths {
		if d < 0 || d > len(og.nodes) {
			return nil, false, fmt.Errorf("the architecture has more blocks than the file has nodes")
		}
		blocks += d
	}
	if 3*blocks > len(og.nodes) {
		return nil, false, fmt.Errorf("the architecture has more blocks than the file has nodes")
	}
	g, err := build.New(spec, build.Options{ShapesOnly: true})
	if err != nil {
		return nil, false, err
	}
	folded := og.meta[export.MetaFoldedBN] == "true"
	if folded {
		foldBN(g)
	}
	for _, p := range g.Params {
		t, err := og.initializer(p.Name)
		switch {
		case err != nil:
			return nil, false, err
		case t == nil:
			return nil, false, fmt.Errorf("no initializer %q", p.Name)
		case !t.float || t.from != "" || !slices.Equal(t.dims, p.Shape):
			return nil, false, fmt.Errorf("initializer %q is not a float32 tensor of shape %v", p.Name, p.Shape)
		}
		p.Data = t.f
	}
	softmax := slices.Contains(og.outputs, export.ProbabilitiesName)
	wantBytes, err := export.Marshal(g, export.Options{Opset: og.opset, Softmax: softmax, ProducerVersion: mp.GetProducerVersion()})
	if err != nil {
		return nil, false, err
	}
	want := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(wantBytes, want); err != nil {
		return nil, false, err
	}
	have, wg := mp.GetGraph(), want.GetGraph()
	if len(have.GetNode()) != len(wg.GetNode()) {
		return nil, false, fmt.Errorf("%d nodes, the architecture exports %d", len(have.GetNode()), len(wg.GetNode()))
	}
	for i, n := range wg.GetNode() {
		if !proto.Equal(n, have.GetNode()[i]) {
			return nil, false, fmt.Errorf("node %d (%s %q) differs from the architecture's", i, have.GetNode()[i].GetOpType(), have.GetNode()[i].GetName())
		}
	}
	for _, l := range [][2][]*onnxpb.ValueInfoProto{{have.GetInput(), wg.GetInput()}, {have.GetOutput(), wg.GetOutput()}} {
		if len(l[0]) != len(l[1]) {
			return nil, false, fmt.Errorf("graph inputs or outputs differ from the architecture's")
		}
		for i := range l[0] {
			if !proto.Equal(l[0][i], l[1][i]) {
				return nil, false, fmt.Errorf("graph input or output %q differs from the architecture's", l[0][i].GetName())
			}
		}
	}
	if len(have.GetInitializer()) != len(wg.GetInitializer()) {
		return nil, false, fmt.Errorf("%d initializers, the architecture exports %d", len(have.GetInitializer()), len(wg.GetInitializer()))
	}
	for _, w := range wg.GetInitializer() {
		if g.Param(w.GetName()) != nil {
			continue // loaded from the file above
		}
		t, err := og.initializer(w.GetName())
		if err != nil || t == nil {
			return nil, false, fmt.Errorf("initializer %q is missing", w.GetName())
		}
		u, err := decodeTensor(w, nil)
		if err != nil || !slices.Equal(t.dims, u.dims) || t.float != u.float || !slices.Equal(t.i, u.i) || !slices.Equal(t.f, u.f) {
			return nil, false, fmt.Errorf("initializer %q differs from the architecture's", w.GetName())
		}
	}
	return g, softmax, nil
}
