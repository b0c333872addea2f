package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/train"
)

// fakeClock is a clock the tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock               { return &fakeClock{t: time.Unix(1e9, 0)} }
func fixedWidth(w int) func() int            { return func() int { return w } }
func testProgress(buf *bytes.Buffer, tty bool, width int) (*trainProgress, *fakeClock) {
	p := newTrainProgressTo(buf, tty, fixedWidth(width))
	c := newFakeClock()
	p.now = c.now
	return p, c
}

// drawnLines splits the output into the lines drawn with \r … \x1b[K.
func drawnLines(t *testing.T, out string) []string {
	t.Helper()
	var lines []string
	for _, part := range strings.Split(out, "\r")[1:] {
		s, ok := strings.CutSuffix(part, "\x1b[K")
		if !ok {
			t.Fatalf("a redraw does not clear to the end of the line: %q", part)
		}
		lines = append(lines, s)
	}
	return lines
}

var (
	sampleBatch = train.BatchInfo{Epoch: 3, Epochs: 30, Batch: 120, Batches: 390, EpochLoss: 1.23449, EpochAccuracy: 0.55123,
		ImagesPerSecond: 812.3, ETA: 12*time.Minute + 5*time.Second}
	hugeBatch = train.BatchInfo{Epoch: 1000, Epochs: 1000, Batch: 123456, Batches: 999999, EpochLoss: 12345.6789, EpochAccuracy: 1,
		ImagesPerSecond: 1234567, ETA: 9999 * time.Hour}
	sampleVal = train.ValidationInfo{Epoch: 3, Epochs: 30, Done: 2560, Total: 10000, ETA: 11*time.Minute + 50*time.Second}
)

func TestTrainProgressLine(t *testing.T) {
	for _, tc := range []struct {
		width int
		want  string
	}{
		{200, "epoch 3/30  batch 120/390  loss 1.2345  acc 55.12%  812 img/s  ETA 12m05s"},
		{80, "epoch 3/30  batch 120/390  loss 1.2345  acc 55.12%  812 img/s  ETA 12m05s"},
		{0, "epoch 3/30  batch 120/390  loss 1.2345  acc 55.12%  812 img/s  ETA 12m05s"}, // unknown: 80
		{73, "epoch 3/30  batch 120/390  loss 1.2345  acc 55.12%  ETA 12m05s"},
		{74, "epoch 3/30  batch 120/390  loss 1.2345  acc 55.12%  812 img/s  ETA 12m05s"},
		{63, "epoch 3/30  batch 120/390  loss 1.2345  acc 55.12%  ETA 12m05s"},
		{62, "epoch 3/30  batch 120/390  loss 1.2345  ETA 12m05s"},
		{51, "epoch 3/30  batch 120/390  loss 1.2345  ETA 12m05s"},
		{50, "epoch 3/30  batch 120/390  ETA 12m05s"},
		{40, "epoch 3/30  batch 120/390  ETA 12m05s"},
		{30, "epoch 3/30  batch 120/390"},
		{20, "epoch 3/30"},
		{8, "epoch 3"},
	} {
		var buf bytes.Buffer
		p, _ := testProgress(&buf, true, tc.width)
		p.OnBatchEnd(sampleBatch)
		lines := drawnLines(t, buf.String())
		if len(lines) != 1 || lines[0] != tc.want {
			t.Errorf("width %d: drew %q, want %q", tc.width, lines, tc.want)
		}
	}
}

func TestTrainProgressNeverWiderThanTerminal(t *testing.T) {
	for width := 20; width <= 200; width++ {
		for _, b := range []train.BatchInfo{sampleBatch, hugeBatch} {
			var buf bytes.Buffer
			p, clock := testProgress(&buf, true, width)
			p.OnBatchEnd(b)
			clock.advance(time.Second)
			p.OnValidationBatch(train.ValidationInfo{Epoch: b.Epoch, Epochs: b.Epochs, Done: 1234567, Total: 9999999, ETA: b.ETA})
			lines := drawnLines(t, buf.String())
			if len(lines) != 2 {
				t.Fatalf("width %d: %d lines drawn, want 2", width, len(lines))
			}
			for _, l := range lines {
				if len(l) > width-1 || len(l) == 0 {
					t.Errorf("width %d: line of %d columns: %q", width, len(l), l)
				}
				if !strings.HasPrefix(l, "epoch ") && !strings.HasPrefix(l, "validating ") {
					t.Errorf("width %d: the line lost its most important field: %q", width, l)
				}
			}
		}
	}
}

func TestTrainProgressWidthReread(t *testing.T) {
	var buf bytes.Buffer
	width, reads := 200, 0
	p := newTrainProgressTo(&buf, true, func() int { reads++; return width })
	clock := newFakeClock()
	p.now = clock.now
	b := sampleBatch
	p.OnBatchEnd(b)
	width = 30 // the terminal shrinks
	for i := 0; i < 20; i++ {
		clock.advance(200 * time.Millisecond)
		b.Batch++
		p.OnBatchEnd(b)
	}
	if reads < 2 || reads > 5 {
		t.Errorf("the width was read %d times in 4 s of redraws, want about once a second", reads)
	}
	lines := drawnLines(t, buf.String())
	if last := lines[len(lines)-1]; len(last) > 29 {
		t.Errorf("after the terminal shrank to 30 columns the line is %q", last)
	}
}

