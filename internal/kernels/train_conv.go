package kernels

import (
	"fmt"
	"sync/atomic"
)

// Training kernels (train_*.go): the passes a training runtime needs on top
// of the inference kernels. They follow the package's conventions (NCHW
// float32, a *Pool for parallelism, panics on too-short slices) with one
// addition: every reduction (a weight or BatchNorm gradient, a batch
// statistic) is summed in a fixed order that depends on the batch size only,
// never on the number of threads or on which thread ran first, so a
// training run is bit-reproducible and a resumed run matches an
// uninterrupted one.

// trainChunks is the number of fixed batch chunks a weight-gradient
// reduction is split into (fewer when the batch is smaller). Threads claim
// chunks dynamically; each chunk owns a partial sum and the partials are
// added in chunk order.
const trainChunks = 8

// ConvTrain is a convolution whose weights change between calls (once per
// optimiser step), with the two backward passes:
//
//   - Forward: out = conv(x, W) + bias, through a Conv packed by SetWeights
//     (Winograd or implicit-im2col GEMM, as NewConvAlgo chooses for algo);
//   - BackwardData: dx = conv_transpose(dy, W) (+ accumulated gradients).
//     Stride-1, undilated, ungrouped convolutions with "same" padding run as
//     a forward Conv over dy with the flipped, transposed weights (so they
//     get the same fast paths); other shapes as W^T·dy GEMMs per image
//     followed by col2im;
//   - BackwardFilter: Winograd F(4x4, 3x3) for the shapes the forward
//     Winograd handles (see train_wino.go; AlgoGEMM turns it off);
//     otherwise dW = sum over images of dy_n · im2row(x_n), where im2row is
//     built from an HWC copy of x_n with contiguous copies. db = sum of dy
//     over images and pixels.
//
// A ConvTrain owns its scratch memory and is not safe for concurrent use.
type ConvTrain struct {
	prm     ConvParams // normalized
	algo    ConvAlgo
	oh, ow  int
	cin, mg int // per-group input and output channels
	taps    int // KH*KW
	fwd     *Conv
	// BackwardData by transposed convolutions: one phase for stride 1,
	// StrideH*StrideW phases (output pixels of equal residues) otherwise;
	// nil when the shape needs the GEMM + col2im path.
	phases []convPhase
	direct bool // a single phase writing dx directly

	// ws is the scratch memory, grown on demand (see ShareScratch);
	// perThread is the size of one thread's part of ws.thread in the
	// current call.
	ws        *TrainScratch
	perThread int
	// rows is the tile-row layout of the Winograd weight gradient, or nil;
	// noRows turns it off (tests).
	rows   *winoRows
	noRows bool

	job convTrainJob
}

// TrainScratch is the scratch memory of ConvTrain calls: nothing in it
// lives from one call to the next. ConvTrains that never run at the same
// time (the layers of one network, run one op at a time) can share one
// (ShareScratch), so that the network holds one set of buffers sized for
// its largest layer instead of a set per layer. The zero value is ready to
// use.
type TrainScratch struct {
	fwd, bwd []float32 // forward and transposed-convolution workspaces
	phaseOut []float32 // strided BackwardData's per-phase outputs
	// partial holds BackwardFilter's per-chunk sums: trainChunks x Group x
	// mg x taps*cin (tap-major), or trainChunks x 36 x OutC x InC for
	// Winograd.
	partial []float32
	thread  []float32 // per thread: HWC image, im2row block, dy block (or the Winograd transforms)
	dbPart  []float64 // n x OutC plane sums
	// gemm holds each thread's GEMM packing buffers, reserved for the
	// largest call of every ConvTrain that used them, so that no step
	// allocates whichever thread runs which part.
	gemm []gemmScratch
}

// ShareScratch makes c use s for its scratch memory from now on. c must
// then never run at the same time as another user of s.
func (c *ConvTrain) ShareScratch(s *TrainScratch) { c.ws = s }

