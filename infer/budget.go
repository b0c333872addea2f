package infer

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/resnetctl/resnetctl/internal/checked"
	"github.com/resnetctl/resnetctl/internal/numfmt"
)

// The memory budget of a plan (Options.MaxMemory). A file of a few
// hundred bytes can declare tensors of billions of elements, each under
// MaxElements but together far beyond the machine (three Pads of 8 GiB
// each), and a run allocates what its plan lays out. So a plan adds up
// everything it will need before allocating any of it:
//
//   - fixed memory, shared by the runs: the model's weights, the packed
//     convolutions (kernels.ConvParams.NewConvBytes, reserved before
//     packing), and the constants computed while planning (folded nodes,
//     ConstantOfShape …), reserved before each is allocated;
//   - per run: the inputs and outputs, the slabs holding temporaries (as
//     laid out by liveness, so values not alive together share memory),
//     the workspace, and what kernels allocate for themselves (pnode.extra).
//
// Constants computed while planning are further bounded by foldBudget:
// beyond it a node with known inputs runs as an ordinary step, its output
// in the plan's buffers, which the budget check covers before they exist.

// foldBudget bounds the elements of all the constants one plan computes
// while planning (64 MiB of float32). Past it, nodes run at run time.
var foldBudget = 1 << 24 // a variable for tests

// bytes is the size of one element of type d.
func (d DType) bytes() int {
	switch d {
	case Float64, Int64:
		return 8
	case Int32, Float32:
		return 4
	case Float16:
		return 2
	}
	return 1
}

// tensorBytes is the size of n elements of type d (saturating: n is at
// most MaxElements, but the sum of many may be compared to a budget).
func tensorBytes(d DType, n int) int64 {
	b, ok := checked.Mul(n, d.bytes())
	if !ok {
		return math.MaxInt64
	}
	return int64(b)
}

// addBytes is a saturating sum.
func addBytes(a, b int64) int64 {
	if s, ok := checked.Add(int(a), int(b)); ok {
		return int64(s)
	}
	return math.MaxInt64
}

// weightBytes is the size of the values known at load (initializers,
// Constant nodes), which every plan shares.
func (m *model) weightBytes() int64 {
	var n int64
	for _, v := range m.values {
		if v.init != nil {
			n = addBytes(n, tensorBytes(v.init.Type(), v.init.dataLen()))
		}
	}
	return n
}

// reserve counts n bytes of fixed memory (packed weights, constants)
// against the budget, before the caller allocates them; what is the
// allocation, for the error.
func (pc *planCtx) reserve(n int64, what string) error {
	total := addBytes(pc.fixed, n)
	if total > pc.e.budget {
		return fmt.Errorf("%w: %s needs %s, and the plan's memory so far is %s, over the budget of %s (Options.MaxMemory)",
			ErrMemoryBudget, what, byteText(n), byteText(pc.fixed), byteText(pc.e.budget))
	}
	pc.fixed = total
	return nil
}

// tryConst allocates a planning-time constant of the given type and shape
// when it fits the fold budget and the memory budget; otherwise it
// returns nil, and the caller computes the value at run time instead.
func (pc *planCtx) tryConst(dt DType, shape []int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, errShape("%v", err)
	}
	if !pc.canFold(n, tensorBytes(dt, n)) {
		return nil, nil
	}
	return newTensor(dt, shape), nil
}

// canFold reports whether a constant of n elements (bytes bytes) may be
// computed while planning, and if so counts it.
func (pc *planCtx) canFold(n int, bytes int64) bool {
	if pc.folded+n > foldBudget || addBytes(pc.fixed, bytes) > pc.e.budget {
		return false
	}
	pc.folded += n
	pc.fixed += bytes
	return true
}

// checkBudget adds up what one run of the plan needs besides the fixed
// memory (inputs, outputs, slabs, workspace, the kernels' own buffers)
// and refuses a plan over the budget, naming its largest tensors.
func (p *plan) checkBudget(pc *planCtx) error {
	total := pc.fixed
	var sized []*pval // tensors of the run, for the message
	for _, pv := range p.vals {
		switch pv.kind {
		case kindInput, kindOutput:
			total = addBytes(total, tensorBytes(pv.dtype, pv.size))
			sized = append(sized, pv)
		case kindTemp:
			if pv.shape != nil {
				sized = append(sized, pv)
			}
		}
	}
	for _, c := range p.outCopies { // outputs written by a copy
		pv := p.vals[c[0]]
		total = addBytes(total, tensorBytes(pv.dtype, pv.size))
	}
	for ti, n := range p.slab {
		total = addBytes(total, tensorBytes([nTypes]DType{Float32, Float64, Int64, Int32, Bool}[ti], n))
	}
	total = addBytes(total, tensorBytes(Float32, p.ws))
	for _, st := range p.steps {
		total = addBytes(total, st.extra)
	}
	if total <= pc.e.budget {
		p.bytes = total - pc.e.weightBytes
		return nil
	}
	for _, pv := range p.vals { // weights and constants count too
		if pv.kind == kindConst && pv.data != nil {
			sized = append(sized, pv)
		}
	}
	slices.SortStableFunc(sized, func(a, b *pval) int {
		return cmp.Compare(tensorBytes(b.dtype, b.size), tensorBytes(a.dtype, a.size))
	})
	var big []string
	for _, pv := range sized[:min(3, len(sized))] {
		big = append(big, fmt.Sprintf("%q %s %s %s", p.m.values[pv.id].name, pv.dtype, shapeList(pv.shape), byteText(tensorBytes(pv.dtype, pv.size))))
	}
	return fmt.Errorf("infer: %w: the plan for input shapes %v needs %s, over the budget of %s (Options.MaxMemory); largest tensors: %s",
		ErrMemoryBudget, p.inShapes, byteText(total), byteText(pc.e.budget), strings.Join(big, ", "))
}

// checkDeclaredInputs refuses a model whose declared inputs (every
// dimension fixed but the batch, taken as 1) alone are over the budget:
// no run of it could be planned (a file declaring a 100000x100000 image).
func (m *model) checkDeclaredInputs(budget int64) error {
	var total int64
	var big []string
	for _, id := range m.inputs {
		v := m.values[id]
		if v.rank < 0 || slices.ContainsFunc(v.shape[min(1, len(v.shape)):], func(d int) bool { return d < 0 }) {
			continue
		}
		shape := slices.Clone(v.shape)
		if len(shape) > 0 && shape[0] < 0 {
			shape[0] = 1
		}
		b := int64(math.MaxInt64) // when the product overflows
		if n, ok := checked.Product(append(shape, v.dtype.bytes())...); ok && n >= 0 {
			b = int64(n)
		}
		total = addBytes(total, b)
		big = append(big, fmt.Sprintf("%q %s %s %s", v.name, v.dtype, shapeList(shape), byteText(b)))
	}
	if total <= budget {
		return nil
	}
	return fmt.Errorf("infer: %w: the declared inputs need %s, over the budget of %s (Options.MaxMemory): %s",
		ErrMemoryBudget, byteText(total), byteText(budget), strings.Join(big, ", "))
}

// shapeList renders a shape for a message, eliding the middle of a very
// long one.
func shapeList(s []int) string { return listText(s) }

// byteText renders a byte count with a binary unit.
func byteText(n int64) string { return numfmt.Bytes(n) }
