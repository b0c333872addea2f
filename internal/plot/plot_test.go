package plot

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"slices"
	"testing"
)

func TestWritePNG(t *testing.T) {
	var b bytes.Buffer
	panels := []Panel{
		{Title: "loss", Series: []Series{{Name: "train", Y: []float64{2.3, 1.5, 1.1}, Color: Blue}, {Name: "val", Y: []float64{2.1, 1.7, math.NaN()}, Color: Orange}}},
		{Title: "accuracy", Series: []Series{{Name: "train", Y: []float64{0.5}, Color: Blue}}},
	}
	if err := WritePNG(&b, panels); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 840 {
		t.Errorf("width %d", img.Bounds().Dx())
	}
	// The first train-loss point (epoch 1, the maximum) is drawn in blue
	// near the top left of the loss panel's data area.
	ax, err := yAxis(panels[0])
	if err != nil {
		t.Fatal(err)
	}
	r := panelLayout(0, panels[0], ax.labels).Plot
	lo, hi := ax.ticks[0], ax.ticks[len(ax.ticks)-1]
	if !hasColor(img, image.Rect(r.Min.X, r.Max.Y-1-int(float64(r.Dy()-1)*(2.3-lo)/(hi-lo))-3, r.Min.X+12, r.Max.Y), Blue) {
		t.Error("no blue point at the top left of the loss panel")
	}
	if err := WritePNG(&b, []Panel{{Title: "x", Series: []Series{{Y: []float64{math.NaN()}}}}}); err == nil {
		t.Error("a panel without finite values was drawn")
	}
}

// hasColor reports whether a pixel of r has colour c.
func hasColor(img image.Image, r image.Rectangle, c color.RGBA) bool {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) == c {
				return true
			}
		}
	}
	return false
}

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   []float64
		labels []string
	}{
		{0, 2.31, []float64{0, 0.5, 1, 1.5, 2, 2.5}, []string{"0.0", "0.5", "1.0", "1.5", "2.0", "2.5"}},
		{0.488, 0.874, []float64{0.4, 0.5, 0.6, 0.7, 0.8, 0.9}, []string{"0.4", "0.5", "0.6", "0.7", "0.8", "0.9"}},
		{0.5, 0.99, []float64{0.5, 0.6, 0.7, 0.8, 0.9, 1}, []string{"0.5", "0.6", "0.7", "0.8", "0.9", "1.0"}},
		{0, 1, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}, []string{"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"}},
		{0, 0.9, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}, []string{"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"}},
		{0, 1.2, []float64{0, 0.25, 0.5, 0.75, 1, 1.25}, []string{"0.00", "0.25", "0.50", "0.75", "1.00", "1.25"}},
		{0, 0.013, []float64{0, 0.005, 0.01, 0.015}, []string{"0.000", "0.005", "0.010", "0.015"}},
		{-1.3, 2.7, []float64{-2, -1, 0, 1, 2, 3}, []string{"-2", "-1", "0", "1", "2", "3"}},
		{95, 1234, []float64{0, 250, 500, 750, 1000, 1250}, []string{"0", "250", "500", "750", "1000", "1250"}},
		{7, 31, []float64{5, 10, 15, 20, 25, 30, 35}, []string{"5", "10", "15", "20", "25", "30", "35"}},
	} {
		ticks, step := niceTicks(tc.lo, tc.hi, 5)
		ok := len(ticks) == len(tc.want)
		for i := 0; ok && i < len(ticks); i++ {
			ok = math.Abs(ticks[i]-tc.want[i]) < 1e-9*step
		}
		if !ok {
			t.Errorf("niceTicks(%g, %g) = %v, want %v", tc.lo, tc.hi, ticks, tc.want)
			continue
		}
		if ticks[0] > tc.lo || ticks[len(ticks)-1] < tc.hi {
			t.Errorf("niceTicks(%g, %g) = %v does not cover the range", tc.lo, tc.hi, ticks)
		}
		var labels []string
		for _, v := range ticks {
			labels = append(labels, tickLabel(v, step))
		}
		if !slices.Equal(labels, tc.labels) {
			t.Errorf("niceTicks(%g, %g): labels %q, want %q", tc.lo, tc.hi, labels, tc.labels)
		}
	}
}

