package infer

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/resnetctl/resnetctl/internal/kernels"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// Loading a model goes through several copies of its weights, each
// garbage once the next is made: the file's bytes, the decoded protobuf
// (which copies raw_data), the decoded tensors (replaced where BatchNorm
// is folded into convolutions), then the packed convolutions. Left to the
// pacer, a collection comes only when the heap has doubled, so the peak
// resident memory of a load would hold three or four copies of the
// weights at once. newNative collects at those points instead, when the
// weights are large enough for it to matter (loadGCMin): the memory of
// each copy is reused by the next, and the peak is about two copies. It
// changes no GC setting.
const loadGCMin = 16 << 20

// collectLoadGarbage runs a collection when a load has just dropped
// about n bytes of a copy of the weights (see loadGCMin).
func collectLoadGarbage(n int64) {
	if n >= loadGCMin {
		runtime.GC()
	}
}

// rawBytes is the size of mp's initializers' raw_data: about the size of
// the file the caller no longer holds once mp is decoded.
func rawBytes(mp *onnxpb.ModelProto) int64 {
	var n int64
	for _, tp := range mp.GetGraph().GetInitializer() {
		n += int64(len(tp.GetRawData()))
	}
	return n
}

// native is the engine built on internal/kernels.
type native struct {
	m        *model
	pool     *kernels.Pool
	threads  int
	maxElems int
	maxPlans int
	// budget is Options.MaxMemory in bytes (MaxInt64: none); weightBytes
	// the size of the model's weights, which every plan counts.
	budget      int64
	weightBytes int64
	// nonFinite lists the weights holding NaN or ±Inf, found at load.
	nonFinite []NonFinite

	mu     sync.Mutex
	plans  map[string]*plan
	order  []string // plan keys, oldest first
	last   atomic.Pointer[plan]
	closed atomic.Bool

	convMu   sync.Mutex
	convs    map[convKey]*kernels.Conv // packed convolutions shared by plans
	convRefs map[convKey]int           // how many plans (cached or being built) use each
	// cached is the memory of the cached plans (plan.bytes, under mu),
	// which stays within the budget together with the weights: see cache.
	cached int64
	// packedWeights holds, by value id, the packed convolution that is
	// the only copy of a weight whose unpacked one was dropped (see
	// keepPacked), for the life of the engine; soleConv marks the weights
	// that only one Conv reads (computed on first use); dropped counts the
	// bytes dropped since the last collection. Under convMu.
	packedWeights map[int]packedWeight
	soleConv      map[int]bool
	dropped       int64
}

// packedWeight is a weight's packed convolution and its key.
type packedWeight struct {
	k convKey
	c *kernels.Conv
}

// packWeights packs the convolution k with weights w and bias b (convMu
// held): the engine's own when k is the convolution holding a dropped
// weight, else a new one, from w's data or, dropped, from the weights
// unpacked from that convolution (a transient copy).
func (e *native) packWeights(k convKey, w *pval, b []float32) (*kernels.Conv, error) {
	wd := w.data.Float32
	if pw, ok := e.packedWeights[w.id]; ok && w.data == e.m.values[w.id].init {
		if pw.k == k {
			return pw.c, nil
		}
		wd = make([]float32, w.size)
		if !pw.c.UnpackWeights(wd) {
			return nil, fmt.Errorf("%w: cannot unpack the weights of %q", ErrInternal, e.m.values[w.id].name)
		}
	}
	return kernels.NewConvAlgo(k.prm, wd, b, k.algo)
}

// keepPacked makes c, just packed from w, the only copy of w's weights
// when only this convolution reads them and c keeps them in a form that
// gives them back exactly (kernels.Conv.UnpackWeights; not a Winograd-only
// convolution): the model's unpacked copy, and the plan's view of it, are
// replaced by a tensor of the same shape and no data, and a later plan
// needing them for another geometry unpacks them from c. Weights are so
// held once, in the form the kernels use. The memory dropped is
// collected every loadGCMin bytes, so that packing the rest of the
// model reuses it (convMu held; buildPlan runs under mu or at load, so
// no other plan is being built).
func (e *native) keepPacked(k convKey, c *kernels.Conv, w *pval) {
	v := e.m.values[w.id]
	if v.init == nil || w.data != v.init || len(v.init.Float32) == 0 || !c.HasGEMMWeights() || !e.readOnlyByConv(w.id) {
		return
	}
	if _, ok := e.packedWeights[w.id]; ok {
		return
	}
	if e.packedWeights == nil {
		e.packedWeights = map[int]packedWeight{}
	}
	e.packedWeights[w.id] = packedWeight{k, c}
	e.dropped += tensorBytes(Float32, len(v.init.Float32))
	placeholder := &Tensor{DType: v.init.DType, Shape: v.init.Shape}
	v.init, w.data = placeholder, placeholder
	if e.dropped >= loadGCMin {
		runtime.GC()
		e.dropped = 0
	}
}

