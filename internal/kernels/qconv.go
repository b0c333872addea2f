package kernels

import (
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// qEpilogue is the int8 kernels' epilogue parameter block (layout fixed
// by the assembly, see qepi in gen_amd64.py): per row r < rows, v =
// float32(acc + corr[r]) * mult[r]; flags&1: v = max(v, 0); flags&2: k =
// clamp(round(v), lo, hi), v = k*s. With flags&4 the residual (at res,
// same segments) is added — floats a row apart by ldd, or with flags&64
// uint8 values interleaved by four channels, groups ldd apart, read as
// (byte - rz)*rs — then flags&8 ReLU, flags&16 k = clamp(round(v·s2inv),
// lo2, hi2), v = k*s2 (the reciprocal multiplied, as ONNX Runtime's
// QLinearAdd rescales by a multiplier). Stores go to dst segment by segment (a mask of the
// tile's 32 columns and a byte offset from the row's start): floats a
// row apart by ldd, or with flags&32 the last k minus its lo as uint8,
// four rows (channels) interleaved per 32-bit lane, groups ldd apart.
type qEpilogue struct {
	corr         *int32
	mult         *float32
	flags        int32
	s, lo, hi    float32
	s2, lo2, hi2 float32
	nseg         int32
	dst, res     *float32
	ldd          int64
	segs         [qMaxSegs]qSeg
	rows         int32
	rs, rz       float32
	s2inv        float32 // 1/s2
}

// qSeg is a run of a tile's columns stored contiguously: mask bit j set
// for column j; off is the byte offset of column 0's address from the
// row's start (the run's first column lands at its output pixel).
type qSeg struct {
	mask uint32
	off  int32
}

const qMaxSegs = 8

// QOutput says what a quantized convolution does with its accumulators.
// The result for output channel m is (acc + Bias[m]) · Mult[m], where acc
// is Σ w·(x - zx); then ReLU if set; then, when Quantize is set, it is
// rounded (half to even) and clamped to [Lo, Hi] steps and multiplied by
// S: with Mult = x_scale·w_scale/y_scale, Lo = qmin - y_zero_point and
// Hi = qmax - y_zero_point, that is QuantizeLinear then DequantizeLinear
// of the output, as ONNX Runtime's QLinearConv requantizes.
//
// With Residual, a tensor shaped like the output (given to Forward) is
// then added, followed by ReLU if ReLU2 and, if Quantize2, quantization
// to steps of S2 in [Lo2, Hi2] (rounding v/S2): a residual block's Add →
// Relu → QuantizeLinear → DequantizeLinear.
type QOutput struct {
	Bias     []int32   // per output channel; nil: none
	Mult     []float32 // per output channel
	ReLU     bool
	Quantize bool
	S        float32
	Lo, Hi   float32

	Residual  bool
	ReLU2     bool
	Quantize2 bool
	S2        float32
	Lo2, Hi2  float32

	// PackedIn: the input arrives as uint8 values (with the zero point
	// zx given to Forward), four channels interleaved — byte
	// ((n·⌈C/4⌉ + c/4)·H·W + y·W + x)·4 + c%4 of the float32 slice's
	// memory — as another QConv writes with PackedOut. No quantization on
	// the way in.
	PackedIn bool
	// PackedOut writes the output in that layout: the last quantization's
	// steps minus its Lo (the uint8 value). It needs Quantize (or, with a
	// residual, Quantize2).
	PackedOut bool
	// PackedRes reads the residual in that layout, as (byte - ResZ)·ResS.
	PackedRes  bool
	ResS, ResZ float32
}

// PackedSlots is the number of float32 slots a packed tensor of n images
// of c channels and hw pixels takes (a quarter of the float tensor's,
// rounded up by channels).
func PackedSlots(n, c, hw int) int { return n * (c + 3) / 4 * hw }

// QConv is a 2-D convolution of uint8 inputs (with a zero point) and
// int8 weights (symmetric, zero point 0), accumulating in int32: AVX-512
// VNNI's VPDPBUSD, 8 output channels x 32 pixels a tile, the epilogue and
// the stores to the output in the same kernel. Inputs arrive as float32
// values that are exact multiples of the input scale (the dequantized
// form) and are quantized back on the way in; outputs leave as float32
// (see QOutput).
//
// Stride-1 convolutions read the quantized, padded input in place: an
// implicit GEMM over a grid as wide as the padded input, whose extra
// columns are computed and not stored. Others gather each tile's inputs
// into a panel first.
type QConv struct {
	prm      ConvParams
	cg       int // input channel groups of 4 per convolution group
	kg       int // reduction steps of 4 per convolution group
	mg       int // output channels per group
	mt       int // tiles of 8 output channels per group
	a        []int8
	rowSum   []int32 // per output channel: Σ w
	hp, wp   int     // padded input size
	oplane   int     // output pixels per channel
	implicit bool    // stride 1 with few enough segments a tile
	// offs[g] is the byte offset of reduction step g's inputs in the
	// padded input of one convolution group (from a pixel's position).
	offs      []int32
	panelOffs []int32 // step g of a panel: g*128
	segs      [][qMaxSegs]qSeg
	nsegs     []int32
	pix       [][32]int32 // gathered path: each tile's pixel offsets

	// The AMX path: chunks of r channel groups at one kernel offset,
	// weights in 32-channel blocks (two 16 x 64-byte tiles a chunk).
	amx     bool
	r, nch  int
	m32     int
	a32     []int8
	boffs   []int32 // per chunk: the input tile's byte offset (implicit)
	boffsP  []int32 // per chunk: in a gathered panel
	bstride int     // bytes between an input tile's rows (implicit)
	cfg     [64]byte
	// amx16: 16 output channels or fewer, stride 1: blocks of 16 channels
	// x 64 pixels (qamx16x64), so that no tile row is wasted.
	amx16 bool
	cfg16 [64]byte
}

// QPrepared is a QOutput turned into what the kernels read, for one
// input zero point.
type QPrepared struct {
	corr  []int32 // per output channel, padded to whole tiles per group
	mult  []float32
	flags int32
	o     QOutput
}

// QConvSupported reports whether the CPU runs QConv's fast path (AVX-512
// VNNI); elsewhere it runs in Go, correct but slow.
func QConvSupported() bool { return hasQConv() }

// ErrQConvShape is returned for convolutions QConv does not take (group
// channel counts that are not multiples of 4).
var ErrQConvShape = errors.New("kernels: convolution shape not supported by the int8 kernels")

// NewQConv packs int8 weights w ([OutC, InC/Group, KH, KW]) for prm.
// It uses AMX tiles where the CPU and the OS allow them (AMX-INT8), else
// AVX-512 VNNI, else Go.
func NewQConv(prm ConvParams, w []int8) (*QConv, error) { return newQConv(prm, w, hasAMX()) }

// QConvKernel names the kernel QConv runs for prm on this machine:
// "amx", "avx512-vnni" or "go".
func QConvKernel(prm ConvParams) string {
	switch {
	case hasAMX() && useAMX(prm) && (prm.StrideH == 1 && prm.StrideW == 1 || prm.InC/prm.Group >= 32):
		return "amx"
	case hasQConv():
		return "avx512-vnni"
	}
	return "go"
}

func newQConv(prm ConvParams, w []int8, amx bool) (*QConv, error) {
	if err := prm.Validate(); err != nil {
		return nil, err
	}
	g := prm.Group
	cin := prm.InC / g
	if g > 1 && cin%4 != 0 {
		return nil, fmt.Errorf("%w: %d input channels per group", ErrQConvShape, cin)
	}
	khw := prm.KH * prm.KW
	if len(w) != prm.OutC*cin*khw {
		return nil, fmt.Errorf("kernels: %d weights for %d output channels of %dx%dx%d", len(w), prm.OutC, cin, prm.KH, prm.KW)
	}
	q := &QConv{prm: prm, cg: (cin + 3) / 4, mg: prm.OutC / g, amx: amx && hasAMX() && useAMX(prm)}
	if q.amx {
		// Channel groups padded to whole chunks (zero weights).
		q.r = min(16, q.cg)
		q.cg = (q.cg + q.r - 1) / q.r * q.r
	}
	q.kg = q.cg * khw
	q.mt = (q.mg + 7) / 8
	q.hp = prm.InH + prm.PadTop + prm.PadBottom
	q.wp = prm.InW + prm.PadLeft + prm.PadRight
	if int64(g*q.cg)*int64(q.hp)*int64(q.wp)*4 > math.MaxInt32/2 {
		return nil, fmt.Errorf("%w: input too large", ErrQConvShape)
	}
	// Reduction step order: channel group, then kernel row and column.
	q.offs = make([]int32, q.kg)
	q.panelOffs = make([]int32, q.kg)
	step := 0
	for c4 := range q.cg {
		for kh := range prm.KH {
			for kw := range prm.KW {
				q.offs[step] = int32(((c4*q.hp+kh*prm.DilationH)*q.wp + kw*prm.DilationW) * 4)
				q.panelOffs[step] = int32(step * 128)
				step++
			}
		}
	}
	// A: per group, per tile of 8 rows, per step: 8 rows x 4 weights.
	q.a = make([]int8, g*q.mt*q.kg*32)
	q.rowSum = make([]int32, prm.OutC)
	for gi := range g {
		for m := range q.mg {
			oc := gi*q.mg + m
			tile, r := m/8, m%8
			for c := range cin {
				for kh := range prm.KH {
					for kw := range prm.KW {
						v := w[((oc*cin+c)*prm.KH+kh)*prm.KW+kw]
						step := ((c/4)*prm.KH+kh)*prm.KW + kw
						q.a[((gi*q.mt+tile)*q.kg+step)*32+r*4+c%4] = v
						q.rowSum[oc] += int32(v)
					}
				}
			}
		}
	}
	q.oplane = prm.OutH() * prm.OutW()
	q.planTiles()
	if q.amx && !q.implicit && cin < 32 {
		q.amx = false // a shallow gathered convolution: VNNI (see useAMX)
	}
	if q.amx {
		q.amx16 = q.implicit && q.mg <= 16
		q.packAMX(w)
	}
	return q, nil
}

// useAMX reports whether AMX tiles pay off for prm: AMX multiplies 16
// rows at a time whatever the depth, so a chunk of fewer than 64 input
// channels wastes part of each multiply. With 32 channels or more it
// beats VNNI; with 16 output channels (blocks of 64 pixels, no wasted
// rows) and at least 16 input channels it matches it; below that (a
// 3-channel stem) VNNI wins (BenchmarkQConv: 0.61 against 0.88 ms).
func useAMX(prm ConvParams) bool {
	cin, mg := prm.InC/prm.Group, prm.OutC/prm.Group
	return cin >= 32 || cin >= 16 && mg <= 16 && prm.StrideH == 1 && prm.StrideW == 1
}

// packAMX lays out the weights for qamx32x32: per group, per block of 32
// output channels, per chunk (channel groups c4b·r.., kernel row, column):
// two tiles of 16 channels x 64 bytes, byte 4i+t of a row holding input
// channel 4(c4b·r+i)+t. It also sets the chunk offsets and the tile
// configuration.
func (q *QConv) packAMX(w []int8) {
	prm := q.prm
	g, cin := prm.Group, prm.InC/prm.Group
	khw := prm.KH * prm.KW
	q.nch = q.cg / q.r * khw
	q.m32 = (q.mg + 31) / 32
	q.a32 = make([]int8, g*q.m32*q.nch*2048)
	for gi := range g {
		for m := range q.mg {
			oc := gi*q.mg + m
			blk, row := m/32, m%32
			for c := range cin {
				c4 := c / 4
				cb, i := c4/q.r, c4%q.r
				for kh := range prm.KH {
					for kw := range prm.KW {
						ch := (cb*prm.KH+kh)*prm.KW + kw
						q.a32[((gi*q.m32+blk)*q.nch+ch)*2048+row*64+4*i+c%4] = w[((oc*cin+c)*prm.KH+kh)*prm.KW+kw]
					}
				}
			}
		}
	}
	plane := q.hp * q.wp
	q.boffs = make([]int32, q.nch)
	q.boffsP = make([]int32, q.nch)
	for cb := range q.cg / q.r {
		for kh := range prm.KH {
			for kw := range prm.KW {
				ch := (cb*prm.KH+kh)*prm.KW + kw
				q.boffs[ch] = int32((cb*q.r*plane + kh*prm.DilationH*q.wp + kw*prm.DilationW) * 4)
				q.boffsP[ch] = int32(((cb*q.r)*khw + kh*prm.KW + kw) * 128)
			}
		}
	}
	q.bstride = plane * 4
	c16 := &q.cfg16
	c16[0] = 1
	for t := range 8 {
		rows, colsb := 16, 64
		switch {
		case t == 4:
			colsb = 4 * q.r
		case t >= 5:
			rows = q.r
		}
		c16[16+2*t] = byte(colsb)
		c16[48+t] = byte(rows)
	}
	c := &q.cfg
	c[0] = 1 // palette 1
	for t := range 8 {
		rows, colsb := 16, 64
		switch {
		case t == 4 || t == 5:
			colsb = 4 * q.r
		case t >= 6:
			rows = q.r
		}
		c[16+2*t] = byte(colsb)
		c[48+t] = byte(rows)
	}
}

// planTiles works out each tile's stores (segments) and, for the gathered
// path, its pixels.
func (q *QConv) planTiles() {
	prm := q.prm
	oh, ow := prm.OutH(), prm.OutW()
	q.implicit = false
	if prm.StrideH == 1 && prm.StrideW == 1 {
		grid := oh * q.wp
		pt := (grid + 31) / 32
		segs := make([][qMaxSegs]qSeg, pt)
		nsegs := make([]int32, pt)
		ok := true
		for p := range pt {
			v := p * 32
			for j := 0; j < 32 && v+j < grid && ok; {
				y, xc := (v+j)/q.wp, (v+j)%q.wp
				if xc >= ow {
					j += q.wp - xc
					continue
				}
				n := min(ow-xc, 32-j)
				if nsegs[p] == qMaxSegs {
					ok = false
					break
				}
				segs[p][nsegs[p]] = qSeg{mask: uint32((uint64(1)<<n - 1) << j), off: int32((y*ow + xc - j) * 4)}
				nsegs[p]++
				j += n
			}
		}
		if ok {
			q.implicit, q.segs, q.nsegs = true, segs, nsegs
			return
		}
	}
	n := oh * ow
	pt := (n + 31) / 32
	q.segs = make([][qMaxSegs]qSeg, pt)
	q.nsegs = make([]int32, pt)
	q.pix = make([][32]int32, pt)
	for p := range pt {
		cnt := min(32, n-p*32)
		q.segs[p][0] = qSeg{mask: uint32(uint64(1)<<cnt - 1), off: int32(p * 32 * 4)}
		q.nsegs[p] = 1
		for j := range 32 {
			px := min(p*32+j, n-1)
			y, xc := px/ow, px%ow
			q.pix[p][j] = int32(((y*prm.StrideH)*q.wp + xc*prm.StrideW) * 4)
		}
	}
}

// Prepare turns o into what Forward reads, for input zero point zx.
func (q *QConv) Prepare(o *QOutput, zx int32) (*QPrepared, error) {
	prm := q.prm
	if len(o.Mult) != prm.OutC || o.Bias != nil && len(o.Bias) != prm.OutC {
		return nil, fmt.Errorf("kernels: %d multipliers and %d biases for %d output channels", len(o.Mult), len(o.Bias), prm.OutC)
	}
	g := prm.Group
	per := q.padRows()
	p := &QPrepared{corr: make([]int32, g*per), mult: make([]float32, g*per), o: *o}
	for gi := range g {
		for m := range q.mg {
			oc := gi*q.mg + m
			i := gi*per + m
			p.corr[i] = -zx * q.rowSum[oc]
			if o.Bias != nil {
				p.corr[i] += o.Bias[oc]
			}
			p.mult[i] = o.Mult[oc]
		}
	}
	for _, f := range []struct {
		on  bool
		bit int32
	}{{o.ReLU, 1}, {o.Quantize, 2}, {o.Residual, 4}, {o.Residual && o.ReLU2, 8}, {o.Residual && o.Quantize2, 16}, {o.PackedOut, 32}, {o.Residual && o.PackedRes, 64}} {
		if f.on {
			p.flags |= f.bit
		}
	}
	// A ReLU before a quantization clamped at 0 or above does nothing.
	if o.ReLU && o.Quantize && o.Lo >= 0 {
		p.flags &^= 1
	}
	if o.Residual && o.ReLU2 && o.Quantize2 && o.Lo2 >= 0 {
		p.flags &^= 8
	}
	if (o.PackedOut || o.Residual && o.PackedRes) && q.mg%4 != 0 && g > 1 {
		return nil, fmt.Errorf("%w: packed outputs of %d channels per group", ErrQConvShape, q.mg)
	}
	if o.PackedOut && !(o.Residual && o.Quantize2 || !o.Residual && o.Quantize) {
		return nil, fmt.Errorf("kernels: a packed output needs the output's quantization")
	}
	return p, nil
}

// padRows is the output channels of a group rounded up to whole tiles
// of 32 (the AMX blocks; whole tiles of 8 too).
func (q *QConv) padRows() int { return (q.mg + 31) / 32 * 32 }

// inputBytes is the size of one image's quantized, padded input, with
// slack for the last tile's reads past the end.
func (q *QConv) inputBytes() int {
	prm := q.prm
	return prm.Group*q.cg*q.hp*q.wp*4 + (64+(prm.KH*prm.DilationH+1)*q.wp+prm.KW*prm.DilationW)*4
}

// WorkspaceBytes is the size of a workspace for threads threads.
func (q *QConv) WorkspaceBytes(threads int) int {
	return threads * (q.inputBytes() + q.kg*128 + 64 + int(unsafe.Sizeof(qconvTask{})))
}

// QWorkspace is Forward's scratch for up to its number of threads: each
// thread's quantized input, panel, epilogue block and accumulators,
// allocated once (a run allocates nothing).
type QWorkspace struct {
	tasks []qconvTask
}

// NewWorkspace returns a workspace for Forward on up to threads threads
// with input zero point zx. The padding of the quantized input (and the
// channel groups the kernels pad with) is filled with zx here, once:
// Forward writes only the interior.
func (q *QConv) NewWorkspace(threads int, zx int32) *QWorkspace {
	per := q.inputBytes() + q.kg*128 + 64
	buf := make([]byte, threads*per)
	fillBytes(buf, byte(min(max(zx, 0), 255)))
	ws := &QWorkspace{tasks: make([]qconvTask, threads)}
	for w := range ws.tasks {
		b := buf[w*per : (w+1)*per]
		ws.tasks[w].xq, ws.tasks[w].panel = b[:q.inputBytes()], b[q.inputBytes():][:q.kg*128]
	}
	return ws
}

// qAMXBlocks is how many 32x32 accumulator blocks one AMX call fills
// (one tile configuration for all).
const qAMXBlocks = 8

// qconvTask is one thread's scratch: xq its quantized input (the image
// the thread computes, or with an image's tiles shared, task 0's).
type qconvTask struct {
	xq, panel []byte
	ep        qEpilogue
	acc       [qAMXBlocks * 32 * 32]int32 // the AMX path's accumulators
}

// Forward computes batch images: x holds [batch, InC, InH, InW] values
// that are multiples of sx (zero point zx, uint8), or the packed uint8
// layout (QOutput.PackedIn); out receives [batch, OutC, OutH, OutW] (or
// the packed layout); res is the residual, shaped like out, when p's
// output has one. With at least as many images as threads, each thread
// takes whole images; otherwise each image's tiles are shared.
func (q *QConv) Forward(pool *Pool, batch int, x []float32, sx float32, zx int32, p *QPrepared, res, out []float32, ws *QWorkspace) {
	prm := q.prm
	oP := prm.OutH() * prm.OutW()
	inPer := prm.InC * prm.InH * prm.InW
	if p.o.PackedIn {
		inPer = PackedSlots(1, prm.InC, prm.InH*prm.InW)
	}
	outPer := prm.OutC * oP
	if p.o.PackedOut {
		outPer = PackedSlots(1, prm.OutC, oP)
	}
	resPer := prm.OutC * oP
	if p.o.PackedRes {
		resPer = PackedSlots(1, prm.OutC, oP)
	}
	_ = x[batch*inPer-1]
	_ = out[batch*outPer-1]
	if p.o.Residual {
		_ = res[batch*resPer-1]
	}
	threads := 1
	if pool != nil {
		threads = pool.Threads()
	}
	task := func(w int) *qconvTask { return &ws.tasks[w] }
	prep := func(pool *Pool, img int, xq []byte) {
		if p.o.PackedIn {
			q.copyPackedInput(pool, x[img*inPer:(img+1)*inPer], xq)
		} else {
			q.quantizeInput(pool, x[img*inPer:], sx, zx, xq)
		}
	}
	resOf := func(img int) []float32 {
		if !p.o.Residual {
			return nil
		}
		return res[img*resPer : (img+1)*resPer]
	}
	items := q.items()
	if batch >= threads || threads < 2 {
		parts := min(threads, batch)
		run := func(lo, hi int) {
			for part := lo; part < hi; part++ {
				t := task(part)
				i0, i1 := splitRange(batch, parts, part)
				for img := i0; img < i1; img++ {
					prep(nil, img, t.xq)
					q.run(t, t.xq, 0, items, p, out[img*outPer:(img+1)*outPer], resOf(img))
				}
			}
		}
		if pool == nil || parts < 2 {
			run(0, parts)
		} else {
			pool.Parallel(parts, run)
		}
		return
	}
	t0 := task(0)
	for img := range batch {
		prep(pool, img, t0.xq)
		parts := min(threads, items)
		o, r := out[img*outPer:(img+1)*outPer], resOf(img)
		pool.Parallel(parts, func(lo, hi int) {
			for part := lo; part < hi; part++ {
				a, b := splitRange(items, parts, part)
				q.run(task(part), t0.xq, a, b, p, o, r)
			}
		})
	}
}

// copyPackedInput lays one image's packed input (see QOutput.PackedIn)
// out in the padded buffer, as quantizeInput does from floats (the
// padding is NewWorkspace's).
func (q *QConv) copyPackedInput(pool *Pool, x []float32, xq []byte) {
	groups4 := q.prm.Group * q.cg
	if pool == nil || groups4 < 2 {
		q.copyPackedGroups(0, groups4, x, xq) // no closure: nothing allocated
		return
	}
	pool.Parallel(groups4, func(lo, hi int) { q.copyPackedGroups(lo, hi, x, xq) })
}

// copyPackedGroups is copyPackedInput for channel groups [lo, hi).
func (q *QConv) copyPackedGroups(lo, hi int, x []float32, xq []byte) {
	prm := q.prm
	src := unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), len(x)*4)
	cin := prm.InC / prm.Group
	rowBytes := q.wp * 4
	inRow := prm.InW * 4
	for c4g := lo; c4g < hi; c4g++ {
		gi, c4 := c4g/q.cg, c4g%q.cg
		if c4*4 >= cin { // padded channel groups: weights 0, left at zx
			continue
		}
		pl := xq[c4g*q.hp*rowBytes : (c4g+1)*q.hp*rowBytes]
		g := gi*cin/4 + c4                         // the producer's group
		if prm.PadLeft == 0 && prm.PadRight == 0 { // whole rows at once
			copy(pl[prm.PadTop*rowBytes:], src[g*prm.InH*inRow:(g+1)*prm.InH*inRow])
			continue
		}
		copyRows(pl[prm.PadTop*rowBytes+prm.PadLeft*4:], src[g*prm.InH*inRow:], prm.InH, inRow, rowBytes, inRow)
	}
}

