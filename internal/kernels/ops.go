package kernels

import (
	"errors"
	"fmt"
	"math"

	"github.com/resnetctl/resnetctl/internal/checked"
)

// Pool2DParams describes a 2-D pooling window over NCHW tensors (MaxPool2D,
// AvgPool2D). Zero StrideH, StrideW, DilationH and DilationW mean 1.
type Pool2DParams struct {
	KH, KW                               int
	StrideH, StrideW                     int
	PadTop, PadLeft, PadBottom, PadRight int
	DilationH, DilationW                 int
	// CeilMode rounds the output size up instead of down; as in PyTorch
	// and ONNX Runtime, a last window that would start in the bottom/right
	// padding is dropped.
	CeilMode bool
	// CountIncludePad (AvgPool2D only) divides by the number of window taps
	// inside the padded input instead of the number inside the input.
	CountIncludePad bool
}

// normalized returns p with zero strides and dilations set to 1.
func (p Pool2DParams) normalized() Pool2DParams {
	for _, v := range []*int{&p.StrideH, &p.StrideW, &p.DilationH, &p.DilationW} {
		if *v == 0 {
			*v = 1
		}
	}
	return p
}

// poolOutSize is the pooled length of one axis (PyTorch rules for ceil).
func poolOutSize(in, padA, padB, k, stride, dil int, ceil bool) int {
	ek, ok1 := checked.MulAdd(dil, k-1, 1) // the dilated window, checked
	num, ok2 := checked.Sum(in, padA, padB, -ek)
	if !ok1 || !ok2 || num < 0 || stride <= 0 {
		return 0
	}
	out := num/stride + 1
	if ceil && num%stride != 0 {
		out++
		if (out-1)*stride >= in+padA {
			out--
		}
	}
	return out
}

// OutSize returns the output height and width for an inH x inW input (0 if
// the window does not fit).
func (p Pool2DParams) OutSize(inH, inW int) (outH, outW int) {
	p = p.normalized()
	return poolOutSize(inH, p.PadTop, p.PadBottom, p.KH, p.StrideH, p.DilationH, p.CeilMode),
		poolOutSize(inW, p.PadLeft, p.PadRight, p.KW, p.StrideW, p.DilationW, p.CeilMode)
}

// Validate reports impossible parameters for an inH x inW input.
func (p Pool2DParams) Validate(inH, inW int) error {
	p = p.normalized()
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"KH", p.KH}, {"KW", p.KW}, {"StrideH", p.StrideH}, {"StrideW", p.StrideW},
		{"DilationH", p.DilationH}, {"DilationW", p.DilationW}, {"input height", inH}, {"input width", inW}} {
		if f.v <= 0 {
			errs = append(errs, fmt.Errorf("%s = %d, want > 0", f.name, f.v))
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"PadTop", p.PadTop}, {"PadLeft", p.PadLeft}, {"PadBottom", p.PadBottom}, {"PadRight", p.PadRight}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s = %d, want >= 0", f.name, f.v))
		}
	}
	if len(errs) == 0 {
		if oh, ow := p.OutSize(inH, inW); oh <= 0 || ow <= 0 {
			errs = append(errs, fmt.Errorf("window %sx%s does not fit the padded input %d+%d+%dx%d+%d+%d",
				extent(p.KH, p.DilationH), extent(p.KW, p.DilationW), p.PadTop, inH, p.PadBottom, p.PadLeft, inW, p.PadRight))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("kernels: invalid pooling params %+v for input %dx%d: %w", p, inH, inW, errors.Join(errs...))
	}
	return nil
}

// MaxPool2D computes out[n, c, OutH, OutW] = max over each window of
// x[n, c, h, w] (see Pool2DParams; prm must be valid for h x w). Taps in
// the padding are ignored; a window with no tap inside the input yields
// -math.MaxFloat32 (ONNX Runtime's choice). NaNs propagate.
func MaxPool2D(p *Pool, prm Pool2DParams, n, c, h, w int, x, out []float32) {
	runPool2D(p, opMaxPool, prm, n, c, h, w, x, out)
}

