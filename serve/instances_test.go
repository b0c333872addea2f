package serve

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/infer"
)

// gatedRunner is a stand-in instance: each Run waits at the gate (so
// tests can hold runs open and see how many go at once) and answers
// y = 2x + id for every row, id being the instance's number.
type gatedRunner struct {
	id      float32
	gate    chan struct{}
	now     *atomic.Int32 // runs going on any instance
	most    *atomic.Int32 // the most seen at once
	rows    atomic.Int32  // rows this instance ran
	entered chan struct{}
}

func (g *gatedRunner) Run(ctx context.Context, in map[string]*infer.Tensor) (map[string]*infer.Tensor, error) {
	n := g.now.Add(1)
	defer g.now.Add(-1)
	for {
		m := g.most.Load()
		if n <= m || g.most.CompareAndSwap(m, n) {
			break
		}
	}
	g.entered <- struct{}{}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	x := in["x"]
	y := make([]float32, len(x.Float32))
	for i, v := range x.Float32 {
		y[i] = 2*v + g.id
	}
	g.rows.Add(int32(x.Shape[0]))
	return map[string]*infer.Tensor{"y": infer.NewFloat32(append([]int(nil), x.Shape...), y)}, nil
}

// TestInstancesRunAtOnce: with two instances, two batches run at the
// same time, a job cut into several runs gets each row from whichever
// instance ran it, and closing the batcher waits for the runs going.
func TestInstancesRunAtOnce(t *testing.T) {
	md := infer.Metadata{
		Inputs:  []infer.ValueInfo{{Name: "x", DType: infer.Float32, Shape: []int{-1, 2}}},
		Outputs: []infer.ValueInfo{{Name: "y", DType: infer.Float32, Shape: []int{-1, 2}}},
	}
	var now, most atomic.Int32
	gate, entered := make(chan struct{}), make(chan struct{}, 16)
	a := &gatedRunner{id: 100, gate: gate, now: &now, most: &most, entered: entered}
	b := &gatedRunner{id: 200, gate: gate, now: &now, most: &most, entered: entered}
	bt := newBatcher([]runner{a, b}, md, 2, 0, 16, func(int) {})

	mk := func(rows int, base float32) *job {
		x := make([]float32, 2*rows)
		for i := range x {
			x[i] = base + float32(i)
		}
		return newJob(context.Background(), "k", rows, []*infer.Tensor{infer.NewFloat32([]int{rows, 2}, x)})
	}
	// Five rows at most two a run: three runs, two of them at once.
	j := mk(5, 0)
	if err := bt.submit(j); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the two instances did not both start a run")
		}
	}
	if got := most.Load(); got != 2 {
		t.Fatalf("%d runs at once, want 2", got)
	}
	go func() {
		for range 3 {
			gate <- struct{}{}
		}
	}()
	select {
	case <-j.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the job was not answered")
	}
	if j.err != nil {
		t.Fatal(j.err)
	}
	y := j.out["y"]
	if !reflect.DeepEqual(y.Shape, []int{5, 2}) {
		t.Fatalf("shape %v", y.Shape)
	}
	for i, v := range y.Float32 {
		off := v - 2*float32(i)
		if off != 100 && off != 200 {
			t.Errorf("y[%d] = %g: not 2x + an instance's id", i, v)
		}
	}
	if ra, rb := a.rows.Load(), b.rows.Load(); ra+rb != 5 || ra == 0 || rb == 0 {
		t.Errorf("rows per instance %d and %d: want 5 in all, some on each", ra, rb)
	}

	// close while a run is held waits for it: the job is answered.
	held := mk(1, 0)
	if err := bt.submit(held); err != nil {
		t.Fatal(err)
	}
	<-entered
	closed := make(chan struct{})
	go func() {
		bt.close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("close returned with a run going")
	case <-time.After(50 * time.Millisecond):
	}
	gate <- struct{}{}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return after the run ended")
	}
	if held.err != nil || held.out["y"] == nil {
		t.Errorf("the held job: %v %v", held.err, held.out)
	}
}

