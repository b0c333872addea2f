package infer

import (
	"fmt"
	"slices"

	"github.com/resnetctl/resnetctl/internal/checked"
	"github.com/resnetctl/resnetctl/internal/kernels"
)

// convOp is a 1-D or 2-D convolution. fuse may give it an epilogue: a
// residual (input 3) added to the result, then a ReLU.
type convOp struct {
	autoPad   string
	kernel    []int64
	strides   []int64
	dilations []int64
	pads      []int64
	group     int

	residual bool // input 3 is added (fused Add)
	relu     bool // fused Relu
}

// newConv implements Conv, versions 1 and 11, for 1-D and 2-D inputs:
// https://onnx.ai/onnx/operators/onnx__Conv.html
func newConv(b *nodeBuilder) op {
	b.arity(2, 3, 1, 1)
	b.want(0, "X", Float32)
	b.want(1, "W", Float32)
	b.want(2, "B", Float32)
	b.out(0, Float32)
	return convAttrs(b, 1)
}

// convAttrs reads and checks the attributes Conv, ConvInteger and
// QLinearConv share; input wi is the weight.
func convAttrs(b *nodeBuilder, wi int) *convOp {
	o := &convOp{group: int(b.int("group", 1))}
	if o.group < 1 {
		b.invalid("group %d < 1", o.group)
	}
	o.autoPad = readAutoPad(b)
	o.kernel, _ = b.ints("kernel_shape")
	o.strides, _ = b.ints("strides")
	o.dilations, _ = b.ints("dilations")
	o.pads, _ = b.ints("pads")
	spatial, kernel := len(o.kernel), o.kernel
	if w := b.constIn(wi); w != nil && spatial == 0 {
		spatial = len(w.Shape) - 2
		if spatial > 0 {
			kernel = int64s(w.Shape[2:])
		}
	}
	if spatial > 2 {
		b.fail("%d-D convolution (this runtime runs 1-D and 2-D)", spatial)
	}
	checkWindowAttrs(b, o.autoPad, spatial, kernel, o.strides, o.dilations, o.pads)
	return o
}

// readAutoPad reads and checks the auto_pad attribute.
func readAutoPad(b *nodeBuilder) string {
	p := b.str("auto_pad", "NOTSET")
	switch p {
	case "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID":
	default:
		b.invalid("auto_pad %q is not NOTSET, SAME_UPPER, SAME_LOWER or VALID", p)
	}
	return p
}

// checkWindowAttrs checks the lengths and values of strides, dilations
// and pads against the number of spatial dimensions (when known), and
// that the dilated window (k-1)*dilation+1 fits in an int when the kernel
// is known (planning checks it again with the input's size).
func checkWindowAttrs(b *nodeBuilder, autoPad string, spatial int, kernel, strides, dilations, pads []int64) {
	for _, a := range []struct {
		name string
		v    []int64
		n    int
		min  int64
	}{{"strides", strides, spatial, 1}, {"dilations", dilations, spatial, 1}, {"pads", pads, 2 * spatial, 0}} {
		if a.v == nil {
			continue
		}
		if spatial > 0 && len(a.v) != a.n {
			b.invalid("%s has %d values, want %d", a.name, len(a.v), a.n)
		}
		for _, x := range a.v {
			if x < a.min {
				b.invalid("%s %v: values must be at least %d", a.name, a.v, a.min)
				break
			}
		}
	}
	if pads != nil && autoPad != "NOTSET" {
		b.invalid("pads and auto_pad %s are both set", autoPad)
	}
	if len(kernel) == len(dilations) {
		for i, k := range kernel {
			if d := dilations[i]; k >= 1 && d >= 1 {
				if _, ok := checked.MulAdd(int(k-1), int(d), 1); !ok {
					b.invalid("kernel_shape %v with dilations %v: the dilated window overflows", kernel, dilations)
					break
				}
			}
		}
	}
}

// window is one spatial dimension of a convolution or pooling window.
type window struct {
	in, k, stride, dil, padBegin, padEnd, out int
}

