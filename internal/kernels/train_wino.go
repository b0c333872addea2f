package kernels

// Winograd F(4x4, 3x3) for the weight gradient of 3x3, stride-1,
// undilated, ungrouped convolutions. The forward pass computes each 4x4
// output tile as Y = A^T [U ⊙ V] A with U = G g G^T and V = B^T d B (see
// winograd.go), so the gradient of the loss with respect to U is
//
//	dU = Σ_tiles (A dY A^T) ⊙ V
//
// and dg = G^T dU G. The sum over tiles of each of the 36 element-wise
// products is a GEMM with the tiles as its depth:
//
//	dU_ξ[OutC x InC] = D_ξ[OutC x tiles] · V_ξ[InC x tiles]^T
//
// 36 MACs per tile, input and output channel instead of 144 (9 taps x 16
// pixels), at the price of transforming x (as the forward pass does) and
// dy (16 values to 36) once per tile and channel.
//
// The tiles of the batch are numbered consecutively and cut into
// trainChunks fixed ranges; each range's dU is summed in its own buffer, in
// blocks of wgBlock tiles (transform the block's x and dy, then 36 GEMMs of
// depth wgBlock), and the ranges are added in order: the result does not
// depend on the number of threads.
//
// Rounding: the transforms scale values by up to ~225 before G^T · G
// brings them back, so the weight gradient differs from direct summation by
// about 1e-5 of its largest element (measured in TestConvTrainWinogradFilterError).

// winoGradUsable reports whether BackwardFilter uses Winograd for c:
// always for AlgoWinograd (NewConvTrain checked the shape); for AlgoAuto
// when the convolution is eligible and the CPU path has the vectorised
// transforms; never for AlgoGEMM.
func (c *ConvTrain) winoGradUsable(kern *kernelImpl) bool {
	switch c.algo {
	case AlgoWinograd:
		return true
	case AlgoAuto:
		return trWinograd(c.prm) && kern.winoIn != nil && kern.winoGradOut != nil
	}
	return false
}

// winoGradBlock is the number of tiles of one transform-and-multiply
// block: the transformed x and dy of a block (36 x (InC+OutC) x wgBlock
// floats) stay about L2-sized, with at least 64 tiles so the GEMMs are deep
// enough.
func winoGradBlock(prm ConvParams) int {
	b := (640 << 10) / (4 * 36 * (prm.InC + prm.OutC))
	return max(64, min(512, b/16*16))
}

// winoGradLayout is the per-thread scratch of the Winograd weight
// gradient, in float32 slots.
type winoGradLayout struct {
	block, v, d int
	winoScratch
	vStride, dStride int // floats between consecutive ξ
}

func (c *ConvTrain) winoGradLayout() winoGradLayout {
	p := c.prm
	var l winoGradLayout
	l.block = winoGradBlock(p)
	l.vStride = p.InC*l.block + winoPad
	l.dStride = p.OutC*l.block + winoPad
	l.v = 0
	l.d = l.v + 36*l.vStride
	l.tmp = l.d + 36*l.dStride
	l.inOff = l.tmp + 72*16
	l.outOff = l.inOff + l.block
	l.inMask = l.outOff + l.block
	l.outMask = l.inMask + l.block/16*36/2
	l.size = l.outMask + l.block/16*16/2
	return l
}

// backFilterWino computes dw (and db) by Winograd; see the top of this
// file. x, dy and dw are as for BackwardFilter.
func (c *ConvTrain) backFilterWino(p *Pool, n int, x, dy, dw []float32) {
	prm := c.prm
	tilesH, tilesW := (c.oh+3)/4, (c.ow+3)/4
	tiles := n * tilesH * tilesW
	chunks := min((tiles+15)/16, trainChunks)
	usize := 36 * prm.OutC * prm.InC
	c.ws.partial = trGrow(c.ws.partial, chunks*usize)
	l := c.winoGradLayout()
	c.perThread = l.size
	c.ws.thread = trGrow(c.ws.thread, p.Threads()*l.size)
	j := &c.job
	j.kind, j.n, j.x, j.dy, j.dw, j.chunks = jobBackFilterWino, n, x, dy, dw, chunks
	j.next.Store(0)
	p.Parallel(p.Threads(), j.fn)
	// dU = the chunks' partial sums added in chunk order (into chunk 0's),
	// then dw[o][i] = G^T dU[o][i] G.
	j.kind = jobWinoSum
	j.next.Store(0)
	p.Parallel(p.Threads(), j.fn)
	j.kind = jobWinoFinish
	j.next.Store(0)
	p.Parallel(p.Threads(), j.fn)
}

