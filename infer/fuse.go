package infer

import (
	"slices"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
)

// fuse rewrites the graph for speed, at load:
//
//   - a BatchNormalization reading a convolution's output (and nothing else
//     reading it) is folded into that convolution's weights and bias;
//   - a convolution whose output only feeds an Add takes the Add's other
//     operand as its residual, and a Relu that alone reads the result
//     (of the Add, or of the convolution) becomes its epilogue;
//   - a standalone BatchNormalization followed by a Relu applies it.
//
// A fused node runs at the position of the last node it absorbed, where
// every operand is ready. Graph outputs are never fused away.
func fuse(m *model) {
	uses := make([]int, len(m.values))
	for _, n := range m.nodes {
		for _, id := range n.in {
			if id >= 0 {
				uses[id]++
			}
		}
	}
	single := func(id int) bool { return id >= 0 && uses[id] == 1 && !m.values[id].output }
	consumer := map[int]int{} // value → the index of its only consumer
	for i, n := range m.nodes {
		for _, id := range n.in {
			if id >= 0 && uses[id] == 1 {
				consumer[id] = i
			}
		}
	}
	removed := make([]bool, len(m.nodes))
	emitAt := map[int]int{} // absorbing node → position of the last node absorbed
	next := func(id int, opType string) (int, bool) {
		if !single(id) {
			return 0, false
		}
		c, ok := consumer[id]
		if !ok || removed[c] || m.nodes[c].opType != opType {
			return 0, false
		}
		return c, true
	}
	for i, n := range m.nodes {
		switch o := n.op.(type) {
		case *convOp:
			if len(n.out) != 1 {
				continue
			}
			if bi, ok := next(n.out[0], "BatchNormalization"); ok && foldBN(m, n, m.nodes[bi]) {
				removed[bi] = true
				n.out[0] = m.nodes[bi].out[0]
				emitAt[i] = bi
			}
			if ai, ok := next(n.out[0], "Add"); ok {
				add := m.nodes[ai]
				other := add.in[0]
				if other == n.out[0] {
					other = add.in[1]
				}
				if other != n.out[0] && m.values[other].dtype == Float32 {
					for len(n.in) < 3 {
						n.in = append(n.in, -1)
					}
					n.in = append(n.in, other)
					o.residual = true
					removed[ai] = true
					n.out[0] = add.out[0]
					emitAt[i] = ai
				}
			}
			if ri, ok := next(n.out[0], "Relu"); ok {
				o.relu = true
				removed[ri] = true
				n.out[0] = m.nodes[ri].out[0]
				emitAt[i] = ri
			}
		case *quantizeOp:
			// QuantizeLinear → DequantizeLinear with the same scale and
			// zero point (the QDQ form's pair on an activation) computes
			// the rounded float values in one float pass, without the
			// integer tensor between.
			if len(n.out) != 1 || removed[i] {
				continue
			}
			if di, ok := next(n.out[0], "DequantizeLinear"); ok && sameQParams(m, n, m.nodes[di]) {
				dq := m.nodes[di]
				n.op = &fakeQuantOp{q: *o}
				removed[di] = true
				n.out[0] = dq.out[0]
				emitAt[i] = di
			}
		case *bnOp:
			if len(n.out) != 1 || removed[i] {
				continue
			}
			if ri, ok := next(n.out[0], "Relu"); ok {
				o.relu = true
				removed[ri] = true
				n.out[0] = m.nodes[ri].out[0]
				emitAt[i] = ri
			}
		}
	}
	if len(emitAt) == 0 {
		return
	}
	reorder(m, removed, emitAt)
	// Drop the data of constants nothing reads any more (the weights and
	// statistics folded into new convolution weights).
	read := make([]bool, len(m.values))
	for _, n := range m.nodes {
		for _, id := range n.in {
			if id >= 0 {
				read[id] = true
			}
		}
	}
	for _, v := range m.values {
		if v.init != nil && !read[v.id] && !v.output {
			v.init = nil
		}
	}
}

