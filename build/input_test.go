package build_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/models"
)

// fixedWindow is resnet8 with its global average pool replaced by a fixed
// 5x5 window, stride 5: the final 8x8 map of a 32x32 input pools to 1x1,
// as the head needs, but only at sizes whose final map is 5x5 to 9x9. The
// builder never makes such a graph (its head always pools globally); an
// imported file can hold one.
func fixedWindow(t *testing.T) *build.Graph {
	t.Helper()
	g, err := build.New(mustSpec(t, "resnet8"), build.Options{ShapesOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Nodes {
		if n.Kind == build.GlobalAvgPool {
			n.Kind, n.Pool = build.AvgPool, &build.PoolAttrs{Kernel: 5, Stride: 5}
		}
	}
	if err := g.Check(); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestWithInput: a graph that pools globally before its head takes any
// input size, with the shapes the builder gives at that size; a graph
// tied to its size, an input too small for a map, and a channel count the
// first convolution does not take are refused with the node named, and
// the graph is left as it was.
func TestWithInput(t *testing.T) {
	for _, c := range []struct {
		name  string
		model string // catalog model, or "fixed" for fixedWindow
		in    models.Shape
		err   string // "" when accepted
	}{
		{name: "resnet20 at 64x64", model: "resnet20", in: models.Shape{C: 3, H: 64, W: 64}},
		{name: "resnet20 at 20x28", model: "resnet20", in: models.Shape{C: 3, H: 20, W: 28}},
		{name: "resnet18 at 32x32", model: "resnet18", in: models.Shape{C: 3, H: 32, W: 32}},
		{name: "resnet50 at 64x64", model: "resnet50", in: models.Shape{C: 3, H: 64, W: 64}},
		{name: "fixed window still 1x1", model: "fixed", in: models.Shape{C: 3, H: 36, W: 36}},
		{name: "fixed window at 64x64", model: "fixed", in: models.Shape{C: 3, H: 64, W: 64},
			err: "at 3x64x64, avgpool (AvgPool, a fixed 5x5 window) outputs a 64x3x3 map where 3x32x32 gives 1x1, so flatten would pass 576 features to the head instead of 64: the graph is tied to its input size"},
		{name: "fixed window, empty map", model: "fixed", in: models.Shape{C: 3, H: 16, W: 16},
			err: "at 3x16x16, avgpool (AvgPool) would output 64x0x0: the input is too small"},
		{name: "grey image into an RGB model", model: "resnet18", in: models.Shape{C: 1, H: 224, W: 224},
			err: "conv1 (Conv) takes 3 channels, not 1"},
		{name: "no pixels", model: "resnet20", in: models.Shape{C: 3, H: 0, W: 32}, err: "3x0x32 must have positive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var g *build.Graph
			if c.model == "fixed" {
				g = fixedWindow(t)
			} else {
				var err error
				if g, err = build.New(mustSpec(t, c.model), build.Options{ShapesOnly: true}); err != nil {
					t.Fatal(err)
				}
			}
			before := snapshot(g)
			err := g.WithInput(c.in)
			if c.err != "" {
				if err == nil || !errors.Is(err, build.ErrInputSize) || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line with %q", err, c.err)
				}
				if after := snapshot(g); !reflect.DeepEqual(before, after) {
					t.Errorf("the refused graph changed: %v, was %v", after, before)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.Spec.Input != c.in || g.Spec.Reference != (models.Reference{}) {
				t.Errorf("spec input %s, reference %+v", g.Spec.Input, g.Spec.Reference)
			}
			if err := g.Check(); err != nil {
				t.Fatal(err)
			}
			if c.model == "fixed" {
				return
			}
			// The shapes are the builder's at the new size.
			s := mustSpec(t, c.model)
			s.Input = c.in
			want, err := build.New(s, build.Options{ShapesOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := snapshot(g).shapes, snapshot(want).shapes; !reflect.DeepEqual(got, want) {
				t.Errorf("shapes %v, want the builder's %v", got, want)
			}
		})
	}
}

type graphState struct {
	input  models.Shape
	shapes []models.Shape
}

func snapshot(g *build.Graph) graphState {
	s := graphState{input: g.Spec.Input}
	for _, n := range g.Nodes {
		s.shapes = append(s.shapes, n.Shape)
	}
	return s
}
