package infer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/models"
)

// resnet20File exports a ResNet-20 (option A or B) and returns the path.
func resnet20File(t testing.TB, opts export.Options, mutate func(*models.Spec)) string {
	t.Helper()
	c := exportCase{name: "resnet20", model: "resnet20", opts: opts, mutate: mutate}
	_, g := buildExport(t, c, 42)
	path := filepath.Join(t.TempDir(), "resnet20.onnx")
	if _, err := export.WriteFile(path, g, opts); err != nil {
		t.Fatal(err)
	}
	return path
}

func cifarInput(seed uint64, batch int) *Tensor {
	return randT(seed, batch, 3, 32, 32)
}

func TestDynamicBatch(t *testing.T) {
	s, err := Load(resnet20File(t, export.Options{Softmax: true}, nil), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	three := cifarInput(1, 3)
	one := NewFloat32(sh(1, 3, 32, 32), three.Float32[:3*32*32])
	r3, err := s.Run(ctx, map[string]*Tensor{"input": three})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := s.Run(ctx, map[string]*Tensor{"input": one})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r3["logits"].Shape, sh(3, 10)) || !slices.Equal(r1["probabilities"].Shape, sh(1, 10)) {
		t.Fatalf("shapes %v %v", r3["logits"].Shape, r1["probabilities"].Shape)
	}
	if e, m := agreement(r1["logits"].Float32, r3["logits"].Float32[:10]); e > 1e-5*(1+m) {
		t.Errorf("batch 1 and row 0 of batch 3 differ by %g", e)
	}
	// Again at batch 3: the cached plan gives the same answer.
	again, err := s.Run(ctx, map[string]*Tensor{"input": three})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again["logits"].Float32, r3["logits"].Float32) {
		t.Error("a second run at batch 3 differs from the first")
	}
}

