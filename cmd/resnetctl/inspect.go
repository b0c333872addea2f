package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/checked"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/printable"
	"github.com/resnetctl/resnetctl/internal/regularfile"
	"github.com/resnetctl/resnetctl/train"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
)

// InspectOptions are the inputs of `resnetctl inspect`.
type InspectOptions struct {
	Streams *Streams
	Path    string // an .onnx file, or a checkpoint folder
	JSON    bool
}

// NewCmdInspect makes `resnetctl inspect`; runF replaces the run function in tests.
func NewCmdInspect(s *Streams, runF func(*InspectOptions) error) *cobra.Command {
	opts := &InspectOptions{Streams: s}
	c := &cobra.Command{
		Use:   "inspect [flags] MODEL.onnx|CHECKPOINT",
		Short: "Describe any ONNX file or checkpoint: inputs, outputs, ops, size, and whether it runs",
		Long: `Describe an ONNX file from any tool: producer, IR version and opsets, inputs and
outputs with their shapes and types, metadata, a histogram of the ops, the
parameter count (elements of the initializers), the multiply-accumulates per
sample at the declared input shape (where the graph can be read as a network
resnetctl knows; otherwise n/a), and whether resnetctl's runtime runs it,
naming every node that stands in the way.

A checkpoint folder (model.onnx and trainer.json, as train and import write)
also gets a summary of its trainer state: epochs, steps, recipe, data.`,
		Example: `  resnetctl inspect resnet50.onnx
  resnetctl inspect runs/r20/best
  resnetctl inspect --json model.onnx`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf(c, "inspect takes one .onnx file or checkpoint folder (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			opts.Path = args[0]
			if runF != nil {
				return runF(opts)
			}
			return inspectRun(opts)
		},
	}
	c.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	return c
}

type inspectTensor struct {
	Name  string   `json:"name"`
	Type  string   `json:"type"`
	Shape []string `json:"shape"` // numbers, symbolic names, "?" when unknown; null when undeclared
}

type inspectOp struct {
	Op    string `json:"op"`
	Count int    `json:"count"`
}

type inspectReport struct {
	File            string            `json:"file"`
	Producer        string            `json:"producer"`
	ProducerVersion string            `json:"producer_version"`
	IRVersion       int64             `json:"ir_version"`
	Opsets          map[string]int64  `json:"opsets"` // by domain ("" is ai.onnx)
	Graph           string            `json:"graph"`
	Inputs          []inspectTensor   `json:"inputs"`
	Outputs         []inspectTensor   `json:"outputs"`
	Metadata        map[string]string `json:"metadata"`
	Nodes           int               `json:"nodes"`
	Ops             []inspectOp       `json:"ops"` // most used first
	// Parameters counts the initializers' elements; nil when a declared
	// shape overflows.
	Parameters *int64 `json:"parameters"`
	// MACs per sample at the declared input shape, nil when not
	// computable (MACsNote says why).
	MACs      *int64   `json:"macs"`
	MACsNote  string   `json:"macs_note,omitempty"`
	Supported bool     `json:"supported"`
	Blocking  []string `json:"blocking,omitempty"` // what the runtime refuses, one entry per problem
	// Checkpoint summarises trainer.json for a checkpoint folder.
	Checkpoint *inspectCheckpoint `json:"checkpoint,omitempty"`
}

type inspectCheckpoint struct {
	Epoch        int               `json:"epoch"`
	Step         int               `json:"step"`
	Recipe       string            `json:"recipe"`
	RecipeEpochs int               `json:"recipe_epochs"`
	Batch        int               `json:"batch"`
	Partial      bool              `json:"partial"` // saved in the middle of an epoch
	Best         *train.Best       `json:"best,omitempty"`
	Data         *train.DataRecord `json:"data,omitempty"`
}

