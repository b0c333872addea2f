package kernels

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/resnetctl/resnetctl/internal/checked"
)

// ConvParams describes a 2-D convolution over NCHW tensors. Zero values of
// StrideH, StrideW, DilationH, DilationW and Group mean 1 (the ONNX
// defaults); every other field must be set.
type ConvParams struct {
	InC, InH, InW, OutC                            int
	KH, KW, StrideH, StrideW, DilationH, DilationW int
	PadTop, PadLeft, PadBottom, PadRight           int
	Group                                          int
}

// normalized returns c with the zero-means-one fields set to 1.
func (c ConvParams) normalized() ConvParams {
	one := func(v *int) {
		if *v == 0 {
			*v = 1
		}
	}
	one(&c.StrideH)
	one(&c.StrideW)
	one(&c.DilationH)
	one(&c.DilationW)
	one(&c.Group)
	return c
}

// outSize is the output length of one spatial axis (0 if the dilated
// kernel does not fit into the padded input, or its size overflows).
func outSize(in, padA, padB, k, stride, dil int) int {
	ek, ok1 := checked.MulAdd(dil, k-1, 1) // the dilated kernel
	span, ok2 := checked.Sum(in, padA, padB, -ek)
	if !ok1 || !ok2 || span < 0 || stride <= 0 {
		return 0
	}
	return span/stride + 1
}

// extent renders the dilated kernel dil*(k-1)+1 for messages ("overflow"
// if it does not fit in an int).
func extent(k, dil int) string {
	if e, ok := checked.MulAdd(dil, k-1, 1); ok {
		return fmt.Sprint(e)
	}
	return "(overflow)"
}

// OutH returns the output height, floor((InH+PadTop+PadBottom-DilationH*(KH-1)-1)/StrideH)+1,
// or 0 if the kernel does not fit.
func (c ConvParams) OutH() int {
	c = c.normalized()
	return outSize(c.InH, c.PadTop, c.PadBottom, c.KH, c.StrideH, c.DilationH)
}

// OutW returns the output width (see OutH).
func (c ConvParams) OutW() int {
	c = c.normalized()
	return outSize(c.InW, c.PadLeft, c.PadRight, c.KW, c.StrideW, c.DilationW)
}

// Validate reports impossible or unsupported parameters: non-positive sizes,
// negative strides, dilations, pads or groups, channel counts not divisible
// by Group, a kernel larger than the padded input, or tensors too large to
// index with 32-bit offsets.
func (c ConvParams) Validate() error {
	c = c.normalized()
	var errs []error
	pos := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s = %d, want > 0", name, v))
		}
	}
	pos("InC", c.InC)
	pos("InH", c.InH)
	pos("InW", c.InW)
	pos("OutC", c.OutC)
	pos("KH", c.KH)
	pos("KW", c.KW)
	pos("StrideH", c.StrideH)
	pos("StrideW", c.StrideW)
	pos("DilationH", c.DilationH)
	pos("DilationW", c.DilationW)
	pos("Group", c.Group)
	for _, p := range []struct {
		name string
		v    int
	}{{"PadTop", c.PadTop}, {"PadLeft", c.PadLeft}, {"PadBottom", c.PadBottom}, {"PadRight", c.PadRight}} {
		if p.v < 0 {
			errs = append(errs, fmt.Errorf("%s = %d, want >= 0", p.name, p.v))
		}
	}
	if len(errs) == 0 {
		if c.InC%c.Group != 0 || c.OutC%c.Group != 0 {
			errs = append(errs, fmt.Errorf("InC %d and OutC %d must be divisible by Group %d", c.InC, c.OutC, c.Group))
		}
		if c.OutH() <= 0 || c.OutW() <= 0 {
			errs = append(errs, fmt.Errorf("dilated kernel %sx%s does not fit the padded input %d+%d+%dx%d+%d+%d",
				extent(c.KH, c.DilationH), extent(c.KW, c.DilationW), c.PadTop, c.InH, c.PadBottom, c.PadLeft, c.InW, c.PadRight))
		}
		// Products checked: a wrapped one would pass the test below.
		small := func(vs ...int) bool {
			p, ok := checked.Product(vs...)
			return ok && p < math.MaxInt32
		}
		if !small(c.InH, c.InW) || !small(c.OutH(), c.OutW()) || !small(c.KH, c.KW) ||
			!small(c.InC, c.InH, c.InW) || !small(c.OutC, c.OutH(), c.OutW()) ||
			!small(c.OutC, c.InC/max(c.Group, 1), c.KH, c.KW) || !small(c.KH, c.KW, c.OutH(), c.OutW()) {
			errs = append(errs, errors.New("tensor too large for 32-bit offsets"))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("kernels: invalid conv params %+v: %w", c, errors.Join(errs...))
	}
	return nil
}

