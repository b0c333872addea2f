package kernels

import (
	"sync"
	"unsafe"
)

// Winograd F(4x4, 3x3) for 3x3, stride-1, undilated, ungrouped
// convolutions (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016). Each 4x4 output tile is
//
//	Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A
//
// where g is a 3x3 filter, d the 6x6 input patch of the tile and ⊙ the
// element-wise product. Summed over input channels, the 36 element-wise
// products become 36 independent GEMMs U_ξ[OutC x InC] * V_ξ[InC x tiles],
// which run on the same packed micro-kernels as everything else: 36 MACs per
// 16 outputs and input channel instead of 144.
//
// The work is cut into blocks of wBlock tiles (tiles of all images of the
// batch are numbered consecutively, so small images still fill the GEMM
// columns). For each block a thread transforms the input straight into
// packed-B panels (V), multiplies into M, and transforms M back into the
// output with the bias/residual/ReLU epilogue fused into the final store.
//
// Rounding: the transforms scale values by up to ~100 before they cancel,
// so results differ from direct convolution by a few 1e-5 relative to the
// output magnitude (tests allow 1e-3 relative; see DESIGN.md).

// Transform matrices of F(4x4, 3x3), with interpolation points 0, ±1, ±2.
var (
	winoBT = [6][6]float64{
		{4, 0, -5, 0, 1, 0},
		{0, -4, -4, 1, 1, 0},
		{0, 4, -4, -1, 1, 0},
		{0, -2, -1, 2, 1, 0},
		{0, 2, -1, -2, 1, 0},
		{0, 4, 0, -5, 0, 1},
	}
	winoG = [6][3]float64{
		{1.0 / 4, 0, 0},
		{-1.0 / 6, -1.0 / 6, -1.0 / 6},
		{-1.0 / 6, 1.0 / 6, -1.0 / 6},
		{1.0 / 24, 1.0 / 12, 1.0 / 6},
		{1.0 / 24, -1.0 / 12, 1.0 / 6},
		{0, 0, 1},
	}
)

// winoBlock returns the largest number of tiles transformed and multiplied
// together: two 32-column GEMM panels (fewer passes over the transformed
// weights), or one for wide layers so that V and M stay near L2 size.
func winoBlock(prm ConvParams) int {
	if prm.InC+prm.OutC <= 512 {
		return 64
	}
	return 32
}

// Winograd work splits (see convJob.runWino).
const (
	winoDynamic = iota // many blocks: threads claim whole blocks
	winoRanges         // each thread takes a contiguous, equal range of tiles
	winoShared         // few tiles: threads split each block's channels
)

// winoUsable reports whether prm can run as Winograd F(4x4, 3x3).
func winoUsable(prm ConvParams) bool {
	return prm.KH == 3 && prm.KW == 3 && prm.StrideH == 1 && prm.StrideW == 1 &&
		prm.DilationH == 1 && prm.DilationW == 1 && prm.Group == 1
}

