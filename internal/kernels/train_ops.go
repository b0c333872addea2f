package kernels

import (
	"math"
	"sync/atomic"
)

// Training element-wise and pooling kernels: the backward passes of ReLU,
// residual adds, pooling and the option-A channel-pad shortcut, and the
// max-pooling forward pass that records where each maximum came from.

// MaxPool2DArgmax is MaxPool2D that also records, in idx (one int32 per
// output), the position h*w' of the chosen input in its plane, or -1 for a
// window without taps. Ties go to the first tap in row-major window order,
// as PyTorch does; a NaN is chosen over any number.
func MaxPool2DArgmax(p *Pool, prm Pool2DParams, n, c, h, w int, x, out []float32, idx []int32) {
	prm = trPoolNorm(prm)
	oh, ow := prm.OutSize(h, w)
	trCheck("MaxPool2DArgmax", "x", x, n*c*h*w)
	trCheck("MaxPool2DArgmax", "out", out, n*c*oh*ow)
	if len(idx) < n*c*oh*ow {
		panic("kernels.MaxPool2DArgmax: idx too short")
	}
	j := getTrOpJob(trMaxPoolArg)
	j.prm, j.h, j.w, j.oh, j.ow, j.x, j.out, j.idx = prm, h, w, oh, ow, x, out, idx
	j.runUnits(p, n*c, h*w*prm.KH*prm.KW)
}

// MaxPool2DBackward computes dx (n x c x h x w, overwritten) from the
// output gradient dy and the positions idx recorded by MaxPool2DArgmax.
func MaxPool2DBackward(p *Pool, prm Pool2DParams, n, c, h, w int, idx []int32, dy, dx []float32) {
	prm = trPoolNorm(prm)
	oh, ow := prm.OutSize(h, w)
	trCheck("MaxPool2DBackward", "dy", dy, n*c*oh*ow)
	trCheck("MaxPool2DBackward", "dx", dx, n*c*h*w)
	if len(idx) < n*c*oh*ow {
		panic("kernels.MaxPool2DBackward: idx too short")
	}
	j := getTrOpJob(trMaxPoolBack)
	j.prm, j.h, j.w, j.oh, j.ow, j.dy, j.dx, j.idx = prm, h, w, oh, ow, dy, dx, idx
	j.runUnits(p, n*c, h*w)
}

// AvgPool2DBackward computes dx (overwritten) from the output gradient dy
// of AvgPool2D with the same parameters.
func AvgPool2DBackward(p *Pool, prm Pool2DParams, n, c, h, w int, dy, dx []float32) {
	prm = trPoolNorm(prm)
	oh, ow := prm.OutSize(h, w)
	trCheck("AvgPool2DBackward", "dy", dy, n*c*oh*ow)
	trCheck("AvgPool2DBackward", "dx", dx, n*c*h*w)
	j := getTrOpJob(trAvgPoolBack)
	j.prm, j.h, j.w, j.oh, j.ow, j.dy, j.dx = prm, h, w, oh, ow, dy, dx
	j.runUnits(p, n*c, h*w*prm.KH*prm.KW)
}

// GlobalAvgPoolBackward computes dx[n, c, i] = dy[n, c]/hw.
func GlobalAvgPoolBackward(p *Pool, n, c, hw int, dy, dx []float32) {
	trCheck("GlobalAvgPoolBackward", "dy", dy, n*c)
	trCheck("GlobalAvgPoolBackward", "dx", dx, n*c*hw)
	j := getTrOpJob(trGAPBack)
	j.h, j.w, j.dy, j.dx = 1, hw, dy, dx
	j.runUnits(p, n*c, hw)
}

// ReLUBackward computes dx[i] = dy[i] if y[i] > 0 else 0, where y is the
// ReLU's output (plus acc[i] if acc is not nil; acc may be dx).
func ReLUBackward(p *Pool, y, dy, acc, dx []float32) {
	trCheck("ReLUBackward", "y", y, len(dy))
	trCheck("ReLUBackward", "dx", dx, len(dy))
	if acc != nil {
		trCheck("ReLUBackward", "acc", acc, len(dy))
	}
	j := getTrOpJob(trReLUBack)
	j.x, j.dy, j.acc, j.dx = y, dy, acc, dx
	j.runFlat(p, len(dy))
}

// AddTo computes dst[i] += src[i].
func AddTo(p *Pool, dst, src []float32) {
	trCheck("AddTo", "dst", dst, len(src))
	j := getTrOpJob(trAddTo)
	j.dx, j.dy = dst, src
	j.runFlat(p, len(src))
}

