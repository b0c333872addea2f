package onnximport_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/models"
)

// TestMetadataItCanVouchFor: an export writes only the metadata its graph
// vouches for, and the import reports whether the preprocessing came from
// the file. A general graph imported from a file without metadata exports
// with neither "architecture" nor "preprocess" (it has no catalog Spec and
// no known preprocessing); once given a preprocessing, its export carries
// it (still no architecture) and a re-import takes it back from the file,
// without the note an architecture that does not fit would cause. A
// recognised stranger's file assumes the catalog preset and says so; our
// own export is exact and vouches for its preprocessing. A folded graph's
// export says folded_batchnorm true even without FoldBN, so that it
// re-imports exactly.
func TestMetadataItCanVouchFor(t *testing.T) {
	cifar10, _ := models.PreprocessPreset("cifar10")
	own, err := export.Marshal(newGraph(t, spec(t, "resnet8"), 5), export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ownFolded, err := export.Marshal(newGraph(t, spec(t, "resnet8"), 5), export.Options{FoldBN: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		file      []byte
		change    func(g *build.Graph) // before the re-export
		method    onnximport.Method
		fromFile  bool     // Report.PreprocessFromFile of the first import
		note      string   // in the first import's notes
		keys      []string // metadata of the re-export
		again     onnximport.Method
		fromAgain bool
	}{
		{name: "general, no metadata", file: encode(t, plainCNN()), method: onnximport.MethodGeneral, note: "does not say how to preprocess",
			keys: []string{export.MetaFoldedBN}, again: onnximport.MethodGeneral},
		{name: "general, preprocessing given", file: encode(t, plainCNN()), change: func(g *build.Graph) { g.Spec.Preprocess = cifar10 },
			method: onnximport.MethodGeneral, note: "does not say how to preprocess",
			keys: []string{export.MetaPreprocess, export.MetaFoldedBN}, again: onnximport.MethodGeneral, fromAgain: true},
		{name: "recognised stranger", file: encode(t, pytorchStyle(t, own)), method: onnximport.MethodRecognised, note: "assumes the cifar10 preset",
			keys:  []string{export.MetaClasses, export.MetaLabelSet, export.MetaPreprocess, export.MetaArchitecture, export.MetaFoldedBN},
			again: onnximport.MethodExact, fromAgain: true},
		{name: "own export", file: own, method: onnximport.MethodExact, fromFile: true,
			keys:  []string{export.MetaClasses, export.MetaLabelSet, export.MetaPreprocess, export.MetaArchitecture, export.MetaFoldedBN},
			again: onnximport.MethodExact, fromAgain: true},
		{name: "own folded export", file: ownFolded, method: onnximport.MethodExact, fromFile: true,
			keys:  []string{export.MetaClasses, export.MetaLabelSet, export.MetaPreprocess, export.MetaArchitecture, export.MetaFoldedBN},
			again: onnximport.MethodExact, fromAgain: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, r, err := onnximport.FromBytes(c.file)
			if err != nil {
				t.Fatal(err)
			}
			notes := strings.Join(r.Notes, "\n")
			if r.Method != c.method || r.PreprocessFromFile != c.fromFile || !strings.Contains(notes, c.note) {
				t.Errorf("import: method %s, preprocess from file %v, notes %q", r.Method, r.PreprocessFromFile, notes)
			}
			if c.change != nil {
				c.change(g)
			}
			b, err := export.Marshal(g, export.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			meta := map[string]string{}
			for _, kv := range decode(t, b).MetadataProps {
				keys = append(keys, kv.Key)
				meta[kv.Key] = kv.Value
			}
			if !reflect.DeepEqual(keys, c.keys) {
				t.Errorf("re-export metadata %v, want %v", keys, c.keys)
			}
			if want := isFoldedGraph(g); meta[export.MetaFoldedBN] != map[bool]string{true: "true", false: "false"}[want] {
				t.Errorf("folded_batchnorm %q for a graph folded=%v", meta[export.MetaFoldedBN], want)
			}
			g2, r2, err := onnximport.FromBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			if r2.Method != c.again || r2.PreprocessFromFile != c.fromAgain {
				t.Errorf("re-import: method %s, preprocess from file %v, notes %q", r2.Method, r2.PreprocessFromFile, r2.Notes)
			}
			for _, n := range r2.Notes {
				if strings.Contains(n, "architecture metadata") {
					t.Errorf("re-import note: %s", n)
				}
			}
			if c.fromAgain && !reflect.DeepEqual(g2.Spec.Preprocess, g.Spec.Preprocess) {
				t.Errorf("re-import preprocessing %+v, want %+v", g2.Spec.Preprocess, g.Spec.Preprocess)
			}
		})
	}
}

// isFoldedGraph: no BatchNorm reads a convolution's output.
func isFoldedGraph(g *build.Graph) bool {
	producer := map[string]build.Kind{}
	for _, n := range g.Nodes {
		producer[n.Output] = n.Kind
		if n.Kind == build.BatchNorm && producer[n.Inputs[0]] == build.Conv {
			return false
		}
	}
	return true
}
