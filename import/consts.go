package onnximport

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// constOp evaluates a node whose inputs are all constants. Only the ops
// that shape arithmetic uses are evaluated: the chains PyTorch writes for
// F.pad pads, flatten shapes and the like. in[k] is nil for an omitted
// optional input.
type constOp func(a attrs, in []*tensor, opset int) (*tensor, error)

var constOps = map[string]constOp{
	"Identity":        func(_ attrs, in []*tensor, _ int) (*tensor, error) { return input(in, 0, "input") },
	"Cast":            constCast,
	"ConstantOfShape": constOfShape,
	"Concat":          constConcat,
	"Reshape":         constReshape,
	"Transpose":       constTranspose,
	"Slice":           constSlice,
	"Gather":          constGather,
	"Unsqueeze":       constUnsqueeze,
	"Squeeze":         constSqueeze,
	"Add":             constArith("Add"),
	"Sub":             constArith("Sub"),
	"Mul":             constArith("Mul"),
	"Div":             constArith("Div"),
}

// constant evaluates a Constant node's value attribute.
func constant(a attrs) (*tensor, error) {
	if len(a) != 1 {
		return nil, fmt.Errorf("a Constant needs exactly one value attribute, has %d", len(a))
	}
	for name, p := range a {
		switch name {
		case "value":
			if onnxmodel.TypeOf(p) != onnxmodel.AttrTensor || p.GetT() == nil {
				return nil, fmt.Errorf("attribute value is not a tensor")
			}
			return decodeTensor(p.GetT(), nil)
		case "value_float":
			v, err := a.float(name, 0)
			return &tensor{float: true, f: []float32{v}}, err
		case "value_floats":
			v, err := a.floats(name)
			return &tensor{dims: []int{len(v)}, float: true, f: append([]float32{}, v...)}, err
		case "value_int":
			v, err := a.int(name, 0)
			return &tensor{i: []int64{v}}, err
		case "value_ints":
			p, err := a.get(name, onnxmodel.AttrInts)
			if err != nil {
				return nil, err
			}
			return &tensor{dims: []int{len(p.GetInts())}, i: append([]int64{}, p.GetInts()...)}, nil
		default:
			return nil, fmt.Errorf("%w: Constant attribute %s", ErrUnsupported, name)
		}
	}
	return nil, nil // unreachable
}

// input returns in[k], or an error naming the missing input.
func input(in []*tensor, k int, what string) (*tensor, error) {
	if k >= len(in) || in[k] == nil {
		return nil, fmt.Errorf("missing input %d (%s)", k, what)
	}
	return in[k], nil
}

// intsIn reads an integer input (or nil when absent).
func intsIn(in []*tensor, k int, what string) ([]int64, error) {
	if k >= len(in) || in[k] == nil {
		return nil, nil
	}
	v, ok := in[k].ints()
	if !ok {
		return nil, fmt.Errorf("%s is not an integer tensor", what)
	}
	if len(in[k].dims) > 1 {
		return nil, fmt.Errorf("%s has rank %d, want 1", what, len(in[k].dims))
	}
	return v, nil
}