// NewConvBytes is an upper bound on the bytes NewConv allocates for c
// (the packed weights, the Winograd transforms, the im2col index table),
// computed without allocating anything, so that a caller can check it
// against a memory budget first. It is math.MaxInt when that overflows;
// c should be valid (Validate).
func (c ConvParams) NewConvBytes() int {
	return c.NewConvAlgoBytes(AlgoAuto)
}

// NewConvAlgoBytes is NewConvBytes for NewConvAlgo with algo.
func (c ConvParams) NewConvAlgoBytes(algo ConvAlgo) int {
	c = c.normalized()
	mr := activeKernel.Load().mr
	g := max(c.Group, 1)
	mg, kg := c.OutC/g, c.InC/g*c.KH*c.KW
	var sum int
	ok := true
	add := func(vs ...int) { // sum += the product of vs
		p, ok1 := checked.Product(vs...)
		s, ok2 := checked.Add(sum, p)
		sum, ok = s, ok && ok1 && ok2
	}
	wino := algo == AlgoWinograd || (algo == AlgoAuto && winoUsable(c))
	if !(algo == AlgoWinograd && winoUsable(c)) {
		add(4, g, roundUp(mg, mr), kg) // GEMM-packed weights
	}
	add(4, c.OutC) // bias
	add(64 << 10)  // the Conv, its job list, rounding
	if wino {      // packed U, and the transforms' scratch (pooled, see winoPackWeights)
		add(4, 36, roundUp(c.OutC, mr), c.InC)
		add(4, 63, winoPackRows(c, mr), c.InC)
	}
	if algo == AlgoWinograd && winoUsable(c) {
		return checkedSum(sum, ok)
	}
	if !(c.KH == 1 && c.KW == 1 && c.StrideH == 1 && c.StrideW == 1 && c.PadTop == 0 && c.PadLeft == 0 && c.PadBottom == 0 && c.PadRight == 0) {
		add(4+1, c.KH, c.KW, roundUp(c.OutH()*c.OutW(), 32)) // idx (int32) and desc (a uint64 per 8)
	}
	return checkedSum(sum, ok)
}

// checkedSum is sum, or math.MaxInt when it overflowed (!ok).
func checkedSum(sum int, ok bool) int {
	if !ok {
		return math.MaxInt
	}
	return sum
}

// Conv is a convolution with its weights packed once for the micro-kernel
// path selected at NewConv time. A Conv is immutable after NewConv and safe
// for concurrent Forward calls (each with its own workspace).
type Conv struct {
	prm       ConvParams // normalized
	kern      *kernelImpl
	oh, ow    int
	mg, kg    int // per-group GEMM rows (output channels) and depth
	mpad      int
	wpack     []float32 // Group blocks of mpad*kg, see packA
	bias      []float32
	pointwise bool     // 1x1, stride 1, no padding: B is the input itself
	idx       []int32  // im2col offsets (KH*KW rows of idxStr), nil if pointwise
	desc      []uint64 // per 16 idx entries, two descriptors: how to load them (see loadDescriptors)
	idxStr    int

	// Winograd: wino holds the transformed weights (as its wpack) and the
	// tile geometry; nil if the conv cannot or should not use it.
	wino           *Conv
	winoSc         []float32 // Winograd: winoPackWeights' scratch, kept by Repack
	forceWino      bool
	tilesH, tilesW int
	wb             int       // Winograd tile block
	rows           *winoRows // Winograd: the tile-row layout, or nil

	mu   sync.Mutex
	jobs []*convJob
}

