package quantize

import (
	"fmt"
	"math"
)

// The calibration methods: how an activation's range is chosen from the
// values it took on the calibration images.
const (
	// MinMax takes the smallest and largest value seen (with 0 inside the
	// range). Exact for what was seen, but one outlier widens every step.
	MinMax = "minmax"
	// Percentile clips |x| at a percentile of its distribution (Options.
	// Percentile, 99.99 by default): outliers saturate, the rest gets
	// finer steps.
	Percentile = "percentile"
	// Entropy clips |x| where the quantized distribution is closest to the
	// seen one in Kullback-Leibler divergence (TensorRT's calibrator).
	Entropy = "entropy"
)

// Methods lists the calibration methods.
var Methods = []string{MinMax, Percentile, Entropy}

// histBins is the resolution of the |x| histogram the percentile and
// entropy methods read: 2048 bins, as TensorRT's entropy calibrator uses.
const histBins = 2048

// Stats accumulates what calibration needs of one tensor's values: the
// exact minimum and maximum, and a histogram of |x| whose range doubles
// (merging bins pairwise) whenever a larger value arrives, so that one
// pass over the data suffices.
type Stats struct {
	Min, Max float64
	Count    int64
	width    float64 // of a bin; 0 until a nonzero |x| arrives
	hist     []int64
}

// NewStats returns empty statistics.
func NewStats() *Stats {
	return &Stats{Min: math.Inf(1), Max: math.Inf(-1), hist: make([]int64, histBins)}
}

// Add records values. Non-finite values are an error: a range cannot
// hold them, and they mean the model or the data is broken.
func (s *Stats) Add(x []float32) error {
	top := 0.0
	for _, v := range x {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("the value %g is not finite", v)
		}
		top = max(top, math.Abs(f))
	}
	if top > 0 {
		if s.width == 0 {
			s.width = top / histBins * (1 + 1e-6)
		}
		for top >= s.width*histBins {
			for i := range histBins / 2 {
				s.hist[i] = s.hist[2*i] + s.hist[2*i+1]
			}
			clear(s.hist[histBins/2:])
			s.width *= 2
		}
	}
	for _, v := range x {
		f := float64(v)
		s.Min, s.Max = min(s.Min, f), max(s.Max, f)
		b := 0
		if s.width > 0 {
			b = min(int(math.Abs(f)/s.width), histBins-1)
		}
		s.hist[b]++
	}
	s.Count += int64(len(x))
	return nil
}

// Range returns the range [lo, hi] to quantize to (lo <= 0 <= hi) by
// method; pct is the percentile of Percentile.
func (s *Stats) Range(method string, pct float64) (lo, hi float64, err error) {
	if s.Count == 0 {
		return 0, 0, fmt.Errorf("no values recorded")
	}
	lo, hi = min(s.Min, 0), max(s.Max, 0)
	if s.width == 0 || method == MinMax {
		return lo, hi, nil
	}
	var t float64
	switch method {
	case Percentile:
		t = s.percentile(pct)
	case Entropy:
		levels := 128 // a signed range: 128 steps a side
		if s.Min >= 0 {
			levels = 256
		}
		t = s.entropyThreshold(levels)
	default:
		return 0, 0, fmt.Errorf("unknown calibration method %q (want %s, %s or %s)", method, MinMax, Percentile, Entropy)
	}
	return max(lo, -t), min(hi, t), nil
}

// percentile returns the upper edge of the bin holding the pct-th
// percentile of |x|.
func (s *Stats) percentile(pct float64) float64 {
	target := pct / 100 * float64(s.Count)
	var sum float64
	for i, c := range s.hist {
		sum += float64(c)
		if sum >= target {
			return float64(i+1) * s.width
		}
	}
	return histBins * s.width
}

// entropyThreshold returns the |x| clipping threshold whose quantization
// to levels steps loses the least information: for each candidate number
// of bins i, the histogram clipped at bin i (the tail added to its last
// bin) is compared with its own quantization (i bins merged into levels
// groups, each group's mass spread evenly over its nonzero bins), and the
// i with the smallest Kullback-Leibler divergence wins.
func (s *Stats) entropyThreshold(levels int) float64 {
	last := histBins
	for last > 1 && s.hist[last-1] == 0 {
		last--
	}
	if last <= levels {
		return float64(last) * s.width
	}
	best, bestI := math.Inf(1), last
	p := make([]float64, histBins)
	q := make([]float64, histBins)
	var tail float64
	for i := last; i < histBins; i++ {
		tail += float64(s.hist[i])
	}
	// Candidates from levels bins up to the last nonzero one.
	tails := make([]float64, last+1) // tails[i]: mass at or above bin i
	tails[last] = tail
	for i := last - 1; i >= 0; i-- {
		tails[i] = tails[i+1] + float64(s.hist[i])
	}
	for i := levels; i <= last; i++ {
		for j := range i {
			p[j] = float64(s.hist[j])
		}
		p[i-1] += tails[i]
		// Quantize the first i bins of the (unclipped) histogram.
		for g := range levels {
			a, b := g*i/levels, (g+1)*i/levels
			var mass float64
			nz := 0
			for j := a; j < b; j++ {
				if s.hist[j] != 0 {
					mass += float64(s.hist[j])
					nz++
				}
			}
			for j := a; j < b; j++ {
				q[j] = 0
				if s.hist[j] != 0 {
					q[j] = mass / float64(nz)
				}
			}
		}
		var ps, qs float64
		for j := range i {
			ps += p[j]
			qs += q[j]
		}
		if ps == 0 || qs == 0 {
			continue
		}
		var kl float64
		for j := range i {
			if p[j] == 0 {
				continue
			}
			pj := p[j] / ps
			qj := q[j] / qs
			if qj == 0 {
				qj = 1e-12 // the clipped tail landed where nothing was
			}
			kl += pj * math.Log(pj/qj)
		}
		if kl < best {
			best, bestI = kl, i
		}
	}
	return (float64(bestI) + 0.5) * s.width
}
