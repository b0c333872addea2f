package onnximport

import (
	"fmt"
	"slices"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/models"
)

// Recognition works on structure alone, never on names: a graph is put in
// a canonical order (a depth-first walk from the output that visits the
// longer input of every Add first, so the residual branch comes before the
// shortcut whatever order the file used), a Spec is guessed from that
// order (stem, stages from the Add nodes, block kind, widths …), the
// builder makes the guessed Spec's graph, and the two are compared node for
// node: op, attributes, shapes, parameter shapes and wiring. Only a graph
// that matches exactly is called a ResNet.

// orderedInputs lists a node's inputs, an Add's deeper input first.
func orderedInputs(n *build.Node, depth map[string]int) []string {
	if n.Kind != build.Add || len(n.Inputs) != 2 {
		return n.Inputs
	}
	if depth[n.Inputs[1]] > depth[n.Inputs[0]] {
		return []string{n.Inputs[1], n.Inputs[0]}
	}
	return n.Inputs
}

// canonical returns g's nodes in canonical order, each node's position,
// and the longest-path depth of every value.
func canonical(g *build.Graph) ([]*build.Node, map[*build.Node]int, map[string]int) {
	x := indexGraph(g)
	depth := map[string]int{g.Input: 0}
	for _, n := range g.Nodes { // topological order
		d := 0
		for _, in := range n.Inputs {
			d = max(d, depth[in])
		}
		depth[n.Output] = d + 1
	}
	pos := map[*build.Node]int{}
	var order []*build.Node
	type frame struct {
		n    *build.Node
		next int
	}
	root := x.producer[g.Output]
	if root == nil {
		return nil, pos, depth
	}
	visited := map[*build.Node]bool{root: true}
	stack := []frame{{n: root}}
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		ins := orderedInputs(f.n, depth)
		if f.next < len(ins) {
			p := x.producer[ins[f.next]]
			f.next++
			if p != nil && !visited[p] {
				visited[p] = true
				stack = append(stack, frame{n: p})
			}
			continue
		}
		pos[f.n] = len(order)
		order = append(order, f.n)
		stack = stack[:len(stack)-1]
	}
	return order, pos, depth
}

// shapedGraph is a graph with its canonical order.
type shapedGraph struct {
	g     *build.Graph
	order []*build.Node
	pos   map[*build.Node]int
	depth map[string]int
	x     *graphIndex
}

func shape(g *build.Graph) *shapedGraph {
	order, pos, depth := canonical(g)
	return &shapedGraph{g: g, order: order, pos: pos, depth: depth, x: indexGraph(g)}
}

// source is the canonical position of the node producing v, -1 for the
// graph input.
func (s *shapedGraph) source(v string) int {
	if p := s.x.producer[v]; p != nil {
		return s.pos[p]
	}
	return -1
}

// sameStructure compares two graphs node for node in canonical order,
// ignoring names and parameter values. BatchNorm epsilon and momentum are
// not compared (they are taken from the file).
func sameStructure(a, b *shapedGraph) error {
	if len(a.order) != len(a.g.Nodes) || len(b.order) != len(b.g.Nodes) {
		return fmt.Errorf("a graph has nodes the output does not depend on")
	}
	if len(a.order) != len(b.order) {
		return fmt.Errorf("%d nodes, the architecture has %d", len(a.order), len(b.order))
	}
	for i, na := range a.order {
		nb := b.order[i]
		where := func(format string, args ...any) error {
			return fmt.Errorf("node %d (%s, %s in the file): %s", i, nb.Name, na.Name, fmt.Sprintf(format, args...))
		}
		if na.Kind != nb.Kind {
			return where("%s, the architecture has %s", na.Kind, nb.Kind)
		}
		if na.Shape != nb.Shape {
			return where("outputs %s, the architecture %s", na.Shape, nb.Shape)
		}
		switch {
		case na.Conv != nil && (nb.Conv == nil || *na.Conv != *nb.Conv):
			return where("convolution %+v, the architecture %+v", *na.Conv, nb.Conv)
		case na.Pool != nil && (nb.Pool == nil || *na.Pool != *nb.Pool):
			return where("pooling %+v, the architecture %+v", *na.Pool, nb.Pool)
		case na.Pad != nil && (nb.Pad == nil || *na.Pad != *nb.Pad):
			return where("channel pad %+v, the architecture %+v", *na.Pad, nb.Pad)
		}
		ia, ib := orderedInputs(na, a.depth), orderedInputs(nb, b.depth)
		if len(ia) != len(ib) {
			return where("%d inputs, the architecture %d", len(ia), len(ib))
		}
		for k := range ia {
			if sa, sb := a.source(ia[k]), b.source(ib[k]); sa != sb {
				return where("input %d comes from node %d, in the architecture from node %d", k, sa, sb)
			}
		}
		if len(na.Params) != len(nb.Params) {
			return where("%d parameters, the architecture %d", len(na.Params), len(nb.Params))
		}
		for k := range na.Params {
			pa, pb := a.g.Param(na.Params[k]), b.g.Param(nb.Params[k])
			if pa == nil || pb == nil || !slices.Equal(pa.Shape, pb.Shape) {
				return where("parameter %d has shape %v, the architecture %v", k, shapeOf(pa), shapeOf(pb))
			}
		}
	}
	return nil
}

