package kernels

import (
	"fmt"
	"math"
	"sync/atomic"
)

// Shortcut is a residual added to a BatchNorm's output before its ReLU
// (the end of a post-activation residual block). X is nil for none, else
// an [n, C, H, W] tensor whose channel ch-Before, subsampled by Stride
// (X[.., h*Stride, w*Stride]), is added to output channel ch; output
// channels outside [Before, Before+C) get nothing (the option-A shortcut:
// subsample, then zero-pad channels). The identity is C = the BatchNorm's
// channels, H and W its size, Stride 1, Before 0.
type Shortcut struct {
	X       []float32
	C, H, W int
	Stride  int
	Before  int
}

// BatchNormTrain is training-mode batch normalisation over [N, C, H, W]:
//
//	Forward   mean and biased variance of each channel over N, H, W
//	          (float64 sums), then out = act(x·scale + shift + shortcut)
//	          with scale = gamma/sqrt(var+eps), shift = beta - mean·scale;
//	Apply     the same affine step with a given scale and shift (eval
//	          mode, from running statistics);
//	Backward  the gradients of gamma, beta, x and the shortcut.
//
// The statistics of the last Forward are kept in Mean, Var and InvStd for
// Backward (and for updating running statistics). A BatchNormTrain owns its
// scratch memory and is not safe for concurrent use.
type BatchNormTrain struct {
	N, C, H, W int
	Eps        float32

	Mean, Var, InvStd []float32 // of the last Forward; Var is the biased batch variance
	Scale, Shift      []float32 // of the last Forward or Apply

	part []float64 // 2 per plane
	k    []float32 // Backward: 3 per channel (dx = k0*dy' + k1*x + k2)
	job  bnJob

	// With a ReLU, apply records out > 0 as bits (wpp words a plane), so
	// that Backward reads 1 bit instead of 32 per element; maskOf is the
	// output they describe.
	mask   []uint64
	wpp    int
	maskOf *float32
}

// NewBatchNormTrain returns a BatchNormTrain for [n, c, h, w] tensors.
func NewBatchNormTrain(n, c, h, w int, eps float32) (*BatchNormTrain, error) {
	if n < 1 || c < 1 || h < 1 || w < 1 {
		return nil, fmt.Errorf("kernels: BatchNormTrain needs positive sizes, got %dx%dx%dx%d", n, c, h, w)
	}
	if n*h*w < 2 {
		return nil, fmt.Errorf("kernels: BatchNormTrain needs more than one value per channel (batch %d of %dx%d)", n, h, w)
	}
	b := &BatchNormTrain{N: n, C: c, H: h, W: w, Eps: eps,
		Mean: make([]float32, c), Var: make([]float32, c), InvStd: make([]float32, c),
		Scale: make([]float32, c), Shift: make([]float32, c),
		part: make([]float64, 2*n*c), k: make([]float32, 3*c)}
	b.job.b = b
	b.job.fn = b.job.run
	return b, nil
}

func (b *BatchNormTrain) size() int { return b.N * b.C * b.H * b.W }

func (b *BatchNormTrain) checkShortcut(sc Shortcut) {
	if sc.X == nil {
		return
	}
	s := max(sc.Stride, 1)
	if sc.Before < 0 || sc.Before+sc.C > b.C || (b.H-1)*s >= sc.H || (b.W-1)*s >= sc.W {
		panic(fmt.Sprintf("kernels.BatchNormTrain: shortcut %dx%dx%d (stride %d, %d channels before) does not fit the output %dx%dx%d",
			sc.C, sc.H, sc.W, s, sc.Before, b.C, b.H, b.W))
	}
	trCheck("BatchNormTrain", "shortcut", sc.X, b.N*sc.C*sc.H*sc.W)
}