// items is the number of work items of one image: p tiles x groups x
// chunks of m tiles (chunks so that there are enough items to share).
func (q *QConv) items() int {
	if q.amx16 {
		return (len(q.segs) + 1) / 2 * q.prm.Group
	}
	return len(q.segs) * q.prm.Group * q.chunks()
}

func (q *QConv) chunks() int {
	mt := q.mt
	if q.amx {
		mt = q.m32
	}
	if t := len(q.segs) * q.prm.Group; t < 8 {
		return min(mt, (8+t-1)/t)
	}
	return 1
}

// run computes work items [t0, t1) of one image whose quantized input is
// in xq, into out (and with res) — the image's tensors.
func (q *QConv) run(t *qconvTask, xq []byte, t0, t1 int, p *QPrepared, out, res []float32) {
	prm := q.prm
	outPlane := q.oplane
	pt, g, chunks := len(q.segs), prm.Group, q.chunks()
	ep := &t.ep
	ep.flags = p.flags
	ep.s, ep.lo, ep.hi = p.o.S, p.o.Lo, p.o.Hi
	ep.s2, ep.lo2, ep.hi2 = p.o.S2, p.o.Lo2, p.o.Hi2
	if p.o.S2 != 0 {
		ep.s2inv = 1 / p.o.S2
	}
	ep.ldd = int64(outPlane * 4) // a float row, or a packed group of four
	ep.rs, ep.rz = p.o.ResS, p.o.ResZ
	if q.amx16 {
		q.runAMX16(t, xq, t0, t1, p, out, res)
		return
	}
	if q.amx && q.implicit && q.m32 == 1 && chunks == 1 {
		q.runAMXPixels(t, xq, t0, t1, p, out, res)
		return
	}
	for it := t0; it < t1; it++ {
		pi := it % pt
		rest := it / pt
		gi, chunk := rest%g, rest/g
		m0, m1 := chunk*q.mt/chunks, (chunk+1)*q.mt/chunks
		src := xq[gi*q.cg*q.hp*q.wp*4:]
		var b []byte
		var offs []int32
		if q.implicit {
			b, offs = src[pi*32*4:], q.offs
		} else {
			q.packPanel(t.panel, src, &q.pix[pi])
			b, offs = t.panel, q.panelOffs
		}
		ep.segs, ep.nseg = q.segs[pi], q.nsegs[pi]
		if q.amx {
			q.runAMX(t, b, gi, chunk, chunks, p, out, res)
			continue
		}
		for mt := m0; mt < m1; mt++ {
			base := gi*q.mg + mt*8
			ep.rows = int32(min(8, q.mg-mt*8))
			ci := gi*q.padRows() + mt*8
			ep.corr, ep.mult = &p.corr[ci], &p.mult[ci]
			// The rows' starts: valid channels only (rows < 8 are not
			// stored).
			q.rowPointers(ep, p, out, res, base)
			qgemmTile(q.kg, q.a[((gi*q.mt+mt)*q.kg)*32:], b, offs, ep)
		}
	}
}