// ConvAlgo selects how a Conv computes.
type ConvAlgo int

const (
	// AlgoAuto picks per call: Winograd F(4x4, 3x3) for eligible 3x3
	// convolutions with at least 32 input and output channels when the
	// batch has enough 4x4 tiles and the CPU path has vectorised
	// transforms, the GEMM otherwise.
	AlgoAuto ConvAlgo = iota
	// AlgoGEMM always uses the direct GEMM (1x1) or implicit im2col GEMM:
	// results as accurate as a plain float32 dot product.
	AlgoGEMM
	// AlgoWinograd always uses Winograd F(4x4, 3x3); NewConvAlgo fails
	// unless the convolution is 3x3, stride 1, undilated and ungrouped.
	AlgoWinograd
)

// String returns "auto", "gemm" or "winograd".
func (a ConvAlgo) String() string {
	switch a {
	case AlgoAuto:
		return "auto"
	case AlgoGEMM:
		return "gemm"
	case AlgoWinograd:
		return "winograd"
	}
	return fmt.Sprintf("ConvAlgo(%d)", int(a))
}

// winoMinTiles is the number of 4x4 output tiles in a batch from which
// AlgoAuto prefers Winograd. The transformed weights are 4x the size of the
// originals (36 vs 9 per filter) and are streamed once per call: with few
// tiles the GEMM is memory-bound (ResNet-50 layer4 at batch 1, 4 tiles:
// 5.8 ms with Winograd, 2.3 ms without). Measured again per layer with
// TestWinoVsGEMM (2 threads, AVX-512, batch 1): 7x7 outputs of 512
// channels (4 tiles) 3x slower with Winograd (5.2-6.3 ms against 1.6-1.9
// ms), 14x14 of 256 channels (16 tiles) 1.7-1.9x faster (0.72-0.80 ms
// against 1.38-1.45 ms). Since ConvParams.AutoAlgo lets the inference
// planner pack only the algorithm its batch uses, the 4x larger Winograd
// weights are held only where they pay off.
const winoMinTiles = 16

// autoWinograd reports whether AlgoAuto builds a Winograd half for prm
// (normalized) on the path kern, and the row layout it would use.
func autoWinograd(prm ConvParams, kern *kernelImpl) (bool, *winoRows) {
	var rows *winoRows
	if kern.winoInRows != nil {
		rows = newWinoRows(prm)
	}
	wide := prm.InC >= 32 && prm.OutC >= 32
	if rows != nil {
		wide = prm.InC >= 16 && prm.OutC >= 16
	}
	return winoUsable(prm) && kern.winoIn != nil && wide, rows
}

// AutoAlgo returns the algorithm a Conv made with AlgoAuto now (on the
// current CPU path) uses for a batch of n images: AlgoWinograd or
// AlgoGEMM. A caller that knows its batch can pack with
// NewConvAlgo(prm, w, b, prm.AutoAlgo(n)) for the same results at that
// batch and only the weights that algorithm needs (the Winograd weights
// are 4x the size of the GEMM's). prm must be valid (Validate).
func (c ConvParams) AutoAlgo(n int) ConvAlgo {
	c = c.normalized()
	auto, _ := autoWinograd(c, activeKernel.Load())
	if auto && n*((c.OutH()+3)/4)*((c.OutW()+3)/4) >= winoMinTiles {
		return AlgoWinograd
	}
	return AlgoGEMM
}

// NewConv validates prm and packs weight ([OutC, InC/Group, KH, KW]) and the
// optional bias ([OutC], nil for none) for repeated Forward calls, with
// AlgoAuto. The slices are copied; the caller may reuse them.
func NewConv(prm ConvParams, weight, bias []float32) (*Conv, error) {
	return NewConvAlgo(prm, weight, bias, AlgoAuto)
}

