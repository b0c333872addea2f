package kernels

import (
	"errors"
	"fmt"
	"math"
)

// qEpilogue is what qgemm8x32VNNI applies to a tile (layout fixed by the
// assembly): per row r, v = float32(acc + corr[r]) * mult[r]; then with
// flags&1 v = max(v, 0); with flags&2 v = clamp(round(v), lo, hi) * s.
type qEpilogue struct {
	corr  [8]int32
	mult  [8]float32
	flags int32
	s     float32
	lo    float32
	hi    float32
}

// QOutput says what a quantized convolution does with its accumulators.
// The result for output channel m is (acc + Bias[m]) · Mult[m], where acc
// is Σ w·(x - zx); then ReLU if set; then, when Quantize is set, it is
// rounded (half to even) and clamped to [Lo, Hi] steps and multiplied by
// S: with Mult = x_scale·w_scale/y_scale, Lo = qmin - y_zero_point and
// Hi = qmax - y_zero_point, that is QuantizeLinear then DequantizeLinear
// of the output, as ONNX Runtime's QLinearConv requantizes.
type QOutput struct {
	Bias     []int32   // per output channel; nil: none
	Mult     []float32 // per output channel
	ReLU     bool
	Quantize bool
	S        float32
	Lo, Hi   float32

	// Residual, when set, is then added (a tensor shaped like the
	// output), followed by ReLU if ReLU2 and quantization to S2, [Lo2,
	// Hi2] (rounding v/S2) if Quantize2: a residual block's Add → Relu →
	// QuantizeLinear → DequantizeLinear.
	Residual  []float32
	ReLU2     bool
	Quantize2 bool
	S2        float32
	Lo2, Hi2  float32
}

// qResidual is qResidualAVX512's parameter block (layout fixed).
type qResidual struct {
	flags     int32
	s, lo, hi float32
}

func qResidualGo(dst, src, res []float32, p *qResidual) {
	for i := range dst {
		v := src[i] + res[i]
		if p.flags&1 != 0 {
			v = max(v, 0)
		}
		if p.flags&2 != 0 {
			v = min(max(roundEven32Wide(v/p.s), p.lo), p.hi) * p.s
		}
		dst[i] = v
	}
}

// QConv is a 2-D convolution of uint8 inputs (with a zero point) and
// int8 weights (symmetric, zero point 0), accumulating in int32: AVX-512
// VNNI's VPDPBUSD, 8 output channels x 32 pixels a tile. Inputs arrive as
// float32 values that are exact multiples of the input scale (the
// dequantized form), and are quantized back on the way in; outputs leave
// as float32 (see QOutput).
//
// Stride-1 convolutions read the quantized, padded input in place (an
// implicit GEMM over a grid as wide as the padded input, whose extra
// columns are computed and dropped); others pack each tile's inputs.
type QConv struct {
	prm    ConvParams
	cg     int // input channel groups of 4 per convolution group
	kg     int // reduction steps of 4 per convolution group
	mg     int // output channels per group
	mt     int // tiles of 8 output channels per group
	a      []int8
	rowSum []int32 // per output channel: Σ w
	hp, wp int     // padded input size
	// offs[g] is the byte offset of reduction step g's inputs in the
	// padded input of one convolution group (stride 1) or in a packed
	// panel (others).
	offs []int32
	// packed panel offsets (stride ≠ 1): step g at g*128.
	panelOffs []int32
}

// QConvSupported reports whether the CPU runs QConv (AVX-512 VNNI).
func QConvSupported() bool { return hasQConv() }

// ErrQConvShape is returned for convolutions QConv does not take (group
// channel counts that are not multiples of 4).
var ErrQConvShape = errors.New("kernels: convolution shape not supported by the int8 kernels")