// Forward normalises x with its batch statistics: out = act(x·scale +
// shift + shortcut), act = ReLU if relu. out may not alias x or the
// shortcut.
func (b *BatchNormTrain) Forward(p *Pool, x, gamma, beta []float32, sc Shortcut, relu bool, out []float32) {
	trCheck("BatchNormTrain.Forward", "x", x, b.size())
	trCheck("BatchNormTrain.Forward", "gamma", gamma, b.C)
	trCheck("BatchNormTrain.Forward", "beta", beta, b.C)
	b.checkShortcut(sc)
	j := &b.job
	j.kind, j.x = bnStats, x
	j.runPlanes(p)
	m := float64(b.N * b.H * b.W)
	for ch := 0; ch < b.C; ch++ {
		var s, s2 float64
		for i := 0; i < b.N; i++ {
			s += b.part[2*(i*b.C+ch)]
			s2 += b.part[2*(i*b.C+ch)+1]
		}
		mean := s / m
		v := math.Max(s2/m-mean*mean, 0)
		inv := 1 / math.Sqrt(v+float64(b.Eps))
		b.Mean[ch], b.Var[ch], b.InvStd[ch] = float32(mean), float32(v), float32(inv)
		sc := float64(gamma[ch]) * inv
		b.Scale[ch] = float32(sc)
		b.Shift[ch] = float32(float64(beta[ch]) - mean*sc)
	}
	b.apply(p, x, sc, relu, out)
}

// Apply computes out = act(x·scale + shift + shortcut) with the given
// per-channel scale and shift (copied into Scale and Shift).
func (b *BatchNormTrain) Apply(p *Pool, x, scale, shift []float32, sc Shortcut, relu bool, out []float32) {
	trCheck("BatchNormTrain.Apply", "x", x, b.size())
	trCheck("BatchNormTrain.Apply", "scale", scale, b.C)
	trCheck("BatchNormTrain.Apply", "shift", shift, b.C)
	b.checkShortcut(sc)
	copy(b.Scale, scale[:b.C])
	copy(b.Shift, shift[:b.C])
	b.apply(p, x, sc, relu, out)
}

func (b *BatchNormTrain) apply(p *Pool, x []float32, sc Shortcut, relu bool, out []float32) {
	trCheck("BatchNormTrain", "out", out, b.size())
	b.maskOf = nil
	if relu {
		b.wpp = (b.H*b.W + 63) / 64
		if len(b.mask) != b.N*b.C*b.wpp {
			b.mask = make([]uint64, b.N*b.C*b.wpp)
		}
	}
	j := &b.job
	j.kind, j.x, j.sc, j.relu, j.out = bnApply, x, sc, relu, out
	j.runPlanes(p)
	j.clear()
	if relu {
		b.maskOf = &out[0]
	}
}

// Backward computes, from the input x and output out of the last Forward
// and the output gradient dy: dy' = dy masked by out > 0 if relu (else
// dy); dgamma and dbeta; dx = dL/dx (plus accum, if not nil; accum may be
// dx); and, if dsc.X is not nil, the shortcut's gradient into dsc.X
// (shaped like the Forward shortcut: dy' at the subsampled positions of
// its channels, 0 elsewhere). out may be nil when relu is false.
func (b *BatchNormTrain) Backward(p *Pool, x, gamma, out, dy []float32, relu bool, dgamma, dbeta, accum, dx []float32, dsc Shortcut) {
	n := b.size()
	trCheck("BatchNormTrain.Backward", "x", x, n)
	trCheck("BatchNormTrain.Backward", "dy", dy, n)
	trCheck("BatchNormTrain.Backward", "dx", dx, n)
	trCheck("BatchNormTrain.Backward", "gamma", gamma, b.C)
	trCheck("BatchNormTrain.Backward", "dgamma", dgamma, b.C)
	trCheck("BatchNormTrain.Backward", "dbeta", dbeta, b.C)
	if relu {
		trCheck("BatchNormTrain.Backward", "out", out, n)
	}
	if accum != nil {
		trCheck("BatchNormTrain.Backward", "accum", accum, n)
	}
	b.checkShortcut(dsc)
	j := &b.job
	j.kind, j.x, j.out, j.dy, j.dx, j.relu = bnGradSums, x, out, dy, dx, relu
	// With a ReLU, the sums pass stores the masked gradient dy' for the
	// second pass: in the shortcut's gradient when that is dy' itself (an
	// identity shortcut), else in dx unless dx is also the accumulator.
	alias := func(a, b []float32) bool { return a != nil && b != nil && &a[0] == &b[0] }
	j.masked, j.maskedIsSC = nil, false
	j.bits = relu && b.maskOf != nil && &out[0] == b.maskOf
	identity := dsc.X != nil && max(dsc.Stride, 1) == 1 && dsc.C == b.C && dsc.Before == 0 &&
		!alias(dsc.X, dy) && !alias(dsc.X, dx) && !alias(dsc.X, accum)
	switch {
	case j.bits:
		// The ReLU mask comes from the bits; an identity shortcut's
		// gradient (dy' itself) is written by the sums pass and read back.
		if identity {
			j.masked, j.maskedIsSC = dsc.X, true
		}
	case relu:
		switch {
		case identity:
			j.masked, j.maskedIsSC = dsc.X, true
		case !alias(accum, dx) && !alias(dy, dx):
			j.masked = dx
		}
	}
	j.runPlanes(p)
	m := float64(b.N * b.H * b.W)
	for ch := 0; ch < b.C; ch++ {
		var sdy, sdyx float64
		for i := 0; i < b.N; i++ {
			sdy += b.part[2*(i*b.C+ch)]
			sdyx += b.part[2*(i*b.C+ch)+1]
		}
		mean, inv := float64(b.Mean[ch]), float64(b.InvStd[ch])
		db := sdy
		dg := (sdyx - mean*sdy) * inv // sum dy'·x̂
		dgamma[ch], dbeta[ch] = float32(dg), float32(db)
		// dx = g·inv·(dy' - db/m - x̂·dg/m) = k0·dy' + k1·x + k2.
		a := float64(gamma[ch]) * inv
		k1 := -a * inv * dg / m
		b.k[3*ch] = float32(a)
		b.k[3*ch+1] = float32(k1)
		b.k[3*ch+2] = float32(-a*db/m - k1*mean)
	}
	if dsc.X != nil && (dsc.Stride > 1 || dsc.C != b.C) {
		// Positions the shortcut does not read get no gradient.
		clear(dsc.X[:b.N*dsc.C*dsc.H*dsc.W])
	}
	j.kind, j.accum, j.dx, j.sc = bnGradApply, accum, dx, dsc
	j.runPlanes(p)
	j.clear()
}

