package infer

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/resnetctl/resnetctl/internal/kernels"
)

// op is one node's operator, its attributes checked at load. plan is
// called once per input shape: it checks the input shapes, sets the output
// shapes and, unless the output is already known, the kernel.
type op interface {
	plan(pc *planCtx, n *pnode) error
}

// kfactory makes a node's kernel for one run context. It is called once
// per context (so closures passed to the worker pool are made once, not
// per run); the returned function runs the node, reading and writing the
// context's views.
type kfactory func(rc *runCtx) func() error

// pval is a value as planned for concrete input shapes.
type pval struct {
	id    int
	dtype DType
	shape []int
	size  int
	data  *Tensor // known when planning (constant or folded)

	kind    valKind
	root    int // value owning the storage (itself unless an alias)
	off     int // offset in its type's slab (temporaries)
	lastUse int // index of the last step reading the storage
	given   bool
}

type valKind uint8

const (
	kindTemp valKind = iota
	kindConst
	kindInput
	kindOutput
	kindAlias
)

// pnode is a node being planned.
type pnode struct {
	n       *node
	in, out []*pval // nil for omitted inputs/outputs
	kernel  kfactory
	// aliasOf >= 0: output 0 is input aliasOf with a new shape (Reshape,
	// Flatten, Squeeze, Identity …); no kernel runs unless the output must
	// be materialised.
	aliasOf int
	// inplace >= 0: output 0 may take over input inplace's buffer when
	// that input is not read afterwards. With inplaceAlone, only if no
	// other input of the node shares that buffer (a convolution must not
	// write over its own input).
	inplace      int
	inplaceAlone bool
	// ws is the float32 workspace the kernel needs.
	ws int
	// extra is the bytes the kernel allocates for itself, once per run
	// context (counted against the memory budget).
	extra int64
}

// setShape sets output i's shape, checking its size.
func (n *pnode) setShape(pc *planCtx, i int, shape []int) error {
	o := n.out[i]
	if o == nil {
		return nil
	}
	size, err := numel(shape)
	if err != nil {
		return errShape("output %d: %v", i, err)
	}
	if size > pc.maxElems {
		return fmt.Errorf("%w: output %d would have shape %v (%d elements, more than the limit %d)", ErrInput, i, shape, size, pc.maxElems)
	}
	o.shape, o.size = append([]int{}, shape...), size
	return nil
}

// setConst makes output i a planning-time constant.
func (n *pnode) setConst(pc *planCtx, i int, t *Tensor) error {
	if err := n.setShape(pc, i, t.Shape); err != nil {
		return err
	}
	if n.out[i] != nil {
		n.out[i].data = t
	}
	return nil
}

// planCtx holds what planning needs beyond the node.
type planCtx struct {
	e        *native
	threads  int
	maxElems int
	// fixed is the memory the plan holds for all its runs (weights,
	// packed convolutions, constants), in bytes, checked against the
	// budget as it grows; folded counts the elements of the constants
	// computed while planning (at most foldBudget). See budget.go.
	fixed  int64
	folded int
	// convs are the packed convolutions the plan references (see
	// native.packedConv).
	convs []convKey
}

// plan is the execution of the model for one set of input shapes (and
// plan-key input values): folded constants, steps, buffer offsets.
type plan struct {
	m        *model
	key      string
	inShapes [][]int
	keyVals  []*Tensor // by position in m.keyInputs
	vals     []*pval
	steps    []*pnode
	slab     [nTypes]int // slab sizes per type index
	ws       int
	// outCopies: graph outputs whose storage is not written by a step
	// (constants, inputs, aliases), copied in at the end of a run.
	outCopies [][2]int // output id, source id
	// runAliases: aliases of inputs or outputs, re-bound every run.
	runAliases [][2]int // id, root
	outShapes  [][]int  // by position in m.outputs
	// bytes is the plan's memory besides the weights: its packed
	// convolutions and constants, and the buffers of one run (budget.go);
	// convs the packed convolutions it references.
	bytes int64
	convs []convKey

	// Idle run contexts. Unlike a sync.Pool, the list survives garbage
	// collections, so a steady stream of runs never re-allocates buffers;
	// it holds as many contexts as runs were ever concurrent on the plan.
	mu   sync.Mutex
	idle []*runCtx
}

