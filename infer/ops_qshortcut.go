package infer

import (
	"fmt"
	"math"
	"unsafe"
)

// qshortcutOp is a CIFAR ResNet's option-A shortcut in a quantized graph,
// Slice (every stepH-th row, stepW-th column) → Pad (zero channels before
// and after) → quantize-dequantize, run on packed uint8 tensors (see
// packQConv): each output byte is a table lookup of the input byte it
// samples (the requantization from the input's scale to the output's,
// exact as the float ops compute it), or the output's zero point in the
// padded channels. Fused at load by fuseShortcuts; its input comes from an
// int8 convolution and its output goes to int8 convolutions only.
type qshortcutOp struct {
	// inPacked, outPacked: set by packQConv; plan refuses to run without
	// them (fuseShortcuts makes sure both ends can be packed).
	inPacked, outPacked bool
	stepH, stepW        int
	before, after       int
	sr                  float32 // the output's scale and (uint8) zero point
	zr                  int32
	lo, hi              int32 // the output type's range, shifted as zr is
	lut                 [256]byte
}

// setInput builds the lookup table for an input of scale sv and zero
// point zv: byte b is the value (b - zv)·sv, quantized to sr, zr as
// kernels.FakeQuant does (division, rounding half to even).
func (o *qshortcutOp) setInput(sv float32, zv int32) {
	for b := range 256 {
		v := float32(int32(b)-zv) * sv
		q := math.RoundToEven(float64(v/o.sr)) + float64(o.zr)
		o.lut[b] = byte(min(max(q, float64(o.lo)), float64(o.hi)))
	}
}

func (o *qshortcutOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	if !o.inPacked || !o.outPacked {
		return fmt.Errorf("%w: the fused option-A shortcut's tensors are not packed", ErrInternal)
	}
	if len(x.shape) != 4 {
		return errShape("option-A shortcut of a rank-%d input", len(x.shape))
	}
	batch, cin, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	oh, ow := (h+o.stepH-1)/o.stepH, (w+o.stepW-1)/o.stepW
	cout := cin + o.before + o.after
	if cin%4 != 0 || o.before%4 != 0 || cout%4 != 0 {
		return errShape("option-A shortcut of %d channels padded by %d and %d (packed tensors take whole groups of 4)", cin, o.before, o.after)
	}
	if err := n.setShape(pc, 0, []int{batch, cout, oh, ow}); err != nil {
		return err
	}
	xi, yi := x.id, n.out[0].id
	zero := uint32(byte(o.zr)) * 0x01010101
	n.kernel = func(rc *runCtx) func() error {
		return func() error {
			xf, yf := rc.f32[xi], rc.f32[yi]
			src := unsafe.Slice((*uint32)(unsafe.Pointer(&xf[0])), batch*cin/4*h*w)
			dst := unsafe.Slice((*uint32)(unsafe.Pointer(&yf[0])), batch*cout/4*oh*ow)
			lut := &o.lut
			rc.parallel(batch, cout*oh*ow, func(i0, i1 int) {
				for img := i0; img < i1; img++ {
					for g := range cout / 4 {
						d := dst[(img*cout/4+g)*oh*ow:][:oh*ow]
						gi := g - o.before/4
						if gi < 0 || gi >= cin/4 {
							for i := range d {
								d[i] = zero
							}
							continue
						}
						s := src[(img*cin/4+gi)*h*w:][:h*w]
						for y := range oh {
							row := s[y*o.stepH*w:]
							for xx := range ow {
								v := row[xx*o.stepW]
								d[y*ow+xx] = uint32(lut[byte(v)]) | uint32(lut[byte(v>>8)])<<8 | uint32(lut[byte(v>>16)])<<16 | uint32(lut[byte(v>>24)])<<24
							}
						}
					}
				}
			})
			return nil
		}
	}
	return nil
}