const (
	bnStats = iota
	bnApply
	bnGradSums
	bnGradApply
)

// bnJob carries one BatchNormTrain pass to the pool's threads; a unit is
// one (image, channel) plane.
type bnJob struct {
	b                     *BatchNormTrain
	kind                  int
	x, out, dy, dx, accum []float32
	sc                    Shortcut
	relu                  bool
	masked                []float32 // where the sums pass stores dy', or nil
	maskedIsSC            bool      // masked is the shortcut gradient
	bits                  bool      // the ReLU mask comes from b.mask
	next                  atomic.Int64
	fn                    func(lo, hi int) // bound to run once
}

func (j *bnJob) clear() {
	j.x, j.out, j.dy, j.dx, j.accum, j.sc, j.masked, j.bits = nil, nil, nil, nil, nil, Shortcut{}, nil, false
}

func (j *bnJob) runPlanes(p *Pool) {
	j.next.Store(0)
	if j.b.size() < trParallelMin {
		p = nil
	}
	p.Parallel(p.Threads(), j.fn)
}

// bnChunk is about how many elements a thread claims at a time.
const bnChunk = 4096

func (j *bnJob) run(lo, hi int) {
	b := j.b
	planes := b.N * b.C
	hw := b.H * b.W
	per := max(1, bnChunk/hw)
	for {
		u0 := int(j.next.Add(int64(per))) - per
		if u0 >= planes {
			return
		}
		for u := u0; u < min(u0+per, planes); u++ {
			j.plane(u)
		}
	}
}