// getCtx takes an idle run context, or makes one.
func (p *plan) getCtx(pool *kernels.Pool) *runCtx {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		rc := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return rc
	}
	p.mu.Unlock()
	return p.newRunCtx(pool)
}

// putCtx returns a run context to the idle list.
func (p *plan) putCtx(rc *runCtx) {
	p.mu.Lock()
	p.idle = append(p.idle, rc)
	p.mu.Unlock()
}

// Type indexes of the slabs.
const (
	tiF32 = iota
	tiF64
	tiI64
	tiI32
	tiBool
	nTypes
)

func typeIndex(dt DType) int {
	switch dt {
	case Float64:
		return tiF64
	case Int64:
		return tiI64
	case Int32:
		return tiI32
	case Bool:
		return tiBool
	}
	return tiF32
}

// planKey renders input shapes and key values as a map key.
func planKey(shapes [][]int, keyVals []*Tensor) string {
	var b strings.Builder
	for _, s := range shapes {
		for _, d := range s {
			b.WriteString(strconv.Itoa(d))
			b.WriteByte(',')
		}
		b.WriteByte(';')
	}
	for _, t := range keyVals {
		b.WriteByte('|')
		writeValues(&b, t)
	}
	return b.String()
}

func writeValues(b *strings.Builder, t *Tensor) {
	switch t.Type() {
	case Float32:
		for _, v := range t.Float32 {
			b.WriteString(strconv.FormatUint(uint64(math.Float32bits(v)), 16))
			b.WriteByte(',')
		}
	case Float64:
		for _, v := range t.Float64 {
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
			b.WriteByte(',')
		}
	case Int64:
		for _, v := range t.Int64 {
			b.WriteString(strconv.FormatInt(v, 10))
			b.WriteByte(',')
		}
	case Int32:
		for _, v := range t.Int32 {
			b.WriteString(strconv.FormatInt(int64(v), 10))
			b.WriteByte(',')
		}
	case Bool:
		for _, v := range t.Bool {
			if v {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		}
	}
}

// buildPlan plans the model for the given input shapes (by position in
// m.inputs) and key-input values (by position in m.keyInputs), within
// the memory budget (budget.go): a plan over it is refused before its
// buffers are allocated, with an error wrapping ErrMemoryBudget.
func (e *native) buildPlan(shapes [][]int, keyVals []*Tensor) (_ *plan, err error) {
	m := e.m
	pc := &planCtx{e: e, threads: e.threads, maxElems: e.maxElems, fixed: e.weightBytes}
	defer func() {
		if err != nil {
			e.releaseConvs(pc.convs)
		}
	}()
	p := &plan{m: m, inShapes: shapes, keyVals: keyVals, vals: make([]*pval, len(m.values))}
	for _, v := range m.values {
		pv := &pval{id: v.id, dtype: v.dtype.storage(), root: v.id, lastUse: -1}
		if v.init != nil {
			pv.data, pv.shape, pv.size = v.init, v.init.Shape, v.init.Len()
		}
		p.vals[v.id] = pv
	}
	for i, id := range m.inputs {
		pv := p.vals[id]
		pv.shape = slices.Clone(shapes[i])
		pv.size, _ = numel(shapes[i])
	}
	for k, id := range m.keyInputs {
		p.vals[id].data = keyVals[k]
	}

	// Nodes that contribute to an output.
	needed := make([]bool, len(m.nodes))
	var stack []int
	for _, id := range m.outputs {
		stack = append(stack, id)
	}
	seen := make([]bool, len(m.values))
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		if pr := m.values[id].producer; pr >= 0 && !needed[pr] {
			needed[pr] = true
			for _, in := range m.nodes[pr].in {
				if in >= 0 {
					stack = append(stack, in)
				}
			}
		}
	}

	for i, n := range m.nodes {
		if !needed[i] {
			continue
		}
		pn := &pnode{n: n, aliasOf: -1, inplace: -1}
		for _, id := range n.in {
			var pv *pval
			if id >= 0 {
				pv = p.vals[id]
			}
			pn.in = append(pn.in, pv)
		}
		for _, id := range n.out {
			var pv *pval
			if id >= 0 {
				pv = p.vals[id]
			}
			pn.out = append(pn.out, pv)
		}
		if err := n.op.plan(pc, pn); err != nil {
			return nil, nodeError(n, err)
		}
		known, allConst := true, true
		for k, o := range pn.out {
			if o == nil {
				continue
			}
			if o.shape == nil && o.data == nil {
				return nil, nodeError(n, fmt.Errorf("internal error: output %d has no shape", k))
			}
			if o.data == nil {
				known = false
			}
		}
		if known {
			continue
		}
		for _, in := range pn.in {
			if in != nil && in.data == nil {
				allConst = false
			}
		}
		// A node of known inputs is computed now (a view costs nothing),
		// unless its outputs are over the fold or memory budget: it then
		// runs as an ordinary step, in buffers the budget check covers.
		if allConst && (pn.aliasOf >= 0 || pc.canFold(foldSize(pn))) {
			if err := fold(pn, e.pool); err != nil {
				return nil, nodeError(n, err)
			}
			continue
		}
		if pn.kernel == nil && pn.aliasOf < 0 {
			return nil, nodeError(n, fmt.Errorf("internal error: no kernel"))
		}
		p.steps = append(p.steps, pn)
	}
	for _, id := range m.outputs {
		p.outShapes = append(p.outShapes, p.vals[id].shape)
	}
	p.assign()
	if err := p.checkBudget(pc); err != nil {
		return nil, err
	}
	p.convs = pc.convs
	return p, nil
}

