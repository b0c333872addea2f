// Package onnximport turns ONNX models into build.Graph, resnetctl's model
// representation, so that they can be trained, summarised and exported
// again. (The directory is import/; import is a Go keyword.)
//
// Three routes, tried in order:
//
//   - exact: a file resnetctl exported carries its Spec in the
//     "architecture" metadata. The builder makes that Spec's graph (with
//     BatchNorm folded when "folded_batchnorm" says so), every parameter is
//     loaded from the initializer of the same name, and the result is
//     accepted only if exporting it again reproduces the file's nodes,
//     initializers, inputs and outputs exactly. Export → import → export is
//     therefore bit-identical.
//   - recognised: any other file (PyTorch's exporter with BN kept or
//     folded, option-A shortcut chains, model-zoo opset-7 files, tf2onnx
//     NHWC graphs …) is first lowered op by op into a general build.Graph,
//     then matched by structure alone, never by names, against the Spec the
//     structure suggests (see recognise.go). A match gives the builder's
//     graph with torchvision parameter names ("layer1.0.conv1.weight")
//     whatever the file called its initializers ("onnx::Conv_193"), and the
//     catalog name when the architecture is in the catalog.
//   - general: a graph whose ops all have build.Graph equivalents but that
//     is not a ResNet the builder makes is kept as it is (names from the
//     file). Anything else is refused with one *BlockedError naming every
//     node that blocks it.
//
// What lowering understands, beyond the one-to-one ops (Conv, BatchNormalization,
// Relu, Add, MaxPool, AveragePool, GlobalAveragePool, Flatten, Gemm, Softmax):
// constant subgraphs (Constant, Shape, Gather, Unsqueeze, Concat, Reshape,
// Slice, Transpose, Cast, ConstantOfShape, arithmetic) are evaluated, with
// the batch size kept symbolic; Reshape/Squeeze/Flatten of a 1x1 map to
// (N, C) is a Flatten; AveragePool over the whole map is a global average
// pool; ReduceMean over height and width is one too; strided Slice and 1x1
// MaxPool subsampling followed by a channel Pad is an option-A shortcut;
// a zero Pad of height and width before a convolution becomes its padding;
// Add of a per-channel constant after a Conv or Gemm/MatMul becomes its
// bias; MatMul by a constant is a dense layer; Identity, Dropout and float
// Casts vanish; Transposes between NCHW and NHWC are tracked as a layout
// rather than executed, so tf2onnx graphs whose convolutions run in NCHW
// between Transposes import (best effort: an NHWC graph input is imported
// as an NCHW input, which the Report says). A final Softmax is stripped
// (Report.Softmax; export with Options.Softmax to write it again).
package onnximport

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/onnxmodel"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/regularfile"
	"github.com/resnetctl/resnetctl/models"
)

// Method says how a model was imported.
type Method string

const (
	// MethodExact: a resnetctl export rebuilt from its architecture
	// metadata and verified against the file node for node.
	MethodExact Method = "exact"
	// MethodRecognised: ResNet structure recognised; the graph is the
	// builder's, with torchvision parameter names.
	MethodRecognised Method = "recognised"
	// MethodGeneral: not a ResNet the builder makes; the graph is the
	// file's, op for op.
	MethodGeneral Method = "general"
)

// Report says what an import found.
type Report struct {
	Source    string `json:"source,omitempty"` // the file, empty for FromBytes
	Producer  string `json:"producer,omitempty"`
	IRVersion int64  `json:"ir_version"`
	Opset     int    `json:"opset"`
	Method    Method `json:"method"`
	// Architecture is the catalog name ("resnet18") when the structure is
	// a catalog architecture (classes, input size and shortcut may
	// differ), empty otherwise.
	Architecture string `json:"architecture,omitempty"`
	// Spec is the architecture, nil for general graphs.
	Spec    *models.Spec `json:"spec,omitempty"`
	Classes int          `json:"classes"`
	Input   models.Shape `json:"input"`
	// InputLayout is the file's input layout, NCHW or NHWC; the imported
	// graph always takes NCHW.
	InputLayout string `json:"input_layout"`
	// BNFolded: the file's BatchNorms were folded into the convolutions,
	// which keep biases; the graph has no BatchNorm after a convolution.
	BNFolded bool `json:"bn_folded"`
	// Shortcut is A or B for ResNets.
	Shortcut string `json:"shortcut,omitempty"`
	// Softmax: the file also outputs class probabilities; the graph ends
	// at the logits, export with Options.Softmax to add them again.
	Softmax bool `json:"softmax"`
	// PreprocessFromFile: the Spec's preprocessing is the file's own
	// (resnetctl metadata). Otherwise it is unknown (scale 0) or, for a
	// recognised catalog architecture, assumed from the catalog's preset
	// (a note says so); a trainer should then take it from its data.
	PreprocessFromFile bool     `json:"preprocess_from_file"`
	ONNXNodes          int      `json:"onnx_nodes"`
	Nodes              int      `json:"nodes"`
	Params             int64    `json:"params"`
	MACs               int64    `json:"macs"`
	Notes              []string `json:"notes,omitempty"`
}

