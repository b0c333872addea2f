package classify

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strings"

	"github.com/resnetctl/resnetctl/internal/printable"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Eval accumulates classification results: the evaluation statistics of
// a labelled test set (accuracies, per-class accuracy, confusion matrix).
type Eval struct {
	Classes []string // class names, nil when unknown
	// Confusion[t][p] counts images of true class t predicted as p.
	Confusion [][]int
	Total     int // images added
	Top1      int // images whose best-scored class is their label
	Top5      int // images whose label is among the 5 best-scored classes
}

// NewEval starts an evaluation over n classes.
func NewEval(classes []string, n int) *Eval {
	e := &Eval{Classes: classes, Confusion: make([][]int, n)}
	for i := range e.Confusion {
		e.Confusion[i] = make([]int, n)
	}
	return e
}

// Add records one image with true label and its scores. Scores that are
// not all finite are refused with an error matching ErrNonFinite.
func (e *Eval) Add(label int, scores []float32) error {
	if label < 0 || label >= len(e.Confusion) {
		return fmt.Errorf("label %d outside the model's %d classes", label, len(e.Confusion))
	}
	if len(scores) != len(e.Confusion) {
		return fmt.Errorf("the model gives %d scores for %d classes", len(scores), len(e.Confusion))
	}
	// NaN compares false with everything: it would count as a correct
	// top-1 answer.
	if k := NonFinite(scores); k != "" {
		return nonFiniteError(fmt.Sprintf("the scores contain %s", k))
	}
	best, rank := 0, 0
	for i, v := range scores {
		if v > scores[best] {
			best = i
		}
		// Ties count against the true class, so a constant output scores 0.
		if i != label && v >= scores[label] {
			rank++
		}
	}
	e.Confusion[label][best]++
	e.Total++
	if rank == 0 {
		e.Top1++
	}
	if rank < 5 {
		e.Top5++
	}
	return nil
}

// Top1Accuracy and Top5Accuracy are fractions in [0, 1].
func (e *Eval) Top1Accuracy() float64 { return ratio(e.Top1, e.Total) }

// Top5Accuracy is the fraction of images whose class is among the 5 best.
func (e *Eval) Top5Accuracy() float64 { return ratio(e.Top5, e.Total) }

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// PerClass returns each class's accuracy (recall) and image count; the
// accuracy of a class with no images is NaN (print "-", encode null).
func (e *Eval) PerClass() (acc []float64, count []int) {
	for t, row := range e.Confusion {
		n := 0
		for _, v := range row {
			n += v
		}
		count = append(count, n)
		acc = append(acc, ratio(row[t], n))
	}
	return acc, count
}

func (e *Eval) name(i int) string {
	if i < len(e.Classes) {
		return e.Classes[i]
	}
	return fmt.Sprintf("class %d", i)
}

// percent formats a/b as a percentage, "-" when b is 0 (a class with no
// images has no accuracy; NaN% would be printed).
func percent(a, b int) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(a)/float64(b))
}

// textName is class i's name for a terminal: escaped (quoted) when it holds
// control characters, such as a terminal escape sequence from a model's
// metadata or a labels file, or is not UTF-8.
func (e *Eval) textName(i int) string { return printable.Name(e.name(i)) }

// WriteText prints the summary, per-class accuracy and the confusion
// matrix (rows: true class, columns: predicted). Classes with no images
// show "-" for their accuracy.
func (e *Eval) WriteText(w io.Writer) {
	fmt.Fprintf(w, "images: %d\ntop-1 accuracy: %s\ntop-5 accuracy: %s\n\n", e.Total, percent(e.Top1, e.Total), percent(e.Top5, e.Total))
	_, count := e.PerClass()
	width := 5
	for i := range e.Confusion {
		width = max(width, len(e.textName(i)))
	}
	fmt.Fprintf(w, "%-*s  %8s  %6s\n", width, "class", "accuracy", "images")
	for i, row := range e.Confusion {
		fmt.Fprintf(w, "%-*s  %8s  %6d\n", width, e.textName(i), percent(row[i], count[i]), count[i])
	}
	if len(e.Confusion) > 20 {
		fmt.Fprintf(w, "\n(confusion matrix of %d classes: see --plot or --json)\n", len(e.Confusion))
		return
	}
	fmt.Fprintf(w, "\nconfusion matrix (rows: true class, columns: predicted)\n%-*s", width, "")
	for j := range e.Confusion {
		fmt.Fprintf(w, " %5d", j)
	}
	fmt.Fprintln(w)
	for i, row := range e.Confusion {
		fmt.Fprintf(w, "%-*s", width, e.textName(i))
		for _, v := range row {
			fmt.Fprintf(w, " %5d", v)
		}
		fmt.Fprintln(w)
	}
}

// WritePNG draws the row-normalised confusion matrix as a heat map with
// class names and counts.
func (e *Eval) WritePNG(w io.Writer) error {
	n := len(e.Confusion)
	if n == 0 {
		return fmt.Errorf("no classes to plot")
	}
	cell := 40
	if n > 20 {
		cell = max(2, 800/n)
	}
	labelW := 0
	for i := range n {
		labelW = max(labelW, 7*len(e.name(i)))
	}
	labelW = min(labelW+10, 200)
	top := 30
	title := fmt.Sprintf("confusion matrix: top-1 %.2f%% of %d (rows true, columns predicted)", 100*e.Top1Accuracy(), e.Total)
	width := max(labelW+n*cell+10, 2*labelW+7*len(title))
	img := image.NewRGBA(image.Rect(0, 0, width, top+n*cell+labelW))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	d := &font.Drawer{Dst: img, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13}
	text := func(x, y int, s string) {
		d.Dot = fixed.P(x, y)
		d.DrawString(s)
	}
	text(labelW, 18, title)
	for t, row := range e.Confusion {
		sum := 0
		for _, v := range row {
			sum += v
		}
		for p, v := range row {
			f := 0.0
			if sum > 0 {
				f = float64(v) / float64(sum)
			}
			c := color.RGBA{uint8(255 - 200*f), uint8(255 - 150*f), 255, 255}
			x0, y0 := labelW+p*cell, top+t*cell
			for y := y0; y < y0+cell-1; y++ {
				for x := x0; x < x0+cell-1; x++ {
					img.Set(x, y, c)
				}
			}
			if cell >= 30 && v > 0 {
				text(x0+3, y0+cell/2+4, fmt.Sprint(v))
			}
		}
		if cell >= 12 {
			text(2, top+t*cell+cell/2+4, truncate(e.name(t), (labelW-10)/7))
		}
	}
	if cell >= 12 { // column names, vertical: first letters under each column
		for p := range n {
			name := truncate(e.name(p), labelW/13)
			for k, r := range strings.Split(name, "") {
				text(labelW+p*cell+cell/2-3, top+n*cell+13*(k+1), r)
			}
		}
	}
	return png.Encode(w, img)
}

func truncate(s string, n int) string {
	if n < 1 {
		return ""
	}
	if len(s) > n {
		return s[:n]
	}
	return s
}