// winoPackWeights transforms weight [OutC, InC, 3, 3] into the 36 matrices
// U_ξ = (G g G^T)[ξ] and packs each as a GEMM A operand: 36 consecutive
// blocks of mpad*InC floats. The weights are transposed tap by tap (9
// rows of OutC*InC), so that G g (6x3 rows) and then (G g) G^T (the 36
// rows U_ξ) are sums of rows scaled by G's coefficients: vector axpys, in
// float32 (training repacks every step; the two roundings are a few 1e-7
// relative, well below the Winograd rounding of the convolution).
//
// This goes a slice of output channels at a time (winoPackRows), so that
// the transposed and transformed weights before packing (7x the weights
// for the whole layer) need only a small scratch: with keep, c's own,
// kept for the next call (Repack: no allocation once it has grown);
// without, a pooled one, so that a packed inference Conv holds nothing but
// its packed U. The slices start at multiples of 16 elements of every row,
// so the vector and scalar parts of the axpys, and so the values, are the
// same as for the whole layer at once.
func (c *Conv) winoPackWeights(weight []float32, keep bool) {
	p := c.prm
	rows := winoPackRows(p, c.kern.mr)
	need := 63 * rows * p.InC
	var sc []float32
	var pooled *[]float32
	if keep {
		c.winoSc = trGrow(c.winoSc, need)
		sc = c.winoSc
	} else {
		if v, _ := winoPackScratch.Get().(*[]float32); v != nil {
			pooled = v
		} else {
			pooled = new([]float32)
		}
		*pooled = trGrow(*pooled, need)
		sc = *pooled
	}
	c.mpad = roundUp(p.OutC, c.kern.mr)
	c.wpack = trGrow(c.wpack, 36*c.mpad*p.InC)
	for o0 := 0; o0 < p.OutC; o0 += rows {
		o1 := min(o0+rows, p.OutC)
		oi := (o1 - o0) * p.InC
		wt := sc[:9*oi]        // [a*3+b][oc*ic]: tap (a, b)
		gt := sc[9*oi : 27*oi] // [i*3+b][oc*ic]: (G g)[i][b]
		u := sc[27*oi : 63*oi] // [ξ][oc][ic]
		w := weight[o0*p.InC*9:]
		for i := 0; i < oi; i++ {
			g := w[i*9 : i*9+9]
			for k, v := range g {
				wt[k*oi+i] = v
			}
		}
		row := func(m []float32, r int) []float32 { return m[r*oi : (r+1)*oi] }
		clear(gt)
		for i := 0; i < 6; i++ {
			for a := 0; a < 3; a++ {
				if coef := float32(winoG[i][a]); coef != 0 {
					for b := 0; b < 3; b++ {
						axpyVec(coef, row(wt, a*3+b), row(gt, i*3+b))
					}
				}
			}
		}
		clear(u)
		for i := 0; i < 6; i++ {
			for j := 0; j < 6; j++ {
				for b := 0; b < 3; b++ {
					if coef := float32(winoG[j][b]); coef != 0 {
						axpyVec(coef, row(gt, i*3+b), row(u, i*6+j))
					}
				}
			}
		}
		for xi := 0; xi < 36; xi++ {
			packARows(c.kern, c.wpack[xi*c.mpad*p.InC:], p.OutC, p.InC, u[xi*oi:], p.InC, false, 1, o0, o1)
		}
	}
	if pooled != nil {
		winoPackScratch.Put(pooled)
	}
	c.tilesH, c.tilesW = (c.oh+3)/4, (c.ow+3)/4
}

// winoPackScratch recycles the scratch of winoPackWeights between the
// convolutions a model packs.
var winoPackScratch sync.Pool

// winoPackRows is the number of output channels winoPackWeights transforms
// at a time: a multiple of 16 (so that every slice starts at a multiple of
// 16 elements, see winoPackWeights) and of mr (whole panels), with a
// scratch of about 2 MiB (63 floats per weight row of InC), or all of them.
func winoPackRows(p ConvParams, mr int) int {
	step := 16
	for step%mr != 0 {
		step += 16
	}
	rows := max(step, (1<<19)/(63*max(p.InC, 1))/step*step)
	return min(rows, roundUp(p.OutC, step))
}

// winoLayout gives the per-thread scratch layout of the Winograd path, in
// float32 slots: V (36 x InC x wBlock, packed-B panels), M (36 x OutC x
// wBlock), each ξ padded by winoPad, the transform scratch (72 x 16) and the tile tables.
type winoLayout struct {
	v, m int
	winoScratch
	vStride, mStride int // floats between the V_ξ (M_ξ) of consecutive ξ
}

// winoScratch places the transform scratch and the tile tables in a
// thread's scratch (float32 slots), after the layout's V and M (or D).
type winoScratch struct {
	tmp, inOff, outOff, inMask, outMask, size int
}

// views returns the transform scratch and the tile tables in sc.
func (w winoScratch) views(sc []float32) (tmp []float32, inOff, outOff []int32, inMask, outMask []uint16) {
	return sc[w.tmp:w.inOff], int32s(sc[w.inOff:w.outOff]), int32s(sc[w.outOff:w.inMask]),
		uint16s(sc[w.inMask:w.outMask]), uint16s(sc[w.outMask:w.size])
}

