package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/resnetctl/resnetctl/train"
)

// trainProgress draws `resnetctl train`'s progress line on a terminal:
//
//	epoch 3/30  batch 120/390  loss 1.2345  acc 55.12%  812 img/s  ETA 12m05s
//	epoch 3/30  validating 2560/10000  ETA 11m50s
//
// redrawn in place at most redrawsPerSecond times a second, never wider than
// the terminal (the least important fields go first), and cleared at the end
// of every epoch so the epoch's summary line, printed by the caller, stands
// alone. On anything but a terminal it writes nothing.
type trainProgress struct {
	w     io.Writer
	tty   bool
	width func() int       // the terminal's columns, 0 when unknown
	now   func() time.Time // the clock that throttles redraws

	mu       sync.Mutex
	drawn    bool // a progress line is on the screen
	kind     int  // what the line shows: lineTrain or lineValidate
	lastDraw time.Time
	cols     int // the width last read, at colsAt
	colsAt   time.Time
}

const (
	lineTrain = iota + 1
	lineValidate

	redrawEvery  = time.Second / 10 // redraws at most 10 times a second
	rereadWidth  = time.Second      // how long a terminal width read is trusted
	defaultWidth = 80
)

var (
	_ train.Callback           = (*trainProgress)(nil)
	_ train.ValidationCallback = (*trainProgress)(nil)
)

// newTrainProgress reports to errw, drawing only when it is a terminal.
func newTrainProgress(errw io.Writer) *trainProgress {
	tty := isTerminal(errw)
	width := func() int { return 0 }
	if f, ok := errw.(*os.File); ok && tty {
		width = func() int { return terminalWidth(f) }
	}
	return newTrainProgressTo(errw, tty, width)
}

// newTrainProgressTo is newTrainProgress with the terminal test and the
// width (0 when unknown) given.
func newTrainProgressTo(w io.Writer, isTTY bool, width func() int) *trainProgress {
	return &trainProgress{w: w, tty: isTTY, width: width, now: time.Now}
}

// OnBatchEnd implements train.Callback.
func (p *trainProgress) OnBatchEnd(b train.BatchInfo) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.drawn && p.kind == lineTrain && b.Batch != 1 && b.Batch != b.Batches && now.Sub(p.lastDraw) < redrawEvery {
		return
	}
	p.draw(now, lineTrain, []lineField{
		{fmt.Sprintf("epoch %d/%d", b.Epoch, b.Epochs), 0},
		{fmt.Sprintf("batch %d/%d", b.Batch, b.Batches), 1},
		{fmt.Sprintf("loss %.4f", b.EpochLoss), 3},
		{fmt.Sprintf("acc %.2f%%", 100*b.EpochAccuracy), 4},
		{fmt.Sprintf("%.0f img/s", b.ImagesPerSecond), 5},
		{"ETA " + formatETA(b.ETA), 2},
	})
}

// OnValidationBatch implements train.ValidationCallback.
func (p *trainProgress) OnValidationBatch(v train.ValidationInfo) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.drawn && p.kind == lineValidate && v.Done < v.Total && now.Sub(p.lastDraw) < redrawEvery {
		return
	}
	done := fmt.Sprintf("validating %d/%d", v.Done, v.Total)
	if v.Total <= 0 {
		done = fmt.Sprintf("validating %d", v.Done)
	}
	p.draw(now, lineValidate, []lineField{
		{fmt.Sprintf("epoch %d/%d", v.Epoch, v.Epochs), 1},
		{done, 0},
		{"ETA " + formatETA(v.ETA), 2},
	})
}

// OnEpochEnd implements train.Callback: it clears the progress line.
func (p *trainProgress) OnEpochEnd(train.EpochInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		io.WriteString(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

// EndLine ends the progress line on the screen, keeping it, so that a
// message can follow; it does nothing when no line is drawn.
func (p *trainProgress) EndLine() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		io.WriteString(p.w, "\n")
		p.drawn = false
	}
}

// draw writes the line over the current one. p.mu is held.
func (p *trainProgress) draw(now time.Time, kind int, fields []lineField) {
	if p.colsAt.IsZero() || now.Sub(p.colsAt) >= rereadWidth || now.Before(p.colsAt) {
		p.cols, p.colsAt = p.width(), now
	}
	cols := p.cols
	if cols <= 0 {
		cols = defaultWidth
	}
	// One column stays free: writing the last one makes some terminals
	// wrap, and the next \r would then return to the wrong row.
	io.WriteString(p.w, "\r"+fitLine(fields, cols-1)+"\x1b[K")
	p.drawn, p.kind, p.lastDraw = true, kind, now
}

// lineField is a part of the progress line; rank orders the fields by
// importance (0 most important), the least important going first when the
// line is too wide.
type lineField struct {
	text string
	rank int
}

// fitLine joins the fields with two spaces, leaving out the least important
// ones until the line has at most max columns, and truncates what is left
// should even the most important field be too wide. The texts are ASCII.
func fitLine(fields []lineField, max int) string {
	if max <= 0 {
		return ""
	}
	keep := append([]lineField(nil), fields...)
	for {
		texts := make([]string, len(keep))
		worst := 0
		for i, f := range keep {
			texts[i] = f.text
			if f.rank > keep[worst].rank {
				worst = i
			}
		}
		s := strings.Join(texts, "  ")
		if len(s) <= max {
			return s
		}
		if len(keep) <= 1 {
			return s[:max]
		}
		keep = append(keep[:worst], keep[worst+1:]...)
	}
}

// formatETA writes a duration the way the progress line shows it: 45s,
// 12m05s, 1h02m.
func formatETA(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := d.Round(time.Second)
	switch {
	case s < time.Minute:
		return fmt.Sprintf("%ds", int(s/time.Second))
	case s < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(s/time.Minute), int(s%time.Minute/time.Second))
	}
	m := d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", int(m/time.Hour), int(m%time.Hour/time.Minute))
}