func shapeOf(p *build.Param) []int {
	if p == nil {
		return nil
	}
	return p.Shape
}

// isFolded says whether g looks like an export with BatchNorm folded: no
// BatchNorm right after a convolution, and convolutions with biases.
func isFolded(g *build.Graph) bool {
	x := indexGraph(g)
	bias := false
	for _, n := range g.Nodes {
		switch n.Kind {
		case build.BatchNorm:
			if p := x.producer[n.Inputs[0]]; p != nil && p.Kind == build.Conv {
				return false
			}
		case build.Conv:
			bias = bias || n.Conv.Bias
		}
	}
	return bias
}

// guessSpecs proposes the Specs a graph may have been built from: the
// layout read off its structure, with each block kind and pre-activation
// setting that fits. Each still has to be verified by building it.
func guessSpecs(s *shapedGraph) []models.Spec {
	g := s.g
	if len(s.order) < 4 {
		return nil
	}
	stem := s.order[0]
	if stem.Kind != build.Conv || len(stem.Inputs) != 1 || stem.Inputs[0] != g.Input || stem.Conv.Groups != 1 || stem.Conv.Dilation != 1 {
		return nil
	}
	var family models.Family
	switch c := stem.Conv; {
	case c.Kernel == 7 && c.Stride == 2 && c.Pad == 3:
		family = models.ImageNet
	case c.Kernel == 3 && c.Stride == 1 && c.Pad == 1:
		family = models.CIFAR
	default:
		return nil
	}
	last := s.order[len(s.order)-1]
	if last.Kind != build.Dense {
		return nil
	}
	var depths, outs []int
	shortcut, groups := models.ShortcutB, 1
	var convs3 []*build.Node // 3x3 convolutions after the stem
	prevH := 0
	for _, n := range s.order[1:] {
		switch n.Kind {
		case build.Add:
			// A stage is a run of blocks at one resolution.
			if len(outs) == 0 || n.Shape.H != prevH {
				depths, outs = append(depths, 1), append(outs, n.Shape.C)
			} else {
				depths[len(depths)-1]++
				if n.Shape.C != outs[len(outs)-1] {
					return nil
				}
			}
			prevH = n.Shape.H
		case build.ChannelPad:
			shortcut = models.ShortcutA
		case build.Conv:
			groups = max(groups, n.Conv.Groups)
			if n.Conv.Kernel == 3 {
				convs3 = append(convs3, n)
			}
		}
	}
	if len(depths) == 0 {
		return nil
	}
	base := models.Spec{
		Family: family, Depths: depths, StemWidth: stem.Shape.C, Shortcut: shortcut,
		Groups: 1, WidthPerGroup: 64, Widen: 1, Classes: last.Shape.C, Input: g.Spec.Input,
		Preprocess: neutralPreprocess(g.Spec.Input.C),
	}
	var specs []models.Spec
	for _, block := range []models.Block{models.Basic, models.Bottleneck} {
		sp := base.Clone()
		sp.Block = block
		sp.Widths = nil
		for _, c := range outs {
			if c%block.Expansion() != 0 {
				sp.Widths = nil
				break
			}
			sp.Widths = append(sp.Widths, c/block.Expansion())
		}
		if sp.Widths == nil {
			continue
		}
		if block == models.Bottleneck {
			sp.Groups = groups
			wpg, ok := widthPerGroup(sp, convs3)
			if !ok {
				continue
			}
			sp.WidthPerGroup = wpg
		} else if groups != 1 {
			continue
		}
		for _, preact := range []bool{false, true} {
			v := sp.Clone()
			v.PreAct = preact
			if v.Validate() == nil {
				specs = append(specs, v)
			}
		}
	}
	return specs
}