// rowPointers points ep at output channel base's row (or, packed, its
// group of four) of the image's out and res.
func (q *QConv) rowPointers(ep *qEpilogue, p *QPrepared, out, res []float32, base int) {
	plane := q.oplane
	if p.o.PackedOut {
		ep.dst = &out[base/4*plane]
	} else {
		ep.dst = &out[base*plane]
	}
	ep.res = ep.dst
	if res != nil {
		if p.o.PackedRes {
			ep.res = &res[base/4*plane]
		} else {
			ep.res = &res[base*plane]
		}
	}
}

// runAMX computes one pixel tile's blocks of 32 output channels (chunk
// of chunks) with AMX tiles, then the epilogue 8 rows at a time. b is the
// input at the tile's first pixel (implicit) or its gathered panel.
func (q *QConv) runAMX(t *qconvTask, b []byte, gi, chunk, chunks int, p *QPrepared, out, res []float32) {
	boffs, bstride := q.boffs, q.bstride
	if !q.implicit {
		boffs, bstride = q.boffsP, q.prm.KH*q.prm.KW*128
	}
	ep := &t.ep
	m0, m1 := chunk*q.m32/chunks, (chunk+1)*q.m32/chunks
	for b0 := m0; b0 < m1; b0 += qAMXBlocks {
		nb := min(qAMXBlocks, m1-b0)
		qamxTile(q.nch, q.a32[(gi*q.m32+b0)*q.nch*2048:], b, boffs, bstride, t.acc[:], &q.cfg, nb, q.nch*2048, 0)
		for k := range nb {
			first := (b0 + k) * 32
			base := gi*q.mg + first
			ep.rows = int32(min(32, q.mg-first))
			ci := gi*q.padRows() + first
			ep.corr, ep.mult = &p.corr[ci], &p.mult[ci]
			q.rowPointers(ep, p, out, res, base)
			qepi8(t.acc[k*1024:], ep, 4)
		}
	}
}