// NewConvAlgo is NewConv with an explicit algorithm choice.
func NewConvAlgo(prm ConvParams, weight, bias []float32, algo ConvAlgo) (*Conv, error) {
	if err := prm.Validate(); err != nil {
		return nil, err
	}
	switch algo {
	case AlgoAuto, AlgoGEMM:
	case AlgoWinograd:
		if !winoUsable(prm.normalized()) {
			return nil, fmt.Errorf("kernels: Winograd needs a 3x3, stride-1, undilated, ungrouped conv, got %+v", prm)
		}
	default:
		return nil, fmt.Errorf("kernels: unknown conv algorithm %d", int(algo))
	}
	prm = prm.normalized()
	c := &Conv{prm: prm, kern: activeKernel.Load(), oh: prm.OutH(), ow: prm.OutW()}
	c.mg = prm.OutC / prm.Group
	c.kg = prm.InC / prm.Group * prm.KH * prm.KW
	if want := prm.OutC * c.kg; len(weight) != want {
		return nil, fmt.Errorf("kernels: conv weight has %d values, want %d (OutC %d x InC/Group %d x %d x %d)",
			len(weight), want, prm.OutC, prm.InC/prm.Group, prm.KH, prm.KW)
	}
	if bias != nil {
		if len(bias) != prm.OutC {
			return nil, fmt.Errorf("kernels: conv bias has %d values, want OutC = %d", len(bias), prm.OutC)
		}
		c.bias = append([]float32(nil), bias...)
	}
	// Auto: Winograd pays off once there are enough channels for the GEMM
	// to outweigh the transforms (measured with the general transforms:
	// slower at 16 channels, 1.3x faster at 32, 2x at 64 and more); with
	// the row transforms (16- and 32-wide images) from 16 channels (1.8x
	// faster at 16 channels, 32x32, batch 128).
	autoWino, rows := autoWinograd(prm, c.kern)
	if algo == AlgoWinograd || (algo == AlgoAuto && autoWino) {
		c.wino = &Conv{prm: prm, kern: c.kern, oh: c.oh, ow: c.ow, mg: c.mg, kg: c.kg, bias: c.bias, wb: winoBlock(prm), rows: rows}
		c.wino.winoPackWeights(weight, false)
		c.forceWino = algo == AlgoWinograd
		if c.forceWino {
			return c, nil
		}
	}
	c.mpad = roundUp(c.mg, c.kern.mr)
	c.wpack = make([]float32, prm.Group*c.mpad*c.kg)
	for g := 0; g < prm.Group; g++ {
		packA(c.kern, c.wpack[g*c.mpad*c.kg:], c.mg, c.kg, weight[g*c.mg*c.kg:], c.kg, false, 1)
	}
	c.pointwise = prm.KH == 1 && prm.KW == 1 && prm.StrideH == 1 && prm.StrideW == 1 &&
		prm.PadTop == 0 && prm.PadLeft == 0 && prm.PadBottom == 0 && prm.PadRight == 0
	if !c.pointwise {
		c.buildIndex()
	}
	return c, nil
}

// Repack replaces the convolution's weights and bias (nil: none, which
// must match how the Conv was made) in place, reusing its packed buffers
// and index tables: what training does after every optimiser step, without
// the allocations of a new Conv. It must not run concurrently with Forward.
func (c *Conv) Repack(weight, bias []float32) error {
	prm := c.prm
	if want := prm.OutC * c.kg; len(weight) != want {
		return fmt.Errorf("kernels: conv weight has %d values, want %d", len(weight), want)
	}
	if (bias == nil) != (c.bias == nil) || (bias != nil && len(bias) != prm.OutC) {
		return fmt.Errorf("kernels: Repack with a bias of %d values on a conv made with %d", len(bias), len(c.bias))
	}
	copy(c.bias, bias)
	if c.wino != nil {
		c.wino.winoPackWeights(weight, true)
		if c.forceWino {
			return nil
		}
	}
	for g := 0; g < prm.Group; g++ {
		packA(c.kern, c.wpack[g*c.mpad*c.kg:], c.mg, c.kg, weight[g*c.mg*c.kg:], c.kg, false, 1)
	}
	return nil
}

