package infer

import (
	"math"
	"slices"

	"github.com/resnetctl/resnetctl/internal/kernels"
)

// qconvOp is a convolution of the QDQ form run with int8 kernels
// (kernels.QConv): its input is the output of a quantize-dequantize pair
// (fakeQuantOp) with a constant per-tensor scale and zero point, its
// weight DequantizeLinear of a constant int8 tensor (zero point 0), its
// bias DequantizeLinear of int32 values (or float); an output
// quantize-dequantize pair after it (and a ReLU between) is applied in
// the kernel's epilogue. Fused at load by fuseQConv when the CPU has the
// int8 kernels; the result is the QDQ graph's, computed as ONNX Runtime's
// QLinearConv does (int32 accumulation, one float multiplier per output
// channel, rounding half to even).
type qconvOp struct {
	kernel string // kernels.QConvKernel's name
	conv   *convOp
	wShape []int
	w      []int8
	wScale []float32 // per output channel
	bias   []int32   // in units of x_scale·w_scale[m]; nil: none
	sx     float32
	zx     int32 // as uint8 (int8 inputs shifted by 128)
	relu   bool
	outQ   bool
	sy     float32
	lo, hi float32 // qmin - zy, qmax - zy

	// A residual Add (input 1) → Relu → quantize-dequantize after it.
	residual bool
	relu2    bool
	outQ2    bool
	sy2      float32
	lo2, hi2 float32

	// Packed uint8 tensors between int8 convolutions (see packQConv):
	// the input, the output, the residual (read as (byte - resZ)·resS).
	inPacked, outPacked, resPacked bool
	resS, resZ                     float32
}

// outParams is the scale and (uint8) zero point of the op's last
// quantization: what a packed output's bytes mean.
func (o *qconvOp) outParams() (s float32, z int32, ok bool) {
	switch {
	case o.residual && o.outQ2:
		return o.sy2, int32(-o.lo2), true
	case !o.residual && o.outQ:
		return o.sy, int32(-o.lo), true
	}
	return 0, 0, false
}

func (o *qconvOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	w := &pval{shape: o.wShape}
	prm, err := o.conv.geometry(x, w)
	if err != nil {
		return err
	}
	batch, m := x.shape[0], o.wShape[0]
	outShape := []int{batch, m, prm.OutH(), prm.OutW()}
	if len(x.shape) == 3 {
		outShape = []int{batch, m, prm.OutW()}
	}
	if err := n.setShape(pc, 0, outShape); err != nil {
		return err
	}
	if err := pc.reserve(int64(len(o.w))*2, "packing the int8 convolution"); err != nil {
		return err
	}
	q, err := kernels.NewQConv(prm, o.w)
	if err != nil {
		return errShape("%v", err)
	}
	out := &kernels.QOutput{Bias: o.bias, Mult: make([]float32, m), ReLU: o.relu, Quantize: o.outQ, S: o.sy, Lo: o.lo, Hi: o.hi}
	for c := range m {
		out.Mult[c] = o.sx * o.wScale[c]
		if o.outQ {
			out.Mult[c] /= o.sy
		}
	}
	wsBytes := q.WorkspaceBytes(pc.threads)
	if err := pc.reserve(int64(wsBytes), "the int8 convolution's workspace"); err != nil {
		return err
	}
	n.extra = int64(wsBytes)
	xi, yi, sx, zx := x.id, n.out[0].id, o.sx, o.zx
	ri := -1
	var resBC *bcast
	out.PackedIn, out.PackedOut = o.inPacked, o.outPacked
	if o.residual {
		out.Residual = true
		out.PackedRes, out.ResS, out.ResZ = o.resPacked, o.resS, o.resZ
		res := n.in[1]
		ri = res.id
		bs, err := broadcastShapes(outShape, res.shape)
		if err != nil || !slices.Equal(bs, outShape) {
			return errShape("residual shape %v does not broadcast to the convolution's output %v", res.shape, outShape)
		}
		if !slices.Equal(res.shape, outShape) {
			if o.resPacked {
				return errShape("residual shape %v differs from the convolution's output %v", res.shape, outShape)
			}
			resBC = newBcast(outShape, res.shape, outShape)
		}
		out.ReLU2, out.Quantize2, out.S2, out.Lo2, out.Hi2 = o.relu2, o.outQ2, o.sy2, o.lo2, o.hi2
	}
	post := *out // a broadcast residual: added after, as Add, Relu, quantize-dequantize
	if resBC != nil {
		out.Residual = false
	}
	prep, err := q.Prepare(out, zx)
	if err != nil {
		return errShape("%v", err)
	}
	n.kernel = func(rc *runCtx) func() error {
		ws := q.NewWorkspace(pc.threads, zx)
		return func() error {
			y := rc.f32[yi]
			var res []float32
			if ri >= 0 && resBC == nil {
				res = rc.f32[ri]
			}
			q.Forward(rc.pool, batch, rc.f32[xi], sx, zx, prep, res, y, ws)
			if resBC != nil {
				bcastRun(binAdd, resBC, y, rc.f32[ri], y)
				if post.ReLU2 {
					reluSlice(y, y)
				}
				if post.Quantize2 {
					kernels.FakeQuant(y, y, post.S2, post.Lo2, post.Hi2)
				}
			}
			return nil
		}
	}
	return nil
}