// winoSumUnit is the number of dU elements one jobWinoSum unit adds up.
const winoSumUnit = 4096

// winoSum adds the other chunks' partial dU into chunk 0's, for elements
// [u*winoSumUnit, (u+1)*winoSumUnit); it reports false past the end.
func (c *ConvTrain) winoSum(u, chunks int) bool {
	usize := 36 * c.prm.OutC * c.prm.InC
	e0 := u * winoSumUnit
	if e0 >= usize {
		return false
	}
	e1 := min(e0+winoSumUnit, usize)
	dst := c.ws.partial[e0:e1]
	for k := 1; k < chunks; k++ {
		src := c.ws.partial[k*usize+e0 : k*usize+e1]
		for i, v := range src {
			dst[i] += v
		}
	}
	return true
}

// winoFinish computes dw[o][i] = G^T dU[o][i] G (in float64) for output
// channel o from the summed dU in chunk 0's buffer.
func (c *ConvTrain) winoFinish(o int, dw []float32) {
	prm := c.prm
	oi := prm.OutC * prm.InC
	for i := 0; i < prm.InC; i++ {
		var t [3][6]float64 // G^T dU
		for r := 0; r < 6; r++ {
			for s := 0; s < 6; s++ {
				u := float64(c.ws.partial[(r*6+s)*oi+o*prm.InC+i])
				t[0][s] += winoG[r][0] * u
				t[1][s] += winoG[r][1] * u
				t[2][s] += winoG[r][2] * u
			}
		}
		g := dw[(o*prm.InC+i)*9 : (o*prm.InC+i)*9+9]
		for a := 0; a < 3; a++ {
			for b := 0; b < 3; b++ {
				var v float64
				for s := 0; s < 6; s++ {
					v += t[a][s] * winoG[s][b]
				}
				g[a*3+b] = float32(v)
			}
		}
	}
}

// winoGradChunk accumulates the 36 dU_ξ of the tiles of chunk k into its
// partial sum, one block of tiles at a time.
func (c *ConvTrain) winoGradChunk(k, chunks, n int, x, dy, sc []float32) {
	prm := c.prm
	kern := activeKernel.Load()
	l := c.winoGradLayout()
	tilesH, tilesW := (c.oh+3)/4, (c.ow+3)/4
	// Chunks start at multiples of 16 tiles (whole transform groups).
	tiles := n * tilesH * tilesW
	t0, t1 := trSplit((tiles+15)/16, chunks, k)
	t0, t1 = min(16*t0, tiles), min(16*t1, tiles)
	usize := 36 * prm.OutC * prm.InC
	part := c.ws.partial[k*usize : (k+1)*usize]
	clear(part)
	rows := c.rows
	if c.noRows || kern.winoInRows == nil || kern.winoGradOutRows == nil {
		rows = nil
	}
	v := sc[l.v:l.d]
	d := sc[l.d:l.tmp]
	tmp, inOff, outOff, inMask, outMask := l.views(sc)
	inPlane := prm.InH * prm.InW
	ohw := c.oh * c.ow
	for g0 := t0; g0 < t1; g0 += l.block {
		cnt := min(l.block, t1-g0)
		if rows == nil {
			winoTileTables(prm, c.oh, c.ow, tilesH, tilesW, l.block, g0, cnt, inOff, outOff, inMask, outMask)
		}
		groups := (cnt + 15) / 16
		for q := 0; q < groups; q++ {
			t := 16 * q
			if rows != nil {
				// Whole groups of tile rows (chunks and blocks start at
				// multiples of 16, and images hold a multiple of 16 tiles).
				img, ty0 := rows.group(g0 + t)
				in, out := inOff[:24], outOff[:16] // no tables with rows
				rows.inSlots(ty0, in)
				rows.outSlots(ty0, out)
				kern.winoInRows(&v[t], &x[img*prm.InC*inPlane], &in[0], &rows.tab.in[0], rows.tab.masks,
					prm.InC, inPlane, l.vStride, l.block, &tmp[0])
				kern.winoGradOutRows(&d[t], &dy[img*prm.OutC*ohw], &out[0], &rows.tab.in[0], l.dStride, ohw, prm.OutC, l.block, &tmp[0])
				continue
			}
			if kern.winoIn != nil && kern.winoGradOut != nil {
				kern.winoIn(&v[t], &x[0], &inOff[t], &inMask[q*36], prm.InW, inPlane, prm.InC, l.vStride, l.block, &tmp[0])
				kern.winoGradOut(&d[t], &dy[0], l.dStride, &outOff[t], &outMask[q*16], c.ow, ohw, prm.OutC, l.block, &tmp[0])
				continue
			}
			winoInputGo(v, x, inOff[t:t+16], inMask[q*36:q*36+36], prm.InW, inPlane, prm.InC, l.vStride, l.block, 0, t)
			winoGradOutGo(d[t:], dy, l.dStride, outOff[t:t+16], outMask[q*16:q*16+16], c.ow, ohw, prm.OutC, l.block)
		}
		k := groups * 16 // lanes past cnt are zero in both
		for xi := 0; xi < 36; xi++ {
			dotABt(kern, part[xi*prm.OutC*prm.InC:], prm.InC, d[xi*l.dStride:], v[xi*l.vStride:], prm.OutC, prm.InC, l.block, k)
		}
	}
}

