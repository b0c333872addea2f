package build_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/models"
)

// reference is build/testdata/pytorch_reference.json, written by
// tools/pytorch/reference_counts.py from torchvision 0.14 and PyTorch
// CIFAR modules.
type reference struct {
	Versions map[string]string `json:"versions"`
	Models   map[string]struct {
		Params       int64               `json:"params"`
		NonTrainable int64               `json:"non_trainable"`
		MACs         int64               `json:"macs"`
		StateDict    [][]json.RawMessage `json:"state_dict"`
	} `json:"models"`
}

// referenceSpec maps a key of the golden file to our spec of the same model.
func referenceSpec(t *testing.T, key string) models.Spec {
	t.Helper()
	name, variant, _ := strings.Cut(key, "-")
	preact := false
	if name == "preact_resnet20" {
		name, preact = "resnet20", true
	}
	s, err := models.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	switch variant {
	case "":
	case "A":
		s.Shortcut = models.ShortcutA
	case "B":
		s.Shortcut = models.ShortcutB
	case "cifar100":
		s.Classes, s.Labels = 100, "cifar100"
	default:
		t.Fatalf("unknown variant %q", key)
	}
	s.PreAct = s.PreAct || preact
	return s
}

// TestMatchesPyTorch checks every model of the golden file: trainable and
// non-trainable parameter counts and MACs exactly, and where recorded every
// state-dict name and shape in order.
func TestMatchesPyTorch(t *testing.T) {
	b, err := os.ReadFile("testdata/pytorch_reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Models) < 20 {
		t.Fatalf("golden file holds %d models, want at least 20", len(ref.Models))
	}
	keys := make([]string, 0, len(ref.Models))
	for k := range ref.Models {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		want := ref.Models[key]
		t.Run(key, func(t *testing.T) {
			s := referenceSpec(t, key)
			g, err := build.New(s, build.Options{ShapesOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			c := g.Counts()
			if c.Trainable != want.Params || c.NonTrainable != want.NonTrainable || c.MACs != want.MACs {
				t.Errorf("counts: got %d trainable, %d non-trainable, %d MACs; PyTorch %d, %d, %d",
					c.Trainable, c.NonTrainable, c.MACs, want.Params, want.NonTrainable, want.MACs)
			}
			if want.StateDict == nil {
				return
			}
			var got, exp []string
			for _, p := range g.Params {
				got = append(got, fmt.Sprintf("%s %v", p.Name, p.Shape))
			}
			for _, e := range want.StateDict {
				var name string
				var shape []int
				if err := json.Unmarshal(e[0], &name); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(e[1], &shape); err != nil {
					t.Fatal(err)
				}
				exp = append(exp, fmt.Sprintf("%s %v", name, shape))
			}
			if !slices.Equal(got, exp) {
				for i := range max(len(got), len(exp)) {
					var g, e string
					if i < len(got) {
						g = got[i]
					}
					if i < len(exp) {
						e = exp[i]
					}
					if g != e {
						t.Fatalf("state dict differs at entry %d: got %q, PyTorch %q (%d vs %d entries)", i, g, e, len(got), len(exp))
					}
				}
			}
		})
	}
}