// readOnlyByConv reports whether value id is read by exactly one node, a
// Conv (as its weight), and is not a graph output (convMu held).
func (e *native) readOnlyByConv(id int) bool {
	if e.soleConv == nil {
		m := e.m
		readers := make([]int, len(m.values))
		for _, n := range m.nodes {
			for _, in := range n.in {
				if in >= 0 {
					readers[in]++
				}
			}
		}
		e.soleConv = map[int]bool{}
		for _, n := range m.nodes {
			if _, ok := n.op.(*convOp); ok && len(n.in) > 1 {
				if w := n.in[1]; w >= 0 && readers[w] == 1 && !m.values[w].output && !m.values[w].input {
					e.soleConv[w] = true
				}
			}
		}
	}
	return e.soleConv[id]
}

func (e *native) close() {
	if e.closed.CompareAndSwap(false, true) {
		e.pool.Close()
	}
}

// matches reports whether p was planned for these inputs.
func (p *plan) matches(inputs map[string]*Tensor) bool {
	m := p.m
	for i, id := range m.inputs {
		if !slices.Equal(inputs[m.values[id].name].Shape, p.inShapes[i]) {
			return false
		}
	}
	for k, id := range m.keyInputs {
		if !sameValues(widen(inputs[m.values[id].name]), p.keyVals[k]) {
			return false
		}
	}
	return true
}

func sameValues(a, b *Tensor) bool {
	if a.Type() != b.Type() {
		return false
	}
	switch a.Type() {
	case Float32:
		return slices.Equal(a.Float32, b.Float32)
	case Float64:
		return slices.Equal(a.Float64, b.Float64)
	case Int64:
		return slices.Equal(a.Int64, b.Int64)
	case Int32:
		return slices.Equal(a.Int32, b.Int32)
	case Bool:
		return slices.Equal(a.Bool, b.Bool)
	}
	return false
}

// planFor returns the plan for the (already checked) inputs, building
// and caching it on first use.
func (e *native) planFor(inputs map[string]*Tensor) (*plan, error) {
	if p := e.last.Load(); p != nil && p.matches(inputs) {
		return p, nil
	}
	m := e.m
	shapes := make([][]int, len(m.inputs))
	for i, id := range m.inputs {
		shapes[i] = slices.Clone(inputs[m.values[id].name].Shape)
	}
	keyVals := make([]*Tensor, len(m.keyInputs))
	for k, id := range m.keyInputs {
		keyVals[k] = widen(inputs[m.values[id].name]).Clone()
	}
	key := planKey(shapes, keyVals)
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.plans[key]; p != nil {
		e.last.Store(p)
		return p, nil
	}
	p, err := e.buildPlan(shapes, keyVals)
	if err != nil {
		return nil, err
	}
	p.key = key
	e.cache(p)
	return p, nil
}

// cache adds p to the plan cache (e.mu held), first dropping the oldest
// plans while there are maxPlans of them, or while their memory (a run
// context each, their packed convolutions and constants) and p's would
// be over the budget together: a caller cycling through input shapes
// does not pile up plans each within the budget but far over it
// together. Runs still using a dropped plan finish with it.
func (e *native) cache(p *plan) {
	for len(e.order) > 0 && (len(e.order) >= e.maxPlans || addBytes(addBytes(e.weightBytes, e.cached), p.bytes) > e.budget) {
		old := e.plans[e.order[0]]
		delete(e.plans, e.order[0])
		e.order = e.order[1:]
		e.cached -= old.bytes
		e.releaseConvs(old.convs)
	}
	e.plans[p.key] = p
	e.order = append(e.order, p.key)
	e.cached += p.bytes
	e.last.Store(p)
}

