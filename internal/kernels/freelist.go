package kernels

import "sync"

// freeList recycles *T values between uses, so that the hot paths (the
// Pool's batches, the jobs of the pooling and element-wise kernels) do not
// allocate in steady state. Unlike a sync.Pool it keeps what it holds
// across garbage collections. The zero value is an empty list, safe for
// concurrent use.
type freeList[T any] struct {
	mu   sync.Mutex
	list []*T
}

// get takes a recycled value, or returns nil when there is none.
func (f *freeList[T]) get() *T {
	f.mu.Lock()
	var v *T
	if k := len(f.list); k > 0 {
		v = f.list[k-1]
		f.list = f.list[:k-1]
	}
	f.mu.Unlock()
	return v
}

// put recycles v.
func (f *freeList[T]) put(v *T) {
	f.mu.Lock()
	f.list = append(f.list, v)
	f.mu.Unlock()
}
