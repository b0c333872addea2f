package augment

import (
	"bytes"
	"math"
	"testing"
)

func TestPaperCrop(t *testing.T) {
	const w, h, pad = 6, 5, 4
	src := pattern(w, h) // R = x, G = y, B = 100+x+y: never 0 inside
	n := w * h
	m := make([]int32, n)
	apply := func(q PaperParams) []uint8 {
		q.Map(m, w, h, pad)
		return remap(src, m, w, h)
	}
	if got := apply(PaperParams{X: pad, Y: pad}); !bytes.Equal(got, src) {
		t.Error("the centre crop without a flip is not the identity")
	}
	// Offsets (X, Y) show source (x+X-pad, y+Y-pad), zero outside.
	for _, q := range []PaperParams{{X: 0, Y: 0}, {X: 8, Y: 8}, {X: 3, Y: 6}, {X: 7, Y: 1, Flip: true}, {X: 4, Y: 4, Flip: true}} {
		got := apply(q)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				xx := x
				if q.Flip {
					xx = w - 1 - x
				}
				sx, sy := xx+q.X-pad, y+q.Y-pad
				inside := sx >= 0 && sx < w && sy >= 0 && sy < h
				b := got[2*n+y*w+x]
				switch {
				case inside && (int(got[y*w+x]) != sx || int(got[n+y*w+x]) != sy):
					t.Fatalf("%+v: output (%d,%d) shows (%d,%d), want (%d,%d)", q, x, y, got[y*w+x], got[n+y*w+x], sx, sy)
				case !inside && b != 0:
					t.Fatalf("%+v: output (%d,%d) is padding but has blue %d", q, x, y, b)
				}
			}
		}
	}
}

func TestPaperDrawStatistics(t *testing.T) {
	const n = 20000
	p := PaperDefaults()
	r := NewRand(3)
	var xs, ys [9]int
	flips := 0
	for i := 0; i < n; i++ {
		q := p.Draw(&r)
		if q.X < 0 || q.X > 8 || q.Y < 0 || q.Y > 8 {
			t.Fatalf("offset %+v outside [0, 8]", q)
		}
		xs[q.X]++
		ys[q.Y]++
		if q.Flip {
			flips++
		}
	}
	// Each offset value has probability 1/9: expect 2222 ± 44 (σ).
	for v := 0; v < 9; v++ {
		if math.Abs(float64(xs[v])-n/9.0) > 250 || math.Abs(float64(ys[v])-n/9.0) > 250 {
			t.Errorf("offset %d drawn %d (x) and %d (y) times of %d", v, xs[v], ys[v], n)
		}
	}
	if rate := float64(flips) / n; math.Abs(rate-0.5) > 0.015 {
		t.Errorf("flip rate %v", rate)
	}
	if (Paper{Pad: -1}).Check() == nil {
		t.Error("negative padding accepted")
	}
	// Pad 0 without flips is the identity.
	m := make([]int32, 12)
	Paper{}.Sample(m, 4, 3, &r)
	for i, v := range m {
		if int(v) != i {
			t.Fatalf("Paper{} map %v", m)
		}
	}
}

func TestLookup(t *testing.T) {
	for _, name := range Names() {
		a, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if a.String()[:len(name)] != name {
			t.Errorf("%s: String %q", name, a)
		}
	}
	if k, _ := Lookup("keras"); k != KerasDefaults() {
		t.Errorf("keras: %v", k)
	}
	if _, err := Lookup("autoaugment"); err == nil {
		t.Error("unknown name accepted")
	}
}