func (e *native) runInto(ctx context.Context, inputs, outputs map[string]*Tensor) (err error) {
	// A panic is a bug, reported as an error of this run (naming the node
	// that ran) rather than crashing the caller. A kernel's worker tasks
	// hand their panics to the goroutine that called the pool
	// (kernels.TaskPanic), which is this one.
	var p *plan
	cur := -1 // the step running
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("infer: %w: %v", ErrInternal, r)
			if p != nil && cur >= 0 && cur < len(p.steps) {
				err = nodeError(p.steps[cur].n, fmt.Errorf("%w: %v", ErrInternal, r))
			}
		}
	}()
	if e.closed.Load() {
		return errClosed
	}
	m := e.m
	if err := m.checkInputs(inputs); err != nil {
		return err
	}
	p, err = e.planFor(inputs)
	if err != nil {
		return err
	}
	rc := p.getCtx(e.pool)
	defer p.putCtx(rc)

	// Edge types (uint8, int8, float16) are held widened during the run:
	// such inputs are widened into new buffers, such outputs computed in
	// buffers of their storage type and narrowed at the end.
	for _, id := range m.inputs {
		rc.bindTensor(id, widen(inputs[m.values[id].name]))
	}
	var narrowOut [][2]*Tensor // caller's tensor, storage
	for j, id := range m.outputs {
		v := m.values[id]
		t := outputs[v.name]
		if t == nil {
			t = &Tensor{}
			outputs[v.name] = t
		}
		shapeTensor(t, v.dtype, p.outShapes[j])
		if p.vals[id].kind == kindOutput {
			if v.dtype.narrow() {
				w := newTensor(v.dtype.storage(), p.outShapes[j])
				narrowOut = append(narrowOut, [2]*Tensor{t, w})
				rc.bindTensor(id, w)
			} else {
				rc.bindTensor(id, t)
			}
		}
	}
	for _, a := range p.runAliases {
		rc.bindAlias(p.vals[a[0]].dtype, a[0], a[1])
	}
	defer p.unbind(rc)

	done := ctx.Done()
	for i, step := range rc.steps {
		cur = i
		if done != nil {
			select {
			case <-done:
				return ctx.Err()
			default:
			}
		}
		if err := step(); err != nil {
			return nodeError(p.steps[i].n, err)
		}
	}
	cur = -1
	for _, c := range p.outCopies {
		dst := outputs[m.values[c[0]].name]
		src := p.vals[c[1]]
		var from *Tensor
		if src.kind == kindConst {
			from = src.data
		} else {
			from = inputs[m.values[src.id].name]
		}
		if dst.Type() != from.Type() { // an edge type, from a constant held widened
			narrowInto(dst, from)
		} else {
			copyTensorData(dst, from)
		}
	}
	for _, o := range narrowOut {
		narrowInto(o[0], o[1])
	}
	return nil
}

// unbind drops the views of the caller's tensors.
func (p *plan) unbind(rc *runCtx) {
	for _, id := range p.m.inputs {
		rc.unbind(p.vals[id].dtype, id)
	}
	for _, id := range p.m.outputs {
		if p.vals[id].kind == kindOutput {
			rc.unbind(p.vals[id].dtype, id)
		}
	}
	for _, a := range p.runAliases {
		rc.unbind(p.vals[a[0]].dtype, a[0])
	}
}

// shapeTensor makes t a tensor of type dt and the given shape, reusing
// its slices when they are large enough.
func shapeTensor(t *Tensor, dt DType, shape []int) {
	n, _ := numel(shape)
	t.DType = dt
	t.Shape = append(t.Shape[:0], shape...)
	switch dt {
	case Float32:
		t.Float32 = resize(t.Float32, n)
	case Float64:
		t.Float64 = resize(t.Float64, n)
	case Int64:
		t.Int64 = resize(t.Int64, n)
	case Int32:
		t.Int32 = resize(t.Int32, n)
	case Bool:
		t.Bool = resize(t.Bool, n)
	case Uint8:
		t.Uint8 = resize(t.Uint8, n)
	case Int8:
		t.Int8 = resize(t.Int8, n)
	case Float16:
		t.Float16 = resize(t.Float16, n)
	}
}

func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// copyTensorData copies src's data into dst (already shaped alike).
func copyTensorData(dst, src *Tensor) {
	switch src.Type() {
	case Float32:
		copy(dst.Float32, src.Float32)
	case Float64:
		copy(dst.Float64, src.Float64)
	case Int64:
		copy(dst.Int64, src.Int64)
	case Int32:
		copy(dst.Int32, src.Int32)
	case Bool:
		copy(dst.Bool, src.Bool)
	case Uint8:
		copy(dst.Uint8, src.Uint8)
	case Int8:
		copy(dst.Int8, src.Int8)
	case Float16:
		copy(dst.Float16, src.Float16)
	}
}