// dotABt adds A B^T to c (m x n, row stride ldc), where A (m x k) and B
// (n x k) are stored with row stride ld: C += A B^T by 4x4 blocks of dot
// products over the contiguous depth, so neither operand is packed. k must
// be a multiple of 16.
func dotABt(kern *kernelImpl, c []float32, ldc int, a, b []float32, m, n, ld, k int) {
	m4, n4 := m/4*4, n/4*4
	for i := 0; i < m4; i += 4 {
		for j := 0; j < n4; j += 4 {
			if kern.dot4x4 != nil {
				kern.dot4x4(&c[i*ldc+j], ldc, &a[i*ld], &b[j*ld], ld, k)
			} else {
				dot4x4Go(c[i*ldc+j:], ldc, a[i*ld:], b[j*ld:], ld, k)
			}
		}
	}
	// Ragged edges (channel counts that are not multiples of 4).
	for i := 0; i < m; i++ {
		j0 := n4
		if i >= m4 {
			j0 = 0
		}
		for j := j0; j < n; j++ {
			c[i*ldc+j] += dotGo(a[i*ld:i*ld+k], b[j*ld:j*ld+k])
		}
	}
}

// dot4x4Go is the Go version of dot4x4AVX512: c[i*ldc+j] += sum over t < k
// of a[i*ld+t]*b[j*ld+t] for i, j < 4.
func dot4x4Go(c []float32, ldc int, a, b []float32, ld, k int) {
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			c[i*ldc+j] += dotGo(a[i*ld:i*ld+k], b[j*ld:j*ld+k])
		}
	}
}

// winoGradOutGo computes D = A dY A^T for nOC output channels of 16 tiles
// (see winoGradOut16AVX512): lane l of channel c at
// m[c*ocStride + ξ*xiStride + l], from dy[c*ohw + outOff[l] + i*ow + j]
// where bit l of outMask[i*4+j] is set (0 elsewhere).
func winoGradOutGo(m, dy []float32, xiStride int, outOff []int32, outMask []uint16, ow, ohw, nOC, ocStride int) {
	for c := 0; c < nOC; c++ {
		for l := 0; l < 16; l++ {
			bit := uint16(1) << l
			var y [4][4]float32
			for i := 0; i < 4; i++ {
				for j := 0; j < 4; j++ {
					if outMask[i*4+j]&bit != 0 {
						y[i][j] = dy[c*ohw+int(outOff[l])+i*ow+j]
					}
				}
			}
			var t [6][4]float32 // A dY
			for j := 0; j < 4; j++ {
				o := a6([4]float32{y[0][j], y[1][j], y[2][j], y[3][j]})
				for r := 0; r < 6; r++ {
					t[r][j] = o[r]
				}
			}
			for r := 0; r < 6; r++ {
				o := a6(t[r])
				for s := 0; s < 6; s++ {
					m[c*ocStride+(r*6+s)*xiStride+l] = o[s]
				}
			}
		}
	}
}

// a6 applies A (6x4, the transpose of aT6's A^T) to 4 values.
func a6(y [4]float32) [6]float32 {
	e, f := y[0]+y[2], y[1]+y[3]
	g, h := y[0]+4*y[2], 2*y[1]+8*y[3]
	return [6]float32{y[0], e + f, e - f, g + h, g - h, y[3]}
}