func inspectRun(opts *InspectOptions) error {
	file, ckpt := opts.Path, (*inspectCheckpoint)(nil)
	if st, err := os.Stat(opts.Path); err == nil && st.IsDir() {
		file = filepath.Join(opts.Path, train.ModelFile)
		// import's folders have no trainer state: the model alone.
		trainer := filepath.Join(opts.Path, train.TrainerFile)
		if _, err := os.Lstat(trainer); err == nil {
			if ckpt, err = readTrainerSummary(trainer); err != nil {
				return err
			}
		}
	}
	b, err := regularfile.ReadFile(file, onnxpb.MaxModelBytes)
	if err != nil {
		return err
	}
	mp := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil {
		return fmt.Errorf("%s: not an ONNX model (protobuf: %v); is the file complete?", file, err)
	}
	r := inspectModel(file, mp)
	r.Checkpoint = ckpt
	// MACs need every node's shapes: read as a network resnetctl can
	// build (exact, torchvision-style or general import), else n/a.
	if g, _, err := onnximport.FromBytes(b); err == nil {
		macs := g.Counts().MACs
		r.MACs = &macs
	} else {
		r.MACsNote = "the graph is not one resnetctl can read as a network: " + blockedSummary(err)
	}
	// Whether the runtime runs it: its load lists every blocking problem.
	if sess, err := infer.LoadBytes(b, infer.Options{ExternalDataDir: filepath.Dir(file), Threads: 1}); err == nil {
		sess.Close()
		r.Supported = true
	} else {
		var le *infer.LoadError
		if errors.As(err, &le) {
			for _, p := range le.Problems {
				r.Blocking = append(r.Blocking, p.String())
			}
		} else {
			r.Blocking = []string{firstLine(err.Error())}
		}
	}
	w := opts.Streams.Out
	if opts.JSON {
		enc := json.NewEncoder(printable.JSON(w))
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	writeInspect(w, r)
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// readTrainerSummary reads the parts of trainer.json a person asks about
// first; the checkpoint's integrity is train's business (LoadCheckpoint).
func readTrainerSummary(path string) (*inspectCheckpoint, error) {
	raw, err := regularfile.ReadFile(path, 256<<20)
	if err != nil {
		return nil, err
	}
	var st train.TrainerState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &inspectCheckpoint{Epoch: st.Epoch, Step: st.Step, Recipe: st.Recipe.Name, RecipeEpochs: st.Recipe.Epochs,
		Batch: st.Recipe.Batch, Partial: st.Partial != nil, Best: st.Best, Data: st.Data}, nil
}

// inspectModel reads what the protobuf says by itself.
func inspectModel(file string, mp *onnxpb.ModelProto) *inspectReport {
	g := mp.GetGraph()
	r := &inspectReport{File: file, Producer: mp.GetProducerName(), ProducerVersion: mp.GetProducerVersion(),
		IRVersion: mp.GetIrVersion(), Opsets: map[string]int64{}, Graph: g.GetName(), Metadata: map[string]string{}, Nodes: len(g.GetNode())}
	for _, o := range mp.GetOpsetImport() {
		r.Opsets[o.GetDomain()] = o.GetVersion()
	}
	for _, kv := range mp.GetMetadataProps() {
		r.Metadata[kv.GetKey()] = kv.GetValue()
	}
	inits := map[string]bool{}
	var params int64
	ok := true
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
		n := 1
		for _, d := range t.GetDims() {
			if n, ok = checked.Mul(n, int(d)); !ok || d < 0 {
				ok = false
				break
			}
		}
		params += int64(n)
		ok = ok && params >= 0
	}
	if ok {
		r.Parameters = &params
	}
	for _, vi := range g.GetInput() {
		if !inits[vi.GetName()] { // initializers listed as inputs (IR < 4) are weights
			r.Inputs = append(r.Inputs, tensorOf(vi))
		}
	}
	for _, vi := range g.GetOutput() {
		r.Outputs = append(r.Outputs, tensorOf(vi))
	}
	count := map[string]int{}
	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			op = d + "." + op
		}
		count[op]++
	}
	for op, n := range count {
		r.Ops = append(r.Ops, inspectOp{op, n})
	}
	sort.Slice(r.Ops, func(i, j int) bool {
		if r.Ops[i].Count != r.Ops[j].Count {
			return r.Ops[i].Count > r.Ops[j].Count
		}
		return r.Ops[i].Op < r.Ops[j].Op
	})
	return r
}

func tensorOf(vi *onnxpb.ValueInfoProto) inspectTensor {
	tt := vi.GetType().GetTensorType()
	t := inspectTensor{Name: vi.GetName(), Type: infer.DType(tt.GetElemType()).String()}
	if vi.GetType().GetTensorType() == nil {
		t.Type = "not a tensor"
	}
	if sh := tt.GetShape(); sh != nil {
		t.Shape = []string{}
		for _, d := range sh.GetDim() {
			switch v := d.GetValue().(type) {
			case *onnxpb.TensorShapeProto_Dimension_DimValue:
				t.Shape = append(t.Shape, strconv.FormatInt(v.DimValue, 10))
			case *onnxpb.TensorShapeProto_Dimension_DimParam:
				t.Shape = append(t.Shape, v.DimParam)
			default:
				t.Shape = append(t.Shape, "?")
			}
		}
	}
	return t
}