// winoPad staggers consecutive V_ξ and M_ξ by one cache line: with
// power-of-two strides the 36 stores (loads) of one transform would all map
// to the same L1 set.
const winoPad = 16

// winoLayout computes the scratch layout for c.
func (c *Conv) winoLayout() winoLayout {
	var l winoLayout
	wBlock := c.wb
	l.v = 0
	l.vStride = c.prm.InC*wBlock + winoPad
	l.mStride = c.prm.OutC*wBlock + winoPad
	l.m = l.v + 36*l.vStride
	l.tmp = l.m + 36*l.mStride
	l.inOff = l.tmp + 72*16
	l.outOff = l.inOff + wBlock
	l.inMask = l.outOff + wBlock
	l.outMask = l.inMask + wBlock/16*36/2 // uint16 masks, two per slot
	l.size = l.outMask + wBlock/16*16/2
	return l
}

// winoTables fills the tile tables of the block starting at global tile g0
// (cnt valid tiles): input and output offsets of each tile relative to the
// batch base of x and out, and per 16-tile group the lane masks of the 36
// input taps (tap inside the input) and 16 outputs (pixel inside the
// output). Lanes past cnt have all masks clear.
func (c *Conv) winoTables(g0, cnt int, inOff, outOff []int32, inMask, outMask []uint16) {
	winoTileTables(c.prm, c.oh, c.ow, c.tilesH, c.tilesW, c.wb, g0, cnt, inOff, outOff, inMask, outMask)
}

// winoTileTables fills the tables of winoTables for a block of wBlock
// lanes of the convolution p (oh x ow outputs in tilesH x tilesW tiles).
func winoTileTables(p ConvParams, oh, ow, tilesH, tilesW, wBlock, g0, cnt int, inOff, outOff []int32, inMask, outMask []uint16) {
	tiles := tilesH * tilesW
	clear(inMask)
	clear(outMask)
	for l := 0; l < wBlock; l++ {
		if l >= cnt {
			inOff[l], outOff[l] = 0, 0
			continue
		}
		g := g0 + l
		img, t := g/tiles, g%tiles
		ty, tx := t/tilesW, t%tilesW
		y0, x0 := 4*ty-p.PadTop, 4*tx-p.PadLeft
		inOff[l] = int32(img*p.InC*p.InH*p.InW + y0*p.InW + x0)
		outOff[l] = int32(img*p.OutC*oh*ow + 4*ty*ow + 4*tx)
		q, bit := l/16, uint16(1)<<(l%16)
		for r := 0; r < 6; r++ {
			if y := y0 + r; y < 0 || y >= p.InH {
				continue
			}
			for s := 0; s < 6; s++ {
				if x := x0 + s; x >= 0 && x < p.InW {
					inMask[q*36+r*6+s] |= bit
				}
			}
		}
		for i := 0; i < 4 && 4*ty+i < oh; i++ {
			for j := 0; j < 4 && 4*tx+j < ow; j++ {
				outMask[q*16+i*4+j] |= bit
			}
		}
	}
}

// int32s views float32 scratch as int32s (same size), so that one
// caller-provided workspace holds everything.
func int32s(f []float32) []int32 {
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(f))), len(f))
}

// uint16s views float32 scratch as twice as many uint16s.
func uint16s(f []float32) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(f))), 2*len(f))
}

// Phases of winoUnit.
const (
	winoPhaseIn  = 1 << iota // tile tables and the input transform into V
	winoPhaseMul             // the 36 GEMMs into M
	winoPhaseOut             // the output transform and epilogue
	winoAll      = winoPhaseIn | winoPhaseMul | winoPhaseOut
)