// TestInstancesServe: a model served with two instances of one thread
// each answers every client with its own logits (as one session run on
// its input alone), and a lone request is not held back for the batching
// delay. An instance of another model is refused.
func TestInstancesServe(t *testing.T) {
	dir := t.TempDir()
	path, ref := exportResNet8(t, dir, "r8", 0)
	var inst []*infer.Session
	for range 2 {
		s, err := infer.Load(path, infer.Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		inst = append(inst, s)
	}
	base, _ := startServer(t, Config{MaxBatch: 4, MaxDelay: 10 * time.Second}, ModelConfig{Name: "r8", Session: inst[0], Instances: inst[1:]})

	start := time.Now()
	x := randomImages(3, 1)
	code, got := do(t, "POST", base+"/v2/models/r8/infer", "application/json", inferBody("", 1, jsonNumbers(x), "logits"))
	if el := time.Since(start); code != 200 || el > 5*time.Second {
		t.Errorf("a lone request: %d after %v (the batching delay is 10s) %v", code, el, got)
	}

	concurrentClients(t, base+"/v2/models/r8/infer", ref, 16, 40)

	_, fixed := exportResNet8(t, dir, "b2", 2)
	_, err := New(Config{}, ModelConfig{Name: "r8", Session: inst[0], Instances: []*infer.Session{fixed}})
	if err == nil || !strings.Contains(err.Error(), "instance 2 has other inputs or outputs than the first") {
		t.Errorf("an instance of another model: %v", err)
	}
}

// TestWaitForTheClientsThere: a run waits for the requests in flight, not
// for a full batch that cannot come: eight clients with a 32-row batch
// and a 10 s delay are answered at once, on one instance and on two.
func TestWaitForTheClientsThere(t *testing.T) {
	path, ref := exportResNet8(t, t.TempDir(), "r8", 0)
	for _, instances := range []int{1, 2} {
		mc := ModelConfig{Name: "r8", Session: ref}
		for range instances - 1 {
			s, err := infer.Load(path, infer.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			mc.Instances = append(mc.Instances, s)
		}
		base, _ := startServer(t, Config{MaxBatch: 32, MaxDelay: 10 * time.Second}, mc)
		start := time.Now()
		var wg sync.WaitGroup
		codes := make([]int, 8)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], _ = do(t, "POST", base+"/v2/models/r8/infer", "application/json", inferBody("", 1, jsonNumbers(randomImages(uint64(i), 1)), "logits"))
			}()
		}
		wg.Wait()
		if el := time.Since(start); el > 5*time.Second || slices.ContainsFunc(codes, func(c int) bool { return c != 200 }) {
			t.Errorf("%d instance(s): 8 clients answered %v after %v (the batching delay is 10s)", instances, codes, el)
		}
	}
}

// TestCopyRowsEveryType: rows of every element type newTensor makes are
// copied when requests are cut and joined into runs (UINT8, INT8 and
// FP16 were left zero before).
func TestCopyRowsEveryType(t *testing.T) {
	for _, dt := range []infer.DType{infer.Float32, infer.Float64, infer.Int32, infer.Int64, infer.Bool, infer.Uint8, infer.Int8, infer.Float16} {
		src, dst := newTensor(dt, []int{3, 2}), newTensor(dt, []int{2, 2})
		for i := range 6 {
			setOne(src, i)
		}
		copyRows(dst, 0, src, 1, 2)
		want := newTensor(dt, []int{2, 2})
		for i := range 4 {
			setOne(want, i)
		}
		if !reflect.DeepEqual(dst, want) {
			t.Errorf("%v: rows 1-2 copied as %+v", dt, dst)
		}
	}
}

// setOne sets element i of t to a non-zero value of its type.
func setOne(t *infer.Tensor, i int) {
	switch t.Type() {
	case infer.Float32:
		t.Float32[i] = 1
	case infer.Float64:
		t.Float64[i] = 1
	case infer.Int32:
		t.Int32[i] = 1
	case infer.Int64:
		t.Int64[i] = 1
	case infer.Bool:
		t.Bool[i] = true
	case infer.Uint8:
		t.Uint8[i] = 1
	case infer.Int8:
		t.Int8[i] = 1
	case infer.Float16:
		t.Float16[i] = 0x3c00
	}
}