// NewConvTrain validates prm and prepares a training convolution; call
// SetWeights before Forward or BackwardData. algo selects the forward
// algorithm as for NewConvAlgo (AlgoWinograd is refused where unusable).
func NewConvTrain(prm ConvParams, algo ConvAlgo) (*ConvTrain, error) {
	if err := prm.Validate(); err != nil {
		return nil, err
	}
	if algo == AlgoWinograd && !trWinograd(trConvNorm(prm)) {
		return nil, fmt.Errorf("kernels: Winograd needs a 3x3, stride-1, undilated, ungrouped conv, got %+v", prm)
	}
	prm = trConvNorm(prm)
	c := &ConvTrain{prm: prm, algo: algo, oh: prm.OutH(), ow: prm.OutW(), ws: &TrainScratch{}}
	c.cin = prm.InC / prm.Group
	c.mg = prm.OutC / prm.Group
	c.taps = prm.KH * prm.KW
	c.phases = makePhases(prm, c.oh, c.ow)
	c.direct = len(c.phases) == 1 && prm.StrideH == 1 && prm.StrideW == 1
	c.rows = newWinoRows(prm)
	c.job.c = c
	c.job.fn = c.job.run
	return c, nil
}

// Params returns the convolution's (normalized) parameters.
func (c *ConvTrain) Params() ConvParams { return c.prm }

// SetWeights packs weight ([OutC, InC/Group, KH, KW]) and bias ([OutC] or
// nil) for the following Forward and BackwardData calls.
func (c *ConvTrain) SetWeights(weight, bias []float32) error {
	var err error
	if c.fwd != nil {
		err = c.fwd.Repack(weight, bias)
	} else {
		// The forward output feeds BatchNorm's batch statistics, which
		// divide by each channel's batch deviation: where that is far below
		// the channel's mean, Winograd's rounding (relative to the output's
		// magnitude) is amplified. With Winograd in the 16-channel forward
		// passes, PyTorch's second step of the one-step fixture differed by
		// 3.3e-2 of an update (8.3e-5 without), so AlgoAuto keeps the
		// forward of narrow layers on the GEMM; their backward passes, and
		// the 32- and 64-channel forwards, measured no such effect.
		algo := c.algo
		if algo == AlgoAuto && (c.prm.InC < 32 || c.prm.OutC < 32) {
			algo = AlgoGEMM
		}
		c.fwd, err = NewConvAlgo(c.prm, weight, bias, algo)
	}
	if err != nil {
		return err
	}
	for i := range c.phases {
		if err := c.phases[i].setWeights(c, weight); err != nil {
			return err
		}
	}
	return nil
}

// Forward computes out = conv(x) + bias for a batch of n images (x is
// [n, InC, InH, InW], out [n, OutC, OutH, OutW]).
func (c *ConvTrain) Forward(p *Pool, n int, x, out []float32) {
	if c.fwd == nil {
		panic("kernels.ConvTrain.Forward: SetWeights was not called")
	}
	c.ws.fwd = trGrow(c.ws.fwd, c.fwd.WorkspaceSize(n, p.Threads()))
	c.fwd.Forward(p, n, x, nil, false, out, c.ws.fwd)
}

// BackwardData computes dx = conv_transpose(dy, weight) for a batch of n
// (dy is [n, OutC, OutH, OutW], dx [n, InC, InH, InW]) and, if accum is not
// nil, adds accum (shaped like dx; it may be dx itself) to it. weight must
// be the weight last given to SetWeights.
func (c *ConvTrain) BackwardData(p *Pool, n int, weight, dy, accum, dx []float32) {
	prm := c.prm
	inSize := prm.InC * prm.InH * prm.InW
	outSize := prm.OutC * c.oh * c.ow
	trCheck("ConvTrain.BackwardData", "dy", dy, n*outSize)
	trCheck("ConvTrain.BackwardData", "dx", dx, n*inSize)
	trCheck("ConvTrain.BackwardData", "weight", weight, prm.OutC*c.cin*c.taps)
	if accum != nil {
		trCheck("ConvTrain.BackwardData", "accum", accum, n*inSize)
	}
	if n == 0 {
		return
	}
	if c.phases != nil {
		c.backDataPhases(p, n, dy, accum, dx)
		return
	}
	c.ensureThreadScratch(p.Threads())
	j := &c.job
	j.kind, j.n, j.w, j.dy, j.accum, j.dx = jobBackData, n, weight, dy, accum, dx
	j.next.Store(0)
	p.Parallel(p.Threads(), j.fn)
	j.clear()
}