func TestRunIntoDoesNotAllocate(t *testing.T) {
	s, err := Load(resnet20File(t, export.Options{Opset: 11, Softmax: true}, nil), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	in := map[string]*Tensor{"input": cifarInput(2, 4)}
	out := map[string]*Tensor{}
	if err := s.RunInto(ctx, in, out); err != nil {
		t.Fatal(err)
	}
	want := out["logits"].Clone()
	allocs := testing.AllocsPerRun(20, func() {
		if err := s.RunInto(ctx, in, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("RunInto allocates %.1f times per run in steady state, want 0", allocs)
	}
	if !slices.Equal(out["logits"].Float32, want.Float32) {
		t.Error("results changed between runs")
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	allocs = testing.AllocsPerRun(10, func() {
		if err := s.RunInto(cctx, in, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("RunInto with a cancellable context allocates %.1f times per run, want 0", allocs)
	}
}

func TestConcurrentRuns(t *testing.T) {
	s, err := Load(resnet20File(t, export.Options{}, shortcutB), Options{Threads: 2, MaxPlans: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	inputs := []*Tensor{cifarInput(1, 1), cifarInput(2, 2), cifarInput(3, 3)}
	var want []*Tensor
	for _, in := range inputs {
		r, err := s.Run(ctx, map[string]*Tensor{"input": in})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r["logits"])
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 6 {
				k := (g + i) % len(inputs)
				r, err := s.Run(ctx, map[string]*Tensor{"input": inputs[k]})
				if err != nil {
					errs <- err
					return
				}
				if !slices.Equal(r["logits"].Float32, want[k].Float32) {
					errs <- fmt.Errorf("goroutine %d run %d: batch %d result differs", g, i, k+1)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestBadInputs(t *testing.T) {
	s, err := Load(resnet20File(t, export.Options{}, nil), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	good := cifarInput(1, 1)
	cases := []struct {
		name   string
		inputs map[string]*Tensor
		want   string
	}{
		{"missing", map[string]*Tensor{}, `missing "input"`},
		{"unknown", map[string]*Tensor{"input": good, "extra": good}, `unknown "extra"`},
		{"misnamed", map[string]*Tensor{"image": good}, `missing "input"; unknown "image"`},
		{"int64", map[string]*Tensor{"input": NewInt64(sh(1), []int64{1})}, `input "input" is int64, the model wants float32`},
		{"rank", map[string]*Tensor{"input": NewFloat32(sh(3, 32, 32), good.Float32)}, `has shape [3 32 32], the model wants [N 3 32 32]`},
		{"size", map[string]*Tensor{"input": NewFloat32(sh(1, 3, 28, 28), good.Float32[:3*28*28])}, `has shape [1 3 28 28], the model wants [N 3 32 32]`},
		{"data length", map[string]*Tensor{"input": NewFloat32(sh(2, 3, 32, 32), good.Float32)}, `shape [2 3 32 32] needs 6144 float32 values, the tensor has 3072`},
		{"negative dim", map[string]*Tensor{"input": NewFloat32(sh(-1, 3, 32, 32), nil)}, `negative dimension`},
		{"nil", map[string]*Tensor{"input": nil}, `missing "input"`},
	}
	for _, c := range cases {
		_, err := s.Run(ctx, c.inputs)
		if err == nil || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrInput containing %q", c.name, err, c.want)
		}
	}
	// Empty batch: well-formed, zero rows out.
	r, err := s.Run(ctx, map[string]*Tensor{"input": NewFloat32(sh(0, 3, 32, 32), nil)})
	if err != nil || !slices.Equal(r["logits"].Shape, sh(0, 10)) {
		t.Errorf("batch 0: %v, %v", r, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Run(cctx, map[string]*Tensor{"input": good}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	s.Close()
	if _, err := s.Run(ctx, map[string]*Tensor{"input": good}); err == nil {
		t.Error("run after Close succeeded")
	}
}

func TestMetadata(t *testing.T) {
	s, err := Load(resnet20File(t, export.Options{Opset: 13, ProducerVersion: "1.2.3", Softmax: true}, nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	md := s.Metadata()
	if md.Opset != 13 || md.IRVersion != 7 || md.ProducerName != "resnetctl" || md.ProducerVersion != "1.2.3" {
		t.Errorf("metadata %+v", md)
	}
	if len(md.Inputs) != 1 || md.Inputs[0].Name != export.InputName || !slices.Equal(md.Inputs[0].Shape, sh(-1, 3, 32, 32)) ||
		md.Inputs[0].DimNames[0] != export.BatchDim || md.Inputs[0].DType != Float32 {
		t.Errorf("inputs %+v", md.Inputs)
	}
	if len(md.Outputs) != 2 || md.Outputs[0].Name != export.LogitsName || md.Outputs[1].Name != export.ProbabilitiesName {
		t.Errorf("outputs %+v", md.Outputs)
	}
	classes, err := md.Classes()
	if err != nil || len(classes) != 10 || classes[0] != "airplane" {
		t.Errorf("classes %v, %v", classes, err)
	}
	pre, err := md.Preprocessing()
	if err != nil || pre == nil || pre.Scale != 1.0/255 || len(pre.Mean) != 3 || !slices.Equal(pre.InputSize, []int{3, 32, 32}) {
		t.Errorf("preprocessing %+v, %v", pre, err)
	}
	if md.Props[export.MetaFoldedBN] != "false" || s.Engine() != EngineNative {
		t.Errorf("props %v engine %s", md.Props, s.Engine())
	}
}

// TestEngineNotLinked: the gorgonnx engine lives in package infer/gorgonnx,
// which this package's tests do not import (that package imports infer);
// asking for it names the import to add. Its own tests run it.
func TestEngineNotLinked(t *testing.T) {
	path := resnet20File(t, export.Options{Opset: 13}, nil)
	_, err := Load(path, Options{Engine: EngineGorgonnx})
	if err == nil || !strings.Contains(err.Error(), `import _ "github.com/resnetctl/resnetctl/infer/gorgonnx"`) {
		t.Errorf("gorgonnx not linked: %v", err)
	}
	if _, err := Load(path, Options{Engine: "tensorrt"}); err == nil || !strings.Contains(err.Error(), `unknown engine "tensorrt"`) {
		t.Errorf("unknown engine: %v", err)
	}
	if got := Engines(); !slices.Equal(got, []string{EngineNative}) {
		t.Errorf("Engines() = %v", got)
	}
}

func TestPlanCacheEviction(t *testing.T) {
	s, err := Load(resnet20File(t, export.Options{}, nil), Options{Threads: 1, MaxPlans: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var first []float32
	for i, b := range []int{1, 2, 1, 2, 1} {
		r, err := s.Run(ctx, map[string]*Tensor{"input": cifarInput(9, b)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r["logits"].Float32
		} else if b == 1 && !slices.Equal(first, r["logits"].Float32) {
			t.Error("re-planned batch 1 differs")
		}
	}
	e := s.engine.(*native)
	if len(e.plans) != 1 || len(e.order) != 1 {
		t.Errorf("%d plans cached, want 1", len(e.plans))
	}
}

// TestPlanFusesAndReusesBuffers checks the plan of an unfolded ResNet-20
// (option B): every BatchNormalization is folded, every Add and Relu fused
// into a convolution, and temporaries share a slab much smaller than their
// total size.
func TestPlanFusesAndReusesBuffers(t *testing.T) {
	s, err := Load(resnet20File(t, export.Options{Opset: 13}, shortcutB), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := s.engine.(*native)
	ops := map[string]int{}
	for _, n := range e.m.nodes {
		ops[n.opType]++
	}
	// 19 convolutions + 2 projection shortcuts; the head: pool, flatten, gemm.
	want := map[string]int{"Conv": 21, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1}
	if !maps.Equal(ops, want) {
		t.Errorf("ops after fusion %v, want %v", ops, want)
	}
	if _, err := s.Run(context.Background(), map[string]*Tensor{"input": cifarInput(1, 8)}); err != nil {
		t.Fatal(err)
	}
	p := e.last.Load()
	total := 0
	for _, v := range p.vals {
		if v.kind == kindTemp {
			total += v.size
		}
	}
	t.Logf("%d steps; temporaries: %d floats in total, slab %d", len(p.steps), total, p.slab[tiF32])
	if p.slab[tiF32] == 0 || p.slab[tiF32]*4 > total {
		t.Errorf("slab of %d floats for %d floats of temporaries: buffers are not reused", p.slab[tiF32], total)
	}
}