// foldSize is the elements and bytes folding pn allocates: its outputs
// and its workspace.
func foldSize(pn *pnode) (int, int64) {
	n, b := pn.ws, tensorBytes(Float32, pn.ws)
	for _, o := range pn.out {
		if o != nil {
			n += o.size
			b = addBytes(b, tensorBytes(o.dtype, o.size))
		}
	}
	return n, b
}

// fold computes a node whose inputs are all known, once, at planning.
func fold(pn *pnode, pool *kernels.Pool) error {
	if pn.aliasOf >= 0 {
		in := pn.in[pn.aliasOf].data
		o := pn.out[0]
		o.data = aliasTensor(in, o.shape)
		return nil
	}
	rc := &runCtx{pool: pool}
	maxID := 0
	for _, v := range append(slices.Clone(pn.in), pn.out...) {
		if v != nil {
			maxID = max(maxID, v.id)
		}
	}
	rc.allocViews(maxID + 1)
	for _, in := range pn.in {
		if in != nil {
			rc.bindTensor(in.id, in.data)
		}
	}
	outs := make([]*Tensor, len(pn.out))
	for k, o := range pn.out {
		if o != nil {
			outs[k] = newTensor(o.dtype, o.shape)
			rc.bindTensor(o.id, outs[k])
		}
	}
	if pn.ws > 0 {
		rc.ws = make([]float32, pn.ws)
	}
	if err := pn.kernel(rc)(); err != nil {
		return err
	}
	for k, o := range pn.out {
		if o != nil {
			o.data = outs[k]
		}
	}
	return nil
}

// aliasTensor views t's data with another shape.
func aliasTensor(t *Tensor, shape []int) *Tensor {
	c := *t
	c.Shape = slices.Clone(shape)
	return &c
}