// winoUnit computes, for the Winograd half c of j's Conv, output channels
// [m0, m1) (multiples of mr, or OutC) of the tile block starting at global
// tile g0, for the whole batch (x, out, res are the batch tensors): the
// phases selected, the input transform for input channels [ic0, ic1) only.
// V and M live in shared (a thread's own scratch, or one shared by threads
// that split a block's channels), the tile tables and transform scratch in
// own (the same thread's scratch in every phase of a block).
func (j *convJob) winoUnit(c *Conv, g0, cnt, m0, m1, ic0, ic1 int, shared, own []float32, phases int) {
	l := c.winoLayout()
	v := shared[l.v:l.m]
	mb := shared[l.m:l.tmp]
	tmp, inOff, outOff, inMask, outMask := l.views(own)
	// Groups of 16 whole tile rows use the row transforms (no tables).
	rows := c.rows
	if rows != nil && g0%16 != 0 {
		rows = nil
	}
	if phases&winoPhaseIn != 0 && (rows == nil || cnt%16 != 0) {
		c.winoTables(g0, cnt, inOff, outOff, inMask, outMask)
	}
	if phases&winoPhaseIn != 0 && ic0 < ic1 {
		j.winoInput(c, g0, cnt, ic0, ic1, v, tmp, inOff, inMask, rows)
	}
	if phases&winoPhaseMul != 0 {
		j.winoMul(c, cnt, m0, m1, v, mb, own)
	}
	if phases&winoPhaseOut != 0 {
		j.winoOutput(c, g0, cnt, m0, m1, mb, tmp, outOff, outMask, rows)
	}
}

// winoInput transforms input channels [ic0, ic1) of the block's tiles into
// V: V_ξ is InC x wBlock in nr-wide panels, element (ic, t) at
// ξ*vStride + (t/nr)*InC*nr + ic*nr + t%nr.
func (j *convJob) winoInput(c *Conv, g0, cnt, ic0, ic1 int, v, tmp []float32, inOff []int32, inMask []uint16, rows *winoRows) {
	p := c.prm
	kern := c.kern
	l := c.winoLayout()
	groups := (cnt + 15) / 16
	panels := (cnt + kern.nr - 1) / kern.nr
	inPlane := p.InH * p.InW
	nc := ic1 - ic0
	// Lanes of the last panel past the last group must be zero.
	if tail := groups * 16; tail < panels*kern.nr {
		for xi := 0; xi < 36; xi++ {
			base := xi*l.vStride + (panels-1)*p.InC*kern.nr
			for ic := ic0; ic < ic1; ic++ {
				row := v[base+ic*kern.nr : base+(ic+1)*kern.nr]
				clear(row[tail%kern.nr:])
			}
		}
	}
	for q := 0; q < groups; q++ {
		t := 16 * q
		dst := (t/kern.nr)*p.InC*kern.nr + ic0*kern.nr + t%kern.nr
		if rows != nil && t+16 <= cnt {
			img, ty0 := rows.group(g0 + t)
			slots := inOff[:24] // the tables are not used for row groups
			rows.inSlots(ty0, slots)
			kern.winoInRows(&v[dst], &j.x[(img*p.InC+ic0)*inPlane], &slots[0], &rows.tab.in[0], rows.tab.masks,
				nc, inPlane, l.vStride, kern.nr, &tmp[0])
			continue
		}
		if kern.winoIn != nil {
			kern.winoIn(&v[dst], &j.x[ic0*inPlane], &inOff[t], &inMask[q*36], p.InW, inPlane, nc, l.vStride, kern.nr, &tmp[0])
			continue
		}
		winoInputGo(v[ic0*kern.nr:], j.x[ic0*inPlane:], inOff[t:t+16], inMask[q*36:q*36+36], p.InW, inPlane, nc, l.vStride, kern.nr, p.InC*kern.nr, t)
	}
}