// fuseShortcuts replaces Slice → Pad → quantize-dequantize chains of the
// option-A form (sampling the last two axes from 0 with steps, padding
// only channels with zeros) whose input is an int8 convolution's output
// read otherwise only by int8 convolutions, and whose output only int8
// convolutions read as their residual, by a qshortcutOp on packed
// tensors. packQConv then packs both ends.
func fuseShortcuts(m *model) {
	readers := map[int][]*node{}
	for _, n := range m.nodes {
		for _, id := range n.in {
			if id >= 0 {
				readers[id] = append(readers[id], n)
			}
		}
	}
	removed := map[*node]bool{}
	for _, sl := range m.nodes {
		if sl.opType != "Slice" || len(sl.in) < 5 || len(sl.out) != 1 {
			continue
		}
		v := sl.in[0]
		prod := m.values[v].producer
		if v < 0 || prod < 0 || m.values[v].output {
			continue
		}
		pq, ok := m.nodes[prod].op.(*qconvOp)
		if !ok || !pq.packableOut() {
			continue
		}
		sv, zv, ok := pq.outParams()
		if !ok {
			continue
		}
		stepH, stepW, ok := sampleSteps(m, sl)
		if !ok || len(readers[sl.out[0]]) != 1 {
			continue
		}
		pad := readers[sl.out[0]][0]
		before, after, ok := channelPads(m, pad)
		if !ok || len(pad.out) != 1 || m.values[pad.out[0]].output || len(readers[pad.out[0]]) != 1 {
			continue
		}
		fq := readers[pad.out[0]][0]
		sr, zr, ok := fqParams(m, fq)
		if !ok || m.values[fq.out[0]].output {
			continue
		}
		// Every other reader of v an int8 convolution taking it as input
		// with v's parameters; every reader of the result one taking it
		// as its residual.
		good := true
		for _, r := range readers[v] {
			if r == sl {
				continue
			}
			rq, isQ := r.op.(*qconvOp)
			if !isQ || r.in[0] != v || len(r.in) > 1 && r.in[1] == v || rq.sx != sv || rq.zx != zv || !rq.packableIn() {
				good = false
			}
		}
		for _, r := range readers[fq.out[0]] {
			rq, isQ := r.op.(*qconvOp)
			if !isQ || !rq.residual || len(r.in) < 2 || r.in[1] != fq.out[0] || r.in[0] == fq.out[0] || !rq.packableOut() {
				good = false
			}
		}
		if !good || len(readers[fq.out[0]]) == 0 {
			continue
		}
		lo, hi := qRange(fq.op.(*fakeQuantOp).q.to)
		if fq.op.(*fakeQuantOp).q.to == Int8 {
			lo, hi = lo+128, hi+128
		}
		op := &qshortcutOp{stepH: stepH, stepW: stepW, before: before, after: after, sr: sr, zr: zr, lo: lo, hi: hi}
		op.setInput(sv, zv)
		sl.op, sl.opType = op, "option-A shortcut (fused QDQ)"
		sl.in, sl.out = []int{v}, []int{fq.out[0]}
		removed[pad], removed[fq] = true, true
	}
	if len(removed) == 0 {
		return
	}
	var nodes []*node
	for _, n := range m.nodes {
		if !removed[n] {
			nodes = append(nodes, n)
		}
	}
	m.nodes = nodes
	m.setProducers()
}

// sampleSteps reads a Slice of constant starts 0, ends past the end, axes
// the last two of a 4-D input, and returns its steps.
func sampleSteps(m *model, sl *node) (stepH, stepW int, ok bool) {
	var c [4][]int64
	for i := range 4 {
		t := constant(m, sl.in[i+1])
		if t == nil {
			return 0, 0, false
		}
		v, ok := t.ints()
		if !ok || len(v) != 2 {
			return 0, 0, false
		}
		c[i] = v
	}
	starts, ends, axes, steps := c[0], c[1], c[2], c[3]
	if !(axes[0] == 2 && axes[1] == 3 || axes[0] == -2 && axes[1] == -1) {
		return 0, 0, false
	}
	for i := range 2 {
		if starts[i] != 0 || ends[i] < math.MaxInt32 || steps[i] < 1 || steps[i] > 64 {
			return 0, 0, false
		}
	}
	return int(steps[0]), int(steps[1]), true
}

// channelPads reads a constant-mode Pad of a 4-D tensor with zero value
// padding only axis 1, and returns its padding before and after.
func channelPads(m *model, pad *node) (before, after int, ok bool) {
	po, isPad := pad.op.(*padOp)
	if !isPad || po.mode != "constant" || !po.inputs || len(pad.in) < 2 || len(pad.in) > 3 {
		return 0, 0, false
	}
	if len(pad.in) == 3 && pad.in[2] >= 0 {
		v := constant(m, pad.in[2])
		if v == nil || v.Type() != Float32 || len(v.Float32) != 1 || v.Float32[0] != 0 {
			return 0, 0, false
		}
	}
	t := constant(m, pad.in[1])
	if t == nil {
		return 0, 0, false
	}
	p, okInts := t.ints()
	if !okInts || len(p) != 8 {
		return 0, 0, false
	}
	for i, v := range p {
		if v < 0 || v != 0 && i != 1 && i != 5 {
			return 0, 0, false
		}
	}
	return int(p[1]), int(p[5]), true
}
