package infer

import (
	"slices"

	"github.com/resnetctl/resnetctl/internal/kernels"
)

// gemmOp is Y = alpha·A'·B' + beta·C with C broadcast to (M, N).
type gemmOp struct {
	alpha, beta    float32
	transA, transB bool
}

// newGemm implements Gemm, versions 7, 9, 11 (C optional) and 13:
// https://onnx.ai/onnx/operators/onnx__Gemm.html
func newGemm(b *nodeBuilder) op {
	if b.since < 11 {
		b.arity(3, 3, 1, 1)
	} else {
		b.arity(2, 3, 1, 1)
	}
	b.want(0, "A", Float32)
	b.want(1, "B", Float32)
	b.want(2, "C", Float32)
	b.out(0, Float32)
	return &gemmOp{
		alpha:  b.float("alpha", 1),
		beta:   b.float("beta", 1),
		transA: b.boolAttr("transA", false),
		transB: b.boolAttr("transB", false),
	}
}

func (o *gemmOp) plan(pc *planCtx, n *pnode) error {
	a, bm := n.in[0], n.in[1]
	if len(a.shape) != 2 || len(bm.shape) != 2 {
		return errShape("A %v and B %v must be matrices", a.shape, bm.shape)
	}
	m, k := a.shape[0], a.shape[1]
	if o.transA {
		m, k = k, m
	}
	kb, nn := bm.shape[0], bm.shape[1]
	if o.transB {
		kb, nn = nn, kb
	}
	if k != kb {
		return errShape("A %v and B %v do not multiply (transA=%v, transB=%v)", a.shape, bm.shape, o.transA, o.transB)
	}
	if err := n.setShape(pc, 0, []int{m, nn}); err != nil {
		return err
	}
	var cbc *bcast
	ci := -1
	if len(n.in) > 2 && n.in[2] != nil && o.beta != 0 {
		c := n.in[2]
		bs, err := broadcastShapes([]int{m, nn}, c.shape)
		if err != nil || !slices.Equal(bs, []int{m, nn}) {
			return errShape("C %v does not broadcast to (%d, %d)", c.shape, m, nn)
		}
		cbc = newBcast([]int{m, nn}, c.shape, []int{m, nn})
		ci = c.id
	}
	ai, bi, yi := a.id, bm.id, n.out[0].id
	lda, ldb := a.shape[1], bm.shape[1]
	alpha, beta, ta, tb := o.alpha, o.beta, o.transA, o.transB
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		return func() error {
			y := v[yi]
			b := float32(0)
			if cbc != nil {
				// y = C broadcast, then y = alpha·A·B + beta·y.
				broadcastCopy(cbc, v[ci], y)
				b = beta
			}
			if k == 0 {
				for i := range y {
					y[i] *= b
				}
				return nil
			}
			kernels.Gemm(rc.pool, ta, tb, m, nn, k, alpha, v[ai], lda, v[bi], ldb, b, y, nn)
			return nil
		}
	}
	return nil
}

// broadcastCopy writes src, broadcast as bc's second operand, into dst.
func broadcastCopy(bc *bcast, src, dst []float32) {
	last := len(bc.shape) - 1
	inner := bc.shape[last]
	rows := bc.size / max(inner, 1)
	for r := range rows {
		ob := 0
		q := r
		for d := last - 1; d >= 0; d-- {
			i := q % bc.shape[d]
			q /= bc.shape[d]
			ob += i * bc.sb[d]
		}
		row := dst[r*inner : (r+1)*inner]
		if sb := bc.sb[last]; sb == 1 {
			copy(row, src[ob:ob+inner])
		} else {
			for i := range row {
				row[i] = src[ob+i*sb]
			}
		}
	}
}

// matMulOp is numpy matmul: batched, with broadcast batch dimensions.
type matMulOp struct{}