// Summary is the one-line description: "resnet18, 1000 classes, BN folded".
func (r *Report) Summary() string {
	var parts []string
	switch {
	case r.Architecture != "":
		name := r.Architecture
		if cat, err := models.Lookup(r.Architecture); err == nil && r.Shortcut != "" && string(cat.Shortcut) != r.Shortcut {
			name += " (shortcut " + r.Shortcut + ")"
		}
		parts = append(parts, name)
	case r.Spec != nil:
		s := r.Spec
		parts = append(parts, fmt.Sprintf("ResNet outside the catalog (%s stem, %s blocks %v, shortcut %s)", s.Family, s.Block, s.Depths, s.Shortcut))
	default:
		parts = append(parts, fmt.Sprintf("general graph, not a ResNet the builder makes (%d ops)", r.Nodes))
	}
	parts = append(parts, fmt.Sprintf("%d classes", r.Classes))
	switch {
	case r.BNFolded:
		parts = append(parts, "BN folded")
	case r.Spec != nil:
		parts = append(parts, "BN kept")
	}
	return strings.Join(parts, ", ")
}

// String is the report as a few lines of text.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", r.Summary())
	src := r.Source
	if src == "" {
		src = "(bytes)"
	}
	fmt.Fprintf(&b, "  source:  %s", src)
	if r.Producer != "" {
		fmt.Fprintf(&b, " by %s", r.Producer)
	}
	fmt.Fprintf(&b, ", opset %d, IR version %d, %d ONNX nodes\n", r.Opset, r.IRVersion, r.ONNXNodes)
	how := map[Method]string{
		MethodExact:      "exact (resnetctl export, rebuilt from its architecture metadata and verified node for node)",
		MethodRecognised: "recognised by structure (torchvision parameter names)",
		MethodGeneral:    "general graph (the file's ops and names)",
	}[r.Method]
	fmt.Fprintf(&b, "  import:  %s\n", how)
	fmt.Fprintf(&b, "  input:   %s (file layout %s; the model takes NCHW)\n", r.Input, r.InputLayout)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note:    %s\n", n)
	}
	return b.String()
}

// Load imports the ONNX model in the file at path: a regular file (a FIFO
// would block forever) of at most onnxpb.MaxModelBytes. External tensor
// data is read next to it, inside its folder.
func Load(path string) (*build.Graph, *Report, error) {
	b, err := regularfile.ReadFile(path, onnxpb.MaxModelBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("onnximport: %w", err)
	}
	g, r, err := fromBytes(b, onnxmodel.NewExternalData(filepath.Dir(path)))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Source = path
	return g, r, nil
}

// FromBytes imports an ONNX model from its serialized bytes. The returned
// graph passes build.Graph.Check and has every parameter's data. A model
// whose tensors are in external files is refused: Load reads them.
func FromBytes(b []byte) (*build.Graph, *Report, error) { return fromBytes(b, nil) }

