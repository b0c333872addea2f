package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/train"
)

// TestInspectGolden compares `inspect` of an exported ResNet-8 and of the
// checkpoint folder import makes of it with testdata/inspect_*.golden
// (the temporary folder written as TMP); run `go test ./cmd/resnetctl
// -run TestInspectGolden -update` after an intended change.
func TestInspectGolden(t *testing.T) {
	model := exportedModel(t, "r8.onnx", export.Options{}, nil)
	// A checkpoint folder as train writes it, its trainer state written
	// here (training's numbers are not reproducible to the last digit).
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	os.Mkdir(ckpt, 0o755)
	b, _ := os.ReadFile(model)
	os.WriteFile(filepath.Join(ckpt, train.ModelFile), b, 0o644)
	st, _ := json.Marshal(train.TrainerState{Format: 1, Epoch: 3, Step: 24, Recipe: train.Recipe{Name: "fast", Epochs: 30, Batch: 32},
		Best: &train.Best{Monitor: "val_accuracy", Value: 0.3125, Epoch: 2},
		Data: &train.DataRecord{Source: "sample", Fingerprint: strings.Repeat("ab", 32), Limit: 256, Validation: "test"}})
	os.WriteFile(filepath.Join(ckpt, train.TrainerFile), st, 0o644)
	for name, path := range map[string]string{"inspect_resnet8.golden": model, "inspect_checkpoint.golden": ckpt} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runCLI("inspect", path)
			if code != 0 {
				t.Fatal(errOut)
			}
			out = strings.ReplaceAll(out, filepath.Dir(path), "TMP")
			golden := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("output differs from %s; run with -update if the change is intended\n%s", golden, out)
			}
		})
	}
	code, out, errOut := runCLI("inspect", "--json", model)
	var r inspectReport
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil {
		t.Fatalf("--json: exit %d, %v, %s", code, err, errOut)
	}
	if !r.Supported || r.MACs == nil || *r.MACs <= 0 || r.Parameters == nil || r.Inputs[0].Shape[1] != "3" || r.Metadata[export.MetaLabelSet] != "cifar10" {
		t.Errorf("--json: %+v", r)
	}
}

// TestInspectUnsupported: a file with ops the runtime lacks is described
// all the same, every blocking node listed; MACs are n/a when resnetctl
// cannot read the graph as a network.
func TestInspectUnsupported(t *testing.T) {
	model := exportedModel(t, "odd.onnx", export.Options{}, func(mp *onnxpb.ModelProto) {
		var relus int
		for _, n := range mp.Graph.Node {
			if n.OpType == "Relu" && relus < 2 {
				n.OpType, n.Name = "Frobnicate", "odd"+string(rune('A'+relus))
				relus++
			}
		}
	})
	code, out, errOut := runCLI("inspect", model)
	if code != 0 {
		t.Fatal(errOut)
	}
	for _, want := range []string{"Frobnicate             2", "runtime:    not supported, 2 problem(s):", `node "oddA" (Frobnicate)`, `node "oddB" (Frobnicate)`, "MACs:       n/a ("} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := runCLI("inspect", filepath.Join(t.TempDir(), "none.onnx")); code != exitError || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "none.onnx") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
}