// BackwardFilter computes dw = dL/dW ([OutC, InC/Group, KH, KW]) and, if db
// is not nil, db = dL/dbias ([OutC]) from the layer input x and the output
// gradient dy of a batch of n. dw and db are overwritten.
func (c *ConvTrain) BackwardFilter(p *Pool, n int, x, dy, dw, db []float32) {
	prm := c.prm
	inSize := prm.InC * prm.InH * prm.InW
	outSize := prm.OutC * c.oh * c.ow
	trCheck("ConvTrain.BackwardFilter", "x", x, n*inSize)
	trCheck("ConvTrain.BackwardFilter", "dy", dy, n*outSize)
	trCheck("ConvTrain.BackwardFilter", "dw", dw, prm.OutC*c.cin*c.taps)
	if db != nil {
		trCheck("ConvTrain.BackwardFilter", "db", db, prm.OutC)
	}
	wsize := prm.OutC * c.cin * c.taps
	if n == 0 {
		clear(dw[:wsize])
		if db != nil {
			clear(db[:prm.OutC])
		}
		return
	}
	j := &c.job
	if c.winoGradUsable(activeKernel.Load()) {
		c.backFilterWino(p, n, x, dy, dw)
	} else {
		chunks := min(n, trainChunks)
		c.ws.partial = trGrow(c.ws.partial, chunks*wsize)
		clear(c.ws.partial)
		c.ensureThreadScratch(p.Threads())
		j.kind, j.n, j.x, j.dy, j.chunks = jobBackFilter, n, x, dy, chunks
		j.next.Store(0)
		p.Parallel(p.Threads(), j.fn)

		// dw[g][o][ci][t] = sum over chunks of partial[chunk][g][o][t*cin+ci].
		kg := c.taps * c.cin
		for o := 0; o < prm.OutC; o++ {
			for ci := 0; ci < c.cin; ci++ {
				for t := 0; t < c.taps; t++ {
					var s float32
					for k := 0; k < chunks; k++ {
						s += c.ws.partial[k*wsize+o*kg+t*c.cin+ci]
					}
					dw[(o*c.cin+ci)*c.taps+t] = s
				}
			}
		}
	}
	if db != nil {
		c.ws.dbPart = growFloat64s(c.ws.dbPart, n*prm.OutC)
		j.kind = jobBiasSums
		j.next.Store(0)
		p.Parallel(p.Threads(), j.fn)
		for o := 0; o < prm.OutC; o++ {
			var s float64
			for i := 0; i < n; i++ {
				s += c.ws.dbPart[i*prm.OutC+o]
			}
			db[o] = float32(s)
		}
	}
	j.clear()
}

// ensureThreadScratch sizes the per-thread scratch: an HWC copy of one
// group of one image, an im2row block and a dy block of up to blockImgs
// images.
func (c *ConvTrain) ensureThreadScratch(threads int) {
	prm := c.prm
	ohw := c.oh * c.ow
	nb := c.blockImages()
	per := prm.InH*prm.InW*c.cin + max(nb*ohw, c.blockPixels())*c.taps*c.cin + c.mg*nb*ohw
	// BackwardData's general path needs a dcol buffer (cin*taps x ohw) and
	// the transposed weights of a group.
	per = max(per, c.cin*c.taps*ohw+c.cin*c.taps*c.mg)
	c.perThread = per
	c.ws.thread = trGrow(c.ws.thread, threads*per)
	if len(c.ws.gemm) < threads {
		c.ws.gemm = append(c.ws.gemm, make([]gemmScratch, threads-len(c.ws.gemm))...)
	}
	kg := c.cin * c.taps
	for i := range c.ws.gemm[:threads] {
		g := &c.ws.gemm[i]
		g.reserve(c.mg, kg, max(nb*ohw, c.blockPixels()), 1) // backFilterChunk
		g.reserve(kg, ohw, c.mg, 1)                          // backDataImage
	}
}