// windows computes the output geometry of each spatial dimension from the
// input size, kernel and attributes, following ONNX's auto_pad rules; with
// ceil, the output rounds up but a window may not start in the end padding.
func windows(in, kernel []int, strides, dilations, pads []int64, autoPad string, ceil bool) ([]window, error) {
	n := len(in)
	ws := make([]window, n)
	for i := range n {
		w := window{in: in[i], k: kernel[i], stride: 1, dil: 1}
		if strides != nil {
			w.stride = int(strides[i])
		}
		if dilations != nil {
			w.dil = int(dilations[i])
		}
		if pads != nil {
			w.padBegin, w.padEnd = int(pads[i]), int(pads[i+n])
		}
		// All of it checked: the values come from the file, and a wrapped
		// product gives a plausible but wrong geometry.
		ek, ok := checked.MulAdd(w.k-1, w.dil, 1)
		if !ok {
			return nil, errShape("kernel %d with dilation %d: the dilated window overflows", w.k, w.dil)
		}
		switch autoPad {
		case "SAME_UPPER", "SAME_LOWER":
			w.out = ceilDiv(w.in, w.stride)
			total, ok := checked.MulAdd(w.out-1, w.stride, ek-w.in) // ek-w.in cannot overflow: both positive
			if !ok {
				return nil, errShape("input %d, stride %d, window %d: the padding overflows", w.in, w.stride, ek)
			}
			total = max(total, 0)
			if autoPad == "SAME_UPPER" {
				w.padBegin = total / 2
			} else {
				w.padBegin = (total + 1) / 2
			}
			w.padEnd = total - w.padBegin
		case "VALID":
			w.padBegin, w.padEnd = 0, 0
			fallthrough
		default:
			span, ok := checked.Sum(w.in, w.padBegin, w.padEnd, -ek)
			if !ok {
				return nil, errShape("input %d, pads %d+%d, window %d: the padded size overflows", w.in, w.padBegin, w.padEnd, ek)
			}
			if span < 0 {
				return nil, errShape("input size %d (with pads %d+%d) is smaller than the window %d", w.in, w.padBegin, w.padEnd, ek)
			}
			if ceil {
				w.out = ceilDiv(span, w.stride) + 1
				// A last window may not start in the end padding (an
				// overflowing start is beyond in+padBegin, which fits).
				if st, ok := checked.Mul(w.out-1, w.stride); !ok || st >= w.in+w.padBegin {
					w.out--
				}
			} else {
				w.out = span/w.stride + 1
			}
		}
		if w.out < 1 {
			return nil, errShape("empty output (input %d, window %d, stride %d)", w.in, ek, w.stride)
		}
		ws[i] = w
	}
	return ws, nil
}

// convKey identifies a packed convolution: the node, its geometry and
// algorithm.
type convKey struct {
	n    *node
	prm  kernels.ConvParams
	algo kernels.ConvAlgo
}

// packedConv returns the node's convolution for prm and algo, packing the
// weights w once per geometry and algorithm and sharing it between plans.
// Each call takes a reference for the plan being built (pc.convs), which
// releaseConvs drops when the plan is, so that packed convolutions do not
// outlive every plan using them. The unpacked copy of a weight only this
// convolution reads is dropped once packed (see native.keepPacked).
func (e *native) packedConv(pc *planCtx, n *node, prm kernels.ConvParams, algo kernels.ConvAlgo, w *pval, b []float32) (*kernels.Conv, error) {
	e.convMu.Lock()
	defer e.convMu.Unlock()
	k := convKey{n, prm, algo}
	c := e.convs[k]
	if c == nil {
		var err error
		if c, err = e.packWeights(k, w, b); err != nil {
			return nil, err
		}
		if e.convs == nil {
			e.convs, e.convRefs = map[convKey]*kernels.Conv{}, map[convKey]int{}
		}
		e.convs[k] = c
		e.keepPacked(k, c, w)
	}
	e.convRefs[k]++
	pc.convs = append(pc.convs, k)
	return c, nil
}

// releaseConvs drops a plan's references to packed convolutions, and the
// convolutions no plan uses any more.
func (e *native) releaseConvs(keys []convKey) {
	e.convMu.Lock()
	defer e.convMu.Unlock()
	for _, k := range keys {
		if e.convRefs[k]--; e.convRefs[k] <= 0 {
			delete(e.convRefs, k)
			delete(e.convs, k)
		}
	}
}