// winoMul computes M_ξ[m0:m1, 0:cnt] = U_ξ * V_ξ for the 36 ξ, K blocked
// like packA. own provides the scratch tile for edge and narrow tiles.
func (j *convJob) winoMul(c *Conv, cnt, m0, m1 int, v, mb, own []float32) {
	p := c.prm
	kern := c.kern
	wBlock := c.wb
	l := c.winoLayout()
	panels := (cnt + kern.nr - 1) / kern.nr
	mr, nr := kern.mr, kern.nr
	tile := own[len(own)-mr*nr:]
	for xi := 0; xi < 36; xi++ {
		ua := c.wpack[xi*c.mpad*p.InC:]
		vb := v[xi*l.vStride:]
		mo := mb[xi*l.mStride:]
		for ir := m0; ir < m1; ir += mr {
			rows := min(mr, p.OutC-ir)
			for jp := 0; jp < panels; jp++ {
				off := ir*wBlock + jp*nr
				cols := min(nr, cnt-jp*nr) // columns past cnt are never read back
				for pc := 0; pc < p.InC; pc += blockK {
					kcb := min(blockK, p.InC-pc)
					a := ua[pc*c.mpad+ir*kcb:]
					b := vb[jp*p.InC*nr+pc*nr:]
					var flags uintptr
					if pc > 0 {
						flags = flagAccum
					}
					switch {
					case kern.full != nil && (rows == mr || kern.maskedM) && cols <= 8 && kern.narrowSeq != nil:
						kern.narrowSeq(kcb, &a[0], &b[0], &tile[0])
						for r := 0; r < rows; r++ {
							dst := mo[off+r*wBlock : off+r*wBlock+cols]
							for cc := range dst {
								if pc > 0 {
									dst[cc] += tile[cc*mr+r]
								} else {
									dst[cc] = tile[cc*mr+r]
								}
							}
						}
					case kern.full != nil && (rows == mr || kern.maskedM):
						if 2*cols <= nr && kern.half != nil {
							kern.half(kcb, &a[0], &b[0], &mo[off], wBlock, rows, cols, flags, nil, nil)
						} else {
							kern.full(kcb, &a[0], &b[0], &mo[off], wBlock, rows, nr, flags, nil, nil)
						}
					default:
						if kern.full != nil {
							kern.full(kcb, &a[0], &b[0], &tile[0], nr, mr, nr, 0, nil, nil)
						} else {
							goKernel(kcb, a, b, tile, mr, nr)
						}
						for r := 0; r < rows; r++ {
							dst := mo[off+r*wBlock : off+r*wBlock+nr]
							for cc, t := range tile[r*nr : r*nr+nr] {
								if pc > 0 {
									dst[cc] += t
								} else {
									dst[cc] = t
								}
							}
						}
					}
				}
			}
		}
	}
}

// winoOutput transforms M back into output channels [m0, m1) of the
// block's tiles, with the epilogue.
func (j *convJob) winoOutput(c *Conv, g0, cnt, m0, m1 int, mb, tmp []float32, outOff []int32, outMask []uint16, rows *winoRows) {
	p := c.prm
	kern := c.kern
	wBlock := c.wb
	l := c.winoLayout()
	groups := (cnt + 15) / 16
	ohw := c.oh * c.ow
	var flags uintptr
	if c.bias != nil {
		flags |= flagBias
	}
	if j.res != nil {
		flags |= flagRes
	}
	if j.relu {
		flags |= flagReLU
	}
	if j.inPlace {
		flags |= flagAccum
	}
	for q := 0; q < groups; q++ {
		t := 16 * q
		if rows != nil && t+16 <= cnt {
			img, ty0 := rows.group(g0 + t)
			slots := outOff[:16]
			rows.outSlots(ty0, slots)
			base := (img*p.OutC + m0) * ohw
			var bias, res *float32
			if c.bias != nil {
				bias = &c.bias[m0]
			}
			if j.res != nil {
				res = &j.res[base]
			}
			kern.winoOutRows(&j.out[base], &mb[m0*wBlock+t], l.mStride, &slots[0], &rows.tab.out[0], ohw, m1-m0, wBlock, flags, bias, res, &tmp[0])
			continue
		}
		if kern.winoOut != nil {
			var bias, res *float32
			if c.bias != nil {
				bias = &c.bias[m0]
			}
			if j.res != nil {
				res = &j.res[m0*ohw]
			}
			kern.winoOut(&j.out[m0*ohw], &mb[m0*wBlock+t], l.mStride, &outOff[t], &outMask[q*16], c.ow, ohw, m1-m0, wBlock, flags, bias, res, &tmp[0])
			continue
		}
		winoOutputGo(j.out, mb, l.mStride, outOff[t:t+16], outMask[q*16:q*16+16], c.ow, ohw, m0, m1, wBlock, t, flags, c.bias, j.res)
	}
}