func fromBytes(b []byte, ext *onnxmodel.ExternalData) (*build.Graph, *Report, error) {
	defer ext.Close()
	mp, err := onnxmodel.Decode(b)
	if err != nil {
		return nil, nil, fmt.Errorf("onnximport: %w", err)
	}
	og, err := readGraph(mp, ext)
	if err != nil {
		return nil, nil, err
	}
	r := &Report{IRVersion: mp.GetIrVersion(), Opset: og.opset, ONNXNodes: len(og.nodes), InputLayout: "NCHW"}
	if p := strings.TrimSpace(mp.GetProducerName() + " " + mp.GetProducerVersion()); p != "" {
		r.Producer = p
	}
	var g *build.Graph
	if og.meta[export.MetaArchitecture] != "" {
		eg, softmax, err := exactImport(mp, og)
		if err == nil {
			g = eg
			r.Method, r.Softmax = MethodExact, softmax
			r.BNFolded = og.meta[export.MetaFoldedBN] == "true"
			r.PreprocessFromFile = knownPreprocess(g.Spec)
		} else {
			r.Notes = append(r.Notes, fmt.Sprintf("the file carries resnetctl architecture metadata but is not that architecture's export (%v); imported by structure instead", err))
		}
	}
	if g == nil {
		if g, err = structural(og, r); err != nil {
			return nil, nil, err
		}
	}
	if err := g.Check(); err != nil {
		return nil, nil, fmt.Errorf("onnximport: internal error: the imported graph is not valid: %w", err)
	}
	if g.Spec.Family != "" {
		s := g.Spec.Clone()
		r.Spec = &s
		r.Shortcut = string(s.Shortcut)
		if _, name, ok := catalogMatch(s); ok && r.Method == MethodExact {
			r.Architecture = name
		}
	}
	r.Classes, r.Input = g.Spec.Classes, g.Spec.Input
	c := g.Counts()
	r.Nodes, r.Params, r.MACs = len(g.Nodes), c.Total(), c.MACs
	return g, r, nil
}

// structural lowers the graph op by op and recognises its structure.
func structural(og *onnxGraph, r *Report) (*build.Graph, error) {
	l := &lowerer{
		og: og, g: &build.Graph{Input: "input"}, vals: map[string]*lval{}, used: map[string]bool{},
		names: map[string]bool{}, sub: map[*build.Node][2]int{}, spad: map[*build.Node]int{},
		converted: map[string]bool{}, owned: map[*float32]bool{},
	}
	for _, n := range reservedNames {
		l.names[n] = true
	}
	logits, softmax, err := chooseOutput(og)
	if err != nil {
		return nil, err
	}
	live := og.live(logits)
	l.used[logits] = true
	for k, np := range og.nodes {
		if live[k] {
			for _, in := range np.GetInput() {
				l.used[in] = true
			}
		}
	}
	in, err := l.input(live)
	if err != nil {
		return nil, err
	}
	if in.nhwc {
		r.InputLayout = "NHWC"
		r.Notes = append(r.Notes, fmt.Sprintf("the file's input is NHWC (N, %d, %d, %d); the imported model takes NCHW (N, %d, %d, %d)", in.shape.H, in.shape.W, in.shape.C, in.shape.C, in.shape.H, in.shape.W))
	}
	l.lower(live)
	if l.fatal != nil {
		return nil, l.fatal
	}
	out := l.vals[logits]
	if len(l.blocked) == 0 {
		switch {
		case out == nil || out.d == nil:
			return nil, unsupportedf("the output %q is not computed from the input", logits)
		case out.d.rank == 4 && out.d.shape.H == 1 && out.d.shape.W == 1:
			out = &lval{d: l.emit(&build.Node{Name: "flatten_output", Kind: build.Flatten, Inputs: []string{out.d.name}, Shape: out.d.shape}, 2, false)}
			r.Notes = append(r.Notes, "the output was (N, C, 1, 1); a Flatten makes it (N, C)")
		case out.d.rank == 4:
			return nil, unsupportedf("the output %q is a %v map per sample; resnetctl models output (N, classes) scores", logits, out.d.onnxDims())
		}
		l.g.Output = out.d.name
		if l.g.Output == l.g.Input {
			return nil, unsupportedf("the output is the input: the graph computes nothing")
		}
		l.blocked = append(l.blocked, l.fuse()...)
	}
	if len(l.blocked) > 0 {
		return nil, &BlockedError{Nodes: l.blocked}
	}
	if n := pruneNodes(l.g); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d nodes the output does not depend on were dropped", n))
	}
	if softmax {
		r.Softmax = true
		r.Notes = append(r.Notes, "the file ends in a Softmax; the imported model ends at the logits (re-exports add \"probabilities\" again)")
	}
	var types []string
	for t := range l.converted {
		types = append(types, t)
	}
	sort.Strings(types)
	if len(types) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("weights stored as %s were converted to float32", strings.Join(types, ", ")))
	}
	g := l.g
	g.Spec = models.Spec{Name: "imported", Input: in.shape, Classes: g.Nodes[len(g.Nodes)-1].Shape.C}
	g.Reindex()
	meta := fileSpec(og)
	if n := mergeConvBias(g); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d convolution biases that fed a BatchNorm were moved into its running mean (the torchvision form)", n))
	}
	rec, rerr := recognise(g)
	if rec == nil {
		r.Method = MethodGeneral
		r.Notes = append(r.Notes, fmt.Sprintf("not recognised as a ResNet: %v", rerr))
		if meta != nil {
			if meta.Name != "" {
				g.Spec.Name = meta.Name
			}
			if fits(meta, g.Spec) {
				g.Spec.Labels, g.Spec.Preprocess = meta.Labels, meta.Preprocess
				r.PreprocessFromFile = knownPreprocess(g.Spec)
			}
		}
		if !r.PreprocessFromFile {
			r.Notes = append(r.Notes, "the file does not say how to preprocess images, and a general graph has no catalog preset to assume: give the preprocessing when training or predicting")
		}
		return g, nil
	}
	r.Method = MethodRecognised
	r.Architecture = rec.catalog
	r.BNFolded = isFolded(g)
	spec := &rec.graph.Spec
	switch {
	case meta != nil && fits(meta, *spec):
		spec.Labels, spec.Preprocess = meta.Labels, meta.Preprocess
		r.PreprocessFromFile = knownPreprocess(*spec)
		if rec.catalog == "" && meta.Name != "" {
			spec.Name = meta.Name
		}
	case rec.catalog == "":
		spec.Name = "imported_resnet"
	}
	if meta == nil {
		if spec.Preprocess.Name == "" {
			r.Notes = append(r.Notes, "the file does not say how to preprocess images; the Spec scales pixels to [0, 1] and nothing more")
		} else {
			r.Notes = append(r.Notes, fmt.Sprintf("the file does not say how to preprocess images; the Spec assumes the %s preset", spec.Preprocess.Name))
		}
	}
	return rec.graph, nil
}

