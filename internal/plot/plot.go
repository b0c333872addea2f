// Package plot draws small PNG line charts (learning curves) with the
// standard library and a bitmap font: no plotting dependency for a few lines.
package plot

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Series is one line: Y[i] is plotted at x = i+1 (epochs count from 1).
type Series struct {
	Name  string
	Y     []float64
	Color color.RGBA
}

// Panel is one chart with its own y axis.
type Panel struct {
	Title  string
	Series []Series
	// YFromZero starts the y axis at zero (for a loss) rather than at a
	// round value below the smallest one.
	YFromZero bool
}

// Colors for the usual pair of lines.
var (
	Blue   = color.RGBA{31, 119, 180, 255}
	Orange = color.RGBA{255, 127, 14, 255}
)

// Panel geometry, in pixels (basicfont.Face7x13: 7 pixels a character,
// ascent 11, descent 2).
const (
	panelW, panelH = 420, 300
	charW          = 7
	textAscent     = 11
	rowH           = 16 // a row of text (title, legend)
	swatchW        = 18 // a legend entry's line sample
	maxXLabels     = 10
)

// WritePNG draws the panels side by side: each has its title and legend
// above the data area, y ticks at round values, and the epochs (1, 2, …)
// on the x axis. Points that are NaN or ±Inf are left out (breaking the
// line); a point without a neighbour is drawn as a marker.
func WritePNG(w io.Writer, panels []Panel) error {
	img := image.NewRGBA(image.Rect(0, 0, panelW*len(panels), panelH))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	d := &font.Drawer{Dst: img, Face: basicfont.Face7x13}
	text := func(x, y int, s string, c color.Color) {
		d.Src = image.NewUniform(c)
		d.Dot = fixed.P(x, y)
		d.DrawString(s)
	}
	black := color.RGBA{0, 0, 0, 255}
	grid := color.RGBA{225, 225, 225, 255}
	for k, p := range panels {
		ax, err := yAxis(p)
		if err != nil {
			return err
		}
		n := 0
		for _, s := range p.Series {
			n = max(n, len(s.Y))
		}
		l := panelLayout(k, p, ax.labels)
		r := l.Plot
		x0, x1, y0, y1 := r.Min.X, r.Max.X-1, r.Min.Y, r.Max.Y-1
		lo, hi := ax.ticks[0], ax.ticks[len(ax.ticks)-1]
		px := func(epoch int) int { // epochs 1..n, half a marker in from the edges
			if n == 1 {
				return (x0 + x1) / 2
			}
			return x0 + 6 + int(math.Round(float64((x1-x0-12)*(epoch-1))/float64(n-1)))
		}
		py := func(v float64) int { return y1 - int(math.Round(float64(y1-y0)*(v-lo)/(hi-lo))) }

		// Grid, axes and ticks.
		for i, v := range ax.ticks {
			y := py(v)
			if y != y1 {
				for x := x0 + 1; x <= x1; x++ {
					img.Set(x, y, grid)
				}
			}
			for x := x0 - 4; x < x0; x++ {
				img.Set(x, y, black)
			}
			s := ax.labels[i]
			text(x0-7-len(s)*charW, y+textAscent/2, s, black)
		}
		for _, e := range epochTicks(n, maxXLabels) {
			x := px(e)
			for y := y0; y < y1; y++ {
				img.Set(x, y, grid)
			}
			for y := y1 + 1; y <= y1+4; y++ {
				img.Set(x, y, black)
			}
			s := strconv.Itoa(e)
			text(x-len(s)*charW/2, y1+6+textAscent, s, black)
		}
		for y := y0; y <= y1; y++ {
			img.Set(x0, y, black)
		}
		for x := x0; x <= x1; x++ {
			img.Set(x, y1, black)
		}
		text((x0+x1)/2-len("epoch")*charW/2, panelH-5, "epoch", black)

		// Title and legend.
		text(l.Title.X, l.Title.Y, p.Title, black)
		li := 0
		for _, s := range p.Series {
			if s.Name == "" {
				continue
			}
			b := l.Legend[li]
			li++
			mid := b.Min.Y + rowH/2 - 1
			line(img, b.Min.X, mid, b.Min.X+swatchW-1, mid, s.Color)
			marker(img, b.Min.X+swatchW/2, mid, 2, s.Color)
			text(b.Min.X+swatchW+5, b.Min.Y+textAscent+1, s.Name, black)
		}

		// The data, clipped to the data area.
		dst := img.SubImage(image.Rect(x0+1, y0-3, x1+4, y1+4)).(*image.RGBA)
		for _, s := range p.Series {
			ok := func(i int) bool { return i >= 0 && i < len(s.Y) && !math.IsNaN(s.Y[i]) && !math.IsInf(s.Y[i], 0) }
			for i := range s.Y {
				if !ok(i) {
					continue
				}
				x, y := px(i+1), py(s.Y[i])
				if ok(i - 1) {
					line(dst, px(i), py(s.Y[i-1]), x, y, s.Color)
				}
				switch {
				case !ok(i-1) && !ok(i+1):
					marker(dst, x, y, 3, s.Color) // alone: the marker is all there is
				case n <= 50:
					marker(dst, x, y, 2, s.Color)
				}
			}
		}
	}
	return png.Encode(w, img)
}