// thousands writes n with comma separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func writeInspect(w io.Writer, r *inspectReport) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	// Names and metadata come from the file: escaped when they hold
	// control characters (printable.Name quotes, Text escapes).
	p("file:     %s\n", printable.Name(r.File))
	p("producer: %s\n", printable.Text(strings.TrimSpace(nonEmptyText(r.Producer, "(none)")+" "+r.ProducerVersion)))
	var opsets []string
	for d, v := range r.Opsets {
		opsets = append(opsets, fmt.Sprintf("%s %d", nonEmptyText(d, "ai.onnx"), v))
	}
	sort.Strings(opsets)
	p("format:   IR version %d, opset %s\n", r.IRVersion, printable.Text(strings.Join(opsets, ", ")))
	p("graph:    %s, %d nodes\n", printable.Name(r.Graph), r.Nodes)
	for _, sec := range []struct {
		name string
		ts   []inspectTensor
	}{{"inputs", r.Inputs}, {"outputs", r.Outputs}} {
		p("%s:\n", sec.name)
		for _, t := range sec.ts {
			shape := "shape not declared"
			if t.Shape != nil {
				shape = "[" + strings.Join(t.Shape, ", ") + "]"
			}
			p("  %s  %s %s\n", printable.Name(t.Name), t.Type, printable.Text(shape))
		}
	}
	if len(r.Metadata) > 0 {
		p("metadata:\n")
		keys := make([]string, 0, len(r.Metadata))
		for k := range r.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := r.Metadata[k]
			// Long values (the architecture's JSON) are cut; --json has them whole.
			if len(v) > 72 {
				v = fmt.Sprintf("%s… (%d bytes)", strings.ToValidUTF8(v[:64], ""), len(v))
			}
			p("  %s: %s\n", printable.Name(k), printable.Text(v))
		}
	}
	p("ops:\n")
	for _, o := range r.Ops {
		p("  %-22s %d\n", printable.Name(o.Op), o.Count)
	}
	if r.Parameters != nil {
		p("parameters: %s (initializer elements)\n", thousands(*r.Parameters))
	} else {
		p("parameters: n/a (an initializer's declared shape overflows)\n")
	}
	if r.MACs != nil {
		p("MACs:       %s per sample at the declared input shape\n", thousands(*r.MACs))
	} else {
		p("MACs:       n/a (%s)\n", printable.Text(r.MACsNote))
	}
	if r.Supported {
		p("runtime:    supported\n")
	} else {
		p("runtime:    not supported, %d problem(s):\n", len(r.Blocking))
		for _, b := range r.Blocking {
			p("  %s\n", printable.Text(b))
		}
	}
	if c := r.Checkpoint; c != nil {
		p("checkpoint:\n")
		part := ""
		if c.Partial {
			part = " (saved in the middle of the next)"
		}
		p("  epoch %d of %d%s, step %d, recipe %s, batch %d\n", c.Epoch, c.RecipeEpochs, part, c.Step, printable.Name(nonEmptyText(c.Recipe, "(none)")), c.Batch)
		if c.Best != nil {
			p("  best: %s %.4g at epoch %d\n", printable.Name(c.Best.Monitor), c.Best.Value, c.Best.Epoch)
		}
		if d := c.Data; d != nil {
			fp := d.Fingerprint
			if len(fp) > 12 {
				fp = fp[:12] + "…"
			}
			p("  data: %s (fingerprint %s), validation %s\n", printable.Name(d.Source), printable.Text(fp), printable.Text(nonEmptyText(d.Validation, "(none)")))
		} else {
			p("  data: not recorded\n")
		}
	}
}

func nonEmptyText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// blockedSummary is the first line of an import error, or for nodes the
// builder has no equivalent of, their count and op types (a quantized
// file's QuantizeLinear and DequantizeLinear, say).
func blockedSummary(err error) string {
	var be *onnximport.BlockedError
	if !errors.As(err, &be) || len(be.Nodes) < 2 {
		return firstLine(err.Error())
	}
	var ops []string
	for _, n := range be.Nodes {
		if !slices.Contains(ops, n.OpType) {
			ops = append(ops, n.OpType)
		}
	}
	return fmt.Sprintf("%d nodes have no build.Graph equivalent (%s)", len(be.Nodes), strings.Join(ops, ", "))
}