// plane runs the job's pass on plane u (image u/C, channel u%C).
func (j *bnJob) plane(u int) {
	b := j.b
	hw := b.H * b.W
	ch := u % b.C
	x := j.x[u*hw : (u+1)*hw]
	switch j.kind {
	case bnStats:
		b.part[2*u], b.part[2*u+1] = sumAndSquares(x)
	case bnApply:
		out := j.out[u*hw : (u+1)*hw]
		scale, shift := b.Scale[ch], b.Shift[ch]
		res := j.shortcutPlane(u)
		if res == nil || j.sc.Stride <= 1 {
			affinePlane(out, x, res, scale, shift, j.relu)
		} else {
			s := j.sc.Stride
			for h := 0; h < b.H; h++ {
				o := out[h*b.W : (h+1)*b.W]
				xr := x[h*b.W : (h+1)*b.W]
				rr := res[h*s*j.sc.W:]
				for w := range o {
					v := xr[w]*scale + shift + rr[w*s]
					if j.relu {
						v = max(v, 0)
					}
					o[w] = v
				}
			}
		}
		if j.relu {
			writeMask(b.mask[u*b.wpp:(u+1)*b.wpp], out)
		}
	case bnGradSums:
		dy := j.dy[u*hw : (u+1)*hw]
		if j.bits {
			var scratch []float32
			if j.masked != nil {
				scratch = j.masked[u*hw : (u+1)*hw]
			}
			b.part[2*u], b.part[2*u+1] = maskedSums(dy, x, b.mask[u*b.wpp:(u+1)*b.wpp], scratch)
			return
		}
		var out, scratch []float32
		if j.relu {
			out = j.out[u*hw : (u+1)*hw]
			if j.masked != nil {
				scratch = j.masked[u*hw : (u+1)*hw]
			}
		}
		b.part[2*u], b.part[2*u+1] = gradSums(dy, x, out, scratch)
	case bnGradApply:
		dy := j.dy[u*hw : (u+1)*hw]
		dx := j.dx[u*hw : (u+1)*hw]
		var out, acc []float32
		if j.accum != nil {
			acc = j.accum[u*hw : (u+1)*hw]
		}
		k0, k1, k2 := b.k[3*ch], b.k[3*ch+1], b.k[3*ch+2]
		if j.bits && j.masked == nil {
			words := b.mask[u*b.wpp : (u+1)*b.wpp]
			gradApplyBits(dx, dy, x, words, acc, k0, k1, k2)
			if res := j.shortcutPlane(u); res != nil {
				j.shortcutGradBits(res, dy, words)
			}
			return
		}
		if j.masked != nil {
			dy = j.masked[u*hw : (u+1)*hw] // dy', masked by the sums pass
		} else if j.relu {
			out = j.out[u*hw : (u+1)*hw]
		}
		res := j.shortcutPlane(u)
		switch {
		case j.maskedIsSC:
			res = nil // the sums pass wrote it
		case res != nil && j.masked != nil:
			// dx (holding dy') is about to be overwritten.
			j.shortcutGrad(res, dy, nil)
			res = nil
		}
		gradApplyPlane(dx, dy, x, out, acc, k0, k1, k2)
		if res != nil {
			j.shortcutGrad(res, dy, out)
		}
	}
}

// shortcutGradBits is shortcutGrad with the ReLU mask from bits.
func (j *bnJob) shortcutGradBits(res, dy []float32, words []uint64) {
	b := j.b
	s := max(j.sc.Stride, 1)
	for h := 0; h < b.H; h++ {
		rr := res[h*s*j.sc.W:]
		for w := 0; w < b.W; w++ {
			i := h*b.W + w
			rr[w*s] = maskBit(dy[i], words[i>>6], uint(i&63))
		}
	}
}

// shortcutGrad writes the shortcut gradient of one plane: res[h*s, w*s] =
// dy' (dy masked by out > 0 when out is not nil).
func (j *bnJob) shortcutGrad(res, dy, out []float32) {
	b := j.b
	s := max(j.sc.Stride, 1)
	if s == 1 && out == nil {
		copy(res[:len(dy)], dy)
		return
	}
	for h := 0; h < b.H; h++ {
		g := dy[h*b.W : (h+1)*b.W]
		rr := res[h*s*j.sc.W:]
		if out == nil {
			for w, v := range g {
				rr[w*s] = v
			}
			continue
		}
		o := out[h*b.W : (h+1)*b.W]
		for w, v := range g {
			rr[w*s] = reluMask(v, o[w])
		}
	}
}

// shortcutPlane returns the shortcut plane feeding output plane u, or nil.
func (j *bnJob) shortcutPlane(u int) []float32 {
	sc := &j.sc
	if sc.X == nil {
		return nil
	}
	b := j.b
	img, ch := u/b.C, u%b.C
	c := ch - sc.Before
	if c < 0 || c >= sc.C {
		return nil
	}
	plane := sc.H * sc.W
	return sc.X[(img*sc.C+c)*plane : (img*sc.C+c+1)*plane]
}

// Per-plane sums are float32 over blocks of sumBlock elements (four
// independent accumulators, so the loop is not bound by add latency),
// added into float64 totals: the error is that of a 64-term float32 sum.
const sumBlock = 256