// UnpackWeights writes the weights c was made (or last repacked) with,
// [OutC, InC/Group, KH, KW], into dst, from its GEMM-packed form: exactly
// (packing only moves them), so that a caller may drop its own copy once
// packed. It reports false, writing nothing, for a Conv made with
// AlgoWinograd (which holds only the Winograd transforms of its weights)
// or when dst has not OutC*InC/Group*KH*KW values.
func (c *Conv) UnpackWeights(dst []float32) bool {
	if c.wpack == nil || c.forceWino || len(dst) != c.prm.OutC*c.kg {
		return false
	}
	mr := c.kern.mr
	for g := 0; g < c.prm.Group; g++ {
		src := c.wpack[g*c.mpad*c.kg:]
		w := dst[g*c.mg*c.kg:]
		for pc := 0; pc < c.kg; pc += blockK {
			kcb := min(blockK, c.kg-pc)
			for i := 0; i < c.mg; i++ {
				panel := src[pc*c.mpad+i/mr*mr*kcb+i%mr:]
				row := w[i*c.kg+pc : i*c.kg+pc+kcb]
				for kk := range row {
					row[kk] = panel[kk*mr]
				}
			}
		}
	}
	return true
}

// HasGEMMWeights reports whether UnpackWeights can recover the weights.
func (c *Conv) HasGEMMWeights() bool { return c.wpack != nil && !c.forceWino }

// buildIndex fills the im2col offset table: for kernel offset r = kh*KW+kw
// and output pixel p = oh*OutW+ow, idx[r*idxStr+p] is ih*InW+iw or -1 where
// the tap falls into padding. Rows are padded with -1 to a multiple of 32 so
// that packing never needs a column bound.
func (c *Conv) buildIndex() {
	p := c.prm
	ohw := c.oh * c.ow
	c.idxStr = roundUp(ohw, 32)
	c.idx = make([]int32, p.KH*p.KW*c.idxStr)
	for i := range c.idx {
		c.idx[i] = -1
	}
	for kh := 0; kh < p.KH; kh++ {
		for kw := 0; kw < p.KW; kw++ {
			row := c.idx[(kh*p.KW+kw)*c.idxStr:]
			for oh := 0; oh < c.oh; oh++ {
				ih := oh*p.StrideH - p.PadTop + kh*p.DilationH
				if ih < 0 || ih >= p.InH {
					continue
				}
				for ow := 0; ow < c.ow; ow++ {
					iw := ow*p.StrideW - p.PadLeft + kw*p.DilationW
					if iw >= 0 && iw < p.InW {
						row[oh*c.ow+ow] = int32(ih*p.InW + iw)
					}
				}
			}
		}
	}
	c.desc = make([]uint64, len(c.idx)/8)
	for i := 0; i < len(c.idx)/16; i++ {
		c.desc[2*i], c.desc[2*i+1] = loadDescriptors(c.idx[16*i : 16*i+16])
	}
}

// Load descriptor flags (see loadDescriptors).
const (
	gatherFlag  = 1 << 63 // offsets must be gathered one by one
	stride2Flag = 1 << 62 // a stride-2 window
)

// loadDescriptors summarises 16 im2col offsets for the AVX-512 packing
// routine, choosing the cheapest way to load them: one window, two windows
// (the 16 pixels straddle two output rows), or a gather. A window over
// lanes [lo, hi) is encoded as
//
//   - stride 1: bits 0-31 a signed base b, bits 32-47 a lane mask m; lane t
//     is plane[b+t] if m has bit t, else 0;
//   - stride 2 (stride2Flag): bits 0-23 a signed base b, bits 24-55 a
//     32-bit load mask with bit 2t set for each valid lane t, which is
//     plane[b+2t].
//
// The second descriptor is 0 (no window) unless two are needed; windows
// have disjoint lanes and are ORed. Other strides, dilations and windows
// over three rows get gatherFlag.
func loadDescriptors(idx []int32) (first, second uint64) {
	for _, s := range []int32{1, 2} {
		if d, ok := loadWindow(idx, 0, 16, s); ok {
			return d, 0
		}
	}
	for _, s := range []int32{1, 2} {
		// Split at the first valid lane that breaks the first lane's pattern.
		t0 := -1
		for t, o := range idx {
			if o < 0 {
				continue
			}
			if t0 < 0 {
				t0 = t
			} else if o != idx[t0]+s*int32(t-t0) {
				d1, ok1 := loadWindow(idx, 0, t, s)
				d2, ok2 := loadWindow(idx, t, 16, s)
				if ok1 && ok2 {
					return d1, d2
				}
				break
			}
		}
	}
	return gatherFlag, 0
}