func normAxis(axis int64, rank int) (int, error) {
	ax, ok := onnxmodel.NormAxis(axis, rank)
	if !ok {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	return ax, nil
}

func hasBatch(v []int64) bool {
	for _, x := range v {
		if x == batchDim {
			return true
		}
	}
	return false
}

func constCast(a attrs, in []*tensor, _ int) (*tensor, error) {
	x, err := input(in, 0, "input")
	if err != nil {
		return nil, err
	}
	to, err := a.int("to", 0)
	if err != nil {
		return nil, err
	}
	out := &tensor{dims: x.dims}
	switch onnxpb.TensorProto_DataType(to) {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_FLOAT16:
		out.float = true
		if x.float {
			out.f = x.f
			return out, nil
		}
		if hasBatch(x.i) {
			return nil, errBatchDependent
		}
		out.f = make([]float32, len(x.i))
		for k, v := range x.i {
			out.f[k] = float32(v)
		}
	case onnxpb.TensorProto_INT64, onnxpb.TensorProto_INT32, onnxpb.TensorProto_INT16, onnxpb.TensorProto_INT8,
		onnxpb.TensorProto_UINT8, onnxpb.TensorProto_UINT16, onnxpb.TensorProto_UINT32, onnxpb.TensorProto_UINT64:
		if !x.float {
			out.i = x.i
			return out, nil
		}
		out.i = make([]int64, len(x.f))
		for k, v := range x.f {
			if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 1<<62 {
				return nil, fmt.Errorf("cannot cast %g to an integer", v)
			}
			out.i[k] = int64(v)
		}
	case onnxpb.TensorProto_BOOL:
		out.i = make([]int64, x.size())
		for k := range out.i {
			if (x.float && x.f[k] != 0) || (!x.float && x.i[k] != 0) {
				out.i[k] = 1
			}
		}
	default:
		return nil, fmt.Errorf("%w: Cast to %s", ErrUnsupported, onnxpb.TensorProto_DataType(to))
	}
	return out, nil
}

func constOfShape(a attrs, in []*tensor, _ int) (*tensor, error) {
	shape, err := intsIn(in, 0, "shape")
	if err != nil || shape == nil {
		return nil, fmt.Errorf("ConstantOfShape: %v", orMissing(err, "shape"))
	}
	if hasBatch(shape) {
		return nil, errBatchDependent
	}
	if len(shape) > maxRank {
		return nil, fmt.Errorf("rank %d", len(shape))
	}
	dims := make([]int, len(shape))
	for k, d := range shape {
		if d < 0 || d > maxComputed {
			return nil, fmt.Errorf("dimension %d", d)
		}
		dims[k] = int(d)
	}
	value := &tensor{float: true, f: []float32{0}}
	if p, ok := a["value"]; ok {
		if p.GetT() == nil {
			return nil, fmt.Errorf("attribute value is not a tensor")
		}
		if value, err = decodeTensor(p.GetT(), nil); err != nil {
			return nil, err
		}
		if value.size() != 1 {
			return nil, fmt.Errorf("value has %d elements, want 1", value.size())
		}
	}
	out, err := newComputed(dims, value.float)
	if err != nil {
		return nil, err
	}
	for k := range out.size() {
		if out.float {
			out.f[k] = value.f[0]
		} else {
			out.i[k] = value.i[0]
		}
	}
	return out, nil
}

func orMissing(err error, what string) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("missing %s", what)
}

func constConcat(a attrs, in []*tensor, _ int) (*tensor, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("no inputs")
	}
	first, err := input(in, 0, "input")
	if err != nil {
		return nil, err
	}
	ax, err := a.int("axis", math.MinInt64)
	if err != nil {
		return nil, err
	}
	if ax == math.MinInt64 {
		return nil, fmt.Errorf("missing attribute axis")
	}
	rank := len(first.dims)
	axis, err := normAxis(ax, rank)
	if err != nil {
		return nil, err
	}
	dims := append([]int{}, first.dims...)
	dims[axis] = 0
	for k, t := range in {
		if t == nil {
			return nil, fmt.Errorf("missing input %d", k)
		}
		if len(t.dims) != rank || t.float != first.float {
			return nil, fmt.Errorf("input %d has shape %v and type float=%v, input 0 %v and float=%v", k, t.dims, t.float, first.dims, first.float)
		}
		for d := range rank {
			if d != axis && t.dims[d] != first.dims[d] {
				return nil, fmt.Errorf("input %d has shape %v, input 0 %v", k, t.dims, first.dims)
			}
		}
		dims[axis] += t.dims[axis]
		if dims[axis] > maxComputed {
			return nil, fmt.Errorf("too large")
		}
	}
	out, err := newComputed(dims, first.float)
	if err != nil {
		return nil, err
	}
	outer := 1
	for _, d := range dims[:axis] {
		outer *= d
	}
	inner := 1
	for _, d := range dims[axis+1:] {
		inner *= d
	}
	pos := 0
	for o := range outer {
		for _, t := range in {
			n := t.dims[axis] * inner
			if out.float {
				copy(out.f[pos:], t.f[o*n:(o+1)*n])
			} else {
				copy(out.i[pos:], t.i[o*n:(o+1)*n])
			}
			pos += n
		}
	}
	return out, nil
}