// AvgPool2D computes out[n, c, OutH, OutW] = mean over each window of
// x[n, c, h, w], dividing by the number of taps inside the input, or inside
// the padded input if prm.CountIncludePad.
func AvgPool2D(p *Pool, prm Pool2DParams, n, c, h, w int, x, out []float32) {
	runPool2D(p, opAvgPool, prm, n, c, h, w, x, out)
}

// runPool2D checks the slices and runs a pooling job over the planes.
func runPool2D(p *Pool, kind int, prm Pool2DParams, n, c, h, w int, x, out []float32) {
	prm = prm.normalized()
	oh, ow := prm.OutSize(h, w)
	name := [...]string{opMaxPool: "MaxPool2D", opAvgPool: "AvgPool2D"}[kind]
	checkLen(name, "x", x, n*c*h*w)
	checkLen(name, "out", out, n*c*oh*ow)
	if n*c*oh*ow == 0 {
		return
	}
	j := getOpJob(kind)
	j.prm, j.h, j.w, j.oh, j.ow, j.x, j.out = prm, h, w, oh, ow, x, out
	j.runPlanes(p, n*c, h*w*prm.KH*prm.KW)
}

// GlobalAvgPool computes out[n, c] = mean of x[n, c, 0:hw].
func GlobalAvgPool(p *Pool, n, c, hw int, x, out []float32) {
	checkLen("GlobalAvgPool", "x", x, n*c*hw)
	checkLen("GlobalAvgPool", "out", out, n*c)
	if n*c == 0 || hw <= 0 {
		return
	}
	j := getOpJob(opGlobalAvg)
	j.hw, j.x, j.out = hw, x, out
	j.runPlanes(p, n*c, hw)
}

// BatchNorm applies inference batch normalisation as a per-channel affine
// map: out[n, c, i] = x[n, c, i]*scale[c] + shift[c], then ReLU if relu.
// out may be x. FoldBatchNorm computes scale and shift from the usual
// parameters.
func BatchNorm(p *Pool, n, c, hw int, x, scale, shift []float32, relu bool, out []float32) {
	checkLen("BatchNorm", "x", x, n*c*hw)
	checkLen("BatchNorm", "out", out, n*c*hw)
	checkLen("BatchNorm", "scale", scale, c)
	checkLen("BatchNorm", "shift", shift, c)
	if n*c*hw == 0 {
		return
	}
	j := getOpJob(opBatchNorm)
	j.c, j.hw, j.x, j.scale, j.shift, j.relu, j.out = c, hw, x, scale, shift, relu, out
	j.runPlanes(p, n*c, hw)
}

// FoldBatchNorm computes the per-channel scale = gamma/sqrt(variance+eps)
// and shift = beta - mean*scale used by BatchNorm (and for folding a
// BatchNorm into a preceding convolution's weights and bias). The arithmetic
// is done in float64.
func FoldBatchNorm(gamma, beta, mean, variance []float32, eps float32, scale, shift []float32) {
	c := len(scale)
	for _, s := range [][]float32{gamma, beta, mean, variance, shift} {
		checkLen("FoldBatchNorm", "parameter", s, c)
	}
	for i := 0; i < c; i++ {
		s := float64(gamma[i]) / math.Sqrt(float64(variance[i])+float64(eps))
		scale[i] = float32(s)
		shift[i] = float32(float64(beta[i]) - float64(mean[i])*s)
	}
}

// ReLU computes out[i] = max(x[i], 0) for i < len(x) (NaN propagates).
// out may be x.
func ReLU(p *Pool, x, out []float32) {
	checkLen("ReLU", "out", out, len(x))
	j := getOpJob(opReLU)
	j.x, j.out = x, out
	j.runFlat(p, len(x))
}

// Add computes out[i] = a[i] + b[i] for i < len(a), then ReLU if relu. out
// may be a or b.
func Add(p *Pool, a, b []float32, relu bool, out []float32) {
	checkLen("Add", "b", b, len(a))
	checkLen("Add", "out", out, len(a))
	j := getOpJob(opAdd)
	j.x, j.y, j.relu, j.out = a, b, relu, out
	j.runFlat(p, len(a))
}

// checkLen panics with a clear message if s is shorter than want.
func checkLen(op, name string, s []float32, want int) {
	if len(s) < want {
		panic(fmt.Sprintf("kernels.%s: %s has %d values, want at least %d", op, name, len(s), want))
	}
}

