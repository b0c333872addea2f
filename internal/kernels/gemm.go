package kernels

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Gemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices, where
// op(X) is X or its transpose: op(A) is m x k, op(B) is k x n, C is m x n.
// lda, ldb and ldc are the leading dimensions (row strides) of a, b and c as
// stored. beta == 0 means C is not read (NaNs in C do not propagate).
//
// Preconditions (violations panic with a message before any write): m, n,
// k >= 0; leading dimensions at least the stored row widths; slices long
// enough for the stored shapes. The work is spread over p's threads. Packing
// buffers come from an internal free list, so steady-state calls do not
// allocate.
func Gemm(p *Pool, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemmWith(nil, p, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmWith is Gemm with the caller's packing buffers g (nil: from the free
// list). A caller that owns g and has reserved it for its largest call
// (gemmScratch.reserve) allocates nothing however calls are scheduled.
func gemmWith(g *gemmScratch, p *Pool, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("kernels.Gemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	checkMatrix("Gemm: A", transA, m, k, a, lda)
	checkMatrix("Gemm: B", transB, k, n, b, ldb)
	checkMatrix("Gemm: C", false, m, n, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleMatrix(m, n, beta, c, ldc)
		return
	}
	if (m == 1 || n == 1) && gemv(p, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) {
		return
	}
	accum := true
	switch beta {
	case 0:
		accum = false
	case 1:
	default:
		scaleMatrix(m, n, beta, c, ldc)
	}
	kern := activeKernel.Load()
	threads := p.Threads()
	own := g != nil
	if !own {
		g = gemmScratchGet()
	} else if g.job.fn == nil {
		g.job.fn = g.job.run
	}
	mpad := roundUp(m, kern.mr)
	g.apack = growFloats(g.apack, mpad*k)
	packA(kern, g.apack, m, k, a, lda, transA, alpha)
	per := bufferSize(kern, k, n)
	g.ws = growFloats(g.ws, per*threads)

	job := &g.job
	job.ctx = gemmCtx{
		kern: kern, m: m, n: n, k: k, ap: g.apack, mpad: mpad,
		bkind: bPlain, b: b, ldb: ldb, transB: transB,
		c: c, ldc: ldc, accum: accum,
	}
	job.ws, job.per = g.ws, per
	job.mParts, job.nParts = chooseSplit(kern, m, n, threads)
	job.slots = threads
	job.next.Store(0)
	p.Parallel(threads, job.fn)
	job.ctx = gemmCtx{}
	if !own {
		gemmScratchPut(g)
	}
}

// reserve grows g's packing buffers for a GEMM of m x n x k on the given
// number of threads, so that gemmWith allocates nothing for it.
func (g *gemmScratch) reserve(m, n, k, threads int) {
	kern := activeKernel.Load()
	g.apack = growFloats(g.apack, roundUp(m, kern.mr)*k)
	g.ws = growFloats(g.ws, bufferSize(kern, k, n)*max(threads, 1))
}

// gemmJob runs one GEMM split into mParts x nParts tiles over the slots.
type gemmJob struct {
	ctx            gemmCtx
	ws             []float32
	per            int
	mParts, nParts int
	slots          int
	next           atomic.Int64     // next unit to claim
	fn             func(lo, hi int) // bound to run once, so Parallel does not allocate
}

// run computes the tiles of the given slots (see Pool.Parallel).
func (j *gemmJob) run(lo, hi int) {
	units := j.mParts * j.nParts
	for slot := lo; slot < hi; slot++ {
		sc := j.ws[slot*j.per : (slot+1)*j.per]
		for {
			u := int(j.next.Add(1)) - 1
			if u >= units {
				break
			}
			m0, m1 := partRange(j.ctx.m, j.ctx.kern.mr, j.mParts, u/j.nParts)
			n0, n1 := partRange(j.ctx.n, j.ctx.kern.nr, j.nParts, u%j.nParts)
			j.ctx.compute(m0, m1, n0, n1, sc)
		}
	}
}

// gemmScratch holds the packing buffers of one Gemm call.
type gemmScratch struct {
	apack, ws, vec []float32
	job            gemmJob
	gemv           gemvJob
}

// gemmFree recycles Gemm scratch, so steady-state calls do not allocate.
var gemmFree struct {
	sync.Mutex
	list []*gemmScratch
}

// gemmScratchGet takes scratch from the free list (or makes it).
func gemmScratchGet() *gemmScratch {
	gemmFree.Lock()
	defer gemmFree.Unlock()
	if k := len(gemmFree.list); k > 0 {
		g := gemmFree.list[k-1]
		gemmFree.list = gemmFree.list[:k-1]
		return g
	}
	g := &gemmScratch{}
	g.job.fn = g.job.run
	return g
}

// gemmScratchPut returns scratch to the free list.
func gemmScratchPut(g *gemmScratch) {
	gemmFree.Lock()
	gemmFree.list = append(gemmFree.list, g)
	gemmFree.Unlock()
}

// growFloats returns s resliced to n, reallocated if too small.
func growFloats(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// roundUp rounds x up to a multiple of m.
func roundUp(x, m int) int { return (x + m - 1) / m * m }

// checkMatrix panics if s cannot hold a rows x cols matrix (stored transposed
// if trans) with leading dimension ld.
func checkMatrix(what string, trans bool, rows, cols int, s []float32, ld int) {
	if trans {
		rows, cols = cols, rows
	}
	if rows == 0 || cols == 0 {
		return
	}
	if ld < cols {
		panic(fmt.Sprintf("kernels.%s: leading dimension %d < row width %d", what, ld, cols))
	}
	if need := (rows-1)*ld + cols; len(s) < need {
		panic(fmt.Sprintf("kernels.%s: slice length %d < %d needed for %dx%d (ld %d)", what, len(s), need, rows, cols, ld))
	}
}

// scaleMatrix sets C = beta*C (beta == 0 stores zeros).
func scaleMatrix(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// bufferSize is the per-thread scratch (float32s) needed to compute a GEMM
// with inner dimension k and n columns: one packed B panel plus a scratch
// tile for edge tiles.
func bufferSize(kern *kernelImpl, k, n int) int {
	return min(k, blockK)*min(roundUp(n, kern.nr), blockN) + kern.mr*kern.nr
}

// partRange returns part i of parts of [0, size), cut on multiples of
// align (the last part ends at size).
func partRange(size, align, parts, i int) (lo, hi int) {
	tiles := (size + align - 1) / align
	t0, t1 := splitRange(tiles, parts, i)
	return t0 * align, min(t1*align, size)
}

// chooseSplit decides how one m x n GEMM is cut for threads workers: along
// N (each worker packs its own columns of B) or along M (workers share B
// columns but pack them twice), whichever balances better.
func chooseSplit(kern *kernelImpl, m, n, threads int) (mParts, nParts int) {
	if threads <= 1 {
		return 1, 1
	}
	// eff is the share of the threads' time spent on real rows or columns
	// when size is cut into threads parts at multiples of align: the
	// busiest part sets the time. (Counting whole tiles instead called 49
	// columns in panels of 32 a perfect two-way split, 32 + 17, and the
	// 7x7 layers of ResNet-18 at batch 1 ran 1.4x on two threads.)
	eff := func(size, align int) float64 {
		busiest := 0
		for i := range threads {
			lo, hi := partRange(size, align, threads, i)
			busiest = max(busiest, hi-lo)
		}
		return float64(size) / float64(busiest*threads)
	}
	nTiles := (n + kern.nr - 1) / kern.nr
	effN := eff(n, kern.nr)
	// Splitting M packs every B element once per thread; packing costs
	// roughly what 8 rows of FMAs cost per element.
	effM := eff(m, kern.mr) / (1 + 8/float64(m))
	if effN >= effM {
		// N parts are independent (each packs its own columns), so cut
		// finer than the thread count (at least 4 panels a part) for the
		// dynamic claiming to balance.
		return 1, min(4*threads, max(threads, nTiles/4))
	}
	return threads, 1
}

// B operand kinds.
const (
	bPlain  = iota // row-major k x n matrix (transposed storage if transB)
	bIm2col        // implicit im2col of one image (and group) of a convolution
)

// gemmCtx describes one GEMM with pre-packed A: C[0:m, 0:n] (op) A*B, with
// the epilogue (bias, residual, ReLU) applied on the last K block. It is a
// plain value built on the stack per call; compute may run concurrently on
// disjoint (m, n) ranges.
type gemmCtx struct {
	kern    *kernelImpl
	m, n, k int
	ap      []float32 // packed A (see packA), mpad x k
	mpad    int

	bkind  int
	b      []float32 // bPlain: the matrix; bIm2col: the image planes of this group
	ldb    int       // bPlain: leading dimension; bIm2col: plane size (InH*InW)
	transB bool
	idx    []int32  // bIm2col: im2col offsets, khw rows of idxStride
	desc   []uint64 // bIm2col: per 16-column group, two load descriptors (see loadDescriptors)
	idxStr int
	khw    int

	c     []float32
	ldc   int
	accum bool      // add to C instead of overwriting it
	bias  []float32 // nil or len m
	res   []float32 // nil or laid out like c
	relu  bool
}

// compute produces C[m0:m1, n0:n1]; m0 and n0 must be multiples of the
// kernel's mr and nr. sc is this thread's scratch (bufferSize floats).
func (g *gemmCtx) compute(m0, m1, n0, n1 int, sc []float32) {
	if m0 >= m1 || n0 >= n1 {
		return
	}
	kern := g.kern
	mr, nr := kern.mr, kern.nr
	tmp := sc[len(sc)-mr*nr:]
	bp := sc[:len(sc)-mr*nr]
	for jc := n0; jc < n1; jc += blockN {
		ncb := min(blockN, n1-jc)
		for pc := 0; pc < g.k; pc += blockK {
			kcb := min(blockK, g.k-pc)
			g.packB(bp, pc, kcb, jc, ncb)
			flags := uintptr(0)
			if pc > 0 || g.accum {
				flags |= flagAccum
			}
			if pc+kcb == g.k {
				if g.bias != nil {
					flags |= flagBias
				}
				if g.res != nil {
					flags |= flagRes
				}
				if g.relu {
					flags |= flagReLU
				}
			}
			for ir := m0; ir < m1; ir += mr {
				rows := min(mr, g.m-ir)
				a := g.ap[pc*g.mpad+ir*kcb:]
				var biasp *float32
				if flags&flagBias != 0 {
					biasp = &g.bias[ir]
				}
				for jr := 0; jr < ncb; jr += nr {
					cols := min(nr, ncb-jr)
					b := bp[jr*kcb:]
					off := ir*g.ldc + jc + jr
					if kern.full != nil && (rows == mr || kern.maskedM) && (cols == nr || kern.maskedN) {
						var resp *float32
						if flags&flagRes != 0 {
							resp = &g.res[off]
						}
						// A ragged last panel: 16 columns with the half
						// kernel and up to 8 more with the narrow one.
						if rem := cols % 16; cols < nr && rem != 0 && rem <= 8 && kern.narrow != nil {
							if cols > 16 {
								kern.half(kcb, &a[0], &b[0], &g.c[off], g.ldc, rows, 16, flags, biasp, resp)
							}
							c0 := cols - rem
							kern.narrow(kcb, &a[0], &b[c0], &tmp[0], rem)
							g.finishTileT(tmp, ir, jc+jr+c0, rows, rem, flags)
							continue
						}
						f := kern.full
						if 2*cols <= nr && kern.half != nil {
							f = kern.half
						} else if 2*rows <= mr && kern.short != nil {
							f = kern.short
						}
						f(kcb, &a[0], &b[0], &g.c[off], g.ldc, rows, cols, flags, biasp, resp)
						continue
					}
					if kern.full != nil {
						kern.full(kcb, &a[0], &b[0], &tmp[0], nr, mr, nr, 0, nil, nil)
					} else {
						goKernel(kcb, a, b, tmp, mr, nr)
					}
					g.finishTile(tmp, nr, ir, jc+jr, rows, cols, flags)
				}
			}
		}
	}
}

// finishTile merges a raw rows x cols product tile (row stride ts) into C at
// (i0, j0), applying flags.
func (g *gemmCtx) finishTile(tile []float32, ts, i0, j0, rows, cols int, flags uintptr) {
	for r := 0; r < rows; r++ {
		off := (i0+r)*g.ldc + j0
		crow := g.c[off : off+cols]
		trow := tile[r*ts : r*ts+cols]
		var bias float32
		if flags&flagBias != 0 {
			bias = g.bias[i0+r]
		}
		var rrow []float32
		if flags&flagRes != 0 {
			rrow = g.res[off : off+cols]
		}
		for j, v := range trow {
			if flags&flagAccum != 0 {
				v += crow[j]
			}
			if flags&flagBias != 0 {
				v += bias
			}
			if rrow != nil {
				v += rrow[j]
			}
			if flags&flagReLU != 0 && v < 0 {
				v = 0
			}
			crow[j] = v
		}
	}
}

// finishTileT is finishTile for a column-major tile with mr rows (element
// (r, c) at c*mr + r), as written by the narrow kernels.
func (g *gemmCtx) finishTileT(tile []float32, i0, j0, rows, cols int, flags uintptr) {
	mr := g.kern.mr
	for r := 0; r < rows; r++ {
		off := (i0+r)*g.ldc + j0
		crow := g.c[off : off+cols]
		var bias float32
		if flags&flagBias != 0 {
			bias = g.bias[i0+r]
		}
		for j := range crow {
			v := tile[j*mr+r]
			if flags&flagAccum != 0 {
				v += crow[j]
			}
			if flags&flagBias != 0 {
				v += bias
			}
			if flags&flagRes != 0 {
				v += g.res[off+j]
			}
			if flags&flagReLU != 0 && v < 0 {
				v = 0
			}
			crow[j] = v
		}
	}
}

// packA packs op(A) (m x k, scaled by alpha) for kernel kern: for each K
// block pc (blockK rows), for each mr-row panel, kcb x mr values with
// element (kk, r) at kk*mr + r; rows past m are zero. The panel of rows
// [ir, ir+mr) in K block pc starts at pc*mpad + ir*kcb.
func packA(kern *kernelImpl, dst []float32, m, k int, a []float32, lda int, transA bool, alpha float32) {
	packARows(kern, dst, m, k, a, lda, transA, alpha, 0, m)
}

// packARows is packA for the rows [i0, i1) of the m-row matrix only, i0 a
// multiple of kern.mr and i1 too unless it is m: it writes the panels of
// those rows (the last one zero-padded when i1 is m) where packA puts them
// in dst, reading row i (column i if transA) at a[(i-i0)*lda] (a[i-i0]):
// a holds only those rows. Packing a large A in slices of rows so needs
// only a slice of it at a time (see winoPackWeights).
func packARows(kern *kernelImpl, dst []float32, m, k int, a []float32, lda int, transA bool, alpha float32, i0, i1 int) {
	mr := kern.mr
	mpad := roundUp(m, mr)
	iend := roundUp(i1, mr)
	for pc := 0; pc < k; pc += blockK {
		kcb := min(blockK, k-pc)
		for ir := i0; ir < iend; ir += mr {
			panel := dst[pc*mpad+ir*kcb : pc*mpad+ir*kcb+kcb*mr]
			for r := 0; r < mr; r++ {
				i := ir + r
				if i >= m {
					for kk := 0; kk < kcb; kk++ {
						panel[kk*mr+r] = 0
					}
					continue
				}
				if transA {
					for kk := 0; kk < kcb; kk++ {
						panel[kk*mr+r] = alpha * a[(pc+kk)*lda+i-i0]
					}
				} else {
					row := a[(i-i0)*lda+pc : (i-i0)*lda+pc+kcb]
					for kk, v := range row {
						panel[kk*mr+r] = alpha * v
					}
				}
			}
		}
	}
}

// packB packs the B block rows [pc, pc+kcb) x columns [j0, j0+ncb) into
// nr-wide panels: panel jp (columns j0+jp*nr...) starts at jp*nr*kcb and
// holds element (kk, t) at kk*nr + t; columns past n are zero.
func (g *gemmCtx) packB(dst []float32, pc, kcb, j0, ncb int) {
	nr := g.kern.nr
	if g.bkind == bPlain && !g.transB && g.kern.packPanels != nil {
		g.kern.packPanels(&dst[0], &g.b[pc*g.ldb+j0], g.ldb, kcb, ncb, kcb*nr)
		return
	}
	for jr := 0; jr < ncb; jr += nr {
		cols := min(nr, ncb-jr)
		panel := dst[jr*kcb : jr*kcb+kcb*nr]
		j := j0 + jr
		switch {
		case g.bkind == bIm2col:
			g.packIm2col(panel, pc, kcb, j)
		case g.transB && nr == 32 && g.kern.transpose16 != nil:
			g.packTransposed(panel, pc, kcb, j, cols)
		case g.transB:
			// Column t of the panel is a contiguous row of the stored B^T.
			for t := 0; t < nr; t++ {
				if t >= cols {
					for kk := 0; kk < kcb; kk++ {
						panel[kk*nr+t] = 0
					}
					continue
				}
				src := g.b[(j+t)*g.ldb+pc : (j+t)*g.ldb+pc+kcb]
				for kk, v := range src {
					panel[kk*nr+t] = v
				}
			}
		default:
			for kk := 0; kk < kcb; kk++ {
				row := panel[kk*nr : kk*nr+nr]
				src := (pc+kk)*g.ldb + j
				copy(row[:cols], g.b[src:src+cols])
				clear(row[cols:])
			}
		}
	}
}

// packTransposed packs a 32-wide panel of a transposed B (columns j...
// j+cols of op(B) are rows of the stored matrix) with the 16x16 transpose
// kernel, finishing ragged edges in Go.
func (g *gemmCtx) packTransposed(panel []float32, pc, kcb, j, cols int) {
	full := kcb / 16 * 16
	for h := 0; h < 32; h += 16 {
		tcols := min(16, cols-h)
		if tcols == 16 && full > 0 {
			g.kern.transpose16(&panel[h], &g.b[(j+h)*g.ldb+pc], g.ldb, full/16)
		}
		for t := h; t < h+16; t++ {
			kk0 := 0
			if tcols == 16 {
				kk0 = full // rows below were transposed above
			}
			if t-h >= tcols {
				for kk := kk0; kk < kcb; kk++ {
					panel[kk*32+t] = 0
				}
				continue
			}
			src := g.b[(j+t)*g.ldb+pc : (j+t)*g.ldb+pc+kcb]
			for kk := kk0; kk < kcb; kk++ {
				panel[kk*32+t] = src[kk]
			}
		}
	}
}

// packIm2col fills one nr-wide panel of the implicit im2col matrix: row kk
// of the K block is im2col row q = pc+kk, i.e. input channel q/khw and
// kernel offset q%khw; column t is output pixel j+t. g.idx[(q%khw)*idxStr +
// pixel] is the input offset within the channel plane, or -1 for padding
// (and for pixels past the end, since idx rows are padded to a multiple of
// 32).
func (g *gemmCtx) packIm2col(panel []float32, pc, kcb, j int) {
	nr := g.kern.nr
	ic, r := pc/g.khw, pc%g.khw
	if g.kern.gatherRows != nil {
		g.kern.gatherRows(&panel[0], &g.b[ic*g.ldb], &g.idx[r*g.idxStr+j], &g.desc[(r*g.idxStr+j)/8], kcb, r, g.khw, g.ldb, g.idxStr)
		return
	}
	for kk := 0; kk < kcb; kk++ {
		plane := g.b[ic*g.ldb : (ic+1)*g.ldb]
		idx := g.idx[r*g.idxStr+j : r*g.idxStr+j+nr]
		row := panel[kk*nr : kk*nr+nr]
		for t, o := range idx {
			if o >= 0 {
				row[t] = plane[o]
			} else {
				row[t] = 0
			}
		}
		if r++; r == g.khw {
			r = 0
			ic++
		}
	}
}

// goKernel is the portable micro-kernel: it writes the raw mr x nr product
// of a packed A panel and a packed B panel to tile (row stride nr).
func goKernel(kc int, a, b, tile []float32, mr, nr int) {
	if mr == 4 && nr == 4 {
		goKernel4x4(kc, a, b, tile)
		return
	}
	clear(tile[:mr*nr])
	for kk := 0; kk < kc; kk++ {
		ak := a[kk*mr : kk*mr+mr]
		bk := b[kk*nr : kk*nr+nr]
		for r, av := range ak {
			row := tile[r*nr : r*nr+nr]
			for t, bv := range bk {
				row[t] += av * bv
			}
		}
	}
}

// goKernel4x4 is goKernel for the generic 4x4 tile, with the tile in
// local variables.
func goKernel4x4(kc int, a, b, tile []float32) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	a = a[:4*kc]
	b = b[:4*kc]
	for kk := 0; kk < 4*kc; kk += 4 {
		ak := a[kk : kk+4 : kk+4]
		bk := b[kk : kk+4 : kk+4]
		b0, b1, b2, b3 := bk[0], bk[1], bk[2], bk[3]
		a0 := ak[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := ak[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a2 := ak[2]
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		a3 := ak[3]
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	t := tile[:16]
	t[0], t[1], t[2], t[3] = c00, c01, c02, c03
	t[4], t[5], t[6], t[7] = c10, c11, c12, c13
	t[8], t[9], t[10], t[11] = c20, c21, c22, c23
	t[12], t[13], t[14], t[15] = c30, c31, c32, c33
}