// reshapeDims resolves a Reshape target against an input shape (0 copies,
// -1 infers).
func reshapeDims(in []int, target []int64, allowZero bool) ([]int, error) {
	if len(target) > maxRank {
		return nil, fmt.Errorf("rank %d", len(target))
	}
	n, err := numel(in)
	if err != nil {
		return nil, err
	}
	dims := make([]int, len(target))
	infer, known := -1, 1
	for k, v := range target {
		switch {
		case v == 0 && !allowZero:
			if k >= len(in) {
				return nil, fmt.Errorf("shape %v copies dimension %d of a rank-%d input", target, k, len(in))
			}
			dims[k] = in[k]
		case v == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has two -1", target)
			}
			infer = k
			continue
		case v < 0 || v > math.MaxInt32:
			return nil, fmt.Errorf("shape %v has dimension %d", target, v)
		default:
			dims[k] = int(v)
		}
		if dims[k] != 0 && known > math.MaxInt32/dims[k] {
			return nil, fmt.Errorf("shape %v too large", target)
		}
		known *= dims[k]
	}
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, target)
		}
		dims[infer] = n / known
		known = n
	}
	if known != n {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", in, n, target)
	}
	return dims, nil
}

func constReshape(a attrs, in []*tensor, opset int) (*tensor, error) {
	x, err := input(in, 0, "data")
	if err != nil {
		return nil, err
	}
	var target []int64
	if opset < 5 {
		target, err = a.ints("shape", nil)
	} else {
		target, err = intsIn(in, 1, "shape")
		if err == nil && target == nil {
			err = fmt.Errorf("missing shape")
		}
	}
	if err != nil {
		return nil, err
	}
	if hasBatch(target) {
		return nil, errBatchDependent
	}
	az, err := a.int("allowzero", 0)
	if err != nil {
		return nil, err
	}
	dims, err := reshapeDims(x.dims, target, az != 0)
	if err != nil {
		return nil, err
	}
	return &tensor{dims: dims, float: x.float, f: x.f, i: x.i, from: x.from}, nil
}

func constTranspose(a attrs, in []*tensor, _ int) (*tensor, error) {
	x, err := input(in, 0, "data")
	if err != nil {
		return nil, err
	}
	rank := len(x.dims)
	perm64, err := a.ints("perm", nil)
	if err != nil {
		return nil, err
	}
	perm := make([]int, rank)
	if perm64 == nil {
		for k := range perm {
			perm[k] = rank - 1 - k
		}
	} else {
		if len(perm64) != rank {
			return nil, fmt.Errorf("perm %v for rank %d", perm64, rank)
		}
		seen := make([]bool, rank)
		for k, p := range perm64 {
			if p < 0 || p >= int64(rank) || seen[p] {
				return nil, fmt.Errorf("perm %v is not a permutation", perm64)
			}
			seen[p] = true
			perm[k] = int(p)
		}
	}
	dims := make([]int, rank)
	for k, p := range perm {
		dims[k] = x.dims[p]
	}
	inStr, outStr := strides(x.dims), strides(dims)
	return gatherFrom(x, dims, func(k int) int {
		j := 0
		for d := range rank {
			j += (k / outStr[d] % max(dims[d], 1)) * inStr[perm[d]]
		}
		return j
	})
}

// sliceParams reads Slice's starts, ends, axes and steps (attributes before
// opset 10, inputs from 10).
func sliceParams(a attrs, in []*tensor, opset int) (starts, ends, axes, steps []int64, err error) {
	if opset < 10 {
		if starts, err = a.ints("starts", nil); err != nil {
			return
		}
		if ends, err = a.ints("ends", nil); err != nil {
			return
		}
		axes, err = a.ints("axes", nil)
	} else {
		if starts, err = intsIn(in, 1, "starts"); err != nil {
			return
		}
		if ends, err = intsIn(in, 2, "ends"); err != nil {
			return
		}
		if axes, err = intsIn(in, 3, "axes"); err != nil {
			return
		}
		steps, err = intsIn(in, 4, "steps")
	}
	if err != nil {
		return
	}
	if starts == nil || ends == nil || len(starts) != len(ends) {
		err = fmt.Errorf("starts %v and ends %v", starts, ends)
		return
	}
	if axes == nil {
		for k := range starts {
			axes = append(axes, int64(k))
		}
	}
	if steps == nil {
		for range starts {
			steps = append(steps, 1)
		}
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		err = fmt.Errorf("starts, ends, axes and steps differ in length")
	}
	if hasBatch(starts) || hasBatch(ends) || hasBatch(axes) || hasBatch(steps) {
		err = errBatchDependent
	}
	return
}