// loadWindow encodes lanes [lo, hi) of idx as one window of the given
// stride (see loadDescriptors), if their valid offsets form one.
func loadWindow(idx []int32, lo, hi int, stride int32) (uint64, bool) {
	var mask uint64
	base, have := int32(0), false
	for t := lo; t < hi; t++ {
		o := idx[t]
		if o < 0 {
			continue
		}
		if !have {
			base, have = o-stride*int32(t), true
		} else if o != base+stride*int32(t) {
			return 0, false
		}
		if stride == 1 {
			mask |= 1 << t
		} else {
			mask |= 1 << (2 * t)
		}
	}
	if stride == 1 {
		return mask<<32 | uint64(uint32(base)), true
	}
	if base < -(1<<23) || base >= 1<<23 {
		return 0, false
	}
	return stride2Flag | mask<<24 | uint64(uint32(base))&(1<<24-1), true
}

// Params returns the convolution's parameters (with zero-means-one fields
// filled in).
func (c *Conv) Params() ConvParams { return c.prm }

// KernelPath returns the micro-kernel path the weights were packed for.
func (c *Conv) KernelPath() string { return c.kern.name }

// WorkspaceSize returns the number of float32s of scratch Forward needs for
// a batch of n images on a pool of the given number of threads (<= 0 means
// 1). It is the same for every n (scratch is per thread), and stays valid
// for any pool with at most that many threads.
func (c *Conv) WorkspaceSize(n int, threads int) int {
	return max(threads, 1) * c.perThread()
}

// perThread is the scratch one thread needs, for whichever algorithm
// Forward may choose.
func (c *Conv) perThread() int {
	per := 0
	if !c.forceWino {
		per = bufferSize(c.kern, c.kg, c.oh*c.ow)
	}
	if c.wino != nil {
		per = max(per, c.wino.winoLayout().size+c.kern.mr*c.kern.nr)
	}
	return per
}

// Algo returns the algorithm Forward uses for a batch of n images.
func (c *Conv) Algo(n int) ConvAlgo {
	if c.useWino(n) {
		return AlgoWinograd
	}
	return AlgoGEMM
}

// useWino reports whether Forward uses Winograd for a batch of n.
func (c *Conv) useWino(n int) bool {
	return c.wino != nil && (c.forceWino || n*c.wino.tilesH*c.wino.tilesW >= winoMinTiles)
}