// sumAndSquaresGo returns the sums of x and x².
func sumAndSquaresGo(x []float32) (s, s2 float64) {
	for len(x) > 0 {
		blk := x[:min(sumBlock, len(x))]
		x = x[len(blk):]
		var a0, a1, a2, a3, q0, q1, q2, q3 float32
		i := 0
		for ; i+4 <= len(blk); i += 4 {
			v := (*[4]float32)(blk[i:])
			v0, v1, v2, v3 := v[0], v[1], v[2], v[3]
			a0 += v0
			a1 += v1
			a2 += v2
			a3 += v3
			q0 += v0 * v0
			q1 += v1 * v1
			q2 += v2 * v2
			q3 += v3 * v3
		}
		for ; i < len(blk); i++ {
			a0 += blk[i]
			q0 += blk[i] * blk[i]
		}
		s += float64((a0 + a1) + (a2 + a3))
		s2 += float64((q0 + q1) + (q2 + q3))
	}
	return s, s2
}

// dotSums returns the sums of g and g·x.
func dotSums(g, x []float32) (s, sx float64) {
	x = x[:len(g)]
	for len(g) > 0 {
		n := min(sumBlock, len(g))
		blk, xb := g[:n], x[:n]
		g, x = g[n:], x[n:]
		var a0, a1, a2, a3, d0, d1, d2, d3 float32
		i := 0
		for ; i+4 <= n; i += 4 {
			v := (*[4]float32)(blk[i:])
			w := (*[4]float32)(xb[i:])
			v0, v1, v2, v3 := v[0], v[1], v[2], v[3]
			a0 += v0
			a1 += v1
			a2 += v2
			a3 += v3
			d0 += v0 * w[0]
			d1 += v1 * w[1]
			d2 += v2 * w[2]
			d3 += v3 * w[3]
		}
		for ; i < n; i++ {
			a0 += blk[i]
			d0 += blk[i] * xb[i]
		}
		s += float64((a0 + a1) + (a2 + a3))
		sx += float64((d0 + d1) + (d2 + d3))
	}
	return s, sx
}

// reluMask returns g if y > 0, else 0, without a branch (ReLU outputs are
// random in sign, and a mispredicted branch costs more than the rest of
// the loop): y > 0 exactly when its bits are in [1, 0x7F800000].
func reluMask(g, y float32) float32 {
	d := int64(math.Float32bits(y)) - 1 // in [0, 0x7F800000) exactly when y > 0
	m := uint32(((d - 0x7F800000) &^ d) >> 63)
	return math.Float32frombits(math.Float32bits(g) & m)
}

// gradSums returns the sums of dy' and dy'·x, where dy' is dy masked by
// out > 0 when out is not nil; dy' is stored in scratch if it is not nil.
func gradSums(dy, x, out, scratch []float32) (s, sx float64) {
	if out == nil {
		return dotSums(dy, x)
	}
	out = out[:len(dy)]
	if scratch == nil {
		var s0, t0 float64
		x = x[:len(dy)]
		for i, g := range dy {
			v := float64(reluMask(g, out[i]))
			s0 += v
			t0 += v * float64(x[i])
		}
		return s0, t0
	}
	scratch = scratch[:len(dy)]
	for i, g := range dy {
		scratch[i] = reluMask(g, out[i])
	}
	return dotSums(scratch, x)
}

// writeMaskGo sets bit i of words (bit i%64 of word i/64) when out[i] > 0.
// out is a ReLU output (+0, positive, +Inf or NaN), so (bits+0x7FFFFFFF)>>31
// is 0 for +0 and 1 otherwise (NaN counts as positive, which only matters
// for a step that fails on its non-finite loss anyway).
func writeMaskGo(words []uint64, out []float32) {
	pos := func(v float32) uint32 { return (math.Float32bits(v) + 0x7FFFFFFF) >> 31 }
	for k := range words {
		blk := out[k*64 : min((k+1)*64, len(out))]
		var w uint64
		i := 0
		for ; i+8 <= len(blk); i += 8 {
			v := (*[8]float32)(blk[i:])
			b := pos(v[0]) | pos(v[1])<<1 | pos(v[2])<<2 | pos(v[3])<<3 |
				pos(v[4])<<4 | pos(v[5])<<5 | pos(v[6])<<6 | pos(v[7])<<7
			w |= uint64(b) << uint(i)
		}
		for ; i < len(blk); i++ {
			w |= uint64(pos(blk[i])) << uint(i)
		}
		words[k] = w
	}
}