// sliceRange clamps one axis of a Slice as ONNX defines it and returns the
// first index, the step and the count.
func sliceRange(start, end, step int64, dim int) (first int64, count int, err error) {
	d := int64(dim)
	if step == 0 {
		return 0, 0, fmt.Errorf("step 0")
	}
	if start < 0 {
		start += d
	}
	if end < 0 {
		end += d
	}
	if step > 0 {
		start = min(max(start, 0), d)
		end = min(max(end, 0), d)
		if end > start {
			count = int((end - start + step - 1) / step)
		}
	} else {
		start = min(max(start, 0), d-1)
		end = min(max(end, -1), d-1)
		if start > end {
			count = int((start - end - step - 1) / -step)
		}
	}
	return start, count, nil
}

func constSlice(a attrs, in []*tensor, opset int) (*tensor, error) {
	x, err := input(in, 0, "data")
	if err != nil {
		return nil, err
	}
	starts, ends, axes, steps, err := sliceParams(a, in, opset)
	if err != nil {
		return nil, err
	}
	rank := len(x.dims)
	first := make([]int64, rank)
	step := make([]int64, rank)
	dims := append([]int{}, x.dims...)
	for k := range rank {
		step[k] = 1
	}
	seen := make([]bool, rank)
	for k := range starts {
		ax, err := normAxis(axes[k], rank)
		if err != nil {
			return nil, err
		}
		if seen[ax] {
			return nil, fmt.Errorf("axis %d sliced twice", ax)
		}
		seen[ax] = true
		f, c, err := sliceRange(starts[k], ends[k], steps[k], x.dims[ax])
		if err != nil {
			return nil, err
		}
		first[ax], step[ax], dims[ax] = f, steps[k], c
	}
	inStr, outStr := strides(x.dims), strides(dims)
	return gatherFrom(x, dims, func(k int) int {
		j := 0
		for d := range rank {
			idx := int64(k / outStr[d] % max(dims[d], 1))
			j += int(first[d]+idx*step[d]) * inStr[d]
		}
		return j
	})
}

func constGather(a attrs, in []*tensor, _ int) (*tensor, error) {
	x, err := input(in, 0, "data")
	if err != nil {
		return nil, err
	}
	idx, err := input(in, 1, "indices")
	if err != nil {
		return nil, err
	}
	ind, ok := idx.ints()
	if !ok {
		return nil, fmt.Errorf("indices are not integers")
	}
	ax, err := a.int("axis", 0)
	if err != nil {
		return nil, err
	}
	if len(x.dims) == 0 {
		return nil, fmt.Errorf("Gather on a scalar")
	}
	axis, err := normAxis(ax, len(x.dims))
	if err != nil {
		return nil, err
	}
	dim := x.dims[axis]
	resolved := make([]int, len(ind))
	for k, v := range ind {
		if v < 0 {
			v += int64(dim)
		}
		if v < 0 || v >= int64(dim) {
			return nil, fmt.Errorf("index %d out of range for dimension %d", ind[k], dim)
		}
		resolved[k] = int(v)
	}
	dims := append(append(append([]int{}, x.dims[:axis]...), idx.dims...), x.dims[axis+1:]...)
	if len(dims) > maxRank {
		return nil, fmt.Errorf("rank %d", len(dims))
	}
	inner := 1
	for _, d := range x.dims[axis+1:] {
		inner *= d
	}
	nIdx := max(len(resolved), 1)
	return gatherFrom(x, dims, func(k int) int {
		in := k % inner
		i := k / inner % nIdx
		o := k / inner / nIdx
		return (o*dim+resolved[i])*inner + in
	})
}

// axesOf reads the axes of Squeeze/Unsqueeze (attribute before opset 13,
// input from 13).
func axesOf(a attrs, in []*tensor, opset int) ([]int64, error) {
	if opset < 13 {
		return a.ints("axes", nil)
	}
	return intsIn(in, 1, "axes")
}

