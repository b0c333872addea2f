package train

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/resnetctl/resnetctl/models"
)

// memSource serves preprocessed images from memory, in order.
type memSource struct {
	x      []float32
	labels []int
	shape  models.Shape
}

func (s *memSource) Len() int            { return len(s.labels) }
func (s *memSource) Shape() models.Shape { return s.shape }
func (s *memSource) Epoch(int, uint64, int) (Batches, error) {
	return &memBatches{s: s}, nil
}

type memBatches struct {
	s    *memSource
	next int
}

func (b *memBatches) Next(x []float32, labels []int) (int, error) {
	per := b.s.shape.C * b.s.shape.H * b.s.shape.W
	n := min(len(labels), len(b.s.labels)-b.next)
	copy(x, b.s.x[b.next*per:(b.next+n)*per])
	copy(labels, b.s.labels[b.next:b.next+n])
	b.next += n
	return n, nil
}

// mirror returns images ([n, C, H, W]) flipped left-right, the slow way.
func mirror(x []float32, n int, s models.Shape) []float32 {
	out := make([]float32, len(x))
	for i := 0; i < n; i++ {
		for c := 0; c < s.C; c++ {
			for h := 0; h < s.H; h++ {
				for w := 0; w < s.W; w++ {
					at := ((i*s.C+c)*s.H + h) * s.W
					out[at+w] = x[at+s.W-1-w]
				}
			}
		}
	}
	return out
}

// TestFlipTTA: EvaluateTTA(flip) equals averaging, by hand, the softmax
// of the model's logits on each image and on its mirror image (accuracy
// and loss, with and without label smoothing, at evaluation batches that
// do and do not divide the data); and on left-right symmetric images TTA
// changes nothing.
func TestFlipTTA(t *testing.T) {
	spec := smallSpec()
	in := spec.Input
	per := in.C * in.H * in.W
	const n = 7
	r := rand.New(rand.NewPCG(4, 5))
	x := make([]float32, n*per)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = r.IntN(spec.Classes)
	}
	sym := append([]float32(nil), x...)
	for row := 0; row < n*in.C*in.H; row++ {
		for w := 0; w < in.W/2; w++ {
			sym[row*in.W+in.W-1-w] = sym[row*in.W+w]
		}
	}
	m, err := NewModel(spec, 9)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		eps   float64
		batch int
	}{
		{"batch 3", 0, 3},
		{"one batch", 0, 0},
		{"label smoothing 0.1, batch 4", 0.1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.Compile(CompileOptions{Optimizer: OptimizerConfig{Name: SGD, LR: 0.1}, LabelSmoothing: tc.eps, Threads: 2}); err != nil {
				t.Fatal(err)
			}
			src := &memSource{x: x, labels: labels, shape: in}
			got, err := m.EvaluateTTA(ctx, src, tc.batch, TTAFlip)
			if err != nil {
				t.Fatal(err)
			}
			a, err := m.Predict(ctx, x, n)
			if err != nil {
				t.Fatal(err)
			}
			b, err := m.Predict(ctx, mirror(x, n, in), n)
			if err != nil {
				t.Fatal(err)
			}
			pa, pb := Probabilities(a, spec.Classes), Probabilities(b, spec.Classes)
			var loss, acc float64
			k := spec.Classes
			for i := 0; i < n; i++ {
				best := 0
				var sumLog float64
				for j := 0; j < k; j++ {
					p := (float64(pa[i*k+j]) + float64(pb[i*k+j])) / 2
					if p > (float64(pa[i*k+best])+float64(pb[i*k+best]))/2 {
						best = j
					}
					sumLog += math.Log(p)
					if j == labels[i] {
						loss -= (1 - tc.eps) * math.Log(p)
					}
				}
				loss -= tc.eps * sumLog / float64(k)
				if best == labels[i] {
					acc++
				}
			}
			loss, acc = loss/n, acc/n
			// Probabilities rounds to float32: a relative 1e-5.
			if math.Abs(got.Loss-loss) > 1e-5*math.Max(1, loss) || got.Accuracy != acc || got.Samples != n {
				t.Errorf("EvaluateTTA: %+v; by hand: loss %g, accuracy %g", got, loss, acc)
			}

			ssrc := &memSource{x: sym, labels: labels, shape: in}
			plain, err := m.Evaluate(ctx, ssrc, tc.batch)
			if err != nil {
				t.Fatal(err)
			}
			tta, err := m.EvaluateTTA(ctx, ssrc, tc.batch, TTAFlip)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(plain.Loss-tta.Loss) > 1e-9 || plain.Accuracy != tta.Accuracy {
				t.Errorf("symmetric images: %+v without TTA, %+v with", plain, tta)
			}
		})
	}
	if _, err := m.EvaluateTTA(ctx, &memSource{x: x, labels: labels, shape: in}, 0, "crop"); err == nil {
		t.Error("EvaluateTTA took an unknown TTA")
	}
}

// TestFlipAverageExtremeLogits: the flip average's loss stays finite and
// exact when a class's probability underflows float64 in both views
// (logits 2000 apart: a diverged model on a tiny data set gave +Inf, which
// metrics.jsonl cannot hold), and agrees with the direct formula on
// ordinary logits.
func TestFlipAverageExtremeLogits(t *testing.T) {
	lp, tmp := make([]float64, 3), make([]float64, 3)
	for _, tc := range []struct {
		name  string
		z, fz []float32
		y     int
		eps   float64
	}{
		{"ordinary", []float32{1, -0.5, 2}, []float32{0.3, 0.1, 1.5}, 0, 0.1},
		{"vanishing class", []float32{0, -2000, 5}, []float32{0, -3000, 5}, 1, 0.1},
		{"vanishing label, no smoothing", []float32{0, -2000, 5}, []float32{1, -2500, 4}, 1, 0},
	} {
		flipAverage(lp, tmp, tc.z, tc.fz)
		got, _ := crossEntropyLogProbs(lp, tc.y, tc.eps)
		// The direct formula with log-sum-exp per view, in log space for
		// the label: -log((e^{a}+e^{b})/2) with a, b the views'
		// log-softmax of the label, done with big offsets removed.
		lse := func(z []float32) float64 {
			m := math.Inf(-1)
			for _, v := range z {
				m = math.Max(m, float64(v))
			}
			var s float64
			for _, v := range z {
				s += math.Exp(float64(v) - m)
			}
			return m + math.Log(s)
		}
		var want float64
		for j := range lp {
			a, b := float64(tc.z[j])-lse(tc.z), float64(tc.fz[j])-lse(tc.fz)
			hi := math.Max(a, b)
			l := hi + math.Log((math.Exp(a-hi)+math.Exp(b-hi))/2)
			if j == tc.y {
				want -= (1 - tc.eps) * l
			}
			want -= tc.eps * l / float64(len(lp))
		}
		if math.IsInf(got, 0) || math.IsNaN(got) || math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s: loss %v, want %v", tc.name, got, want)
		}
	}
}