// runAMXPixels computes work items [t0, t1) of one image for a group of
// at most 32 output channels (one weight block), stride 1: up to
// qAMXBlocks consecutive pixel tiles a call, under one tile
// configuration.
func (q *QConv) runAMXPixels(t *qconvTask, xq []byte, t0, t1 int, p *QPrepared, out, res []float32) {
	pt := len(q.segs)
	ep := &t.ep
	for it := t0; it < t1; {
		pi, gi := it%pt, it/pt
		nb := min(qAMXBlocks, pt-pi, t1-it)
		src := xq[gi*q.cg*q.hp*q.wp*4:]
		qamxTile(q.nch, q.a32[gi*q.m32*q.nch*2048:], src[pi*32*4:], q.boffs, q.bstride, t.acc[:], &q.cfg, nb, 0, 128)
		for k := range nb {
			ep.segs, ep.nseg = q.segs[pi+k], q.nsegs[pi+k]
			ep.rows = int32(min(32, q.mg))
			ci := gi * q.padRows()
			ep.corr, ep.mult = &p.corr[ci], &p.mult[ci]
			q.rowPointers(ep, p, out, res, gi*q.mg)
			qepi8(t.acc[k*1024:], ep, 4)
		}
		it += nb
	}
}

// runAMX16 computes work items [t0, t1) of one image, each a pair of
// pixel tiles of a group's 16 or fewer output channels, with qamx16x64.
func (q *QConv) runAMX16(t *qconvTask, xq []byte, t0, t1 int, p *QPrepared, out, res []float32) {
	pt, pairs := len(q.segs), (len(q.segs)+1)/2
	ep := &t.ep
	for it := t0; it < t1; {
		pair, gi := it%pairs, it/pairs
		nb := min(qAMXBlocks, pairs-pair, t1-it) // consecutive pairs of one group
		src := xq[gi*q.cg*q.hp*q.wp*4:]
		qamxTile16(q.nch, q.a32[gi*q.m32*q.nch*2048:], src[pair*64*4:], q.boffs, q.bstride, t.acc[:], &q.cfg16, nb)
		for k := range nb {
			for h := range 2 {
				pi := 2*(pair+k) + h
				if pi >= pt {
					break
				}
				ep.segs, ep.nseg = q.segs[pi], q.nsegs[pi]
				base := gi * q.mg
				ep.rows = int32(q.mg)
				ci := gi * q.padRows()
				ep.corr, ep.mult = &p.corr[ci], &p.mult[ci]
				q.rowPointers(ep, p, out, res, base)
				qepi8(t.acc[k*1024+h*16*32:], ep, 2)
			}
		}
		it += nb
	}
}