// fileSpec reads a resnetctl "architecture" metadata Spec, if any. A
// resnetctl export of a general graph has no architecture, only the label
// set and the preprocessing when they are known; the Spec returned then
// has no name and family, its input shape from the preprocessing's input
// size and its class count from the label set (0 when there is none).
func fileSpec(og *onnxGraph) *models.Spec {
	var spec models.Spec
	if s, ok := og.meta[export.MetaArchitecture]; ok {
		if json.Unmarshal([]byte(s), &spec) != nil || spec.Name == "" {
			return nil
		}
		return &spec
	}
	var pre export.Preprocessing
	if json.Unmarshal([]byte(og.meta[export.MetaPreprocess]), &pre) != nil || len(pre.InputSize) != 3 || pre.Layout != "NCHW" || pre.Color != "RGB" {
		return nil
	}
	spec.Input = models.Shape{C: pre.InputSize[0], H: pre.InputSize[1], W: pre.InputSize[2]}
	spec.Preprocess = models.Preprocess{Name: pre.Preset, Scale: pre.Scale, Mean: pre.Mean, Std: pre.Std}
	if set := og.meta[export.MetaLabelSet]; set != "" {
		if l, err := models.Labels(set); err == nil {
			spec.Labels, spec.Classes = set, len(l)
		}
	}
	if !knownPreprocess(spec) {
		return nil
	}
	return &spec
}

// fits reports whether a file's metadata Spec describes a graph with s's
// input shape and class count (0 when the metadata does not say).
func fits(meta *models.Spec, s models.Spec) bool {
	return meta.Input == s.Input && (meta.Classes == s.Classes || meta.Classes == 0 && meta.Family == "")
}

// knownPreprocess reports whether a Spec says how to preprocess images.
func knownPreprocess(s models.Spec) bool {
	p := s.Preprocess
	return p.Scale != 0 && len(p.Mean) == s.Input.C && len(p.Std) == s.Input.C
}