// Element-wise and pooling operation kinds handled by opJob.
const (
	opMaxPool = iota
	opAvgPool
	opGlobalAvg
	opBatchNorm
	opReLU
	opAdd
)

// parallelMinWork is the amount of work (roughly: elements touched) below
// which an operation runs on the calling goroutine: handing work to another
// thread costs a few microseconds.
const parallelMinWork = 1 << 15

// opJob carries the arguments of one pooling/element-wise call to the
// pool's threads without allocating: jobs are recycled via opFree and fn is
// bound once.
type opJob struct {
	kind            int
	prm             Pool2DParams
	c, h, w, oh, ow int
	hw              int
	x, y, out       []float32
	scale, shift    []float32
	relu            bool
	parts           int // runFlat: number of chunks
	fn              func(lo, hi int)
}

// opFree recycles opJobs. It is the package's, not a Pool's: jobs are
// taken before it is known whether the work is worth a pool (and a nil
// *Pool is valid).
var opFree freeList[opJob]

// getOpJob takes a recycled job of the given kind.
func getOpJob(kind int) *opJob {
	j := opFree.get()
	if j == nil {
		j = &opJob{}
		j.fn = j.run
	}
	j.kind = kind
	return j
}

// release clears the job (dropping slice references) and recycles it.
func (j *opJob) release() {
	fn := j.fn
	*j = opJob{fn: fn}
	opFree.put(j)
}

// runPlanes runs the job over planes (n*c) with perPlane work each.
func (j *opJob) runPlanes(p *Pool, planes, perPlane int) {
	if planes*perPlane < parallelMinWork {
		p = nil
	}
	p.Parallel(planes, j.fn)
	j.release()
}

// runFlat runs an element-wise job over n elements in chunks.
func (j *opJob) runFlat(p *Pool, n int) {
	if n < parallelMinWork {
		p = nil
	}
	j.hw, j.parts = n, p.Threads()
	p.Parallel(j.parts, j.fn)
	j.release()
}

// run processes planes (or chunks) [lo, hi).
func (j *opJob) run(lo, hi int) {
	switch j.kind {
	case opMaxPool, opAvgPool:
		for pl := lo; pl < hi; pl++ {
			j.pool2D(j.x[pl*j.h*j.w:(pl+1)*j.h*j.w], j.out[pl*j.oh*j.ow:(pl+1)*j.oh*j.ow])
		}
	case opGlobalAvg:
		for pl := lo; pl < hi; pl++ {
			var s float64
			for _, v := range j.x[pl*j.hw : (pl+1)*j.hw] {
				s += float64(v)
			}
			j.out[pl] = float32(s / float64(j.hw))
		}
	case opBatchNorm:
		for pl := lo; pl < hi; pl++ {
			ch := pl % j.c
			sc, sh := j.scale[ch], j.shift[ch]
			src := j.x[pl*j.hw : (pl+1)*j.hw]
			dst := j.out[pl*j.hw : (pl+1)*j.hw]
			for i, v := range src {
				v = v*sc + sh
				if j.relu && v < 0 {
					v = 0
				}
				dst[i] = v
			}
		}
	case opReLU, opAdd:
		// [lo, hi) are chunk indices out of j.parts chunks of j.hw elements.
		e0, _ := splitRange(j.hw, j.parts, lo)
		_, e1 := splitRange(j.hw, j.parts, hi-1)
		j.flat(e0, e1)
	}
}

// flat applies ReLU or Add to elements [e0, e1).
func (j *opJob) flat(e0, e1 int) {
	dst := j.out[e0:e1]
	src := j.x[e0:e1]
	if j.kind == opReLU {
		for i, v := range src {
			if v < 0 {
				v = 0
			}
			dst[i] = v
		}
		return
	}
	src2 := j.y[e0:e1]
	for i, v := range src {
		v += src2[i]
		if j.relu && v < 0 {
			v = 0
		}
		dst[i] = v
	}
}