// NewQConv packs int8 weights w ([OutC, InC/Group, KH, KW]) for prm.
func NewQConv(prm ConvParams, w []int8) (*QConv, error) {
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
	q := &QConv{prm: prm, cg: (cin + 3) / 4, mg: prm.OutC / g}
	q.kg = q.cg * khw
	q.mt = (q.mg + 7) / 8
	q.hp = prm.InH + prm.PadTop + prm.PadBottom
	q.wp = prm.InW + prm.PadLeft + prm.PadRight
	// Reduction step order: channel group, then kernel row and column.
	q.offs = make([]int32, q.kg)
	q.panelOffs = make([]int32, q.kg)
	step := 0
	for c4 := range q.cg {
		for kh := range prm.KH {
			for kw := range prm.KW {
				off := ((c4*q.hp+kh*prm.DilationH)*q.wp + kw*prm.DilationW) * 4
				if off > math.MaxInt32 {
					return nil, fmt.Errorf("%w: input too large", ErrQConvShape)
				}
				q.offs[step] = int32(off)
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
	return q, nil
}

// stride1 reports whether the implicit (in-place) path applies.
func (q *QConv) stride1() bool { return q.prm.StrideH == 1 && q.prm.StrideW == 1 }

// inputBytes is the size of one image's quantized, padded input, with
// slack for the last tile's reads past the end.
func (q *QConv) inputBytes() int {
	dh := (q.prm.KH - 1) * q.prm.DilationH
	return q.prm.Group*q.cg*q.hp*q.wp*4 + (32+dh*q.wp+q.prm.KW*q.prm.DilationW+32)*4
}

// WorkspaceBytes is the workspace Forward needs.
func (q *QConv) WorkspaceBytes(threads int) int {
	return threads * (q.inputBytes() + q.kg*128 + 64)
}

// qconvTask is one thread's scratch: a quantized input and a panel.
type qconvTask struct {
	xq, panel []byte
	img       int // the image being computed (for the residual)
	tile      [256]float32
	ep        qEpilogue
}

// Forward computes batch images: x holds [batch, InC, InH, InW] values
// that are multiples of sx (zero point zx, uint8); out receives [batch,
// OutC, OutH, OutW]. With at least as many images as threads, each thread
// takes whole images; otherwise each image's tiles are shared.
func (q *QConv) Forward(pool *Pool, batch int, x []float32, sx float32, zx int32, o *QOutput, out []float32, ws []byte) {
	prm := q.prm
	inPlane := prm.InC * prm.InH * prm.InW
	outPlane := prm.OutC * prm.OutH() * prm.OutW()
	threads := 1
	if pool != nil {
		threads = pool.Threads()
	}
	per := q.inputBytes() + q.kg*128 + 64
	task := func(w int) *qconvTask {
		b := ws[w*per : (w+1)*per]
		return &qconvTask{xq: b[:q.inputBytes()], panel: b[q.inputBytes():][:q.kg*128]}
	}
	tiles := q.tiles()
	if batch >= threads || threads < 2 {
		parts := min(threads, batch)
		run := func(lo, hi int) {
			for part := lo; part < hi; part++ {
				t := task(part)
				i0, i1 := splitRange(batch, parts, part)
				for img := i0; img < i1; img++ {
					t.img = img
					q.quantizeInput(nil, x[img*inPlane:], sx, zx, t.xq)
					q.run(t, 0, tiles, o, zx, out[img*outPlane:])
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
		q.quantizeInput(pool, x[img*inPlane:], sx, zx, t0.xq)
		parts := min(threads, tiles)
		pool.Parallel(parts, func(lo, hi int) {
			for part := lo; part < hi; part++ {
				t := task(part)
				t.xq, t.img = t0.xq, img
				a, b := splitRange(tiles, parts, part)
				q.run(t, a, b, o, zx, out[img*outPlane:])
			}
		})
	}
}

// tiles is the number of work items of one image: p tiles x groups x
// chunks of m tiles (chunks so that there are enough items to share).
func (q *QConv) tiles() int {
	return q.ptiles() * q.prm.Group * q.chunks()
}

func (q *QConv) grid() int {
	if q.stride1() {
		return q.prm.OutH() * q.wp
	}
	return q.prm.OutH() * q.prm.OutW()
}

func (q *QConv) ptiles() int { return (q.grid() + 31) / 32 }

func (q *QConv) chunks() int {
	if t := q.ptiles() * q.prm.Group; t < 8 {
		return min(q.mt, (8+t-1)/t)
	}
	return 1
}

// run computes work items [t0, t1) of one image whose quantized input is
// in t.xq, into out (the image's output).
func (q *QConv) run(t *qconvTask, t0, t1 int, o *QOutput, zx int32, out []float32) {
	prm := q.prm
	ow := prm.OutW()
	outPlane := prm.OutH() * ow
	grid, pt, g, chunks := q.grid(), q.ptiles(), prm.Group, q.chunks()
	ep := &t.ep
	ep.flags = 0
	if o.ReLU {
		ep.flags |= 1
	}
	if o.Quantize {
		ep.flags |= 2
		ep.s, ep.lo, ep.hi = o.S, o.Lo, o.Hi
	}
	var rp qResidual
	if o.ReLU2 {
		rp.flags |= 1
	}
	if o.Quantize2 {
		rp.flags |= 2
		rp.s, rp.lo, rp.hi = o.S2, o.Lo2, o.Hi2
	}
	var res []float32
	if o.Residual != nil {
		res = o.Residual[t.img*prm.OutC*outPlane:]
	}
	type seg struct{ j, dst, n int }
	var segs [8]seg
	for it := t0; it < t1; it++ {
		p := it % pt
		rest := it / pt
		gi, chunk := rest%g, rest/g
		m0, m1 := chunk*q.mt/chunks, (chunk+1)*q.mt/chunks
		src := t.xq[gi*q.cg*q.hp*q.wp*4:]
		var b []byte
		var offs []int32
		// The tile's columns as runs of output pixels.
		ns := 0
		if q.stride1() {
			b, offs = src[p*32*4:], q.offs
			v := p * 32
			for j := 0; j < 32 && v+j < grid; {
				y, xc := (v+j)/q.wp, (v+j)%q.wp
				if xc >= ow {
					j += q.wp - xc
					continue
				}
				n := min(ow-xc, 32-j)
				segs[ns] = seg{j, y*ow + xc, n}
				ns++
				j += n
			}
		} else {
			q.packPanel(t.panel, src, p*32, outPlane, ow)
			b, offs = t.panel, q.panelOffs
			segs[0] = seg{0, p * 32, min(32, outPlane-p*32)}
			ns = 1
		}
		for mt := m0; mt < m1; mt++ {
			rows := min(8, q.mg-mt*8)
			base := gi*q.mg + mt*8
			for r := range 8 {
				oc := base + min(r, rows-1)
				ep.corr[r] = -zx * q.rowSum[oc]
				if o.Bias != nil {
					ep.corr[r] += o.Bias[oc]
				}
				ep.mult[r] = o.Mult[oc]
			}
			qgemmTile(q.kg, q.a[((gi*q.mt+mt)*q.kg)*32:], b, offs, t.tile[:], ep)
			dst := out[base*outPlane:]
			for r := range rows {
				row := t.tile[r*32 : r*32+32]
				d := dst[r*outPlane : (r+1)*outPlane]
				if res != nil {
					rr := res[(base+r)*outPlane:]
					for _, sg := range segs[:ns] {
						qResidualSeg(d[sg.dst:sg.dst+sg.n], row[sg.j:sg.j+sg.n], rr[sg.dst:sg.dst+sg.n], &rp)
					}
					continue
				}
				for _, sg := range segs[:ns] {
					copy(d[sg.dst:sg.dst+sg.n], row[sg.j:sg.j+sg.n])
				}
			}
		}
	}
}

// quantizeInput writes one image's input as uint8 (round(x/sx) + zx,
// saturated), channels interleaved by 4 and padded with zx: byte
// ((c4·hp + y)·wp + x)·4 + c%4.
func (q *QConv) quantizeInput(pool *Pool, x []float32, sx float32, zx int32, xq []byte) {
	prm := q.prm
	fill := byte(min(max(zx, 0), 255))
	for i := range xq {
		xq[i] = fill
	}
	inv := 1 / sx
	cin := prm.InC / prm.Group
	plane := prm.InH * prm.InW
	groups4 := prm.Group * q.cg
	work := func(lo, hi int) {
		for c4g := lo; c4g < hi; c4g++ {
			gi, c4 := c4g/q.cg, c4g%q.cg
			var src [4][]float32
			for t := range 4 {
				c := min(c4*4+t, cin-1) // missing channels: any values (their weights are 0)
				src[t] = x[(gi*cin+c)*plane:][:plane]
			}
			for y := range prm.InH {
				d := xq[((c4g*q.hp+y+prm.PadTop)*q.wp+prm.PadLeft)*4:]
				quant4(d, src[0][y*prm.InW:], src[1][y*prm.InW:], src[2][y*prm.InW:], src[3][y*prm.InW:], prm.InW, inv, zx)
			}
		}
	}
	if pool == nil || groups4 < 2 {
		work(0, groups4)
		return
	}
	pool.Parallel(groups4, work)
}

// packPanel copies the inputs of output pixels p0..p0+31 (of n) into
// panel: step g's 32 pixels x 4 channels at g*128.
func (q *QConv) packPanel(panel, src []byte, p0, n, ow int) {
	prm := q.prm
	step := 0
	for c4 := range q.cg {
		for kh := range prm.KH {
			for kw := range prm.KW {
				d := panel[step*128 : step*128+128]
				for j := range 32 {
					p := min(p0+j, n-1)
					y, xc := p/ow, p%ow
					iy, ix := y*prm.StrideH+kh*prm.DilationH, xc*prm.StrideW+kw*prm.DilationW
					s := ((c4*q.hp+iy)*q.wp + ix) * 4
					copy(d[j*4:j*4+4], src[s:s+4])
				}
				step++
			}
		}
	}
}

// quant4 is quant4VNNI's contract in Go (the reference, and the path on
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
// beyond ±2^22 are already integers or saturate anyway).
func roundEven32Wide(v float32) float32 {
	if v > 1<<22 || v < -(1<<22) || v != v {
		if v != v {
			return 0
		}
		return v
	}
	return roundEven32(v)
}

// qgemmTileGo is qgemm8x32VNNI's contract in Go.
func qgemmTileGo(kg int, a []int8, b []byte, offs []int32, tile []float32, ep *qEpilogue) {
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
	for r := range 8 {
		for j := range 32 {
			v := float32(acc[r][j]+ep.corr[r]) * ep.mult[r]
			if ep.flags&1 != 0 {
				v = max(v, 0)
			}
			if ep.flags&2 != 0 {
				v = min(max(roundEven32Wide(v), ep.lo), ep.hi) * ep.s
			}
			tile[r*32+j] = v
		}
	}
}