func TestEpochTicks(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []int
	}{
		{1, []int{1}},
		{5, []int{1, 2, 3, 4, 5}},
		{9, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{10, []int{1, 2, 4, 6, 8, 10}},
		{30, []int{1, 5, 10, 15, 20, 25, 30}},
		{100, []int{1, 20, 40, 60, 80, 100}},
		{200, []int{1, 25, 50, 75, 100, 125, 150, 175, 200}},
	} {
		if got := epochTicks(tc.n, maxXLabels); !slices.Equal(got, tc.want) {
			t.Errorf("epochTicks(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
	for n := 1; n <= 5000; n++ {
		got := epochTicks(n, maxXLabels)
		if len(got) > maxXLabels || got[0] != 1 || got[len(got)-1] > n || !slices.IsSorted(got) {
			t.Fatalf("epochTicks(%d) = %v", n, got)
		}
	}
}

func TestYAxis(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		name       string
		p          Panel
		lo, hi     float64 // the axis's ends
		wantLabels []string
	}{
		{"loss from zero", Panel{YFromZero: true, Series: []Series{{Y: []float64{2.3, 1.5, 1.1}}, {Y: []float64{2.1, 1.7, nan}}}}, 0, 2.5, nil},
		{"loss of one epoch", Panel{YFromZero: true, Series: []Series{{Y: []float64{0.7}}}}, 0, 0.7, nil},
		{"accuracy", Panel{Series: []Series{{Y: []float64{0.488, 0.633, 0.874}}}}, 0.4, 0.9, []string{"0.4", "0.5", "0.6", "0.7", "0.8", "0.9"}},
		{"accuracy near 1", Panel{Series: []Series{{Y: []float64{0.95, 0.999}}}}, 0.95, 1, nil},
		{"one value", Panel{Series: []Series{{Y: []float64{0.01}}}}, 0.009, 0.011, nil},
		{"zero", Panel{Series: []Series{{Y: []float64{0, 0}}}}, 0, 1, nil},
		{"not below zero", Panel{Series: []Series{{Y: []float64{0.001, 0.9}}}}, 0, 1, nil},
		{"non-finite skipped", Panel{Series: []Series{{Y: []float64{nan, 2, inf, -inf, 3}}}}, 2, 3, nil},
		{"negative", Panel{YFromZero: true, Series: []Series{{Y: []float64{-0.4, -0.1}}}}, -0.4, 0, nil},
	} {
		ax, err := yAxis(tc.p)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		lo, hi := ax.ticks[0], ax.ticks[len(ax.ticks)-1]
		if tc.p.YFromZero && lo > 0 || lo > tc.lo || hi < tc.hi || lo < 0 && tc.lo >= 0 {
			t.Errorf("%s: axis %g..%g, want it to cover %g..%g (and start at zero when asked, never below it without negative values)", tc.name, lo, hi, tc.lo, tc.hi)
		}
		if tc.p.YFromZero && tc.lo == 0 && lo != 0 {
			t.Errorf("%s: the axis starts at %g, not 0", tc.name, lo)
		}
		if len(ax.ticks) < 3 || len(ax.ticks) > 11 {
			t.Errorf("%s: %d ticks", tc.name, len(ax.ticks))
		}
		if tc.wantLabels != nil && !slices.Equal(ax.labels, tc.wantLabels) {
			t.Errorf("%s: labels %q, want %q", tc.name, ax.labels, tc.wantLabels)
		}
		for _, l := range ax.labels {
			if len(l) > 6 {
				t.Errorf("%s: long tick label %q", tc.name, l)
			}
		}
	}
}

func TestLegendOutsidePlot(t *testing.T) {
	two := []Series{{Name: "train", Color: Blue, Y: []float64{1, 2}}, {Name: "validation", Color: Orange, Y: []float64{2, 1}}}
	many := []Series{{Name: "a rather long series name"}, {Name: "another rather long one"}, {Name: "a third"}, {Name: "and a fourth series"}, {Name: ""}}
	for _, tc := range []struct {
		name    string
		p       Panel
		entries int
	}{
		{"two series", Panel{Title: "loss", Series: two}, 2},
		{"wrapped legend", Panel{Title: "many", Series: many}, 4},
		{"no names", Panel{Title: "x", Series: []Series{{Y: []float64{1}}}}, 0},
	} {
		for k := range 2 {
			l := panelLayout(k, tc.p, []string{"0.000", "0.005"})
			panel := image.Rect(k*panelW, 0, (k+1)*panelW, panelH)
			if !l.Plot.In(panel) || l.Plot.Dx() < 200 || l.Plot.Dy() < 150 {
				t.Errorf("%s, panel %d: data area %v in %v", tc.name, k, l.Plot, panel)
			}
			if len(l.Legend) != tc.entries {
				t.Errorf("%s: %d legend entries, want %d", tc.name, len(l.Legend), tc.entries)
			}
			title := image.Rect(l.Title.X, l.Title.Y-textAscent, l.Title.X+len(tc.p.Title)*charW, l.Title.Y+2)
			if title.Overlaps(l.Plot) {
				t.Errorf("%s: the title %v overlaps the data area %v", tc.name, title, l.Plot)
			}
			for i, b := range l.Legend {
				if b.Overlaps(l.Plot) || !b.In(panel) || b.Overlaps(title) {
					t.Errorf("%s, panel %d: legend entry %v, data area %v, title %v, panel %v", tc.name, k, b, l.Plot, title, panel)
				}
				for _, c := range l.Legend[:i] {
					if b.Overlaps(c) {
						t.Errorf("%s: legend entries %v and %v overlap", tc.name, b, c)
					}
				}
			}
		}
	}
	// Drawn where the layout says: the series' colours are in their legend
	// boxes.
	p := Panel{Title: "loss", Series: two}
	var b bytes.Buffer
	if err := WritePNG(&b, []Panel{p}); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	ax, _ := yAxis(p)
	l := panelLayout(0, p, ax.labels)
	for i, s := range two {
		if !hasColor(img, l.Legend[i], s.Color) {
			t.Errorf("legend entry %q: no %v in %v", s.Name, s.Color, l.Legend[i])
		}
	}
}

func TestWritePNGLonePoints(t *testing.T) {
	// A single epoch, and a point between two non-finite ones, are drawn
	// as markers.
	green := color.RGBA{0, 160, 0, 255}
	for _, tc := range []struct {
		name  string
		y     []float64
		epoch int // the lone point's
	}{
		{"one epoch", []float64{0.5}, 1},
		{"between NaNs", []float64{0.2, math.NaN(), 0.5, math.Inf(1), 0.8}, 3},
	} {
		p := Panel{Title: "accuracy", Series: []Series{{Name: "val", Y: tc.y, Color: green}}}
		var b bytes.Buffer
		if err := WritePNG(&b, []Panel{p}); err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(&b)
		if err != nil {
			t.Fatal(err)
		}
		ax, _ := yAxis(p)
		r := panelLayout(0, p, ax.labels).Plot
		n := len(tc.y)
		x := (r.Min.X + r.Max.X - 1) / 2
		if n > 1 {
			x = r.Min.X + 6 + (r.Dx()-1-12)*(tc.epoch-1)/(n-1)
		}
		lo, hi := ax.ticks[0], ax.ticks[len(ax.ticks)-1]
		y := r.Max.Y - 1 - int(math.Round(float64(r.Dy()-1)*(0.5-lo)/(hi-lo)))
		if !hasColor(img, image.Rect(x-1, y-1, x+2, y+2), green) {
			t.Errorf("%s: no marker at (%d, %d)", tc.name, x, y)
		}
		// Nothing connects it to its neighbours: halfway to the next
		// epoch's column, at the point's height, is blank.
		if n > 1 && hasColor(img, image.Rect(x+(r.Dx()-12)/(n-1)/2, r.Min.Y, x+(r.Dx()-12)/(n-1)/2+1, r.Max.Y), green) {
			t.Errorf("%s: a line through a non-finite point", tc.name)
		}
	}
}

// TestWritePNGSample draws a 30-epoch curve.png like `resnetctl train`'s,
// to $PLOT_SAMPLE when set (to look at it), else to a temporary file.
func TestWritePNGSample(t *testing.T) {
	valAcc := []float64{48.8, 63.3, 63.9, 58.1, 67.6, 58.9, 70.5, 72.1, 70.1, 73.0, 74.1, 74.8, 76.0, 74.1, 78.3,
		75.7, 79.6, 79.4, 80.6, 82.7, 83.2, 83.2, 84.6, 85.0, 86.0, 87.1, 87.2, 87.3, 87.4, 87.3}
	var loss, valLoss, acc, val []float64
	for i, a := range valAcc {
		val = append(val, a/100)
		acc = append(acc, math.Min(0.99, a/100+0.02+0.002*float64(i)))
		valLoss = append(valLoss, 1.6*(1-a/100)+0.2)
		loss = append(loss, 2*math.Exp(-float64(i)/8)+0.25)
	}
	name := os.Getenv("PLOT_SAMPLE")
	if name == "" {
		name = t.TempDir() + "/curve.png"
	}
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WritePNG(f, []Panel{
		{Title: "loss", YFromZero: true, Series: []Series{{Name: "train", Y: loss, Color: Blue}, {Name: "validation", Y: valLoss, Color: Orange}}},
		{Title: "accuracy", Series: []Series{{Name: "train", Y: acc, Color: Blue}, {Name: "validation", Y: val, Color: Orange}}},
	}); err != nil {
		t.Fatal(err)
	}
}
