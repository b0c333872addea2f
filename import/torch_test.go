package onnximport_test

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/export"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/internal/interop"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// torchTolerance is the agreement asked of ONNX Runtime on a PyTorch file
// and on the re-export of its import: |a-b| <= 1e-5 × (1 + max|ref|). The
// graphs compute the same thing op for op, except where the import writes
// a global average pool for PyTorch's whole-map AveragePool, so only
// float32 summation order can differ.
const torchTolerance = 1e-5

type torchFile = interop.TorchExport

// torchExports runs tools/pytorch/export_torch_models.py into a temporary
// folder (CIFAR models only with -short) and returns its manifest.
func torchExports(t *testing.T) (string, []torchFile) {
	t.Helper()
	interop.RequirePyTorch(t)
	tools, err := interop.DefaultTools()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now()
	files, err := tools.ExportTorchModels(context.Background(), dir, testing.Short())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PyTorch exported the models in %v", time.Since(start).Round(time.Millisecond))
	return dir, files
}

// fileFloats returns a float32 initializer of an ONNX file by name.
func fileFloats(m *onnxpb.ModelProto, name string) []float32 {
	for _, tp := range m.GetGraph().GetInitializer() {
		if tp.GetName() != name {
			continue
		}
		if raw := tp.GetRawData(); len(raw) > 0 {
			v := make([]float32, len(raw)/4)
			for i := range v {
				v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
			return v
		}
		return tp.GetFloatData()
	}
	return nil
}

// TestPyTorchExports imports every file PyTorch's own exporter writes for
// torchvision resnet18 and resnet50 and CIFAR ResNet-20 with option-A and
// option-B shortcuts, opsets 9 to 17, BN kept and folded. Each must be
// recognised (architecture, shortcut, BN form), get torchvision parameter
// names whatever the file called its initializers, and re-export to a file
// on which ONNX Runtime agrees with the original within torchTolerance, at
// batch 1 and 3.
func TestPyTorchExports(t *testing.T) {
	interop.RequireORT(t)
	dir, files := torchExports(t)
	out := t.TempDir()
	var jobs []interop.Job
	var ran []torchFile
	for _, f := range files {
		path := filepath.Join(dir, f.Path)
		g, r, err := onnximport.Load(path)
		if err != nil {
			t.Errorf("%s: %v", f.Path, err)
			continue
		}
		arch, shortcut := f.Name, "B"
		if strings.HasPrefix(f.Name, "resnet20") {
			arch, shortcut = "resnet20", f.Name[len(f.Name)-1:]
		}
		if r.Method != onnximport.MethodRecognised || r.Architecture != arch || r.Shortcut != shortcut ||
			r.BNFolded != (f.BN == "folded") || r.Softmax || r.Opset != f.Opset {
			t.Errorf("%s: report %q method %s shortcut %s folded %v opset %d", f.Path, r.Summary(), r.Method, r.Shortcut, r.BNFolded, r.Opset)
		}
		// Names: torchvision's, whatever the file used.
		m := decode(t, mustRead(t, path))
		if f.BN == "kept" {
			for _, pair := range [][2]string{{"layer1.0.bn1.running_mean", "layer1.0.bn1.running_mean"}, {"conv1.weight", "conv1.weight"}, {"fc.weight", "fc.weight"}} {
				if arch == "resnet20" && pair[0] == "fc.weight" {
					pair[1] = "linear.weight" // the CIFAR module's name for its classifier
				}
				p := g.Param(pair[0])
				if p == nil || !slices.Equal(p.Data, fileFloats(m, pair[1])) {
					t.Errorf("%s: parameter %s is not the file's %s", f.Path, pair[0], pair[1])
				}
			}
		} else {
			for _, name := range []string{"conv1.weight", "conv1.bias", "layer1.0.conv2.bias", "fc.bias"} {
				if g.Param(name) == nil {
					t.Errorf("%s: no parameter %s", f.Path, name)
				}
			}
		}
		re := filepath.Join(out, f.Path)
		if _, err := export.WriteFile(re, g, export.Options{Opset: r.Opset, FoldBN: r.BNFolded}); err != nil {
			t.Errorf("%s: re-export: %v", f.Path, err)
			continue
		}
		three := randomInput(uint64(len(ran)+1), 3, f.Input[0], f.Input[1], f.Input[2])
		one := interop.Tensor{Dims: []int{1, f.Input[0], f.Input[1], f.Input[2]}, Data: three.Data[:len(three.Data)/3]}
		for _, in := range []interop.Tensor{one, three} {
			for _, p := range []string{path, re} {
				jobs = append(jobs, interop.Job{Model: p, Inputs: map[string]interop.Tensor{"input": in}})
			}
		}
		ran = append(ran, f)
	}
	res, err := interop.ORT(context.Background(), jobs)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for k, f := range ran {
		for b := range 2 {
			orig, imp := res[4*k+2*b], res[4*k+2*b+1]
			if orig.Err != "" || imp.Err != "" {
				t.Errorf("%s: ONNX Runtime: %s %s", f.Path, orig.Err, imp.Err)
				continue
			}
			ref, got := orig.Outputs["logits"], imp.Outputs[export.LogitsName]
			ok, e, mx := agree(got.Data, ref.Data, torchTolerance)
			if !ok || !slices.Equal(got.Dims, ref.Dims) {
				t.Errorf("%s batch %d: the re-export differs from the PyTorch file by %.3g (max |ref| %.3g)", f.Path, ref.Dims[0], e, mx)
			}
			worst = max(worst, e/(1+mx))
		}
	}
	t.Logf("%d PyTorch exports imported and re-exported; worst difference %.3g × (1+max|ref|)", len(ran), worst)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