// fuseQConv rewrites each convolution of the QDQ form (see qconvOp) into
// a qconvOp, absorbing the output's quantize-dequantize pair; the weight
// and bias DequantizeLinear nodes left unread are dropped. It runs after
// fuse, and only where kernels.QConvSupported.
func fuseQConv(m *model) {
	if !kernels.QConvSupported() {
		return
	}
	uses := make([]int, len(m.values))
	for _, n := range m.nodes {
		for _, id := range n.in {
			if id >= 0 {
				uses[id]++
			}
		}
	}
	consumer := map[int]int{}
	for i, n := range m.nodes {
		for _, id := range n.in {
			if id >= 0 && uses[id] == 1 {
				consumer[id] = i
			}
		}
	}
	producer := func(id int) *node {
		if id < 0 || m.values[id].producer < 0 {
			return nil
		}
		return m.nodes[m.values[id].producer]
	}
	removed := make([]bool, len(m.nodes))
	moveTo := map[int]int{} // fused node → position of the last node it absorbed
	changed := false
	for i, n := range m.nodes {
		co, ok := n.op.(*convOp)
		if !ok || co.residual || len(n.out) != 1 || len(n.in) < 2 {
			continue
		}
		// The input: a per-tensor quantize-dequantize pair.
		fq := producer(n.in[0])
		if fq == nil {
			continue
		}
		sx, zx, okx := fqParams(m, fq)
		if !okx {
			continue
		}
		// The weight: DequantizeLinear of constant int8, zero point 0.
		wdq := producer(n.in[1])
		if wdq == nil {
			continue
		}
		w, ws, okw := dqWeight(m, wdq)
		if !okw || len(w.Shape) != 4 {
			continue
		}
		oc := w.Shape[0]
		cin := w.Shape[1]
		if co.group > 1 && cin%4 != 0 || oc%co.group != 0 {
			continue
		}
		if len(ws) == 1 {
			ws = slices.Repeat(ws[:1], oc)
		}
		if len(ws) != oc {
			continue
		}
		w8 := make([]int8, len(w.Int32))
		for i, v := range w.Int32 {
			w8[i] = int8(v)
		}
		strideH, strideW := int64(1), int64(1)
		if len(co.strides) == 2 {
			strideH, strideW = co.strides[0], co.strides[1]
		}
		op := &qconvOp{kernel: kernels.QConvKernel(kernels.ConvParams{InC: cin * co.group, OutC: oc, Group: co.group, StrideH: int(strideH), StrideW: int(strideW)}), conv: co, wShape: w.Shape, w: w8, wScale: ws, sx: sx, zx: zx, relu: co.relu}
		// The bias: int32 at x_scale·w_scale (exact) or rounded to it.
		var bdq *node
		if len(n.in) > 2 && n.in[2] >= 0 {
			var okb bool
			op.bias, bdq, okb = qBias(m, n.in[2], producer(n.in[2]), sx, ws)
			if !okb {
				continue
			}
		}
		// The output: a quantize-dequantize pair alone reading it.
		if c, ok := consumer[n.out[0]]; ok && !m.values[n.out[0]].output && !removed[c] {
			if on := m.nodes[c]; on != nil {
				if sy, zy, ok := fqParams(m, on); ok {
					fo := on.op.(*fakeQuantOp)
					lo, hi := qRange(fo.q.to)
					if fo.q.to == Int8 {
						lo, hi = lo+128, hi+128 // zy was shifted by fqParams too
					}
					op.outQ, op.sy, op.lo, op.hi = true, sy, float32(lo-zy), float32(hi-zy)
					removed[c] = true
					n.out[0] = on.out[0]
				}
			}
		}
		n.op = op
		n.in = []int{n.in[0]}
		n.opType = "QLinearConv (fused QDQ)"
		// A residual block's Add → [Relu] → quantize-dequantize.
		if op.outQ {
			if at, ok := absorbResidual(m, n, op, consumer, removed); ok {
				moveTo[i] = at
			}
		}
		changed = true
		for _, d := range []*node{wdq, bdq} {
			if d == nil {
				continue
			}
			if id := d.out[0]; uses[id] == 1 && !m.values[id].output {
				for j, nn := range m.nodes {
					if nn == d {
						removed[j] = true
					}
				}
			}
		}
	}
	if !changed {
		return
	}
	reorder(m, removed, moveTo)
	fuseShortcuts(m)
	packQConv(m)
}

