package augment

import (
	"bytes"
	"math"
	"testing"
)

func kerasApply(p KerasParams, src []uint8, w, h int) []uint8 {
	m := make([]int32, w*h)
	p.Map(m, w, h)
	return remap(src, m, w, h)
}

func TestKerasIdentity(t *testing.T) {
	const w, h = 11, 7
	src := pattern(w, h)
	for _, p := range []KerasParams{{Zx: 1, Zy: 1}, {Theta: 0, Tx: 0, Ty: 0, Zx: 1, Zy: 1}} {
		if got := kerasApply(p, src, w, h); !bytes.Equal(got, src) {
			t.Errorf("%+v is not the identity", p)
		}
		if _, warp := p.matrix(w, h); warp {
			t.Errorf("%+v: Keras would not warp", p)
		}
	}
	// A draw with every range zero is the identity too.
	r := NewRand(1)
	if got := kerasApply(Keras{}.Draw(&r, w, h), src, w, h); !bytes.Equal(got, src) {
		t.Error("Keras{} changed the image")
	}
}

func TestKerasFlip(t *testing.T) {
	const w, h = 5, 3
	src := pattern(w, h)
	got := kerasApply(KerasParams{Zx: 1, Zy: 1, Flip: true}, src, w, h)
	for c := 0; c < 3; c++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				if got[c*w*h+y*w+x] != src[c*w*h+y*w+w-1-x] {
					t.Fatalf("flip: channel %d pixel (%d,%d) is not source (%d,%d)", c, x, y, w-1-x, y)
				}
			}
		}
	}
}

// A shift by whole pixels moves the image and fills the uncovered side with
// copies of the edge. Keras' matrix maps output to input coordinates, so
// Tx = +2 (rows) shows input row y+2 at row y: the image moves up.
func TestKerasShiftFillsWithEdge(t *testing.T) {
	const w, h = 6, 8
	src := pattern(w, h) // R = x, G = y
	n := w * h
	got := kerasApply(KerasParams{Tx: 2, Ty: -3, Zx: 1, Zy: 1}, src, w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			wantX, wantY := max(x-3, 0), min(y+2, h-1)
			if gx, gy := got[y*w+x], got[n+y*w+x]; int(gx) != wantX || int(gy) != wantY {
				t.Fatalf("output (%d,%d) shows (%d,%d), want (%d,%d)", x, y, gx, gy, wantX, wantY)
			}
		}
	}
	// The filled pixels repeat the edge: the bottom two rows equal the last
	// source row shifted, the left three columns the first source column.
	if got[n+(h-1)*w] != h-1 || got[n+(h-2)*w] != h-1 || got[n+(h-3)*w] != h-1 {
		t.Error("bottom rows are not copies of the last row")
	}
}

// A disc centred on Keras' rotation centre maps to itself under any
// rotation: every pixel clearly inside stays inside, every pixel clearly
// outside stays outside. With the true centre ((h-1)/2) instead of Keras'
// (h/2+0.5) the disc would move by about a third of a pixel per side; the
// rotation of an off-centre point below checks the direction and centre
// exactly.
func TestKerasRotateSymmetric(t *testing.T) {
	const w, h, radius = 31, 31, 9.0
	cy, cx := float64(h)/2+0.5, float64(w)/2+0.5 // 16, 16: Keras' centre
	n := w * h
	src := make([]uint8, 3*n)
	dist := func(x, y int) float64 { return math.Hypot(float64(x)-cx, float64(y)-cy) }
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if dist(x, y) <= radius {
				src[y*w+x], src[n+y*w+x], src[2*n+y*w+x] = 255, 255, 255
			}
		}
	}
	for _, theta := range []float64{15, -15, 7.5} {
		got := kerasApply(KerasParams{Theta: theta, Zx: 1, Zy: 1}, src, w, h)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				d := dist(x, y)
				if d < radius-1 && got[y*w+x] != 255 || d > radius+1 && got[y*w+x] != 0 {
					t.Fatalf("θ=%v: pixel (%d,%d) at distance %.2f from the centre is %d", theta, x, y, d, got[y*w+x])
				}
			}
		}
	}

	// A point: output (i, j) samples input o + R(θ)·((i, j) - o).
	th := 15 * math.Pi / 180
	for _, q := range [][2]int{{20, 16}, {16, 25}, {9, 12}} {
		i, j := q[0], q[1] // output row, column
		si := cy + math.Cos(th)*(float64(i)-cy) - math.Sin(th)*(float64(j)-cx)
		sj := cx + math.Sin(th)*(float64(i)-cy) + math.Cos(th)*(float64(j)-cx)
		m := make([]int32, n)
		KerasParams{Theta: 15, Zx: 1, Zy: 1}.Map(m, w, h)
		want := int(math.Round(si))*w + int(math.Round(sj))
		if int(m[i*w+j]) != want {
			t.Errorf("output (row %d, col %d) samples %d, want (row %.2f, col %.2f)", i, j, m[i*w+j], si, sj)
		}
	}
}

