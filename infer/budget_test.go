package infer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/internal/hostileonnx"
	"github.com/resnetctl/resnetctl/internal/kernels"
	"github.com/resnetctl/resnetctl/internal/memcap"
)

// TestMemoryBudgetAtRun: with input shapes known only at Run, the plan is
// made then and refused there, before its buffers exist; the session
// then runs inputs that fit.
func TestMemoryBudgetAtRun(t *testing.T) {
	m := newGB(13).in("x", Float32, -1, 4).out("y", Float32).node("Relu", []string{"x"}, []string{"y"}).bytes(t)
	s, err := LoadBytes(m, Options{Threads: 1, MaxMemory: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := newTensor(Float32, sh(1<<16, 4)) // 1 MiB in, as much out
	alloc := memcap.Allocated(func() { _, err = s.Run(context.Background(), map[string]*Tensor{"x": big}) })
	want := `infer: memory budget exceeded: the plan for input shapes [[65536 4]] needs 2.0 MiB, over the budget of 1.0 MiB (Options.MaxMemory); largest tensors: "x" float32 [65536 4] 1.0 MiB, "y" float32 [65536 4] 1.0 MiB`
	if !errors.Is(err, ErrMemoryBudget) || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
	memcap.Check(t, alloc, 64<<10, "refusing the plan")
	out, err := s.Run(context.Background(), map[string]*Tensor{"x": f32(sh(1, 4), -1, 2, -3, 4)})
	if err != nil || !slices.Equal(out["y"].Float32, []float32{0, 2, 0, 4}) {
		t.Fatalf("a small input after the refusal: %v, %v", out, err)
	}
}

// TestMemoryBudgetOff: MaxMemory < 0 turns the check off; a plan of
// 32 GiB is then accepted (and, not run here, nothing is allocated).
func TestMemoryBudgetOff(t *testing.T) {
	var model []byte
	for _, c := range hostileonnx.Cases() {
		if c.Name == "pad-3x8GiB" {
			model = c.Model
		}
	}
	var err error
	alloc := memcap.Allocated(func() {
		var s *Session
		if s, err = LoadBytes(model, Options{Threads: 1, MaxMemory: -1}); err == nil {
			s.Close()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	memcap.Check(t, alloc, memcap.Limit(64<<20, len(model)), "planning 32 GiB without a budget")
}

// TestFoldBudget: nodes of known inputs whose outputs are over the fold
// budget (lowered here to 100 elements) run at every Run instead of
// being computed while planning, with the same results: ConstantOfShape,
// Dropout's mask, a folded Add.
func TestFoldBudget(t *testing.T) {
	defer func(b int) { foldBudget = b }(foldBudget)
	foldBudget = 100
	m := newGB(13).in("x", Float32, 2, 64).out("y", Float32).out("mask", Bool).out("k", Float32).
		init("shape", i64(sh(2), 2, 64)).init("a", f32(sh(2, 64), seq(128, 1, 0)...)).
		node("ConstantOfShape", []string{"shape"}, []string{"c"}, aTensor("value", f32(sh(1), 2.5))).
		node("Add", []string{"a", "a"}, []string{"k"}).
		node("Add", []string{"x", "c"}, []string{"s"}).
		node("Dropout", []string{"s"}, []string{"y", "mask"}).bytes(t)
	s, err := LoadBytes(m, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 2 {
		out, err := s.Run(context.Background(), map[string]*Tensor{"x": f32(sh(2, 64), seq(128, -1, 0)...)})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 128 {
			if y, k, mk := out["y"].Float32[i], out["k"].Float32[i], out["mask"].Bool[i]; y != 2.5-float32(i) || k != 2*float32(i) || !mk {
				t.Fatalf("element %d: y %v, k %v, mask %v", i, y, k, mk)
			}
		}
	}
}

// TestDefaultBudgetUnderRlimit runs a child test process under ulimit -v
// (RLIMIT_AS) of 6 GiB: its default budget is 3/4 of that, and a model
// whose plan needs 8 GiB is refused with ErrMemoryBudget at load instead
// of Go's fatal "out of memory" at the first run.
func TestDefaultBudgetUnderRlimit(t *testing.T) {
	if os.Getenv("INFER_RLIMIT_CHILD") == "1" {
		fmt.Printf("default=%d\n", DefaultMaxMemory())
		m := newGB(13).in("x", Float32, 1, 1).out("y", Float32).init("pads", i64(sh(4), 0, 0, 0, 1<<30-1)).
			node("Pad", []string{"x", "pads"}, []string{"p"}).node("Relu", []string{"p"}, []string{"y"}).bytes(t)
		_, err := LoadBytes(m, Options{Threads: 1})
		fmt.Printf("error=%v\n", err)
		return
	}
	if runtime.GOOS != "linux" || testing.Short() {
		t.Skip("needs Linux and sh; not in -short")
	}
	const limit = 6 << 30
	cmd := exec.Command("sh", "-c", fmt.Sprintf("ulimit -v %d && exec \"$0\" -test.run='^TestDefaultBudgetUnderRlimit$' -test.count=1", limit>>10), os.Args[0])
	cmd.Env = append(os.Environ(), "INFER_RLIMIT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var def int64
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "default="); ok {
			def, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if def == 0 || def > limit*3/4 {
		t.Errorf("default budget %d under RLIMIT_AS %d, want at most %d\n%s", def, limit, limit*3/4, out)
	}
	t.Logf("child under ulimit -v %d KiB:\n%s", limit>>10, out)
	if !strings.Contains(string(out), "error=infer: memory budget exceeded: the plan for input shapes [[1 1]] needs 8.0 GiB") {
		t.Errorf("child output:\n%s", out)
	}
}

// TestPlanCacheWithinBudget: plans for many input shapes, each within the
// budget, do not pile up over it together (the oldest are dropped), and
// packed convolutions go with the last plan using them.
func TestPlanCacheWithinBudget(t *testing.T) {
	m := newGB(13).in("x", Float32, 1, 2, -1, -1).out("y", Float32).init("w", randT(1, 3, 2, 3, 3)).
		node("Conv", []string{"x", "w"}, []string{"c"}, aInts("pads", 1, 1, 1, 1)).
		node("Relu", []string{"c"}, []string{"y"}).bytes(t)
	const budget = 4 << 20
	s, err := LoadBytes(m, Options{Threads: 1, MaxMemory: budget, MaxPlans: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := s.engine.(*native)
	for i, side := range []int{100, 120, 140, 160, 180, 200, 100, 220} {
		if _, err := s.Run(context.Background(), map[string]*Tensor{"x": newTensor(Float32, sh(1, 2, side, side))}); err != nil {
			t.Fatal(err)
		}
		e.mu.Lock()
		plans, cached := len(e.plans), e.cached
		e.mu.Unlock()
		e.convMu.Lock()
		convs := len(e.convs)
		e.convMu.Unlock()
		if cached+e.weightBytes > budget || plans > 4 || convs != plans {
			t.Errorf("run %d (%dx%d): %d plans of %d bytes cached with %d packed convolutions (budget %d)", i, side, side, plans, cached, convs, budget)
		}
	}
}

// TestConvAlgoPerPlan: a plan packs each convolution for the one
// algorithm the automatic choice takes at its batch (Winograd only where
// the batch has enough tiles), not both.
func TestConvAlgoPerPlan(t *testing.T) {
	m := newGB(13).in("x", Float32, -1, 32, 7, 7).out("y", Float32).init("w", randT(1, 32, 32, 3, 3)).
		node("Conv", []string{"x", "w"}, []string{"y"}, aInts("pads", 1, 1, 1, 1)).bytes(t)
	s, err := LoadBytes(m, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := s.engine.(*native)
	for _, batch := range []int{1, 4} {
		if _, err := s.Run(context.Background(), map[string]*Tensor{"x": newTensor(Float32, sh(batch, 32, 7, 7))}); err != nil {
			t.Fatal(err)
		}
	}
	e.convMu.Lock()
	defer e.convMu.Unlock()
	want := map[kernels.ConvAlgo]bool{}
	var prm kernels.ConvParams
	for k := range e.convs {
		prm = k.prm
		want[k.algo] = true
	}
	if len(e.convs) == 0 {
		t.Fatal("no packed convolutions")
	}
	for _, batch := range []int{1, 4} {
		if !want[prm.AutoAlgo(batch)] {
			t.Errorf("no convolution packed for %v (batch %d): %v", prm.AutoAlgo(batch), batch, want)
		}
	}
	if prm.AutoAlgo(1) != kernels.AlgoGEMM {
		t.Errorf("batch 1 of 7x7 (4 tiles): %v, want gemm", prm.AutoAlgo(1))
	}
	if n := len(want); n != len(e.convs) {
		t.Errorf("%d packed convolutions for %d algorithms", len(e.convs), n)
	}
}

// TestPackedWeightsHeldOnce: once packed, a weight only one Conv reads is
// held only by its packed convolution (the model's copy dropped), and
// plans for other shapes, packing it again from there, compute the same
// bits as a session that packs it from the file's weights; a weight read
// by another node too is kept.
func TestPackedWeightsHeldOnce(t *testing.T) {
	m := newGB(13).in("x", Float32, -1, 40, -1, -1).out("y", Float32).out("z", Float32).
		init("w1", randT(1, 40, 40, 3, 3)).init("w2", randT(2, 40, 40, 3, 3)).init("w3", randT(3, 24, 40, 1, 1)).
		node("Conv", []string{"x", "w1"}, []string{"a"}, aInts("pads", 1, 1, 1, 1)).
		node("Relu", []string{"a"}, []string{"b"}).
		node("Conv", []string{"b", "w2"}, []string{"c"}, aInts("pads", 1, 1, 1, 1)).
		node("Conv", []string{"c", "w3"}, []string{"y"}).
		node("Identity", []string{"w2"}, []string{"z"}).bytes(t)
	shapes := [][]int{sh(1, 40, 7, 7), sh(4, 40, 8, 8), sh(1, 40, 9, 5), sh(2, 40, 16, 16)}
	run := func(s *Session, shape []int) *Tensor {
		out, err := s.Run(context.Background(), map[string]*Tensor{"x": randT(7, shape...)})
		if err != nil {
			t.Fatal(err)
		}
		return out["y"]
	}
	s, err := LoadBytes(m, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := s.engine.(*native)
	for i, shape := range shapes {
		got := run(s, shape)
		// A fresh session for each shape packs from the file's weights.
		ref, err := LoadBytes(m, Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		want := run(ref, shape)
		ref.Close()
		if !slices.Equal(int64s(got.Shape), int64s(want.Shape)) {
			t.Fatalf("shape %v: output %v, want %v", shape, got.Shape, want.Shape)
		}
		for j := range want.Float32 {
			if math.Float32bits(got.Float32[j]) != math.Float32bits(want.Float32[j]) {
				t.Fatalf("run %d, shape %v: y[%d] = %v, want %v", i, shape, j, got.Float32[j], want.Float32[j])
			}
		}
	}
	for name, held := range map[string]bool{"w1": false, "w2": true, "w3": false} {
		v := e.m.values[e.m.byName[name]]
		if got := len(v.init.Float32) > 0; got != held {
			t.Errorf("%s: unpacked copy held %v, want %v", name, got, held)
		}
	}
}