// newMatMul implements MatMul, versions 1, 9 and 13:
// https://onnx.ai/onnx/operators/onnx__MatMul.html
func newMatMul(b *nodeBuilder) op {
	b.arity(2, 2, 1, 1)
	b.want(0, "A", Float32)
	b.want(1, "B", Float32)
	b.out(0, Float32)
	return &matMulOp{}
}

// mmGeom is the geometry of a (batched, broadcast) matrix product: nb
// products of [m,k] by [k,nn], A's and B's i-th matrices at offA[i] and
// offB[i] elements.
type mmGeom struct {
	m, k, nn, nb int
	offA, offB   []int
	// aBatch is the product of A's batch dimensions; B is one matrix
	// when bRank2.
	aBatch int
	bRank2 bool
}

// matmulGeometry sets n's output 0 to the numpy-style product of a and b
// and returns its geometry (MatMul, MatMulInteger, QLinearMatMul).
func matmulGeometry(pc *planCtx, n *pnode, a, bm *pval) (mmGeom, error) {
	as, bs := slices.Clone(a.shape), slices.Clone(bm.shape)
	if len(as) == 0 || len(bs) == 0 {
		return mmGeom{}, errShape("matrix product of a scalar (%v, %v)", a.shape, bm.shape)
	}
	vecA, vecB := len(as) == 1, len(bs) == 1
	if vecA {
		as = []int{1, as[0]}
	}
	if vecB {
		bs = []int{bs[0], 1}
	}
	m, k := as[len(as)-2], as[len(as)-1]
	kb, nn := bs[len(bs)-2], bs[len(bs)-1]
	if k != kb {
		return mmGeom{}, errShape("A %v and B %v do not multiply", a.shape, bm.shape)
	}
	batch, err := broadcastShapes(as[:len(as)-2], bs[:len(bs)-2])
	if err != nil {
		return mmGeom{}, err
	}
	out := slices.Clone(batch)
	if !vecA {
		out = append(out, m)
	}
	if !vecB {
		out = append(out, nn)
	}
	if err := n.setShape(pc, 0, out); err != nil {
		return mmGeom{}, err
	}
	nb := prod(batch)
	if nb > pc.maxElems {
		return mmGeom{}, errShape("batch dimensions %v are too large", batch)
	}
	// Offsets of each batch's A and B matrices.
	sa := broadcastStrides(as[:len(as)-2], batch)
	sb := broadcastStrides(bs[:len(bs)-2], batch)
	offA, offB := make([]int, nb), make([]int, nb)
	idx := make([]int, len(batch))
	for i := range nb {
		for d := range batch {
			offA[i] += idx[d] * sa[d] * m * k
			offB[i] += idx[d] * sb[d] * k * nn
		}
		for d := len(batch) - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < batch[d] {
				break
			}
			idx[d] = 0
		}
	}
	return mmGeom{m: m, k: k, nn: nn, nb: nb, offA: offA, offB: offB, aBatch: prod(as[:len(as)-2]), bRank2: len(bs) == 2}, nil
}

func (o *matMulOp) plan(pc *planCtx, n *pnode) error {
	a, bm := n.in[0], n.in[1]
	g, err := matmulGeometry(pc, n, a, bm)
	if err != nil {
		return err
	}
	m, k, nn, nb, offA, offB := g.m, g.k, g.nn, g.nb, g.offA, g.offB
	// A batch of A matrices against one B is a single taller product.
	merged := nb > 1 && g.bRank2 && g.aBatch == nb
	ai, bi, yi := a.id, bm.id, n.out[0].id
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		return func() error {
			A, B, Y := v[ai], v[bi], v[yi]
			if k == 0 {
				clear(Y)
				return nil
			}
			if merged {
				kernels.Gemm(rc.pool, false, false, nb*m, nn, k, 1, A, k, B, nn, 0, Y, nn)
				return nil
			}
			for i := range nb {
				kernels.Gemm(rc.pool, false, false, m, nn, k, 1, A[offA[i]:], k, B[offB[i]:], nn, 0, Y[i*m*nn:], nn)
			}
			return nil
		}
	}
	return nil
}