// ChannelPad is the option-A shortcut: out[n, ch, y, x] = x[n, ch-before,
// y*stride, x*stride] for ch in [before, before+c), else 0. x is
// [n, c, h, w]; out is [n, before+c+after, ceil(h/stride), ceil(w/stride)].
func ChannelPad(p *Pool, n, c, h, w, stride, before, after int, x, out []float32) {
	oh, ow := (h+stride-1)/stride, (w+stride-1)/stride
	trCheck("ChannelPad", "x", x, n*c*h*w)
	trCheck("ChannelPad", "out", out, n*(before+c+after)*oh*ow)
	j := getTrOpJob(trPad)
	j.c, j.h, j.w, j.oh, j.ow, j.stride, j.before, j.after, j.x, j.out = c, h, w, oh, ow, stride, before, after, x, out
	j.runUnits(p, n*(before+c+after), oh*ow)
}

// ChannelPadBackward computes dx (overwritten) from dy for ChannelPad:
// dx[n, ch, y*stride, x*stride] = dy[n, ch+before, y, x], 0 elsewhere.
func ChannelPadBackward(p *Pool, n, c, h, w, stride, before, after int, dy, dx []float32) {
	oh, ow := (h+stride-1)/stride, (w+stride-1)/stride
	trCheck("ChannelPadBackward", "dy", dy, n*(before+c+after)*oh*ow)
	trCheck("ChannelPadBackward", "dx", dx, n*c*h*w)
	j := getTrOpJob(trPadBack)
	j.c, j.h, j.w, j.oh, j.ow, j.stride, j.before, j.after, j.dy, j.dx = c, h, w, oh, ow, stride, before, after, dy, dx
	j.runUnits(p, n*c, h*w)
}

const (
	trMaxPoolArg = iota
	trMaxPoolBack
	trAvgPoolBack
	trGAPBack
	trReLUBack
	trAddTo
	trPad
	trPadBack
)

// trFlatChunk is the element count of one unit of a flat (element-wise)
// job.
const trFlatChunk = 1 << 14

// trOpJob carries one call of the kernels above to the pool's threads
// without allocating; jobs are recycled and fn is bound once.
type trOpJob struct {
	kind                  int
	prm                   Pool2DParams
	c, h, w, oh, ow       int
	stride, before, after int
	x, out, dy, dx, acc   []float32
	idx                   []int32
	units, flat           int
	next                  atomic.Int64
	fn                    func(lo, hi int)
}

// trOpFree recycles trOpJobs (the package's, as opFree).
var trOpFree freeList[trOpJob]

func getTrOpJob(kind int) *trOpJob {
	j := trOpFree.get()
	if j == nil {
		j = &trOpJob{}
		j.fn = j.run
	}
	j.kind = kind
	return j
}

func (j *trOpJob) release() {
	fn := j.fn
	*j = trOpJob{fn: fn}
	trOpFree.put(j)
}

// runUnits runs units (planes) with work each, then releases the job.
func (j *trOpJob) runUnits(p *Pool, units, work int) {
	j.units = units
	if units*work < trParallelMin {
		p = nil
	}
	p.Parallel(p.Threads(), j.fn)
	j.release()
}

// runFlat runs an element-wise job over n elements in chunks.
func (j *trOpJob) runFlat(p *Pool, n int) {
	j.flat = n
	j.runUnits(p, (n+trFlatChunk-1)/trFlatChunk, trFlatChunk)
}