// layout is where a panel's parts go.
type layout struct {
	Plot   image.Rectangle   // the data area; the axes are its left and bottom edges
	Title  image.Point       // where the title's baseline starts
	Legend []image.Rectangle // one box for each named series: line sample and name
}

// panelLayout places panel k's parts: the title in the top row, the legend
// in the rows below it (as many as its entries need), then the data area,
// with room for the y labels on its left and the epoch labels below it.
func panelLayout(k int, p Panel, yLabels []string) layout {
	left, right := k*panelW, (k+1)*panelW
	labelW := 0
	for _, s := range yLabels {
		labelW = max(labelW, len(s)*charW)
	}
	x0, x1 := left+max(labelW+14, 30), right-15
	l := layout{Title: image.Pt(x0, 4+textAscent)}
	x, y := x0, 4+rowH // the first legend row
	for _, s := range p.Series {
		if s.Name == "" {
			continue
		}
		w := swatchW + 5 + len(s.Name)*charW
		if x > x0 && x+w > x1 {
			x, y = x0, y+rowH
		}
		l.Legend = append(l.Legend, image.Rect(x, y, x+w, y+rowH))
		x += w + 20
	}
	if len(l.Legend) > 0 {
		y += rowH
	}
	l.Plot = image.Rect(x0, y+8, x1+1, panelH-38+1)
	return l
}

// axis is a panel's y axis: round tick values, the first and last being
// the axis's ends, and their labels.
type axis struct {
	ticks  []float64
	labels []string
}

// yAxis chooses the y axis for a panel's finite values: from zero with
// YFromZero, never below zero when no value is negative.
func yAxis(p Panel) (axis, error) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range p.Series {
		for _, v := range s.Y {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if lo > hi {
		return axis{}, fmt.Errorf("plot %q: no finite values", p.Title)
	}
	nonNeg := lo >= 0
	if p.YFromZero {
		lo, hi = math.Min(lo, 0), math.Max(hi, 0)
	}
	if hi == lo {
		pad := math.Abs(lo) * 0.1
		if pad == 0 {
			pad = 1
		}
		lo, hi = lo-pad, hi+pad
		if nonNeg {
			lo = math.Max(lo, 0)
		}
	}
	ticks, step := niceTicks(lo, hi, 5)
	labels := make([]string, len(ticks))
	for i, v := range ticks {
		labels[i] = tickLabel(v, step)
	}
	return axis{ticks, labels}, nil
}

// niceTicks covers [lo, hi] (lo < hi) with ticks at the multiples of a
// round step (1, 2, 2.5 or 5 times a power of ten), about target intervals
// between them; the first tick is at most lo, the last at least hi.
func niceTicks(lo, hi float64, target int) (ticks []float64, step float64) {
	raw := (hi - lo) / float64(target)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw*(1-1e-9) {
			step = m * mag
			break
		}
	}
	first := math.Floor(lo/step + 1e-9)
	last := math.Ceil(hi/step - 1e-9)
	scale := math.Pow(10, float64(decimals(step)))
	for i := first; i <= last; i++ {
		v := math.Round(i*step*scale) / scale // 0.95, not 19*0.05 = 0.9500000000000001
		if v == 0 {
			v = 0 // no -0
		}
		ticks = append(ticks, v)
	}
	return ticks, step
}

// decimals is the number of decimals a multiple of step needs (at most 6).
func decimals(step float64) int {
	dec := 0
	for s := step; dec < 6 && math.Abs(s-math.Round(s)) > 1e-6*s; s *= 10 {
		dec++
	}
	return dec
}

// tickLabel writes a tick value with as many decimals as the step needs.
func tickLabel(v, step float64) string {
	if a := math.Abs(v); a >= 1e6 || (a != 0 && a < 1e-4) {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	return strconv.FormatFloat(v, 'f', decimals(step), 64)
}

// epochTicks chooses the labelled epochs of an axis from 1 to n: the
// first epoch and the multiples of the smallest round step (1, 2, 5, 10,
// 20, 25, 50, 100, …) that gives at most maxLabels labels.
func epochTicks(n, maxLabels int) []int {
	if n < 1 {
		return nil
	}
	step := 1
search:
	for mag := 1; ; mag *= 10 {
		for _, m := range []int{10, 20, 25, 50} {
			if step = m * mag / 10; step > 0 && n/step+1 <= maxLabels {
				break search
			}
		}
	}
	ticks := []int{1}
	for e := step; e <= n; e += step {
		if e > 1 {
			ticks = append(ticks, e)
		}
	}
	return ticks
}

// marker draws a filled square of the given radius.
func marker(img *image.RGBA, x, y, r int, c color.Color) {
	for dy := -r; dy <= r; dy++ {
		for dx := -r; dx <= r; dx++ {
			img.Set(x+dx, y+dy, c)
		}
	}
}

// line draws a segment with Bresenham's algorithm, two pixels thick.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		img.Set(x0, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