// quantizeInput writes one image's input as uint8 (round(x/sx) + zx,
// saturated), channels interleaved by 4, into the padded buffer (padding
// filled with zx by NewWorkspace): byte ((c4·hp + y)·wp + x)·4 + c%4.
func (q *QConv) quantizeInput(pool *Pool, x []float32, sx float32, zx int32, xq []byte) {
	groups4 := q.prm.Group * q.cg
	if pool == nil || groups4 < 2 {
		q.quantizeGroups(0, groups4, x, 1/sx, zx, xq) // no closure: nothing allocated
		return
	}
	pool.Parallel(groups4, func(lo, hi int) { q.quantizeGroups(lo, hi, x, 1/sx, zx, xq) })
}

// quantizeGroups is quantizeInput for channel groups [lo, hi), inv = 1/sx.
func (q *QConv) quantizeGroups(lo, hi int, x []float32, inv float32, zx int32, xq []byte) {
	prm := q.prm
	cin := prm.InC / prm.Group
	plane := prm.InH * prm.InW
	rowBytes := q.wp * 4
	for c4g := lo; c4g < hi; c4g++ {
		gi, c4 := c4g/q.cg, c4g%q.cg
		var src [4][]float32
		for t := range 4 {
			c := min(c4*4+t, cin-1) // missing channels: any values (their weights are 0)
			src[t] = x[(gi*cin+c)*plane:][:plane]
		}
		pl := xq[c4g*q.hp*rowBytes : (c4g+1)*q.hp*rowBytes]
		for y := range prm.InH {
			row := pl[(y+prm.PadTop)*rowBytes : (y+prm.PadTop+1)*rowBytes]
			quant4(row[prm.PadLeft*4:], src[0][y*prm.InW:], src[1][y*prm.InW:], src[2][y*prm.InW:], src[3][y*prm.InW:], prm.InW, inv, zx)
		}
	}
}

