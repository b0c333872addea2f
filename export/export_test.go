package export_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/models"
	"google.golang.org/protobuf/proto"
)

func graph(t testing.TB, name string, mutate ...func(*models.Spec)) *build.Graph {
	t.Helper()
	s, err := models.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mutate {
		m(&s)
	}
	g, err := build.New(s, build.Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func shortcutB(s *models.Spec) { s.Shortcut = models.ShortcutB }

// readBack marshals, then decodes the bytes as a stranger would.
func readBack(t testing.TB, g *build.Graph, opts export.Options) *onnxpb.ModelProto {
	t.Helper()
	b, err := export.Marshal(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func dims(v *onnxpb.ValueInfoProto) []string {
	var out []string
	for _, d := range v.GetType().GetTensorType().GetShape().GetDim() {
		if p := d.GetDimParam(); p != "" {
			out = append(out, p)
		} else {
			out = append(out, strconv.FormatInt(d.GetDimValue(), 10))
		}
	}
	return out
}

func TestInterfaceReadBack(t *testing.T) {
	g := graph(t, "resnet20")
	for _, tt := range []struct {
		softmax bool
		outputs []string
	}{{false, []string{"logits"}}, {true, []string{"logits", "probabilities"}}} {
		m := readBack(t, g, export.Options{Softmax: tt.softmax, ProducerVersion: "1.2.3"})
		if len(m.Graph.Input) != 1 || m.Graph.Input[0].Name != "input" || !slices.Equal(dims(m.Graph.Input[0]), []string{"N", "3", "32", "32"}) {
			t.Errorf("input %v %v", m.Graph.Input[0].Name, dims(m.Graph.Input[0]))
		}
		var names []string
		for _, o := range m.Graph.Output {
			names = append(names, o.Name)
			if !slices.Equal(dims(o), []string{"N", "10"}) {
				t.Errorf("output %s dims %v", o.Name, dims(o))
			}
			if o.GetType().GetTensorType().GetElemType() != int32(onnxpb.TensorProto_FLOAT) {
				t.Errorf("output %s is not float", o.Name)
			}
		}
		if !slices.Equal(names, tt.outputs) {
			t.Errorf("softmax=%v: outputs %v, want %v", tt.softmax, names, tt.outputs)
		}
		if m.ProducerName != "resnetctl" || m.ProducerVersion != "1.2.3" {
			t.Errorf("producer %q %q", m.ProducerName, m.ProducerVersion)
		}
	}
}

func TestMetadataReadBack(t *testing.T) {
	g := graph(t, "resnet56", shortcutB)
	m := readBack(t, g, export.Options{})
	meta := map[string]string{}
	for _, p := range m.MetadataProps {
		if _, dup := meta[p.Key]; dup {
			t.Errorf("duplicate metadata key %s", p.Key)
		}
		meta[p.Key] = p.Value
	}
	var classes []string
	if err := json.Unmarshal([]byte(meta[export.MetaClasses]), &classes); err != nil {
		t.Fatal(err)
	}
	want, _ := models.Labels("cifar10")
	if !slices.Equal(classes, want) || meta[export.MetaLabelSet] != "cifar10" {
		t.Errorf("classes %v label set %q", classes, meta[export.MetaLabelSet])
	}
	var pre export.Preprocessing
	if err := json.Unmarshal([]byte(meta[export.MetaPreprocess]), &pre); err != nil {
		t.Fatal(err)
	}
	if pre.Layout != "NCHW" || pre.Color != "RGB" || !slices.Equal(pre.InputSize, []int{3, 32, 32}) ||
		pre.Scale != g.Spec.Preprocess.Scale || !slices.Equal(pre.Mean, g.Spec.Preprocess.Mean) || !slices.Equal(pre.Std, g.Spec.Preprocess.Std) {
		t.Errorf("preprocess %+v", pre)
	}
	var spec models.Spec
	if err := json.Unmarshal([]byte(meta[export.MetaArchitecture]), &spec); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(spec, g.Spec) {
		t.Errorf("architecture round trip:\n got %+v\nwant %+v", spec, g.Spec)
	}
	if meta[export.MetaFoldedBN] != "false" {
		t.Errorf("folded_batchnorm = %q", meta[export.MetaFoldedBN])
	}
	// A model without a label set has no classes entry.
	g2 := graph(t, "resnet20", func(s *models.Spec) { s.Classes, s.Labels = 7, "" })
	for _, p := range readBack(t, g2, export.Options{}).MetadataProps {
		if p.Key == export.MetaClasses {
			t.Error("classes written for a model without labels")
		}
	}
}

func TestOpsetForms(t *testing.T) {
	g := graph(t, "resnet20")
	for opset := export.MinOpset; opset <= export.MaxOpset; opset++ {
		m := readBack(t, g, export.Options{Opset: opset})
		if m.IrVersion != export.IRVersion(opset) || len(m.OpsetImport) != 1 || m.OpsetImport[0].Version != int64(opset) || m.OpsetImport[0].Domain != "" {
			t.Errorf("opset %d: IR %d, imports %v", opset, m.IrVersion, m.OpsetImport)
		}
		ops := map[string]int{}
		for _, n := range m.Graph.Node {
			ops[n.OpType]++
			if n.OpType == "Pad" {
				_, hasAttr := attr(n, "pads")
				if hasAttr != (opset < 11) || (len(n.Input) == 2) != (opset >= 11) {
					t.Errorf("opset %d: Pad form: pads attribute %v, %d inputs", opset, hasAttr, len(n.Input))
				}
			}
		}
		// Two option-A shortcuts: subsample (MaxPool 1x1 at opset 9, Slice after) and Pad.
		wantSub := "Slice"
		if opset == 9 {
			wantSub = "MaxPool"
		}
		if ops["Pad"] != 2 || ops[wantSub] != 2 || ops["Conv"] != 19 || ops["BatchNormalization"] != 19 || ops["Gemm"] != 1 {
			t.Errorf("opset %d: ops %v", opset, ops)
		}
	}
	if export.IRVersion(9) != 4 || export.IRVersion(13) != 7 || export.IRVersion(17) != 8 || export.IRVersion(21) != 10 {
		t.Error("IR versions")
	}
}

func attr(n *onnxpb.NodeProto, name string) (*onnxpb.AttributeProto, bool) {
	for _, a := range n.Attribute {
		if a.Name == name {
			return a, true
		}
	}
	return nil, false
}

func TestInitializers(t *testing.T) {
	g := graph(t, "resnet18")
	m := readBack(t, g, export.Options{Opset: 13})
	var names []string
	for _, init := range m.Graph.Initializer {
		names = append(names, init.Name)
	}
	var want []string
	for _, p := range g.Params {
		want = append(want, p.Name)
	}
	if !slices.Equal(names, want) {
		t.Errorf("initializers are not the torchvision parameter names in order")
	}
	for _, in := range m.Graph.Input {
		if slices.Contains(names, in.Name) {
			t.Errorf("initializer %s listed as a graph input", in.Name)
		}
	}
	// Folding removes every BatchNorm of a post-activation ResNet and gives
	// each conv a bias.
	f := readBack(t, g, export.Options{Opset: 13, FoldBN: true})
	for _, n := range f.Graph.Node {
		if n.OpType == "BatchNormalization" {
			t.Errorf("BatchNorm %s survived folding", n.Name)
		}
		if n.OpType == "Conv" && len(n.Input) != 3 {
			t.Errorf("folded conv %s has no bias", n.Name)
		}
	}
	// Pre-activation BNs after an Add cannot be folded and stay; the first
	// block's bn1 reads the stem conv alone and folds into it.
	p := readBack(t, graph(t, "preact_resnet164"), export.Options{FoldBN: true})
	kept := 0
	for _, n := range p.Graph.Node {
		if n.OpType == "BatchNormalization" {
			kept++
			if (!strings.HasSuffix(n.Name, ".bn1") && n.Name != "bn_final") || n.Name == "layer1.0.bn1" {
				t.Errorf("foldable BN %s kept", n.Name)
			}
		}
	}
	if kept != 53+1 {
		t.Errorf("%d BNs kept, want 54 (one per block but the first, plus bn_final)", kept)
	}
}

func TestExportErrors(t *testing.T) {
	g := graph(t, "resnet20")
	for _, o := range []int{8, 22, -1} {
		if _, err := export.Marshal(g, export.Options{Opset: o}); !errors.Is(err, export.ErrOpset) {
			t.Errorf("opset %d: %v", o, err)
		}
	}
	s, _ := models.Lookup("resnet20")
	shapes, _ := build.New(s, build.Options{ShapesOnly: true})
	if _, err := export.Marshal(shapes, export.Options{}); err == nil || !strings.Contains(err.Error(), "has no data") {
		t.Errorf("shapes-only graph: %v", err)
	}
	broken := graph(t, "resnet20")
	broken.Nodes[2].Inputs[0] = "ghost"
	if _, err := export.Marshal(broken, export.Options{}); !errors.Is(err, build.ErrInvalidGraph) {
		t.Errorf("broken graph: %v", err)
	}
}

func TestWriteFileLeavesNothingOnError(t *testing.T) {
	dir := t.TempDir()
	g := graph(t, "resnet20")
	good := filepath.Join(dir, "m.onnx")
	info, err := export.WriteFile(good, g, export.Options{Softmax: true})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(good)
	if info.Bytes != st.Size() || info.Params != 271098 || !slices.Equal(info.Outputs, []string{"logits", "probabilities"}) {
		t.Errorf("info %+v (file %d bytes)", info, st.Size())
	}
	if _, err := export.WriteFile(filepath.Join(dir, "missing", "m.onnx"), g, export.Options{}); err == nil {
		t.Error("missing directory accepted")
	}
	if _, err := export.WriteFile(filepath.Join(dir, "x.onnx"), g, export.Options{Opset: 99}); err == nil {
		t.Error("bad opset accepted")
	}
	es, _ := os.ReadDir(dir)
	if len(es) != 1 {
		t.Errorf("directory holds %d entries, want only m.onnx", len(es))
	}
}
