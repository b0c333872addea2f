package kernels

// Matrix-vector special cases of Gemm (m == 1 or n == 1): packing panels
// for a single row or column would cost more than the multiply, so these
// run as dot products or axpy updates straight over the operands.

// gemvJob carries one matrix-vector Gemm to the pool's threads.
type gemvJob struct {
	// out[i*outStride] = alpha * sum_k mat(i, k) * vec[k*vecStride] + beta*out
	// for i in [0, rows), where mat(i, k) = m[i*ldRow + k*ldCol].
	rows, k      int
	mat          []float32
	ldRow, ldCol int
	vec          []float32
	vecStride    int
	out          []float32
	outStride    int
	alpha, beta  float32
	parts        int
	fn           func(lo, hi int)
}

// gemv handles Gemm when m == 1 or n == 1; it reports false otherwise.
func gemv(p *Pool, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) bool {
	g := gemmScratchGet()
	defer gemmScratchPut(g)
	j := &g.gemv
	if j.fn == nil {
		j.fn = j.run
	}
	switch {
	case n == 1:
		// c[i] = sum_k opA(i, k) * opB(k, 0)
		j.rows, j.k, j.mat, j.out, j.outStride = m, k, a, c, ldc
		j.ldRow, j.ldCol = lda, 1
		if transA {
			j.ldRow, j.ldCol = 1, lda
		}
		j.vec, j.vecStride = b, ldb
		if transB {
			j.vecStride = 1
		}
	case m == 1:
		// c[j] = sum_k opA(0, k) * opB(k, j): rows of the "matrix" are
		// columns of op(B).
		j.rows, j.k, j.mat, j.out, j.outStride = n, k, b, c, 1
		j.ldRow, j.ldCol = 1, ldb
		if transB {
			j.ldRow, j.ldCol = ldb, 1
		}
		j.vec, j.vecStride = a, 1
		if transA {
			j.vecStride = lda
		}
	default:
		return false
	}
	j.alpha, j.beta = alpha, beta
	if j.vecStride != 1 {
		// Gather the vector once so the inner loops are unit-stride.
		g.vec = growFloats(g.vec, k)
		for i := range g.vec {
			g.vec[i] = j.vec[i*j.vecStride]
		}
		j.vec, j.vecStride = g.vec, 1
	}
	if j.rows*j.k < parallelMinWork {
		p = nil
	}
	j.parts = p.Threads()
	p.Parallel(j.parts, j.fn)
	j.mat, j.vec, j.out = nil, nil, nil
	return true
}

// run computes the outputs of chunks [lo, hi) of j.parts.
func (j *gemvJob) run(lo, hi int) {
	r0, _ := splitRange(j.rows, j.parts, lo)
	_, r1 := splitRange(j.rows, j.parts, hi-1)
	vec := j.vec[:j.k]
	if j.ldCol == 1 {
		// Each output is a dot product of a contiguous row with vec.
		for i := r0; i < r1; i++ {
			s := j.alpha * dotVec(j.mat[i*j.ldRow:i*j.ldRow+j.k], vec)
			o := &j.out[i*j.outStride]
			if j.beta != 0 {
				s += j.beta * *o
			}
			*o = s
		}
		return
	}
	// mat(i, k) = mat[i + k*ldCol]: accumulate rows of mat scaled by vec
	// (axpy) into the outputs [r0, r1).
	if j.outStride != 1 {
		// Strided output too (a column of C): plain strided dot products.
		for i := r0; i < r1; i++ {
			var s float32
			for kk, v := range vec {
				s += j.mat[i+kk*j.ldCol] * v
			}
			o := &j.out[i*j.outStride]
			s *= j.alpha
			if j.beta != 0 {
				s += j.beta * *o
			}
			*o = s
		}
		return
	}
	out := j.out[r0:r1]
	if j.beta == 0 {
		clear(out)
	} else if j.beta != 1 {
		for i := range out {
			out[i] *= j.beta
		}
	}
	for kk, v := range vec {
		if v == 0 {
			continue
		}
		axpyVec(j.alpha*v, j.mat[kk*j.ldCol+r0:kk*j.ldCol+r1], out)
	}
}

// dotGo returns sum x[i]*y[i] (len(y) >= len(x)).
func dotGo(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		xs, ys := x[i:i+4:i+4], y[i:i+4:i+4]
		s0 += xs[0] * ys[0]
		s1 += xs[1] * ys[1]
		s2 += xs[2] * ys[2]
		s3 += xs[3] * ys[3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpyGo computes y[i] += a*x[i] (len(x) >= len(y)).
func axpyGo(a float32, x, y []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] += a * v
	}
}