// blockImages is how many images BackwardFilter contracts in one GEMM: enough
// that the GEMM depth (images x output pixels) is at least 256.
func (c *ConvTrain) blockImages() int {
	ohw := c.oh * c.ow
	return max(1, min(trainChunksImages, 256/ohw))
}

// trainChunksImages caps BackwardFilter's image block.
const trainChunksImages = 16

func growFloat64s(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

const (
	jobBackData = iota
	jobBackFilter
	jobBackFilterWino
	jobWinoSum
	jobWinoFinish
	jobBiasSums
	jobScatter
)

// convTrainJob carries one ConvTrain call to the pool's threads.
type convTrainJob struct {
	c            *ConvTrain
	kind         int
	n, chunks    int
	w, x, dy, dx []float32
	dw           []float32
	accum        []float32
	phaseOut     []float32
	next         atomic.Int64
	fn           func(lo, hi int) // bound to run once, so Parallel does not allocate
}

func (j *convTrainJob) clear() {
	j.w, j.x, j.dy, j.dx, j.dw, j.accum, j.phaseOut = nil, nil, nil, nil, nil, nil, nil
}

func (j *convTrainJob) run(lo, hi int) {
	c := j.c
	for slot := lo; slot < hi; slot++ {
		sc := c.ws.thread[slot*c.perThread : (slot+1)*c.perThread]
		for {
			u := int(j.next.Add(1)) - 1
			switch j.kind {
			case jobBackData:
				if u >= j.n {
					return
				}
				c.backDataImage(u, j.w, j.dy, j.accum, j.dx, sc, &c.ws.gemm[slot])
			case jobBackFilter:
				if u >= j.chunks {
					return
				}
				c.backFilterChunk(u, j.chunks, j.n, j.x, j.dy, sc, &c.ws.gemm[slot])
			case jobBackFilterWino:
				if u >= j.chunks {
					return
				}
				c.winoGradChunk(u, j.chunks, j.n, j.x, j.dy, sc)
			case jobWinoSum:
				if !c.winoSum(u, j.chunks) {
					return
				}
			case jobWinoFinish:
				if u >= c.prm.OutC {
					return
				}
				c.winoFinish(u, j.dw)
			case jobScatter:
				if u >= j.n*c.prm.InC {
					return
				}
				c.scatterPlane(u, j.n, j.phaseOut, j.accum, j.dx)
			case jobBiasSums:
				if u >= j.n {
					return
				}
				ohw := c.oh * c.ow
				oc := c.prm.OutC
				for o := 0; o < oc; o++ {
					c.ws.dbPart[u*oc+o] = trSum64(j.dy[(u*oc+o)*ohw : (u*oc+o+1)*ohw])
				}
			}
		}
	}
}

// trSum64 adds s in float64, four interleaved accumulators.
func trSum64(s []float32) float64 {
	var a0, a1, a2, a3 float64
	i := 0
	for ; i+4 <= len(s); i += 4 {
		a0 += float64(s[i])
		a1 += float64(s[i+1])
		a2 += float64(s[i+2])
		a3 += float64(s[i+3])
	}
	for ; i < len(s); i++ {
		a0 += float64(s[i])
	}
	return (a0 + a1) + (a2 + a3)
}

// backDataImage computes dx for image img by the general path:
// dcol = W_g^T · dy_g per group, then col2im.
func (c *ConvTrain) backDataImage(img int, w, dy, accum, dx, sc []float32, gs *gemmScratch) {
	prm := c.prm
	inPlane := prm.InH * prm.InW
	ohw := c.oh * c.ow
	kg := c.cin * c.taps
	dxi := dx[img*prm.InC*inPlane : (img+1)*prm.InC*inPlane]
	if accum != nil {
		src := accum[img*prm.InC*inPlane : (img+1)*prm.InC*inPlane]
		if &src[0] != &dxi[0] {
			copy(dxi, src)
		}
	} else {
		clear(dxi)
	}
	dcol := sc[:kg*ohw]
	wt := sc[kg*ohw : kg*ohw+kg*c.mg]
	for g := 0; g < prm.Group; g++ {
		// wt = W_g^T: [kg x mg].
		wg := w[g*c.mg*kg : (g+1)*c.mg*kg]
		for o := 0; o < c.mg; o++ {
			row := wg[o*kg : (o+1)*kg]
			for q, v := range row {
				wt[q*c.mg+o] = v
			}
		}
		dyg := dy[(img*prm.OutC+g*c.mg)*ohw : (img*prm.OutC+(g+1)*c.mg)*ohw]
		gemmWith(gs, nil, false, false, kg, ohw, c.mg, 1, wt, c.mg, dyg, ohw, 0, dcol, ohw)
		c.col2im(dcol, dxi[g*c.cin*inPlane:(g+1)*c.cin*inPlane])
	}
}

// col2im adds dcol ([cin*taps, OH*OW]) into the image planes dx
// ([cin, InH, InW]).
func (c *ConvTrain) col2im(dcol, dx []float32) {
	prm := c.prm
	ohw := c.oh * c.ow
	inPlane := prm.InH * prm.InW
	for ci := 0; ci < c.cin; ci++ {
		plane := dx[ci*inPlane : (ci+1)*inPlane]
		for kh := 0; kh < prm.KH; kh++ {
			for kw := 0; kw < prm.KW; kw++ {
				row := dcol[(ci*c.taps+kh*prm.KW+kw)*ohw:]
				for oh := 0; oh < c.oh; oh++ {
					ih := oh*prm.StrideH - prm.PadTop + kh*prm.DilationH
					if ih < 0 || ih >= prm.InH {
						continue
					}
					src := row[oh*c.ow : (oh+1)*c.ow]
					dst := plane[ih*prm.InW : (ih+1)*prm.InW]
					iw := -prm.PadLeft + kw*prm.DilationW
					for ow := 0; ow < c.ow; ow, iw = ow+1, iw+prm.StrideW {
						if iw >= 0 && iw < prm.InW {
							dst[iw] += src[ow]
						}
					}
				}
			}
		}
	}
}

// backFilterChunk accumulates the weight gradient of the images of chunk k
// into its partial sum: partial[g] += dy_g [mg x P] · rows [P x taps*cin]
// over blocks of P (image, pixel) pairs small enough for the im2row block to
// stay in L2 while the GEMM packs it.
func (c *ConvTrain) backFilterChunk(k, chunks, n int, x, dy, sc []float32, gs *gemmScratch) {
	prm := c.prm
	inPlane := prm.InH * prm.InW
	ohw := c.oh * c.ow
	kg := c.taps * c.cin
	wsize := prm.OutC * kg
	part := c.ws.partial[k*wsize : (k+1)*wsize]
	i0, i1 := trSplit(n, chunks, k)
	nbMax := c.blockImages()
	pix := c.blockPixels()
	hwc := sc[:inPlane*c.cin]
	rows := sc[inPlane*c.cin : inPlane*c.cin+max(nbMax*ohw, pix)*kg]
	dyb := sc[inPlane*c.cin+max(nbMax*ohw, pix)*kg:]
	for g := 0; g < prm.Group; g++ {
		pg := part[g*c.mg*kg : (g+1)*c.mg*kg]
		if nbMax == 1 {
			// Large images: blocks of pix output pixels within an image.
			for img := i0; img < i1; img++ {
				xg := x[(img*prm.InC+g*c.cin)*inPlane : (img*prm.InC+(g+1)*c.cin)*inPlane]
				transposeToHWC(hwc, xg, c.cin, inPlane)
				dyg := dy[(img*prm.OutC+g*c.mg)*ohw : (img*prm.OutC+(g+1)*c.mg)*ohw]
				for p0 := 0; p0 < ohw; p0 += pix {
					p1 := min(p0+pix, ohw)
					c.im2row(rows[:(p1-p0)*kg], hwc, p0, p1)
					gemmWith(gs, nil, false, false, c.mg, kg, p1-p0, 1, dyg[p0:], ohw, rows, kg, 1, pg, kg)
				}
			}
			continue
		}
		// Small images: blocks of whole images.
		for b0 := i0; b0 < i1; b0 += nbMax {
			nb := min(nbMax, i1-b0)
			for b := 0; b < nb; b++ {
				img := b0 + b
				xg := x[(img*prm.InC+g*c.cin)*inPlane : (img*prm.InC+(g+1)*c.cin)*inPlane]
				transposeToHWC(hwc, xg, c.cin, inPlane)
				c.im2row(rows[b*ohw*kg:(b+1)*ohw*kg], hwc, 0, ohw)
			}
			var a []float32
			lda := ohw
			if nb == 1 {
				a = dy[(b0*prm.OutC+g*c.mg)*ohw : (b0*prm.OutC+(g+1)*c.mg)*ohw]
			} else {
				// Gather dy_g of the block as one [mg x nb*ohw] matrix.
				lda = nb * ohw
				a = dyb[:c.mg*lda]
				for o := 0; o < c.mg; o++ {
					for b := 0; b < nb; b++ {
						src := dy[((b0+b)*prm.OutC+g*c.mg+o)*ohw:]
						copy(a[o*lda+b*ohw:o*lda+(b+1)*ohw], src[:ohw])
					}
				}
			}
			gemmWith(gs, nil, false, false, c.mg, kg, nb*ohw, 1, a, lda, rows, kg, 1, pg, kg)
		}
	}
}

// blockPixels is the number of output pixels of one BackwardFilter GEMM
// when images are large: about 256 KiB of im2row rows (L2-resident).
func (c *ConvTrain) blockPixels() int {
	return max(16, min(c.oh*c.ow, (64<<10)/(c.taps*c.cin)))
}

// transposeToHWC writes dst[p*c+ch] = src[ch*plane+p] for c planes, in
// 8x8 blocks.
func transposeToHWC(dst, src []float32, c, plane int) {
	p8, c8 := plane/8*8, c/8*8
	for p0 := 0; p0 < p8; p0 += 8 {
		for ch := 0; ch < c8; ch += 8 {
			var b [8][8]float32
			for i := range b {
				b[i] = *(*[8]float32)(src[(ch+i)*plane+p0:])
			}
			for j := 0; j < 8; j++ {
				d := (*[8]float32)(dst[(p0+j)*c+ch:])
				d[0], d[1], d[2], d[3] = b[0][j], b[1][j], b[2][j], b[3][j]
				d[4], d[5], d[6], d[7] = b[4][j], b[5][j], b[6][j], b[7][j]
			}
		}
		for ch := c8; ch < c; ch++ {
			s := src[ch*plane+p0 : ch*plane+p0+8]
			for j, v := range s {
				dst[(p0+j)*c+ch] = v
			}
		}
	}
	for p := p8; p < plane; p++ {
		for ch := 0; ch < c; ch++ {
			dst[p*c+ch] = src[ch*plane+p]
		}
	}
}

// im2row writes rows[p-p0][t*cin+ci] for output pixels p in [p0, p1)
// (t = kh*KW+kw) from one image's HWC input: the input pixel under tap t of
// output pixel p, or 0 in the padding. Runs of taps that are adjacent in
// the input are copied at once.
func (c *ConvTrain) im2row(rows, hwc []float32, p0, p1 int) {
	prm := c.prm
	cin := c.cin
	kg := c.taps * cin
	kwRun := prm.KW * cin
	for p := p0; p < p1; p++ {
		oh, ow := p/c.ow, p%c.ow
		{
			row := rows[(p-p0)*kg : (p-p0+1)*kg]
			iw0 := ow*prm.StrideW - prm.PadLeft
			for kh := 0; kh < prm.KH; kh++ {
				seg := row[kh*kwRun : (kh+1)*kwRun]
				ih := oh*prm.StrideH - prm.PadTop + kh*prm.DilationH
				if ih < 0 || ih >= prm.InH {
					clear(seg)
					continue
				}
				base := ih * prm.InW
				if prm.DilationW == 1 && iw0 >= 0 && iw0+prm.KW <= prm.InW {
					src := hwc[(base+iw0)*cin : (base+iw0+prm.KW)*cin]
					if len(src) < 32 {
						// A call to memmove costs more than a short loop.
						for i, v := range src {
							seg[i] = v
						}
					} else {
						copy(seg, src)
					}
					continue
				}
				for kw := 0; kw < prm.KW; kw++ {
					iw := iw0 + kw*prm.DilationW
					d := seg[kw*cin : (kw+1)*cin]
					if iw < 0 || iw >= prm.InW {
						clear(d)
					} else {
						copy(d, hwc[(base+iw)*cin:(base+iw+1)*cin])
					}
				}
			}
		}
	}
}

// convPhase is one transposed convolution of BackwardData: for stride s,
// the input pixels (ih, iw) with ih%sh == ph and iw%sw == pw receive
// gradient from the kernel taps kh = rh + sh*j (and kw likewise), which
// reads dy as a plain cross-correlation with the taps reversed, padded by
// padT/padB (rows) and padL/padR (columns). Its output is the a x b grid
// of those pixels.
type convPhase struct {
	ph, pw           int
	a, b             int // output rows and columns of the phase
	rh, rw           int // first tap of each axis
	jh, jw           int // taps per axis (0: the phase gets no gradient)
	prm              ConvParams
	w                []float32
	conv             *Conv
	strideH, strideW int
	dxH, dxW         int
}

// phaseAxis computes one axis of a phase; ok is false when the transposed
// convolution would need negative padding.
func phaseAxis(in, out, k, s, pad, ph int) (a, r, j, padA, padB int, ok bool) {
	a = (in - ph + s - 1) / s
	if a <= 0 {
		return 0, 0, 0, 0, 0, true
	}
	r = ((ph+pad)%s + s) % s
	if r < k {
		j = (k - r + s - 1) / s
	}
	if j == 0 {
		return a, r, 0, 0, 0, true
	}
	q := (ph + pad - r) / s
	padA = j - 1 - q
	padB = a - out - padA + j - 1
	return a, r, j, padA, padB, padA >= 0 && padB >= 0
}

// makePhases plans BackwardData as transposed convolutions, or returns nil
// when the shape needs the GEMM path (dilation, or padding the transposed
// convolution cannot express).
func makePhases(prm ConvParams, oh, ow int) []convPhase {
	if prm.DilationH != 1 || prm.DilationW != 1 {
		return nil
	}
	var ps []convPhase
	for ph := 0; ph < prm.StrideH; ph++ {
		for pw := 0; pw < prm.StrideW; pw++ {
			a, rh, jh, pt, pb, ok1 := phaseAxis(prm.InH, oh, prm.KH, prm.StrideH, prm.PadTop, ph)
			b, rw, jw, pl, pr, ok2 := phaseAxis(prm.InW, ow, prm.KW, prm.StrideW, prm.PadLeft, pw)
			if !ok1 || !ok2 {
				return nil
			}
			if a == 0 || b == 0 {
				continue
			}
			cp := convPhase{ph: ph, pw: pw, a: a, b: b, rh: rh, rw: rw, jh: jh, jw: jw,
				strideH: prm.StrideH, strideW: prm.StrideW, dxH: prm.InH, dxW: prm.InW}
			if jh > 0 && jw > 0 {
				cp.prm = ConvParams{InC: prm.OutC, InH: oh, InW: ow, OutC: prm.InC, KH: jh, KW: jw,
					PadTop: pt, PadBottom: pb, PadLeft: pl, PadRight: pr, Group: prm.Group}
				if cp.prm.Validate() != nil || cp.prm.OutH() != a || cp.prm.OutW() != b {
					return nil
				}
				cp.w = make([]float32, prm.InC*(prm.OutC/prm.Group)*jh*jw)
			} else {
				cp.jh, cp.jw = 0, 0
			}
			ps = append(ps, cp)
		}
	}
	return ps
}

// setWeights builds the phase's convolution from the forward weights:
// w'[g*cin+ci][o][jh'][jw'] = W[g*mg+o][ci][rh+sh*(JH-1-jh')][rw+sw*(JW-1-jw')].
func (cp *convPhase) setWeights(c *ConvTrain, weight []float32) error {
	if cp.jh == 0 {
		return nil
	}
	prm := c.prm
	cin, mg := c.cin, c.mg
	for g := 0; g < prm.Group; g++ {
		for ci := 0; ci < cin; ci++ {
			for o := 0; o < mg; o++ {
				src := weight[((g*mg+o)*cin+ci)*c.taps:]
				dst := cp.w[((g*cin+ci)*mg+o)*cp.jh*cp.jw:]
				for a := 0; a < cp.jh; a++ {
					kh := cp.rh + prm.StrideH*(cp.jh-1-a)
					for b := 0; b < cp.jw; b++ {
						kw := cp.rw + prm.StrideW*(cp.jw-1-b)
						dst[a*cp.jw+b] = src[kh*prm.KW+kw]
					}
				}
			}
		}
	}
	algo := c.algo
	if algo == AlgoWinograd && !trWinograd(trConvNorm(cp.prm)) {
		algo = AlgoAuto
	}
	if cp.conv != nil {
		return cp.conv.Repack(cp.w, nil)
	}
	var err error
	cp.conv, err = NewConvAlgo(cp.prm, cp.w, nil, algo)
	return err
}

// backDataPhases runs BackwardData as transposed convolutions: each phase
// into its part of phaseOut, then one pass interleaves them into dx.
func (c *ConvTrain) backDataPhases(p *Pool, n int, dy, accum, dx []float32) {
	if c.direct {
		cp := &c.phases[0]
		if cp.conv == nil {
			panic("kernels.ConvTrain.BackwardData: SetWeights was not called")
		}
		c.ws.bwd = trGrow(c.ws.bwd, cp.conv.WorkspaceSize(n, p.Threads()))
		cp.conv.Forward(p, n, dy, accum, false, dx, c.ws.bwd)
		return
	}
	prm := c.prm
	total := 0
	for i := range c.phases {
		total += n * prm.InC * c.phases[i].a * c.phases[i].b
	}
	c.ws.phaseOut = trGrow(c.ws.phaseOut, total)
	off := 0
	for i := range c.phases {
		cp := &c.phases[i]
		size := n * prm.InC * cp.a * cp.b
		if cp.jh > 0 {
			if cp.conv == nil {
				panic("kernels.ConvTrain.BackwardData: SetWeights was not called")
			}
			c.ws.bwd = trGrow(c.ws.bwd, cp.conv.WorkspaceSize(n, p.Threads()))
			cp.conv.Forward(p, n, dy, nil, false, c.ws.phaseOut[off:off+size], c.ws.bwd)
		}
		off += size
	}
	j := &c.job
	j.kind, j.n, j.phaseOut, j.accum, j.dx = jobScatter, n, c.ws.phaseOut, accum, dx
	j.next.Store(0)
	p.Parallel(p.Threads(), j.fn)
	j.clear()
}

// scatterPlane writes plane pl (image*InC + channel) of dx from the phase
// outputs: dx = accum (or 0) + the output of the pixel's phase (0 for a
// phase without taps).
func (c *ConvTrain) scatterPlane(pl, n int, out, accum, dx []float32) {
	prm := c.prm
	plane := prm.InH * prm.InW
	d := dx[pl*plane : (pl+1)*plane]
	if accum != nil {
		if a := accum[pl*plane : (pl+1)*plane]; &a[0] != &d[0] {
			copy(d, a)
		}
	} else {
		clear(d)
	}
	off := 0
	for i := range c.phases {
		cp := &c.phases[i]
		size := cp.a * cp.b
		if cp.jh > 0 {
			o := out[off+pl*size : off+(pl+1)*size]
			for a := 0; a < cp.a; a++ {
				row := d[(cp.ph+cp.strideH*a)*cp.dxW:]
				src := o[a*cp.b : (a+1)*cp.b]
				i := cp.pw
				for _, v := range src {
					row[i] += v
					i += cp.strideW
				}
			}
		}
		off += n * prm.InC * size
	}
}
