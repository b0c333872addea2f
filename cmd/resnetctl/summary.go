package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/internal/numfmt"
	"github.com/resnetctl/resnetctl/models"
	"github.com/spf13/cobra"
)

// SummaryOptions are the inputs of `resnetctl summary`.
type SummaryOptions struct {
	Streams *Streams
	Spec    models.Spec
	JSON    bool
}

// NewCmdSummary makes `resnetctl summary`; runF replaces the run function in tests.
func NewCmdSummary(s *Streams, runF func(*SummaryOptions) error) *cobra.Command {
	opts := &SummaryOptions{Streams: s}
	var flags specFlags
	c := &cobra.Command{
		Use:   "summary [flags]",
		Short: "Print a model's layers, output shapes, parameters and MACs",
		Long: `Print a model layer by layer, as Keras' model.summary() does: each op with
its output shape (N is the batch), its parameters and its multiply-accumulates,
then the totals. Trainable parameters are what PyTorch's parameters() counts;
non-trainable ones are BatchNorm running statistics. MACs count convolutions and
dense layers for one image, the convention of torchvision's GFLOPS figures.`,
		Example: `  resnetctl summary --model resnet20
  resnetctl summary --model resnet56 --shortcut B --classes 100
  resnetctl summary --model resnet50 --input 3x160x160 --json
  resnetctl summary --model resnet50 --groups 32 --width-per-group 4   # ResNeXt-50 32x4d`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf(c, "summary takes no arguments, got %q (use --model)", args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			spec, err := flags.resolve(c)
			if err != nil {
				return err
			}
			opts.Spec = spec
			if runF != nil {
				return runF(opts)
			}
			return summaryRun(opts)
		},
	}
	flags.register(c, "resnet20")
	c.Flags().BoolVar(&opts.JSON, "json", false, "print JSON instead of a table")
	return c
}

// summaryLayer is one row of the summary, also its JSON form.
type summaryLayer struct {
	Name         string   `json:"name"`
	Type         string   `json:"type"`
	Inputs       []string `json:"inputs"`
	OutputShape  []int    `json:"output_shape"` // without the batch dimension
	Params       int64    `json:"params"`
	NonTrainable int64    `json:"non_trainable"`
	MACs         int64    `json:"macs"`
}

type summaryJSON struct {
	Model  models.Spec    `json:"model"`
	Layers []summaryLayer `json:"layers"`
	Totals struct {
		Params       int64 `json:"params"`
		Trainable    int64 `json:"trainable"`
		NonTrainable int64 `json:"non_trainable"`
		MACs         int64 `json:"macs"`
		Bytes        int64 `json:"bytes"` // float32 storage of every parameter
	} `json:"totals"`
}

func describeNode(n *build.Node) string {
	switch {
	case n.Conv != nil:
		s := fmt.Sprintf("Conv %dx%d/%d", n.Conv.Kernel, n.Conv.Kernel, n.Conv.Stride)
		if n.Conv.Groups > 1 {
			s += fmt.Sprintf(" g%d", n.Conv.Groups)
		}
		return s
	case n.Pool != nil:
		return fmt.Sprintf("%s %dx%d/%d", n.Kind, n.Pool.Kernel, n.Pool.Kernel, n.Pool.Stride)
	case n.Pad != nil:
		return fmt.Sprintf("ChannelPad /%d +%d+%d", n.Pad.Stride, n.Pad.Before, n.Pad.After)
	}
	return string(n.Kind)
}

func summarize(g *build.Graph) summaryJSON {
	var out summaryJSON
	out.Model = g.Spec
	for _, n := range g.Nodes {
		tr, nt := g.NodeParams(n)
		shape := []int{n.Shape.C, n.Shape.H, n.Shape.W}
		if n.Kind == build.Flatten || n.Kind == build.Dense || n.Kind == build.Softmax {
			shape = shape[:1]
		}
		out.Layers = append(out.Layers, summaryLayer{
			Name: n.Name, Type: describeNode(n), Inputs: n.Inputs, OutputShape: shape,
			Params: tr + nt, NonTrainable: nt, MACs: g.NodeMACs(n),
		})
	}
	c := g.Counts()
	out.Totals.Params, out.Totals.Trainable, out.Totals.NonTrainable = c.Total(), c.Trainable, c.NonTrainable
	out.Totals.MACs, out.Totals.Bytes = c.MACs, 4*c.Total()
	return out
}