// assign classifies every value and gives temporaries slab offsets,
// reusing the storage of values no longer read (liveness over the steps).
func (p *plan) assign() {
	m := p.m
	root := func(id int) int {
		for p.vals[id].kind == kindAlias && p.vals[id].root != id {
			id = p.vals[id].root
		}
		return id
	}
	for _, pv := range p.vals {
		switch {
		case pv.data != nil:
			pv.kind = kindConst
		case m.values[pv.id].input:
			pv.kind = kindInput
		case m.values[pv.id].output:
			pv.kind = kindOutput
		default:
			pv.kind = kindTemp
		}
	}
	// Aliasing steps: a view of the input unless the output is a graph
	// output, which must be written.
	var kept []*pnode
	for _, st := range p.steps {
		if st.aliasOf >= 0 {
			in, o := st.in[st.aliasOf], st.out[0]
			if o.kind == kindOutput {
				st.kernel = copyKernel(o.dtype, in.id, o.id)
				st.aliasOf = -1
			} else {
				o.kind, o.root = kindAlias, root(in.id)
				continue // no step
			}
		}
		kept = append(kept, st)
	}
	p.steps = kept
	for _, pv := range p.vals {
		if pv.kind == kindAlias {
			pv.root = root(pv.id)
		}
	}

	// Liveness.
	for i, st := range p.steps {
		for _, in := range st.in {
			if in != nil {
				r := p.vals[in.root]
				r.lastUse = max(r.lastUse, i)
			}
		}
		for _, o := range st.out {
			if o != nil && o.lastUse < i {
				o.lastUse = i
			}
		}
	}
	// Values read by a graph-output copy stay alive to the end.
	end := len(p.steps)
	for _, id := range m.outputs {
		pv := p.vals[id]
		if pv.kind != kindOutput {
			p.outCopies = append(p.outCopies, [2]int{id, id})
			p.vals[pv.root].lastUse = end
		}
	}

	var allocs [nTypes]allocator
	for i, st := range p.steps {
		for k, o := range st.out {
			if o == nil || o.kind != kindTemp {
				continue
			}
			ti := typeIndex(o.dtype)
			if k == 0 && st.inplace >= 0 {
				in := p.vals[st.in[st.inplace].root]
				shared := false
				for j, other := range st.in {
					if j != st.inplace && other != nil && other.root == in.id {
						shared = true
					}
				}
				if in.kind == kindTemp && in.lastUse == i && !in.given && in.dtype == o.dtype && in.size >= o.size && !(shared && st.inplaceAlone) {
					// o takes over in's block.
					o.off, in.given = in.off, true
					allocs[ti].owned(o.id, in.id)
					continue
				}
			}
			o.off = allocs[ti].alloc(o.id, o.size)
		}
		for _, in := range st.in {
			if in == nil {
				continue
			}
			r := p.vals[in.root]
			if r.kind == kindTemp && r.lastUse == i && !r.given {
				allocs[typeIndex(r.dtype)].release(r.id)
				r.given = true
			}
		}
		for _, o := range st.out {
			if o != nil && o.kind == kindTemp && o.lastUse <= i && !o.given {
				allocs[typeIndex(o.dtype)].release(o.id)
				o.given = true
			}
		}
		p.ws = max(p.ws, st.ws)
	}
	for ti := range allocs {
		p.slab[ti] = allocs[ti].end
	}
	for _, pv := range p.vals {
		if pv.kind == kindAlias {
			if r := p.vals[pv.root]; r.kind == kindInput || r.kind == kindOutput {
				p.runAliases = append(p.runAliases, [2]int{pv.id, pv.root})
			}
		}
	}
}

// allocator hands out offsets in a slab, best fit over a free list kept
// sorted by offset, coalescing neighbours.
type allocator struct {
	free  []block
	end   int
	owner map[int]block // value id → its block
}

type block struct{ off, size int }

const align = 16 // elements; 64 bytes of float32

func (a *allocator) alloc(id, n int) int {
	if a.owner == nil {
		a.owner = map[int]block{}
	}
	n = (n + align - 1) / align * align
	best := -1
	for i, b := range a.free {
		if b.size >= n && (best < 0 || b.size < a.free[best].size) {
			best = i
		}
	}
	var off int
	switch {
	case best >= 0:
		b := a.free[best]
		off = b.off
		if b.size == n {
			a.free = slices.Delete(a.free, best, best+1)
		} else {
			a.free[best] = block{b.off + n, b.size - n}
		}
	case len(a.free) > 0 && a.free[len(a.free)-1].off+a.free[len(a.free)-1].size == a.end:
		off = a.free[len(a.free)-1].off
		a.free = a.free[:len(a.free)-1]
		a.end = off + n
	default:
		off = a.end
		a.end += n
	}
	a.owner[id] = block{off, n}
	return off
}

// owned transfers from's block to id (an in-place output).
func (a *allocator) owned(id, from int) {
	a.owner[id] = a.owner[from]
	delete(a.owner, from)
}

func (a *allocator) release(id int) {
	b, ok := a.owner[id]
	if !ok {
		return
	}
	delete(a.owner, id)
	if b.size == 0 {
		return
	}
	i, _ := slices.BinarySearchFunc(a.free, b.off, func(x block, off int) int { return x.off - off })
	a.free = slices.Insert(a.free, i, b)
	// Coalesce with the next, then the previous block.
	if i+1 < len(a.free) && a.free[i].off+a.free[i].size == a.free[i+1].off {
		a.free[i].size += a.free[i+1].size
		a.free = slices.Delete(a.free, i+1, i+2)
	}
	if i > 0 && a.free[i-1].off+a.free[i-1].size == a.free[i].off {
		a.free[i-1].size += a.free[i].size
		a.free = slices.Delete(a.free, i, i+1)
	}
}