// Forward computes out = ReLU?(conv(x) + bias + residual) for a batch of n
// images: x is [n, InC, InH, InW], out is [n, OutC, OutH, OutW], residual is
// nil or shaped like out, ws has at least WorkspaceSize(n, p.Threads())
// float32s. The epilogue runs in the order +bias, +residual, ReLU (if relu),
// fused into the GEMM tile write-back. out must not overlap x or ws.
// residual may be out itself (same first element: the convolution is then
// accumulated onto it in place) but must not otherwise overlap out.
// Too-short slices panic with a message before anything is written.
func (c *Conv) Forward(p *Pool, n int, x, residual []float32, relu bool, out, ws []float32) {
	prm := c.prm
	inSize := prm.InC * prm.InH * prm.InW
	outSize := prm.OutC * c.oh * c.ow
	threads := p.Threads()
	switch {
	case n < 0:
		panic(fmt.Sprintf("kernels.Conv.Forward: negative batch %d", n))
	case len(x) < n*inSize:
		panic(fmt.Sprintf("kernels.Conv.Forward: x has %d values, want %d for batch %d", len(x), n*inSize, n))
	case len(out) < n*outSize:
		panic(fmt.Sprintf("kernels.Conv.Forward: out has %d values, want %d for batch %d", len(out), n*outSize, n))
	case residual != nil && len(residual) < n*outSize:
		panic(fmt.Sprintf("kernels.Conv.Forward: residual has %d values, want %d for batch %d", len(residual), n*outSize, n))
	case len(ws) < c.WorkspaceSize(n, threads):
		panic(fmt.Sprintf("kernels.Conv.Forward: workspace has %d values, want WorkspaceSize(%d, %d) = %d",
			len(ws), n, threads, c.WorkspaceSize(n, threads)))
	}
	if n == 0 {
		return
	}
	j := c.getJob()
	j.n, j.x, j.res, j.out, j.ws, j.relu = n, x, residual, out, ws, relu
	j.inPlace = residual != nil && &residual[0] == &out[0]
	if j.inPlace {
		j.res = nil
	}
	j.per = c.perThread()
	j.slots = threads
	j.wino = c.useWino(n)
	if j.wino {
		// Winograd tile tables hold int32 offsets into the whole batch:
		// run batches too large for them in chunks.
		chunk := max(1, (math.MaxInt32-1)/max(inSize, outSize))
		for b0 := 0; b0 < n; b0 += chunk {
			nb := min(chunk, n-b0)
			j.n, j.x, j.out = nb, x[b0*inSize:(b0+nb)*inSize], out[b0*outSize:(b0+nb)*outSize]
			if j.res != nil {
				j.res = residual[b0*outSize : (b0+nb)*outSize]
			}
			w := c.wino
			tiles := nb * w.tilesH * w.tilesW
			j.blocks = (tiles + w.wb - 1) / w.wb
			switch {
			case threads == 1 || j.blocks >= 8*threads:
				j.wmode = winoDynamic
			case tiles >= 32*threads:
				j.wmode = winoRanges
			default:
				j.wmode = winoShared
			}
			if j.wmode != winoShared {
				j.next.Store(0)
				p.Parallel(threads, j.fn)
				continue
			}
			// Few tiles: per block, the threads first transform a share of
			// the input channels each into one V, then compute a share of
			// the output channels each from it.
			for b := 0; b < j.blocks; b++ {
				j.g0 = b * w.wb
				j.cnt = min(w.wb, tiles-j.g0)
				j.phase = winoPhaseIn
				p.Parallel(threads, j.fn)
				j.phase = winoPhaseMul | winoPhaseOut
				p.Parallel(threads, j.fn)
			}
		}
	} else {
		gemms := n * prm.Group
		j.mParts, j.nParts = 1, 1
		if gemms%threads != 0 && gemms < 8*threads {
			j.mParts, j.nParts = chooseSplit(c.kern, c.mg, c.oh*c.ow, threads)
		}
		j.next.Store(0)
		p.Parallel(threads, j.fn)
	}
	j.x, j.res, j.out, j.ws = nil, nil, nil, nil
	c.putJob(j)
}

// convJob carries one Forward call to the pool's threads.
type convJob struct {
	c              *Conv
	n              int
	x, res, out    []float32
	ws             []float32
	relu           bool
	inPlace        bool         // residual is out: accumulate onto it
	next           atomic.Int64 // next unit to claim
	wino           bool         // Winograd: work split by wmode
	wmode          int          // winoDynamic, winoRanges or winoShared
	g0, cnt, phase int          // winoShared: the block and the phases to run
	blocks         int          // Winograd tile blocks of up to wb tiles
	per, slots     int
	mParts, nParts int
	fn             func(lo, hi int) // bound to run once
}

// getJob takes a recycled job (or makes the first ones).
func (c *Conv) getJob() *convJob {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := len(c.jobs); k > 0 {
		j := c.jobs[k-1]
		c.jobs = c.jobs[:k-1]
		return j
	}
	j := &convJob{c: c}
	j.fn = j.run
	return j
}

// putJob returns a job for reuse.
func (c *Conv) putJob(j *convJob) {
	c.mu.Lock()
	c.jobs = append(c.jobs, j)
	c.mu.Unlock()
}