// packableOut reports whether the op's output can be packed (and its
// residual read packed): whole groups of four channels per group.
func (o *qconvOp) packableOut() bool {
	return o.conv.group == 1 || (o.wShape[0]/o.conv.group)%4 == 0
}

// packableIn reports whether the op can read a packed input.
func (o *qconvOp) packableIn() bool { return o.packableOut() }

// packQConv keeps the tensors between int8 convolutions as packed uint8
// (a quarter of the float traffic, and no quantization pass): a fused
// convolution's output whose every reader is a fused convolution, reading
// it as its input with the same scale and zero point, or as its residual.
func packQConv(m *model) {
	readers := map[int][]*node{}
	for _, n := range m.nodes {
		for _, id := range n.in {
			if id >= 0 {
				readers[id] = append(readers[id], n)
			}
		}
	}
	for _, n := range m.nodes {
		var s float32
		var z int32
		switch p := n.op.(type) {
		case *qconvOp:
			var ok bool
			if s, z, ok = p.outParams(); !ok || !p.packableOut() {
				continue
			}
		case *qshortcutOp:
			s, z = p.sr, p.zr
		default:
			continue
		}
		v := n.out[0]
		if m.values[v].output || len(readers[v]) == 0 {
			continue
		}
		ok := true
		for _, c := range readers[v] {
			if _, isShort := c.op.(*qshortcutOp); isShort && c.in[0] == v {
				continue // its table was built for v's scale (fuseShortcuts)
			}
			cq, isQ := c.op.(*qconvOp)
			if !isQ || !cq.packableIn() {
				ok = false
				break
			}
			for j, id := range c.in {
				if id == v && (j == 0 && (cq.sx != s || cq.zx != z) || j > 1 || j == 1 && !cq.residual) {
					ok = false
				}
			}
		}
		if !ok {
			continue
		}
		switch p := n.op.(type) {
		case *qconvOp:
			p.outPacked = true
		case *qshortcutOp:
			p.outPacked = true
		}
		for _, c := range readers[v] {
			if sc, isShort := c.op.(*qshortcutOp); isShort {
				sc.inPacked = true
				continue
			}
			cq := c.op.(*qconvOp)
			if c.in[0] == v {
				cq.inPacked = true
			}
			if len(c.in) > 1 && c.in[1] == v {
				cq.resPacked, cq.resS, cq.resZ = true, s, float32(z)
			}
		}
	}
}

// absorbResidual makes the fused convolution n also do the Add that
// alone reads its output, a Relu that alone reads the sum, and the
// per-tensor quantize-dequantize pair that alone reads that.
func absorbResidual(m *model, n *node, op *qconvOp, consumer map[int]int, removed []bool) (at int, ok bool) {
	ai, ok := consumer[n.out[0]]
	if !ok || removed[ai] || m.values[n.out[0]].output {
		return 0, false
	}
	add := m.nodes[ai]
	if add.opType != "Add" || len(add.in) != 2 || len(add.out) != 1 {
		return 0, false
	}
	other := add.in[0]
	if other == n.out[0] {
		other = add.in[1]
	}
	if other == n.out[0] || other < 0 || m.values[other].dtype != Float32 {
		return 0, false
	}
	last, chain := add.out[0], []int{ai}
	relu := false
	if ri, ok := consumer[last]; ok && !removed[ri] && !m.values[last].output && m.nodes[ri].opType == "Relu" {
		relu, last = true, m.nodes[ri].out[0]
		chain = append(chain, ri)
	}
	qi, ok := consumer[last]
	if !ok || removed[qi] || m.values[last].output {
		return 0, false
	}
	sy, zy, ok := fqParams(m, m.nodes[qi])
	if !ok {
		return 0, false
	}
	lo, hi := qRange(m.nodes[qi].op.(*fakeQuantOp).q.to)
	if m.nodes[qi].op.(*fakeQuantOp).q.to == Int8 {
		lo, hi = lo+128, hi+128 // zy was shifted by fqParams too
	}
	chain = append(chain, qi)
	// The residual must be computed before n runs: n moves to the
	// position of the last node absorbed (every operand is ready there).
	op.residual, op.relu2, op.outQ2, op.sy2, op.lo2, op.hi2 = true, relu, true, sy, float32(lo-zy), float32(hi-zy)
	n.in = append(n.in, other)
	n.out[0] = m.nodes[qi].out[0]
	for _, c := range chain {
		removed[c] = true
	}
	return qi, true
}