func summaryRun(opts *SummaryOptions) error {
	g, err := build.New(opts.Spec, build.Options{ShapesOnly: true})
	if err != nil {
		return err
	}
	sum := summarize(g)
	w := opts.Streams.Out
	if opts.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	s := opts.Spec
	kind := fmt.Sprintf("%s, %s blocks, shortcut %s", s.Family, s.Block, s.Shortcut)
	if s.PreAct {
		kind += ", pre-activation"
	}
	if s.Groups > 1 || s.WidthPerGroup != 64 {
		kind += fmt.Sprintf(", %dx%dd", s.Groups, s.WidthPerGroup)
	}
	if s.Widen > 1 {
		kind += fmt.Sprintf(", widen %d", s.Widen)
	}
	fmt.Fprintf(w, "Model: %s (depth %d; %s)\n", s.Name, s.Depth(), kind)
	fmt.Fprintf(w, "Input: (N, %d, %d, %d)   Classes: %d", s.Input.C, s.Input.H, s.Input.W, s.Classes)
	if s.Labels != "" {
		fmt.Fprintf(w, " (%s)", s.Labels)
	}
	fmt.Fprintln(w)
	rows := [][]string{{"Layer (type)", "Output shape", "Param #", "MACs", "Connected to"}}
	for _, l := range sum.Layers {
		shape := make([]string, len(l.OutputShape))
		for i, d := range l.OutputShape {
			shape[i] = fmt.Sprint(d)
		}
		rows = append(rows, []string{fmt.Sprintf("%s (%s)", l.Name, l.Type), "(N, " + strings.Join(shape, ", ") + ")",
			numfmt.Commas(l.Params), numfmt.Commas(l.MACs), strings.Join(l.Inputs, ", ")})
	}
	rule := writeTable(w, rows, []bool{false, false, true, true, false})
	t := sum.Totals
	fmt.Fprintln(w, rule)
	fmt.Fprintf(w, "Total params: %s (%.2f MB as float32)\n", numfmt.Commas(t.Params), float64(t.Bytes)/(1<<20))
	fmt.Fprintf(w, "Trainable params: %s\n", numfmt.Commas(t.Trainable))
	fmt.Fprintf(w, "Non-trainable params: %s (BatchNorm running statistics)\n", numfmt.Commas(t.NonTrainable))
	fmt.Fprintf(w, "MACs per image: %s (%s)\n", numfmt.Commas(t.MACs), humanSI(t.MACs))
	if r := s.Reference; r.Params != 0 && s.Name != "" {
		if base, err := models.Lookup(s.Name); err == nil && specsEqual(base, s) {
			fmt.Fprintf(w, "Published: %s params", numfmt.Commas(r.Params))
			if r.MACs != 0 {
				fmt.Fprintf(w, ", %s MACs", humanSI(r.MACs))
			}
			fmt.Fprintf(w, " (%s)\n", r.Source)
		}
	}
	return nil
}

// writeTable prints rows with aligned columns (right-aligned where right
// is set), a rule under the header, and returns the rule for the caller.
func writeTable(w io.Writer, rows [][]string, right []bool) string {
	width := make([]int, len(right))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	total := 0
	for _, n := range width {
		total += n + 2
	}
	rule := strings.Repeat("─", total-2)
	for k, r := range rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if right[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
			b.WriteString("  ")
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if k == 0 {
			fmt.Fprintln(w, rule)
		}
	}
	return rule
}

// specsEqual reports whether two specs describe the same architecture.
func specsEqual(a, b models.Spec) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