// reorder drops the removed nodes and moves each absorbing node (a key of
// emitAt) to the position of the last node it absorbed, where every
// operand is ready.
func reorder(m *model, removed []bool, emitAt map[int]int) {
	at := map[int]int{} // position → absorbing node emitted there
	for n, pos := range emitAt {
		at[pos] = n
	}
	var nodes []*node
	for i, n := range m.nodes {
		if _, moved := emitAt[i]; moved {
			continue
		}
		if a, ok := at[i]; ok {
			nodes = append(nodes, m.nodes[a])
			continue
		}
		if !removed[i] {
			nodes = append(nodes, n)
		}
	}
	m.nodes = nodes
	m.setProducers()
}

// foldBN folds bn into conv's weights and bias when all are constants,
// by internal/onnxmodel.FoldConvBN (kernels.FoldBatchNorm's rule). It reports whether it did.
func foldBN(m *model, conv, bn *node) bool {
	bo, ok := bn.op.(*bnOp)
	if !ok || bo.relu || bo.nonSpatial || len(bn.out) != 1 || len(bn.in) != 5 {
		return false
	}
	w := constant(m, conv.in[1])
	if w == nil || w.Type() != Float32 || len(w.Shape) < 3 {
		return false
	}
	outC := w.Shape[0]
	var bias []float32
	if len(conv.in) > 2 && conv.in[2] >= 0 {
		b := constant(m, conv.in[2])
		if b == nil || b.Type() != Float32 || len(b.Float32) != outC {
			return false
		}
		bias = b.Float32
	}
	var p [4][]float32
	for k := range p {
		t := constant(m, bn.in[k+1])
		if t == nil || t.Type() != Float32 || len(t.Float32) != outC || len(t.Shape) != 1 {
			return false
		}
		p[k] = t.Float32
	}
	wf, bf := onnxmodel.FoldConvBN(w.Float32, bias, p[0], p[1], p[2], p[3], bo.eps)
	add := func(name string, t *Tensor) int {
		v := &value{id: len(m.values), name: name, dtype: Float32, init: t, producer: -1, shape: t.Shape, rank: len(t.Shape)}
		m.values = append(m.values, v)
		return v.id
	}
	wid := add(conv.name+"/bn_folded_weight", &Tensor{Shape: w.Shape, DType: Float32, Float32: wf})
	bid := add(conv.name+"/bn_folded_bias", &Tensor{Shape: []int{outC}, DType: Float32, Float32: bf})
	conv.in = []int{conv.in[0], wid, bid}
	return true
}

func constant(m *model, id int) *Tensor {
	if id < 0 {
		return nil
	}
	return m.values[id].init
}

// sameQParams reports whether DequantizeLinear dq reads QuantizeLinear
// q's output with the same scale, zero point and axis.
func sameQParams(m *model, q, dq *node) bool {
	qo, ok1 := q.op.(*quantizeOp)
	do, ok2 := dq.op.(*dequantizeOp)
	if !ok1 || !ok2 || len(q.in) != len(dq.in) || dq.in[0] != q.out[0] {
		return false
	}
	for k := 1; k < len(q.in); k++ {
		a, b := q.in[k], dq.in[k]
		if a == b {
			continue
		}
		ta, tb := constant(m, a), constant(m, b)
		if ta == nil || tb == nil || !sameTensor(ta, tb) {
			return false
		}
	}
	scale := constant(m, q.in[1])
	perTensor := scale != nil && len(scale.Float32) == 1
	return qo.axis == do.axis || perTensor
}

// sameTensor reports whether two constants hold the same shape, type and
// values.
func sameTensor(a, b *Tensor) bool {
	if a.Type() != b.Type() || !slices.Equal(a.Shape, b.Shape) {
		return false
	}
	switch a.Type() {
	case Float32:
		return slices.Equal(a.Float32, b.Float32)
	case Int32:
		return slices.Equal(a.Int32, b.Int32)
	case Uint8:
		return slices.Equal(a.Uint8, b.Uint8)
	case Int8:
		return slices.Equal(a.Int8, b.Int8)
	}
	return false
}
