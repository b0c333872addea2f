package augment

import "math/bits"

// Rand is the pipeline's random number generator: SplitMix64 (Steele, Lea
// and Flood, 2014), 64 bits of state, one add and a mixing function a
// number. It is defined here rather than taken from math/rand so that a
// seed gives the same batches with every Go version, which a checkpoint
// resumed months later relies on. The zero value is a valid generator; a
// Rand is not safe for concurrent use.
type Rand struct{ state uint64 }

// NewRand returns a generator whose stream is a function of key alone.
func NewRand(key uint64) Rand { return Rand{state: key} }

const golden64 = 0x9e3779b97f4a7c15 // 2^64 / φ, SplitMix64's increment

// mix64 is SplitMix64's output function (a bijection of uint64).
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Uint64 returns 64 random bits.
func (r *Rand) Uint64() uint64 {
	r.state += golden64
	return mix64(r.state)
}

// Float64 returns a number uniform in [0, 1), a multiple of 2^-53.
func (r *Rand) Float64() float64 { return float64(r.Uint64()>>11) * 0x1p-53 }

// Uniform returns a number uniform in [lo, hi), computed as numpy's
// uniform does: lo + (hi-lo)*u.
func (r *Rand) Uniform(lo, hi float64) float64 {
	return lo + float64((hi-lo)*r.Float64()) // float64(): no FMA
}

// IntN returns an integer uniform in [0, n) without bias (Lemire's
// multiply-and-reject). It panics if n <= 0.
func (r *Rand) IntN(n int) int {
	if n <= 0 {
		panic("augment: IntN of a non-positive bound")
	}
	un := uint64(n)
	hi, lo := bits.Mul64(r.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), un)
		}
	}
	return int(hi)
}

// Bool returns true with probability 1/2, drawn as Keras draws a flip:
// Float64() < 0.5.
func (r *Rand) Bool() bool { return r.Float64() < 0.5 }

// The streams a run draws from. Each is keyed by (seed, epoch, stream,
// item), so any one of them can be recreated on its own.
const (
	streamShuffle = 1 // item 0: the epoch's permutation
	streamImage   = 2 // item i: the augmentation of dataset image i
)

// streamKey derives the key of one stream. Every step is a bijection of the
// running hash (mix64 after an add or xor), so for a fixed prefix distinct
// items give distinct keys, and a change anywhere changes everything after.
func streamKey(seed uint64, epoch int, stream uint64, item int) uint64 {
	h := mix64(seed + golden64)
	h = mix64(h ^ (uint64(epoch) + 0x6a09e667f3bcc909)) // odd constants from the fractions of √2, √3, √5
	h = mix64(h ^ (stream + 0xbb67ae8584caa73b))
	return mix64(h ^ (uint64(item) + 0x3c6ef372fe94f82b))
}

// permutation writes a random permutation of 0..len(p)-1 into p: the
// identity shuffled by Fisher–Yates (Durstenfeld's form, from the end)
// with r.
func permutation(p []int, r *Rand) {
	for i := range p {
		p[i] = i
	}
	for i := len(p) - 1; i > 0; i-- {
		j := r.IntN(i + 1)
		p[i], p[j] = p[j], p[i]
	}
}