func TestTrainProgressNotTerminal(t *testing.T) {
	var buf bytes.Buffer
	p, _ := testProgress(&buf, false, 80)
	p.OnBatchEnd(sampleBatch)
	p.OnValidationBatch(sampleVal)
	p.OnEpochEnd(train.EpochInfo{})
	p.OnBatchEnd(sampleBatch)
	p.EndLine()
	if buf.Len() != 0 {
		t.Errorf("wrote %q to a non-terminal", buf.String())
	}
	// The real constructor: a bytes.Buffer is no terminal.
	p = newTrainProgress(&buf)
	p.OnBatchEnd(sampleBatch)
	p.EndLine()
	if buf.Len() != 0 {
		t.Errorf("newTrainProgress wrote %q to a buffer", buf.String())
	}
}

func TestTrainProgressValidation(t *testing.T) {
	var buf bytes.Buffer
	p, clock := testProgress(&buf, true, 100)
	b := sampleBatch
	b.Batch = b.Batches
	p.OnBatchEnd(b)
	p.OnValidationBatch(train.ValidationInfo{Epoch: 3, Epochs: 30, Done: 256, Total: 10000, ETA: time.Hour + 2*time.Minute})
	clock.advance(time.Second)
	p.OnValidationBatch(sampleVal)
	lines := drawnLines(t, buf.String())
	want := []string{
		"epoch 3/30  batch 390/390  loss 1.2345  acc 55.12%  812 img/s  ETA 12m05s",
		"epoch 3/30  validating 256/10000  ETA 1h02m", // the first validation batch is drawn at once
		"epoch 3/30  validating 2560/10000  ETA 11m50s",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("drew\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestTrainProgressThrottle(t *testing.T) {
	var buf bytes.Buffer
	p, clock := testProgress(&buf, true, 100)
	b := sampleBatch
	b.Batches = 100
	draws := func() int { return strings.Count(buf.String(), "\r") }
	for i := 1; i <= 100; i++ { // 100 batches in 1 ms each
		b.Batch = i
		p.OnBatchEnd(b)
		clock.advance(time.Millisecond)
	}
	if n := draws(); n != 2 {
		t.Errorf("%d redraws for 100 batches within 0.1 s, want 2 (the first and the last)", n)
	}
	if lines := drawnLines(t, buf.String()); !strings.Contains(lines[len(lines)-1], "batch 100/100") {
		t.Errorf("the last batch is not shown: %q", lines[len(lines)-1])
	}
	buf.Reset()
	for i := 0; i < 100; i++ { // 100 validation batches, 5 s
		p.OnValidationBatch(train.ValidationInfo{Epoch: 3, Epochs: 30, Done: 100 * (i + 1), Total: 10000})
		clock.advance(50 * time.Millisecond)
	}
	if n := draws(); n < 45 || n > 55 {
		t.Errorf("%d redraws in 5 s of validation, want about 10 a second", n)
	}
	if !strings.Contains(buf.String(), "validating 10000/10000") {
		t.Error("the end of the validation is not shown")
	}
}

func TestTrainProgressEpochEnd(t *testing.T) {
	var buf bytes.Buffer
	p, _ := testProgress(&buf, true, 80)
	p.OnEpochEnd(train.EpochInfo{}) // nothing drawn: nothing to clear
	p.EndLine()
	if buf.Len() != 0 {
		t.Errorf("wrote %q with no line drawn", buf.String())
	}
	p.OnBatchEnd(sampleBatch)
	p.OnValidationBatch(sampleVal)
	buf.Reset()
	p.OnEpochEnd(train.EpochInfo{})
	if got := buf.String(); got != "\r\x1b[K" {
		t.Errorf("epoch end wrote %q, want the line cleared", got)
	}
	buf.Reset()
	p.EndLine() // cleared already
	p.OnBatchEnd(sampleBatch)
	p.EndLine()
	if got := buf.String(); !strings.HasPrefix(got, "\repoch 3/30") || !strings.HasSuffix(got, "\x1b[K\n") {
		t.Errorf("EndLine after a redraw: %q, want the line ended by a newline", got)
	}
}

func TestFormatETA(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{400 * time.Millisecond, "0s"},
		{45 * time.Second, "45s"},
		{59*time.Second + 600*time.Millisecond, "1m00s"},
		{12*time.Minute + 5*time.Second, "12m05s"},
		{59*time.Minute + 59*time.Second + 600*time.Millisecond, "1h00m"},
		{time.Hour + 2*time.Minute + 10*time.Second, "1h02m"},
		{26*time.Hour + 59*time.Minute + 40*time.Second, "27h00m"},
	} {
		if got := formatETA(tc.d); got != tc.want {
			t.Errorf("formatETA(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