func copyRowsGo(dst, src []byte, rows, n, dstStride, srcStride int) {
	for r := range rows {
		copy(dst[r*dstStride:r*dstStride+n], src[r*srcStride:r*srcStride+n])
	}
}

// fillBytes sets every byte of b to v.
func fillBytes(b []byte, v byte) {
	if len(b) == 0 {
		return
	}
	b[0] = v
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// packPanel gathers the inputs of a tile's 32 pixels (byte offsets pix)
// for every reduction step into panel: step g at g*128.
func (q *QConv) packPanel(panel, src []byte, pix *[32]int32) {
	if qpack32(panel, src, q.offs, pix) {
		return
	}
	for g, off := range q.offs {
		d := panel[g*128 : g*128+128]
		for j, px := range pix {
			s := int(off) + int(px)
			copy(d[j*4:j*4+4], src[s:s+4])
		}
	}
}

// quant4Go is quant4VNNI's contract in Go (the reference, and the path on
// other CPUs).
func quant4Go(dst []byte, s0, s1, s2, s3 []float32, n int, inv float32, z int32) {
	for i := range n {
		for t, s := range [4][]float32{s0, s1, s2, s3} {
			f := min(max(s[i]*inv, -512), 512) // NaN: -512
			if f != f {
				f = -512
			}
			v := int32(roundEven32(f)) + z
			dst[4*i+t] = byte(min(max(v, 0), 255))
		}
	}
}

// roundEven32Wide rounds half to even without a range limit (values
// beyond ±2^22 are already integers).
func roundEven32Wide(v float32) float32 {
	if v > 1<<22 || v < -(1<<22) || v != v {
		return v
	}
	return roundEven32(v)
}

// qgemmTileGo is qgemm8x32VNNI's contract in Go, through the same raw
// pointers (ep.dst, ep.res and the segments' offsets from them).
func qgemmTileGo(kg int, a []int8, b []byte, offs []int32, ep *qEpilogue) {
	var acc [8][32]int32
	for g := range kg {
		bb := b[offs[g]:]
		for r := range 8 {
			w := a[g*32+r*4 : g*32+r*4+4]
			for j := range 32 {
				x := bb[j*4 : j*4+4]
				acc[r][j] += int32(x[0])*int32(w[0]) + int32(x[1])*int32(w[1]) + int32(x[2])*int32(w[2]) + int32(x[3])*int32(w[3])
			}
		}
	}
	qepiGo(&acc, ep)
}

// qepiGo is the epilogue (qepi in gen_amd64.py) in Go.
func qepiGo(acc *[8][32]int32, ep *qEpilogue) {
	corr := unsafe.Slice(ep.corr, 8)
	mult := unsafe.Slice(ep.mult, 8)
	var v [8][32]float32
	f := ep.flags
	u8 := f&32 != 0
	lo := ep.lo
	if f&4 != 0 {
		lo = ep.lo2
	}
	at := func(base *float32, row, off, j int) unsafe.Pointer {
		return unsafe.Add(unsafe.Pointer(base), int64(row)*ep.ldd+int64(off)+int64(j)*4)
	}
	for r := range int(ep.rows) {
		for _, sg := range ep.segs[:ep.nseg] {
			for j := range 32 {
				if sg.mask&(1<<j) == 0 {
					continue
				}
				x := float32(acc[r][j]+corr[r]) * mult[r]
				if f&1 != 0 {
					x = max(x, 0)
				}
				if f&2 != 0 {
					x = min(max(roundEven32Wide(x), ep.lo), ep.hi)
					if !(u8 && f&4 == 0) {
						x *= ep.s
					}
				}
				if f&4 != 0 {
					var rv float32
					if f&64 != 0 {
						w := *(*uint32)(at(ep.res, r/4, int(sg.off), j))
						rv = (float32(w>>(8*(r%4))&0xFF) - ep.rz) * ep.rs
					} else {
						rv = *(*float32)(at(ep.res, r, int(sg.off), j))
					}
					x += rv
					if f&8 != 0 {
						x = max(x, 0)
					}
					if f&16 != 0 {
						x = min(max(roundEven32Wide(x*ep.s2inv), ep.lo2), ep.hi2)
						if !u8 {
							x *= ep.s2
						}
					}
				}
				v[r][j] = x
				if !u8 {
					*(*float32)(at(ep.dst, r, int(sg.off), j)) = x
				}
			}
		}
	}
	if !u8 {
		return
	}
	for g := 0; g*4 < int(ep.rows); g++ {
		for _, sg := range ep.segs[:ep.nseg] {
			for j := range 32 {
				if sg.mask&(1<<j) == 0 {
					continue
				}
				var w uint32
				for t := range 4 {
					w |= uint32(int32(v[4*g+t][j]-lo)&0xFF) << (8 * t)
				}
				*(*uint32)(at(ep.dst, g, int(sg.off), j)) = w
			}
		}
	}
}
