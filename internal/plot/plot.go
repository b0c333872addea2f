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
}

// Colors for the usual pair of lines.
var (
	Blue   = color.RGBA{31, 119, 180, 255}
	Orange = color.RGBA{255, 127, 14, 255}
)

// WritePNG draws the panels side by side.
func WritePNG(w io.Writer, panels []Panel) error {
	const pw, ph, margin = 420, 300, 45
	img := image.NewRGBA(image.Rect(0, 0, pw*len(panels), ph))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	d := &font.Drawer{Dst: img, Face: basicfont.Face7x13}
	text := func(x, y int, s string, c color.Color) {
		d.Src = image.NewUniform(c)
		d.Dot = fixed.P(x, y)
		d.DrawString(s)
	}
	for k, p := range panels {
		x0 := k*pw + margin
		x1, y0, y1 := (k+1)*pw-15, 30, ph-margin
		lo, hi, n := math.Inf(1), math.Inf(-1), 0
		for _, s := range p.Series {
			n = max(n, len(s.Y))
			for _, v := range s.Y {
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
		if n == 0 || lo > hi {
			return fmt.Errorf("plot %q: no finite values", p.Title)
		}
		if hi == lo {
			hi, lo = hi+0.5, lo-0.5
		}
		pad := (hi - lo) * 0.05
		lo, hi = lo-pad, hi+pad
		black := color.RGBA{0, 0, 0, 255}
		grey := color.RGBA{200, 200, 200, 255}
		for y := y0; y <= y1; y++ {
			img.Set(x0, y, black)
		}
		for x := x0; x <= x1; x++ {
			img.Set(x, y1, black)
		}
		for t := 0; t <= 4; t++ {
			v := lo + (hi-lo)*float64(t)/4
			y := y1 - int(float64(y1-y0)*float64(t)/4)
			for x := x0 + 1; x <= x1; x += 3 {
				img.Set(x, y, grey)
			}
			text(k*pw+2, y+4, fmt.Sprintf("%.3g", v), black)
		}
		text(x0, 18, p.Title, black)
		text(x1-60, ph-12, fmt.Sprintf("epoch 1-%d", n), black)
		px := func(i int) int {
			if n == 1 {
				return (x0 + x1) / 2
			}
			return x0 + (x1-x0)*i/(n-1)
		}
		py := func(v float64) int { return y1 - int(float64(y1-y0)*(v-lo)/(hi-lo)) }
		for si, s := range p.Series {
			prevOK := false
			var px0, py0 int
			for i, v := range s.Y {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					prevOK = false
					continue
				}
				x, y := px(i), py(v)
				if prevOK {
					line(img, px0, py0, x, y, s.Color)
				}
				for dy := -2; dy <= 2; dy++ {
					for dx := -2; dx <= 2; dx++ {
						img.Set(x+dx, y+dy, s.Color)
					}
				}
				px0, py0, prevOK = x, y, true
			}
			text(x0+10+110*si, y0+14, s.Name, s.Color)
		}
	}
	return png.Encode(w, img)
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