func (o *convOp) plan(pc *planCtx, n *pnode) error {
	x, w := n.in[0], n.in[1]
	var bias, res *pval
	if len(n.in) > 2 {
		bias = n.in[2]
	}
	if o.residual {
		res = n.in[3]
	}
	prm, err := o.geometry(x, w)
	if err != nil {
		return err
	}
	batch, m := x.shape[0], w.shape[0]
	if bias != nil && (len(bias.shape) != 1 || bias.shape[0] != m) {
		return errShape("bias shape %v, want [%d]", bias.shape, m)
	}
	rank := len(x.shape)
	outShape := []int{batch, m, prm.OutH(), prm.OutW()}
	if rank == 3 {
		outShape = []int{batch, m, prm.OutW()}
	}
	if err := n.setShape(pc, 0, outShape); err != nil {
		return err
	}
	y := n.out[0]
	direct := false // residual passed to the kernel's epilogue
	var resBC *bcast
	if res != nil {
		bs, err := broadcastShapes(outShape, res.shape)
		if err != nil || !slices.Equal(bs, outShape) {
			return errShape("residual shape %v does not broadcast to the convolution's output %v", res.shape, outShape)
		}
		if slices.Equal(res.shape, outShape) {
			direct = true
			// The kernel may accumulate onto the residual in place (unless
			// the residual is the convolution's own input).
			n.inplace, n.inplaceAlone = 3, true
		} else {
			resBC = newBcast(outShape, res.shape, outShape)
		}
	}

	xi, wi, yi := x.id, w.id, y.id
	bi, ri := -1, -1
	if bias != nil {
		bi = bias.id
	}
	if res != nil {
		ri = res.id
	}
	relu := o.relu
	epilogueRelu := relu && resBC == nil
	var packed *kernels.Conv
	// Packing allocates in proportion to the weights and to the output
	// (the im2col index): reserved against the memory budget first.
	packBytes := int64(prm.NewConvBytes())
	if w.data != nil && (bias == nil || bias.data != nil) {
		// The plan's batch is fixed: packed for the one algorithm the
		// automatic choice takes at that batch (Winograd where it pays
		// off, see kernels.winoMinTiles), not both, the same results
		// with a quarter of the memory where Winograd does not pay off
		// (3x3 layers of 7x7 outputs at batch 1).
		algo := prm.AutoAlgo(batch)
		packBytes = int64(prm.NewConvAlgoBytes(algo))
		var bd []float32
		if bias != nil {
			bd = bias.data.Float32
		}
		if err := pc.reserve(packBytes, "packing the convolution"); err != nil {
			return err
		}
		packed, err = pc.e.packedConv(pc, n.n, prm, algo, w, bd)
		if err != nil {
			return errShape("%v", err)
		}
		n.ws = packed.WorkspaceSize(batch, pc.threads)
	} else {
		// Weights computed at run time (rare): packed on every run.
		if err := pc.reserve(addBytes(packBytes, tensorBytes(Float32, w.size)), "packing the convolution"); err != nil {
			return err
		}
		n.extra = packBytes
		tmp, err := kernels.NewConv(prm, make([]float32, w.size), nil)
		if err != nil {
			return errShape("%v", err)
		}
		n.ws = tmp.WorkspaceSize(batch, pc.threads)
	}
	wsSize := n.ws
	n.kernel = func(rc *runCtx) func() error {
		v := rc.f32
		return func() error {
			k := packed
			if k == nil {
				var bd []float32
				if bi >= 0 {
					bd = v[bi]
				}
				var err error
				if k, err = kernels.NewConv(prm, v[wi], bd); err != nil {
					return err
				}
			}
			var r []float32
			if direct {
				r = v[ri]
			}
			out := v[yi]
			k.Forward(rc.pool, batch, v[xi], r, epilogueRelu, out, rc.ws[:wsSize])
			if resBC != nil {
				bcastRun(binAdd, resBC, out, v[ri], out)
				if relu {
					reluSlice(out, out)
				}
			}
			return nil
		}
	}
	return nil
}

// geometry checks the shapes of input x and weight w against the node's
// attributes and returns the convolution's parameters (1-D as 2-D with
// height 1); Conv, ConvInteger and QLinearConv share it.
func (o *convOp) geometry(x, w *pval) (kernels.ConvParams, error) {
	rank := len(x.shape)
	if rank != 3 && rank != 4 {
		return kernels.ConvParams{}, fmt.Errorf("%w: input of rank %d (this runtime convolves 1-D and 2-D inputs)", ErrUnsupported, rank)
	}
	if len(w.shape) != rank {
		return kernels.ConvParams{}, errShape("weight shape %v does not match input shape %v", w.shape, x.shape)
	}
	c, m := x.shape[1], w.shape[0]
	if w.shape[1]*o.group != c || m%o.group != 0 {
		return kernels.ConvParams{}, errShape("input has %d channels, weight %v with group %d wants %d", c, w.shape, o.group, w.shape[1]*o.group)
	}
	kernel := w.shape[2:]
	if o.kernel != nil && !slices.Equal(int64s(kernel), o.kernel) {
		return kernels.ConvParams{}, errShape("kernel_shape %v does not match weight shape %v", o.kernel, w.shape)
	}
	ws, err := windows(x.shape[2:], kernel, o.strides, o.dilations, o.pads, o.autoPad, false)
	if err != nil {
		return kernels.ConvParams{}, err
	}
	if len(ws) == 1 { // 1-D as 2-D with height 1
		ws = []window{{in: 1, k: 1, stride: 1, dil: 1, out: 1}, ws[0]}
	}
	prm := kernels.ConvParams{
		InC: c, InH: ws[0].in, InW: ws[1].in, OutC: m,
		KH: ws[0].k, KW: ws[1].k, StrideH: ws[0].stride, StrideW: ws[1].stride,
		DilationH: ws[0].dil, DilationW: ws[1].dil,
		PadTop: ws[0].padBegin, PadLeft: ws[1].padBegin, PadBottom: ws[0].padEnd, PadRight: ws[1].padEnd,
		Group: o.group,
	}
	if err := prm.Validate(); err != nil {
		return kernels.ConvParams{}, errShape("%v", err)
	}
	return prm, nil
}

func int64s(s []int) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(v)
	}
	return out
}