// bT6 applies B^T to 6 values (one column or row of a 6x6 patch).
func bT6(x *[6]float32) [6]float32 {
	x0, x1, x2, x3, x4, x5 := x[0], x[1], x[2], x[3], x[4], x[5]
	return [6]float32{
		4*x0 - 5*x2 + x4,
		-4*x1 - 4*x2 + x3 + x4,
		4*x1 - 4*x2 - x3 + x4,
		-2*x1 - x2 + 2*x3 + x4,
		2*x1 - x2 - 2*x3 + x4,
		4*x1 - 5*x3 + x5,
	}
}

// aT6 applies A^T to 6 values.
func aT6(x *[6]float32) [4]float32 {
	s12, d12 := x[1]+x[2], x[1]-x[2]
	s34, d34 := x[3]+x[4], x[3]-x[4]
	return [4]float32{
		x[0] + s12 + s34,
		d12 + 2*d34,
		s12 + 4*s34,
		d12 + 8*d34 + x[5],
	}
}

// winoInputGo transforms 16 tiles (lanes; lane l at block tile t0+l) of
// inC input channels into V: lane l of channel ic at
// ((t0+l)/nr)*panelStride + ic*nr + (t0+l)%nr (see winoUnit for the layout).
func winoInputGo(v, x []float32, inOff []int32, inMask []uint16, w, plane, inC, xiStride, nr, panelStride, t0 int) {
	for l := 0; l < 16; l++ {
		t := t0 + l
		dst := (t/nr)*panelStride + t%nr
		bit := uint16(1) << l
		for ic := 0; ic < inC; ic++ {
			var d [6][6]float32
			for r := 0; r < 6; r++ {
				for s := 0; s < 6; s++ {
					if inMask[r*6+s]&bit != 0 {
						d[r][s] = x[ic*plane+int(inOff[l])+r*w+s]
					}
				}
			}
			// Columns, then rows.
			var tcol [6][6]float32
			for s := 0; s < 6; s++ {
				col := [6]float32{d[0][s], d[1][s], d[2][s], d[3][s], d[4][s], d[5][s]}
				o := bT6(&col)
				for r := 0; r < 6; r++ {
					tcol[r][s] = o[r]
				}
			}
			for r := 0; r < 6; r++ {
				o := bT6(&tcol[r])
				for s := 0; s < 6; s++ {
					v[(r*6+s)*xiStride+dst+ic*nr] = o[s]
				}
			}
		}
	}
}

// winoOutputGo transforms M back for output channels [m0, m1) of 16 tiles
// (block tiles t0...) and writes the valid pixels with the epilogue.
func winoOutputGo(out, mb []float32, xiStride int, outOff []int32, outMask []uint16, ow, ohw, m0, m1, block, t0 int, flags uintptr, bias, res []float32) {
	for l := 0; l < 16; l++ {
		bit := uint16(1) << l
		if outMask[0]&bit == 0 {
			continue // lane past the last tile (pixel (0,0) is always valid otherwise)
		}
		for oc := m0; oc < m1; oc++ {
			var tcol [4][6]float32
			for s := 0; s < 6; s++ {
				var col [6]float32
				for r := 0; r < 6; r++ {
					col[r] = mb[(r*6+s)*xiStride+oc*block+t0+l]
				}
				o := aT6(&col)
				for i := 0; i < 4; i++ {
					tcol[i][s] = o[i]
				}
			}
			for i := 0; i < 4; i++ {
				y := aT6(&tcol[i])
				for jj := 0; jj < 4; jj++ {
					if outMask[i*4+jj]&bit == 0 {
						continue
					}
					o := oc*ohw + int(outOff[l]) + i*ow + jj
					val := y[jj]
					if flags&flagAccum != 0 {
						val += out[o]
					}
					if flags&flagBias != 0 {
						val += bias[oc]
					}
					if flags&flagRes != 0 {
						val += res[o]
					}
					if flags&flagReLU != 0 && val < 0 {
						val = 0
					}
					out[o] = val
				}
			}
		}
	}
}
