package infer

import "github.com/resnetctl/resnetctl/internal/kernels"

// runCtx is the state of one run: typed views of every value (by id),
// the slabs holding temporaries, the conv workspace, and the steps'
// kernels instantiated for this context. Contexts are pooled per plan, so
// concurrent runs never share one.
type runCtx struct {
	pool *kernels.Pool
	f32  [][]float32
	f64  [][]float64
	i64  [][]int64
	i32  [][]int32
	b    [][]bool
	ws   []float32

	slabF32  []float32
	slabF64  []float64
	slabI64  []int64
	slabI32  []int32
	slabBool []bool

	steps []func() error
}

// elem is the set of element types the runtime stores.
type elem interface {
	float32 | float64 | int64 | int32 | bool
}

// num is the set of types arithmetic runs on.
type num interface {
	float32 | float64 | int64 | int32
}

// viewsOf returns the context's views for element type T.
func viewsOf[T elem](rc *runCtx) [][]T {
	var z T
	switch any(z).(type) {
	case float32:
		return *any(&rc.f32).(*[][]T)
	case float64:
		return *any(&rc.f64).(*[][]T)
	case int64:
		return *any(&rc.i64).(*[][]T)
	case int32:
		return *any(&rc.i32).(*[][]T)
	default:
		return *any(&rc.b).(*[][]T)
	}
}

// dtypeOf returns the DType of T.
func dtypeOf[T elem]() DType {
	var z T
	switch any(z).(type) {
	case float32:
		return Float32
	case float64:
		return Float64
	case int64:
		return Int64
	case int32:
		return Int32
	default:
		return Bool
	}
}

func (rc *runCtx) allocViews(n int) {
	rc.f32 = make([][]float32, n)
	rc.f64 = make([][]float64, n)
	rc.i64 = make([][]int64, n)
	rc.i32 = make([][]int32, n)
	rc.b = make([][]bool, n)
}

// bindTensor points value id's view at t's data.
func (rc *runCtx) bindTensor(id int, t *Tensor) {
	switch t.Type() {
	case Float32:
		rc.f32[id] = t.Float32
	case Float64:
		rc.f64[id] = t.Float64
	case Int64:
		rc.i64[id] = t.Int64
	case Int32:
		rc.i32[id] = t.Int32
	case Bool:
		rc.b[id] = t.Bool
	}
}

// bindAlias points id's view at root's.
func (rc *runCtx) bindAlias(dt DType, id, root int) {
	switch dt {
	case Float32:
		rc.f32[id] = rc.f32[root]
	case Float64:
		rc.f64[id] = rc.f64[root]
	case Int64:
		rc.i64[id] = rc.i64[root]
	case Int32:
		rc.i32[id] = rc.i32[root]
	case Bool:
		rc.b[id] = rc.b[root]
	}
}

// unbind drops a view (so a pooled context keeps no caller memory).
func (rc *runCtx) unbind(dt DType, id int) {
	switch dt {
	case Float32:
		rc.f32[id] = nil
	case Float64:
		rc.f64[id] = nil
	case Int64:
		rc.i64[id] = nil
	case Int32:
		rc.i32[id] = nil
	case Bool:
		rc.b[id] = nil
	}
}

// bindSlab points a temporary's view into its type's slab.
func (rc *runCtx) bindSlab(pv *pval) {
	lo, hi := pv.off, pv.off+pv.size
	switch pv.dtype {
	case Float32:
		rc.f32[pv.id] = rc.slabF32[lo:hi:hi]
	case Float64:
		rc.f64[pv.id] = rc.slabF64[lo:hi:hi]
	case Int64:
		rc.i64[pv.id] = rc.slabI64[lo:hi:hi]
	case Int32:
		rc.i32[pv.id] = rc.slabI32[lo:hi:hi]
	case Bool:
		rc.b[pv.id] = rc.slabBool[lo:hi:hi]
	}
}

// newRunCtx allocates a context for p: slabs, views of constants and
// temporaries, and the instantiated kernels.
func (p *plan) newRunCtx(pool *kernels.Pool) *runCtx {
	rc := &runCtx{pool: pool}
	rc.allocViews(len(p.vals))
	rc.slabF32 = make([]float32, p.slab[tiF32])
	rc.slabF64 = make([]float64, p.slab[tiF64])
	rc.slabI64 = make([]int64, p.slab[tiI64])
	rc.slabI32 = make([]int32, p.slab[tiI32])
	rc.slabBool = make([]bool, p.slab[tiBool])
	rc.ws = make([]float32, p.ws)
	for _, pv := range p.vals {
		switch pv.kind {
		case kindConst:
			rc.bindTensor(pv.id, pv.data)
		case kindTemp:
			rc.bindSlab(pv)
		}
	}
	for _, pv := range p.vals { // aliases of constants and temporaries
		if pv.kind == kindAlias {
			if r := p.vals[pv.root]; r.kind == kindConst || r.kind == kindTemp {
				rc.bindAlias(pv.dtype, pv.id, pv.root)
			}
		}
	}
	rc.steps = make([]func() error, len(p.steps))
	for i, st := range p.steps {
		rc.steps[i] = st.kernel(rc)
	}
	return rc
}

// threads is the number of workers kernels may use.
func (rc *runCtx) threads() int {
	if rc.pool == nil {
		return 1
	}
	return rc.pool.Threads()
}

// parallel runs body over [0, n), split across the pool's workers when
// the work (n items of about cost element operations each) is worth it.
func (rc *runCtx) parallel(n, cost int, body func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if rc.pool == nil || n < 2 || n*max(cost, 1) < 1<<15 || rc.pool.Threads() < 2 {
		body(0, n)
		return
	}
	if h := taskHook; h != nil {
		b := body
		body = func(lo, hi int) { h(lo, hi); b(lo, hi) }
	}
	rc.pool.Parallel(n, body)
}

// taskHook, when set, runs at the start of every range that parallel
// hands to the pool. Tests only (TestPanicInPoolTask injects a panic into
// a worker's task with it); never set otherwise.
var taskHook func(lo, hi int)

// copyKernel copies value src into value dst (same type and size).
func copyKernel(dt DType, src, dst int) kfactory {
	return byType(dt, [2]int{src, dst}, copyK[float32], copyK[float64], copyK[int64], copyK[int32], copyK[bool])
}

func copyK[T elem](ids [2]int) kfactory {
	return func(rc *runCtx) func() error {
		v := viewsOf[T](rc)
		return func() error {
			copy(v[ids[1]], v[ids[0]])
			return nil
		}
	}
}