// pool2D pools one h x w plane into an oh x ow plane.
func (j *opJob) pool2D(x, out []float32) {
	p := j.prm
	h, w := j.h, j.w
	if j.kind == opMaxPool && p.DilationH == 1 && p.DilationW == 1 && w <= maxPoolRow {
		j.maxPoolSeparable(x, out)
		return
	}
	for oy := 0; oy < j.oh; oy++ {
		y0 := oy*p.StrideH - p.PadTop
		// Taps kh in [kh0, kh1) fall inside the input rows.
		kh0, kh1 := tapRange(y0, p.DilationH, p.KH, h)
		for ox := 0; ox < j.ow; ox++ {
			x0 := ox*p.StrideW - p.PadLeft
			kw0, kw1 := tapRange(x0, p.DilationW, p.KW, w)
			var v float32
			if j.kind == opMaxPool {
				v = -math.MaxFloat32
				for kh := kh0; kh < kh1; kh++ {
					row := x[(y0+kh*p.DilationH)*w:]
					for kw := kw0; kw < kw1; kw++ {
						if e := row[x0+kw*p.DilationW]; e > v || e != e {
							v = e
						}
					}
				}
			} else {
				var s float32
				for kh := kh0; kh < kh1; kh++ {
					row := x[(y0+kh*p.DilationH)*w:]
					for kw := kw0; kw < kw1; kw++ {
						s += row[x0+kw*p.DilationW]
					}
				}
				var cnt int
				if p.CountIncludePad {
					a0, a1 := tapRange(y0+p.PadTop, p.DilationH, p.KH, h+p.PadTop+p.PadBottom)
					b0, b1 := tapRange(x0+p.PadLeft, p.DilationW, p.KW, w+p.PadLeft+p.PadRight)
					cnt = (a1 - a0) * (b1 - b0)
				} else {
					cnt = (kh1 - kh0) * (kw1 - kw0)
				}
				if cnt > 0 {
					v = s / float32(cnt)
				}
			}
			out[oy*j.ow+ox] = v
		}
	}
}

// maxAccGo is the Go version of maxAcc.
func maxAccGo(dst, src []float32) {
	src = src[:len(dst)]
	for i, e := range src {
		dst[i] = max(dst[i], e) // Go's max: NaN if either is NaN
	}
}

// maxPoolRow is the widest input row maxPoolSeparable handles (its row
// buffer lives on the stack).
const maxPoolRow = 1024

// maxPoolSeparable is max pooling of one plane without dilation, as a max
// over the window's rows (contiguous, for a whole input row at once) and
// then over its columns: KH+KW comparisons per output instead of KH*KW,
// and no per-element bounds logic or data-dependent branches (Go's max is
// branch-free and returns NaN if either operand is). A NaN anywhere in a
// window gives NaN, and a window with no input element -MaxFloat32, as in
// the general loop.
func (j *opJob) maxPoolSeparable(x, out []float32) {
	p := j.prm
	h, w := j.h, j.w
	var buf [maxPoolRow]float32
	col := buf[:w]
	for oy := 0; oy < j.oh; oy++ {
		y0 := oy*p.StrideH - p.PadTop
		kh0, kh1 := tapRange(y0, 1, p.KH, h)
		for i := range col {
			col[i] = -math.MaxFloat32
		}
		for kh := kh0; kh < kh1; kh++ {
			maxAcc(col, x[(y0+kh)*w:(y0+kh+1)*w])
		}
		o := out[oy*j.ow : (oy+1)*j.ow]
		for ox := range o {
			x0 := ox*p.StrideW - p.PadLeft
			kw0, kw1 := tapRange(x0, 1, p.KW, w)
			v := float32(-math.MaxFloat32)
			for _, e := range col[x0+kw0 : x0+kw1] {
				v = max(v, e)
			}
			o[ox] = v
		}
	}
}

// tapRange returns the taps [k0, k1) of a window starting at start with the
// given dilation and k taps whose positions start+t*dil lie in [0, size).
func tapRange(start, dil, k, size int) (k0, k1 int) {
	if start < 0 {
		k0 = (-start + dil - 1) / dil
	}
	k1 = k
	if last := start + (k-1)*dil; last >= size {
		k1 = k - (last-size)/dil - 1
	}
	if k1 < k0 {
		k1 = k0
	}
	return k0, k1
}