// chooseOutput picks the value to import as the logits: the one graph
// output, or the input of a final Softmax (which is then reported), or of
// two outputs the one the other is the Softmax of.
func chooseOutput(og *onnxGraph) (logits string, softmax bool, err error) {
	softmaxOf := func(v string) string {
		i, ok := og.producer[v]
		if !ok {
			return ""
		}
		np := og.nodes[i]
		if np.GetOpType() != "Softmax" || len(np.GetInput()) != 1 {
			return ""
		}
		a, err := attrsOf(np)
		if err != nil {
			return ""
		}
		def := int64(1)
		if og.opset >= 13 {
			def = -1
		}
		if ax, err := a.int("axis", def); err != nil || (ax != 1 && ax != -1) {
			return ""
		}
		return np.GetInput()[0]
	}
	outs := og.outputs
	switch len(outs) {
	case 1:
		if s := softmaxOf(outs[0]); s != "" {
			return s, true, nil
		}
		return outs[0], false, nil
	case 2:
		if softmaxOf(outs[1]) == outs[0] {
			return outs[0], true, nil
		}
		if softmaxOf(outs[0]) == outs[1] {
			return outs[1], true, nil
		}
	}
	return "", false, unsupportedf("the graph has %d outputs (%s); a classifier with one output (and optionally its softmax) is imported", len(outs), strings.Join(outs, ", "))
}

// input finds the one image input and how it is laid out.
func (l *lowerer) input(live []bool) (*dval, error) {
	og := l.og
	var names []string
	for _, vi := range og.inputs {
		names = append(names, vi.GetName())
	}
	if len(og.inputs) != 1 {
		return nil, unsupportedf("the graph has %d inputs (%s); a model with one image input is imported", len(og.inputs), strings.Join(names, ", "))
	}
	vi := og.inputs[0]
	tt := vi.GetType().GetTensorType()
	if tt == nil || onnxpb.TensorProto_DataType(tt.GetElemType()) != onnxpb.TensorProto_FLOAT {
		return nil, unsupportedf("the input %q is not a float32 tensor", vi.GetName())
	}
	dims := tt.GetShape().GetDim()
	if len(dims) != 4 {
		return nil, unsupportedf("the input %q has rank %d; images (N, C, H, W) are imported", vi.GetName(), len(dims))
	}
	var d [4]int64
	for k, dim := range dims {
		d[k] = dim.GetDimValue()
		if k > 0 && (d[k] < 1 || d[k] > 1<<20) {
			return nil, unsupportedf("the input %q has no fixed size on axis %d (shape %s); images of one size are imported", vi.GetName(), k, dimsString(dims))
		}
	}
	if d[0] > 0 {
		l.fixedBatch = d[0]
	}
	x := &dval{name: l.g.Input, rank: 4, shape: models.Shape{C: int(d[1]), H: int(d[2]), W: int(d[3])}}
	if nhwcInput(og, live, vi.GetName()) {
		x.nhwc = true
		x.shape = models.Shape{C: int(d[3]), H: int(d[1]), W: int(d[2])}
	}
	l.vals[vi.GetName()] = &lval{d: x}
	return x, nil
}

// nhwcInput says whether the input reaches the layout-sensitive ops only
// through Transposes from NHWC to NCHW (possibly after layout-agnostic ops
// such as a zero Pad), as in tf2onnx files.
func nhwcInput(og *onnxGraph, live []bool, input string) bool {
	readers := map[string][]int{}
	for k, np := range og.nodes {
		if live[k] {
			for _, in := range np.GetInput() {
				readers[in] = append(readers[in], k)
			}
		}
	}
	transposes := 0
	ok := walk(input, func(v string) ([]string, bool) {
		var next []string
		for _, k := range readers[v] {
			np := og.nodes[k]
			switch np.GetOpType() {
			case "Transpose":
				a, err := attrsOf(np)
				if err != nil {
					return nil, false
				}
				if p, _ := a.ints("perm", nil); !slices.Equal(p, []int64{0, 3, 1, 2}) {
					return nil, false
				}
				transposes++
			case "Identity", "Cast", "Pad", "Relu", "Dropout":
				if np.GetInput()[0] != v || len(np.GetOutput()) == 0 {
					return nil, false
				}
				next = append(next, np.GetOutput()[0])
			default:
				return nil, false
			}
		}
		return next, true
	})
	return ok && transposes > 0
}

func dimsString(dims []*onnxpb.TensorShapeProto_Dimension) string {
	var parts []string
	for _, d := range dims {
		switch {
		case d.GetDimParam() != "":
			parts = append(parts, d.GetDimParam())
		case d.GetDimValue() > 0:
			parts = append(parts, fmt.Sprint(d.GetDimValue()))
		default:
			parts = append(parts, "?")
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