func constUnsqueeze(a attrs, in []*tensor, opset int) (*tensor, error) {
	x, err := input(in, 0, "data")
	if err != nil {
		return nil, err
	}
	axes, err := axesOf(a, in, opset)
	if err != nil {
		return nil, err
	}
	rank := len(x.dims) + len(axes)
	if rank > maxRank {
		return nil, fmt.Errorf("rank %d", rank)
	}
	ones := make([]bool, rank)
	for _, v := range axes {
		ax, err := normAxis(v, rank)
		if err != nil {
			return nil, err
		}
		if ones[ax] {
			return nil, fmt.Errorf("axis %d repeated", v)
		}
		ones[ax] = true
	}
	dims := slices.Clone(x.dims)
	for d := range rank { // ascending: dims[:d] is final when d is reached
		if ones[d] {
			dims = slices.Insert(dims, d, 1)
		}
	}
	return &tensor{dims: dims, float: x.float, f: x.f, i: x.i, from: x.from}, nil
}

func constSqueeze(a attrs, in []*tensor, opset int) (*tensor, error) {
	x, err := input(in, 0, "data")
	if err != nil {
		return nil, err
	}
	axes, err := axesOf(a, in, opset)
	if err != nil {
		return nil, err
	}
	drop := make([]bool, len(x.dims))
	if axes == nil {
		for d, n := range x.dims {
			drop[d] = n == 1
		}
	}
	for _, v := range axes {
		ax, err := normAxis(v, len(x.dims))
		if err != nil {
			return nil, err
		}
		if x.dims[ax] != 1 {
			return nil, fmt.Errorf("cannot squeeze axis %d of size %d", v, x.dims[ax])
		}
		drop[ax] = true
	}
	var dims []int
	for d, n := range x.dims {
		if !drop[d] {
			dims = append(dims, n)
		}
	}
	return &tensor{dims: dims, float: x.float, f: x.f, i: x.i, from: x.from}, nil
}

// broadcast computes the numpy broadcast of two shapes.
func broadcast(a, b []int) ([]int, error) {
	out, ok := onnxmodel.Broadcast(a, b)
	if !ok {
		return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
	}
	return out, nil
}

// broadcastIndex maps an output element index to an input element index.
func broadcastIndex(out, in []int) func(int) int {
	outStr, inStr := strides(out), strides(in)
	off := len(out) - len(in)
	return func(k int) int {
		j := 0
		for d := range in {
			if in[d] != 1 {
				j += (k / outStr[d+off] % out[d+off]) * inStr[d]
			}
		}
		return j
	}
}

// constArith evaluates Add, Sub, Mul or Div with numpy broadcasting.
func constArith(op string) constOp {
	return func(_ attrs, in []*tensor, _ int) (*tensor, error) { return arith(op, in) }
}

func arith(op string, in []*tensor) (*tensor, error) {
	x, err := input(in, 0, "A")
	if err != nil {
		return nil, err
	}
	y, err := input(in, 1, "B")
	if err != nil {
		return nil, err
	}
	if x.float != y.float {
		return nil, fmt.Errorf("mixed float and integer operands")
	}
	if !x.float && (hasBatch(x.i) || hasBatch(y.i)) {
		return nil, errBatchDependent
	}
	dims, err := broadcast(x.dims, y.dims)
	if err != nil {
		return nil, err
	}
	out, err := newComputed(dims, x.float)
	if err != nil {
		return nil, err
	}
	ix, iy := broadcastIndex(dims, x.dims), broadcastIndex(dims, y.dims)
	for k := range out.size() {
		if x.float {
			p, q := x.f[ix(k)], y.f[iy(k)]
			switch op {
			case "Add":
				out.f[k] = p + q
			case "Sub":
				out.f[k] = p - q
			case "Mul":
				out.f[k] = p * q
			default:
				out.f[k] = p / q
			}
			continue
		}
		p, q := x.i[ix(k)], y.i[iy(k)]
		switch op {
		case "Add":
			out.i[k] = p + q
		case "Sub":
			out.i[k] = p - q
		case "Mul":
			out.i[k] = p * q
		default:
			if q == 0 {
				return nil, errors.New("integer division by zero")
			}
			if p == math.MinInt64 && q == -1 {
				return nil, errors.New("integer overflow")
			}
			// ONNX integer Div truncates, as C does.
			out.i[k] = p / q
		}
	}
	return out, nil
}