func (j *trOpJob) run(lo, hi int) {
	for {
		u := int(j.next.Add(1)) - 1
		if u >= j.units {
			return
		}
		switch j.kind {
		case trMaxPoolArg:
			hw, ohw := j.h*j.w, j.oh*j.ow
			j.maxPoolPlane(j.x[u*hw:(u+1)*hw], j.out[u*ohw:(u+1)*ohw], j.idx[u*ohw:(u+1)*ohw])
		case trMaxPoolBack:
			hw, ohw := j.h*j.w, j.oh*j.ow
			dx := j.dx[u*hw : (u+1)*hw]
			clear(dx)
			idx := j.idx[u*ohw : (u+1)*ohw]
			for i, g := range j.dy[u*ohw : (u+1)*ohw] {
				if k := idx[i]; k >= 0 {
					dx[k] += g
				}
			}
		case trAvgPoolBack:
			hw, ohw := j.h*j.w, j.oh*j.ow
			j.avgPoolBackPlane(j.dy[u*ohw:(u+1)*ohw], j.dx[u*hw:(u+1)*hw])
		case trGAPBack:
			hw := j.w
			v := j.dy[u] / float32(hw)
			dx := j.dx[u*hw : (u+1)*hw]
			for i := range dx {
				dx[i] = v
			}
		case trReLUBack, trAddTo:
			i0, i1 := u*trFlatChunk, min((u+1)*trFlatChunk, j.flat)
			dy := j.dy[i0:i1]
			dx := j.dx[i0:i1]
			if j.kind == trAddTo {
				for i, v := range dy {
					dx[i] += v
				}
				continue
			}
			y := j.x[i0:i1]
			if j.acc != nil {
				acc := j.acc[i0:i1]
				for i, g := range dy {
					dx[i] = acc[i] + reluMask(g, y[i])
				}
				continue
			}
			for i, g := range dy {
				dx[i] = reluMask(g, y[i])
			}
		case trPad:
			cout := j.before + j.c + j.after
			img, ch := u/cout, u%cout
			ohw := j.oh * j.ow
			out := j.out[u*ohw : (u+1)*ohw]
			cc := ch - j.before
			if cc < 0 || cc >= j.c {
				clear(out)
				continue
			}
			src := j.x[(img*j.c+cc)*j.h*j.w:]
			for y := 0; y < j.oh; y++ {
				row := src[y*j.stride*j.w:]
				o := out[y*j.ow : (y+1)*j.ow]
				for x := range o {
					o[x] = row[x*j.stride]
				}
			}
		case trPadBack:
			cout := j.before + j.c + j.after
			img, cc := u/j.c, u%j.c
			dx := j.dx[u*j.h*j.w : (u+1)*j.h*j.w]
			if j.stride > 1 {
				clear(dx)
			}
			src := j.dy[(img*cout+cc+j.before)*j.oh*j.ow:]
			for y := 0; y < j.oh; y++ {
				row := dx[y*j.stride*j.w:]
				g := src[y*j.ow : (y+1)*j.ow]
				for x, v := range g {
					row[x*j.stride] = v
				}
			}
		}
	}
}

func (j *trOpJob) maxPoolPlane(x, out []float32, idx []int32) {
	p := j.prm
	for oy := 0; oy < j.oh; oy++ {
		y0 := oy*p.StrideH - p.PadTop
		kh0, kh1 := trTaps(y0, p.DilationH, p.KH, j.h)
		for ox := 0; ox < j.ow; ox++ {
			x0 := ox*p.StrideW - p.PadLeft
			kw0, kw1 := trTaps(x0, p.DilationW, p.KW, j.w)
			v := float32(-math.MaxFloat32)
			at := int32(-1)
			for kh := kh0; kh < kh1; kh++ {
				r := (y0 + kh*p.DilationH) * j.w
				for kw := kw0; kw < kw1; kw++ {
					k := r + x0 + kw*p.DilationW
					if e := x[k]; at < 0 || e > v || (e != e && v == v) {
						v, at = e, int32(k)
					}
				}
			}
			out[oy*j.ow+ox] = v
			idx[oy*j.ow+ox] = at
		}
	}
}

func (j *trOpJob) avgPoolBackPlane(dy, dx []float32) {
	p := j.prm
	clear(dx)
	for oy := 0; oy < j.oh; oy++ {
		y0 := oy*p.StrideH - p.PadTop
		kh0, kh1 := trTaps(y0, p.DilationH, p.KH, j.h)
		for ox := 0; ox < j.ow; ox++ {
			x0 := ox*p.StrideW - p.PadLeft
			kw0, kw1 := trTaps(x0, p.DilationW, p.KW, j.w)
			var cnt int
			if p.CountIncludePad {
				a0, a1 := trTaps(y0+p.PadTop, p.DilationH, p.KH, j.h+p.PadTop+p.PadBottom)
				b0, b1 := trTaps(x0+p.PadLeft, p.DilationW, p.KW, j.w+p.PadLeft+p.PadRight)
				cnt = (a1 - a0) * (b1 - b0)
			} else {
				cnt = (kh1 - kh0) * (kw1 - kw0)
			}
			if cnt == 0 {
				continue
			}
			g := dy[oy*j.ow+ox] / float32(cnt)
			for kh := kh0; kh < kh1; kh++ {
				r := (y0 + kh*p.DilationH) * j.w
				for kw := kw0; kw < kw1; kw++ {
					dx[r+x0+kw*p.DilationW] += g
				}
			}
		}
	}
}