// fqParams returns the scale and zero point (as uint8: int8 ones shifted
// by 128) of a fakeQuantOp node with constant per-tensor parameters.
func fqParams(m *model, n *node) (float32, int32, bool) {
	fo, ok := n.op.(*fakeQuantOp)
	if !ok || len(n.in) < 2 {
		return 0, 0, false
	}
	s := constant(m, n.in[1])
	if s == nil || s.Type() != Float32 || len(s.Float32) != 1 || !(s.Float32[0] > 0) || math.IsInf(float64(s.Float32[0]), 0) {
		return 0, 0, false
	}
	var z int32
	if len(n.in) > 2 && n.in[2] >= 0 {
		// Narrow constants are held as int32 (their declared type is the
		// value's dtype).
		zt := constant(m, n.in[2])
		if zt == nil || zt.Type() != Int32 || len(zt.Int32) != 1 {
			return 0, 0, false
		}
		z = zt.Int32[0]
	}
	if fo.q.to == Int8 {
		z += 128
	}
	return s.Float32[0], z, true
}

// dqWeight returns the int8 tensor and per-channel (axis 0) or
// per-tensor scales of a DequantizeLinear node of constants with zero
// points 0.
func dqWeight(m *model, n *node) (*Tensor, []float32, bool) {
	do, ok := n.op.(*dequantizeOp)
	if !ok || len(n.in) < 2 {
		return nil, nil, false
	}
	w, s := constant(m, n.in[0]), constant(m, n.in[1])
	if w == nil || s == nil || m.values[n.in[0]].dtype != Int8 || w.Type() != Int32 || s.Type() != Float32 {
		return nil, nil, false
	}
	if len(s.Float32) > 1 && (do.axis != 0 && do.axis != -len(w.Shape) || len(s.Shape) != 1) {
		return nil, nil, false
	}
	if scaleMsg("w", s.Float32) != "" {
		return nil, nil, false
	}
	if len(n.in) > 2 && n.in[2] >= 0 {
		z := constant(m, n.in[2])
		if z == nil || z.Type() != Int32 {
			return nil, nil, false
		}
		for _, v := range z.Int32 {
			if v != 0 {
				return nil, nil, false
			}
		}
	}
	return w, s.Float32, true
}

// qBias returns a convolution's bias in units of sx·ws[m]: the int32
// values of a DequantizeLinear whose scales are exactly those (as
// quantizers write it), else the float values rounded to them; ok is
// false when a value does not fit in int32.
func qBias(m *model, id int, p *node, sx float32, ws []float32) (bias []int32, dq *node, ok bool) {
	oc := len(ws)
	var f []float64
	if p != nil {
		if do, isDQ := p.op.(*dequantizeOp); isDQ && len(p.in) >= 2 {
			b, s := constant(m, p.in[0]), constant(m, p.in[1])
			if b == nil || s == nil || m.values[p.in[0]].dtype != Int32 || b.Type() != Int32 || s.Type() != Float32 || len(b.Int32) != oc || (len(s.Float32) != oc && len(s.Float32) != 1) {
				return nil, nil, false
			}
			if len(s.Float32) > 1 && do.axis != 0 && do.axis != -1 {
				return nil, nil, false
			}
			if len(p.in) > 2 && p.in[2] >= 0 {
				z := constant(m, p.in[2])
				if z == nil || z.Type() != Int32 {
					return nil, nil, false
				}
				for _, v := range z.Int32 {
					if v != 0 {
						return nil, nil, false
					}
				}
			}
			exact := true
			f = make([]float64, oc)
			for c := range oc {
				sc := s.Float32[min(c, len(s.Float32)-1)]
				if sc != sx*ws[c] {
					exact = false
				}
				f[c] = float64(b.Int32[c]) * float64(sc)
			}
			if exact {
				return b.Int32, p, true
			}
			dq = p
		} else {
			return nil, nil, false
		}
	} else {
		b := constant(m, id)
		if b == nil || b.Type() != Float32 || len(b.Float32) != oc {
			return nil, nil, false
		}
		f = make([]float64, oc)
		for c, v := range b.Float32 {
			f[c] = float64(v)
		}
	}
	bias = make([]int32, oc)
	for c, v := range f {
		r := math.RoundToEven(v / (float64(sx) * float64(ws[c])))
		if math.IsNaN(r) || math.Abs(r) > math.MaxInt32/2 {
			return nil, nil, false
		}
		bias[c] = int32(r)
	}
	return bias, dq, true
}