// maskBit returns g if bit k of w is set, else 0, without a branch.
func maskBit(g float32, w uint64, k uint) float32 {
	m := -uint32((w >> k) & 1)
	return math.Float32frombits(math.Float32bits(g) & m)
}

// maskedSumsGo returns the sums of dy' and dy'·x, dy' being dy masked by the
// bits; dy' is stored in scratch if it is not nil.
func maskedSumsGo(dy, x []float32, words []uint64, scratch []float32) (s, sx float64) {
	n := len(dy)
	x = x[:n]
	for k, w := range words {
		lo, hi := k*64, min((k+1)*64, n)
		g, xb := dy[lo:hi], x[lo:hi]
		var a0, a1, d0, d1 float32
		i := 0
		for ; i+2 <= len(g); i += 2 {
			v0 := maskBit(g[i], w, uint(i))
			v1 := maskBit(g[i+1], w, uint(i+1))
			a0 += v0
			a1 += v1
			d0 += v0 * xb[i]
			d1 += v1 * xb[i+1]
			if scratch != nil {
				scratch[lo+i], scratch[lo+i+1] = v0, v1
			}
		}
		for ; i < len(g); i++ {
			v := maskBit(g[i], w, uint(i))
			a0 += v
			d0 += v * xb[i]
			if scratch != nil {
				scratch[lo+i] = v
			}
		}
		s += float64(a0 + a1)
		sx += float64(d0 + d1)
	}
	return s, sx
}

// gradApplyBitsGo computes dx = k0·dy' + k1·x + k2 (+ acc), dy' being dy
// masked by the bits.
func gradApplyBitsGo(dx, dy, x []float32, words []uint64, acc []float32, k0, k1, k2 float32) {
	n := len(dx)
	dy, x = dy[:n], x[:n]
	for k, w := range words {
		lo, hi := k*64, min((k+1)*64, n)
		d, g, xb := dx[lo:hi], dy[lo:hi], x[lo:hi]
		if acc != nil {
			a := acc[lo:hi]
			for i := range d {
				d[i] = k0*maskBit(g[i], w, uint(i)) + k1*xb[i] + k2 + a[i]
			}
			continue
		}
		for i := range d {
			d[i] = k0*maskBit(g[i], w, uint(i)) + k1*xb[i] + k2
		}
	}
}

// gradApplyPlane computes dx = k0·dy' + k1·x + k2 (+ acc), dy' being dy
// masked by out > 0 when out is not nil.
func gradApplyPlane(dx, dy, x, out, acc []float32, k0, k1, k2 float32) {
	dy = dy[:len(dx)]
	x = x[:len(dx)]
	switch {
	case out == nil && acc == nil:
		for i := range dx {
			dx[i] = k0*dy[i] + k1*x[i] + k2
		}
	case out == nil:
		acc = acc[:len(dx)]
		for i := range dx {
			dx[i] = k0*dy[i] + k1*x[i] + k2 + acc[i]
		}
	case acc == nil:
		out = out[:len(dx)]
		for i := range dx {
			dx[i] = k0*reluMask(dy[i], out[i]) + k1*x[i] + k2
		}
	default:
		out = out[:len(dx)]
		acc = acc[:len(dx)]
		for i := range dx {
			dx[i] = k0*reluMask(dy[i], out[i]) + k1*x[i] + k2 + acc[i]
		}
	}
}

// affinePlaneGo computes out = act(x·scale + shift + res) (res may be nil).
// ReLU keeps NaN, as ReLU does.
func affinePlaneGo(out, x, res []float32, scale, shift float32, relu bool) {
	x = x[:len(out)]
	switch {
	case res != nil && relu:
		res = res[:len(out)]
		for i := range out {
			out[i] = max(x[i]*scale+shift+res[i], 0)
		}
	case res != nil:
		res = res[:len(out)]
		for i := range out {
			out[i] = x[i]*scale + shift + res[i]
		}
	case relu:
		for i := range out {
			out[i] = max(x[i]*scale+shift, 0)
		}
	default:
		for i := range out {
			out[i] = x[i]*scale + shift
		}
	}
}