// run processes the units of the given slots: a unit is one (image, group,
// M part, N part) piece of the per-image, per-group GEMMs.
func (j *convJob) run(lo, hi int) {
	if j.wino {
		j.runWino(lo, hi)
		return
	}
	c, prm := j.c, j.c.prm
	ohw := c.oh * c.ow
	inPlane := prm.InH * prm.InW
	cin := prm.InC / prm.Group
	parts := j.mParts * j.nParts
	units := j.n * prm.Group * parts
	for slot := lo; slot < hi; slot++ {
		sc := j.ws[slot*j.per : (slot+1)*j.per]
		// Units are claimed dynamically: a thread that starts late or is
		// preempted leaves its share to the others.
		for {
			u := int(j.next.Add(1)) - 1
			if u >= units {
				break
			}
			part := u % parts
			gi := u / parts // image*Group + group
			img, grp := gi/prm.Group, gi%prm.Group
			xo := img*prm.InC*inPlane + grp*cin*inPlane
			oo := img*prm.OutC*ohw + grp*c.mg*ohw
			g := gemmCtx{
				kern: c.kern, m: c.mg, n: ohw, k: c.kg,
				ap: c.wpack[grp*c.mpad*c.kg : (grp+1)*c.mpad*c.kg], mpad: c.mpad,
				b: j.x[xo : xo+cin*inPlane], ldb: inPlane,
				c: j.out[oo : oo+c.mg*ohw], ldc: ohw,
				relu: j.relu, accum: j.inPlace,
			}
			if c.pointwise {
				g.bkind = bPlain
			} else {
				g.bkind, g.idx, g.desc, g.idxStr, g.khw = bIm2col, c.idx, c.desc, c.idxStr, prm.KH*prm.KW
			}
			if c.bias != nil {
				g.bias = c.bias[grp*c.mg : (grp+1)*c.mg]
			}
			if j.res != nil {
				g.res = j.res[oo : oo+c.mg*ohw]
			}
			m0, m1 := partRange(c.mg, c.kern.mr, j.mParts, part/j.nParts)
			n0, n1 := partRange(ohw, c.kern.nr, j.nParts, part%j.nParts)
			g.compute(m0, m1, n0, n1, sc)
		}
	}
}

// runWino runs the Winograd work of the given slots, split according to
// j.wmode: whole tile blocks claimed dynamically (large batches), equal
// contiguous tile ranges per thread cut into blocks (no duplicated work;
// ranges start at multiples of the GEMM panel width, so no thread gets a
// ragged panel in the middle), or, with few tiles, one block at a time
// shared by all threads (j.phase: a share of the input channels each for
// the input transform, then a share of the output channels each).
func (j *convJob) runWino(lo, hi int) {
	w := j.c.wino
	tiles := j.n * w.tilesH * w.tilesW
	for slot := lo; slot < hi; slot++ {
		sc := j.ws[slot*j.per : (slot+1)*j.per]
		switch j.wmode {
		case winoDynamic:
			for {
				b := int(j.next.Add(1)) - 1
				if b >= j.blocks {
					break
				}
				g0 := b * w.wb
				j.winoUnit(w, g0, min(w.wb, tiles-g0), 0, w.prm.OutC, 0, w.prm.InC, sc, sc, winoAll)
			}
		case winoRanges:
			nr := w.kern.nr
			u0, u1 := splitRange((tiles+nr-1)/nr, j.slots, slot)
			t0, t1 := min(u0*nr, tiles), min(u1*nr, tiles)
			for g0 := t0; g0 < t1; g0 += w.wb {
				j.winoUnit(w, g0, min(w.wb, t1-g0), 0, w.prm.OutC, 0, w.prm.InC, sc, sc, winoAll)
			}
		case winoShared:
			shared := j.ws[:j.per]
			if j.phase == winoPhaseIn {
				ic0, ic1 := splitRange(w.prm.InC, j.slots, slot)
				j.winoUnit(w, j.g0, j.cnt, 0, 0, ic0, ic1, shared, sc, winoPhaseIn)
				continue
			}
			m0, m1 := partRange(w.prm.OutC, w.kern.mr, j.slots, slot)
			if m0 < m1 {
				j.winoUnit(w, j.g0, j.cnt, m0, m1, 0, 0, shared, sc, j.phase)
			}
		}
	}
}