// widthPerGroup finds the bottleneck inner width from the first 3x3
// convolution of each stage.
func widthPerGroup(sp models.Spec, convs3 []*build.Node) (int, bool) {
	total := 0
	for _, d := range sp.Depths {
		total += d
	}
	if len(convs3) != total {
		return 0, false
	}
	wpg, at := 0, 0
	for i, d := range sp.Depths {
		inner, planes := convs3[at].Shape.C, sp.Widths[i]
		at += d
		if inner%sp.Groups != 0 || (inner/sp.Groups*64)%planes != 0 {
			return 0, false
		}
		w := inner / sp.Groups * 64 / planes
		if (wpg != 0 && w != wpg) || w < 1 {
			return 0, false
		}
		wpg = w
	}
	return wpg, true
}

// neutralPreprocess is a valid placeholder for Specs whose preprocessing
// is not known: pixels scaled to [0, 1], nothing subtracted.
func neutralPreprocess(c int) models.Preprocess {
	p := models.Preprocess{Scale: 1.0 / 255}
	for range c {
		p.Mean = append(p.Mean, 0)
		p.Std = append(p.Std, 1)
	}
	return p
}

// structureKey summarises what a Spec builds, without names, classes,
// input size or shortcut: Specs with equal keys build the same layers.
func structureKey(s models.Spec) string {
	var widths []int
	for _, w := range s.Widths {
		if s.Block == models.Basic {
			widths = append(widths, w*s.Widen)
		} else {
			widths = append(widths, w, w*s.WidthPerGroup/64*s.Groups*s.Widen)
		}
	}
	groups := s.Groups
	if s.Block == models.Basic {
		groups = 1
	}
	return fmt.Sprintf("%s/%s/%v/%v/stem%d/preact=%v/groups=%d", s.Family, s.Block, s.Depths, widths, s.StemWidth, s.PreAct, groups)
}

// catalogMatch finds the catalog architecture with s's structure: a
// preset, or a CIFAR basic-block ResNet of any 6n+2 depth. The result
// keeps s's classes, input and shortcut; ok is false when none matches.
func catalogMatch(s models.Spec) (match models.Spec, name string, ok bool) {
	key := structureKey(s)
	for _, n := range models.Names() {
		p, err := models.Lookup(n)
		if err == nil && structureKey(p) == key {
			return p, n, true
		}
	}
	if s.Family == models.CIFAR && s.Block == models.Basic && !s.PreAct && len(s.Depths) == 3 &&
		s.Depths[0] == s.Depths[1] && s.Depths[1] == s.Depths[2] {
		depth := 6*s.Depths[0] + 2
		if p, err := models.CIFARDepth(depth, models.Basic); err == nil && structureKey(p) == key {
			return p, p.Name, true
		}
	}
	return models.Spec{}, "", false
}

// recognition is a graph matched to a Spec.
type recognition struct {
	spec    models.Spec
	catalog string // catalog name, "" for a ResNet outside the catalog
	graph   *build.Graph
}

// recognise tries to match g (a lowered graph) to a ResNet. It returns
// nil and the closest mismatch when no Spec fits.
func recognise(g *build.Graph) (*recognition, error) {
	a := shape(g)
	folded := isFolded(g)
	var lastErr error = fmt.Errorf("no ResNet stem (3x3 stride-1 or 7x7 stride-2 convolution on the input), residual blocks and dense head found")
	for _, guess := range guessSpecs(a) {
		candidates := []models.Spec{guess}
		var catName string
		if cat, name, ok := catalogMatch(guess); ok {
			if cat.Classes != guess.Classes || cat.Input != guess.Input || cat.Shortcut != guess.Shortcut {
				cat.Reference = models.Reference{}
			}
			cat.Classes, cat.Input, cat.Shortcut = guess.Classes, guess.Input, guess.Shortcut
			candidates = []models.Spec{cat, guess}
			catName = name
		}
		for k, spec := range candidates {
			if spec.Labels != "" {
				if labels, err := models.Labels(spec.Labels); err != nil || len(labels) != spec.Classes {
					spec.Labels = ""
				}
			}
			if spec.Input.C != len(spec.Preprocess.Mean) {
				spec.Preprocess = neutralPreprocess(spec.Input.C)
			}
			gb, err := build.New(spec, build.Options{ShapesOnly: true})
			if err != nil {
				lastErr = err
				continue
			}
			if folded {
				foldBN(gb)
			}
			b := shape(gb)
			if err := sameStructure(a, b); err != nil {
				lastErr = err
				continue
			}
			r := &recognition{spec: spec, graph: gb}
			if k == 0 && catName != "" {
				r.catalog = catName
			}
			// Parameters and BatchNorm settings come from the file.
			for i, na := range a.order {
				nb := b.order[i]
				for j := range na.Params {
					gb.Param(nb.Params[j]).Data = g.Param(na.Params[j]).Data
				}
				if na.BN != nil {
					bn := *na.BN
					nb.BN = &bn
				}
			}
			return r, nil
		}
	}
	return nil, lastErr
}