func TestKerasZoom(t *testing.T) {
	// Zoom 0.5 on rows: output row i samples o + 0.5(i-o), o = h/2+0.5.
	const w, h = 4, 10
	m := make([]int32, w*h)
	KerasParams{Zx: 0.5, Zy: 1}.Map(m, w, h)
	o := float64(h)/2 + 0.5
	for i := 0; i < h; i++ {
		want := int(math.Floor(o + 0.5*(float64(i)-o) + 0.5))
		for j := 0; j < w; j++ {
			if got := int(m[i*w+j]); got != want*w+j {
				t.Fatalf("row %d column %d samples pixel %d, want row %d column %d", i, j, got, want, j)
			}
		}
	}
}

// The draws cover Keras' ranges: θ in ±15°, shifts in ±10% of the size,
// zooms in [0.9, 1.1], each roughly uniform, and flips half the time.
func TestKerasDrawStatistics(t *testing.T) {
	const n, w, h = 20000, 32, 24
	k := KerasDefaults()
	r := NewRand(7)
	var flips int
	type stat struct {
		name           string
		lo, hi         float64
		min, max, mean float64
	}
	stats := []*stat{{name: "theta", lo: -15, hi: 15}, {name: "tx", lo: -0.1 * h, hi: 0.1 * h},
		{name: "ty", lo: -0.1 * w, hi: 0.1 * w}, {name: "zx", lo: 0.9, hi: 1.1}, {name: "zy", lo: 0.9, hi: 1.1}}
	for _, s := range stats {
		s.min, s.max = math.Inf(1), math.Inf(-1)
	}
	var sumZxZy float64
	for i := 0; i < n; i++ {
		p := k.Draw(&r, w, h)
		for j, v := range []float64{p.Theta, p.Tx, p.Ty, p.Zx, p.Zy} {
			s := stats[j]
			s.min, s.max, s.mean = math.Min(s.min, v), math.Max(s.max, v), s.mean+v/n
		}
		sumZxZy += (p.Zx - 1) * (p.Zy - 1)
		if p.Flip {
			flips++
		}
	}
	for _, s := range stats {
		span := s.hi - s.lo
		if s.min < s.lo || s.max > s.hi {
			t.Errorf("%s in [%v, %v], outside [%v, %v]", s.name, s.min, s.max, s.lo, s.hi)
		}
		if s.min > s.lo+0.01*span || s.max < s.hi-0.01*span {
			t.Errorf("%s in [%v, %v] does not cover [%v, %v]", s.name, s.min, s.max, s.lo, s.hi)
		}
		// uniform: the mean's standard error is span/√(12n) ≈ 0.002 span
		if mid := (s.lo + s.hi) / 2; math.Abs(s.mean-mid) > 0.01*span {
			t.Errorf("%s mean %v, want about %v", s.name, s.mean, mid)
		}
	}
	// zx and zy are drawn independently: their covariance is about 0
	// (the variance of each is 0.2²/12 ≈ 0.0033).
	if cov := sumZxZy / n; math.Abs(cov) > 0.0002 {
		t.Errorf("zoom covariance %v: zx and zy look dependent", cov)
	}
	if rate := float64(flips) / n; math.Abs(rate-0.5) > 0.015 { // 4.2σ
		t.Errorf("flip rate %v", rate)
	}
	// Without HFlip, never.
	k.HFlip = false
	for i := 0; i < 100; i++ {
		if k.Draw(&r, w, h).Flip {
			t.Fatal("flip drawn with HFlip off")
		}
	}
}

func TestKerasCheck(t *testing.T) {
	if err := KerasDefaults().Check(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []Keras{{Rotation: -1}, {Rotation: math.NaN()}, {WidthShift: 1}, {HeightShift: -0.1}, {Zoom: 1}, {Zoom: math.Inf(1)}} {
		if k.Check() == nil {
			t.Errorf("%+v accepted", k)
		}
	}
}
