package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/resnetctl/resnetctl/internal/atomicfile"
	"github.com/resnetctl/resnetctl/internal/plot"
	"github.com/resnetctl/resnetctl/train"
)

// historyFiles keeps a run's metrics: metrics.jsonl (one JSON object an
// epoch), metrics.csv, and curve.png (loss and accuracy per epoch, redrawn
// after every epoch). A resumed run continues the files, keeping only the
// epochs before the one it resumes from.
type historyFiles struct {
	dir    string
	epochs []train.EpochMetrics
}

func newHistoryFiles(dir string, resume bool) (*historyFiles, error) {
	h := &historyFiles{dir: dir}
	if resume {
		f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
		if err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var m train.EpochMetrics
				if json.Unmarshal(sc.Bytes(), &m) == nil {
					h.epochs = append(h.epochs, m)
				}
			}
			f.Close()
		}
	}
	return h, nil
}

// add records an epoch (replacing any later epochs a resumed run redoes)
// and rewrites the three files atomically.
func (h *historyFiles) add(m train.EpochMetrics) error {
	keep := h.epochs[:0]
	for _, e := range h.epochs {
		if e.Epoch < m.Epoch {
			keep = append(keep, e)
		}
	}
	h.epochs = append(keep, m)
	if err := atomicfile.Write(filepath.Join(h.dir, "metrics.jsonl"), 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, e := range h.epochs {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(h.dir, "metrics.csv"), 0o644, func(w io.Writer) error {
		fmt.Fprintln(w, "epoch,step,lr,loss,accuracy,val_loss,val_accuracy")
		for _, e := range h.epochs {
			fmt.Fprintf(w, "%d,%d,%g,%g,%g,%g,%g\n", e.Epoch, e.Step, e.LR, e.Loss, e.Accuracy, e.ValLoss, e.ValAccuracy)
		}
		return nil
	}); err != nil {
		return err
	}
	var loss, valLoss, acc, valAcc []float64
	for _, e := range h.epochs {
		loss, acc = append(loss, e.Loss), append(acc, e.Accuracy)
		vl, va := e.ValLoss, e.ValAccuracy
		if !e.Validated { // not drawn, rather than drawn at 0
			vl, va = math.NaN(), math.NaN()
		}
		valLoss, valAcc = append(valLoss, vl), append(valAcc, va)
	}
	return atomicfile.Write(filepath.Join(h.dir, "curve.png"), 0o644, func(w io.Writer) error {
		return plot.WritePNG(w, []plot.Panel{
			{Title: "loss", YFromZero: true, Series: []plot.Series{{Name: "train", Y: loss, Color: plot.Blue}, {Name: "validation", Y: valLoss, Color: plot.Orange}}},
			{Title: "accuracy", Series: []plot.Series{{Name: "train", Y: acc, Color: plot.Blue}, {Name: "validation", Y: valAcc, Color: plot.Orange}}},
		})
	})
}

// Close has nothing to flush (every add rewrites the files); it exists so
// callers can defer it should buffering come.
func (h *historyFiles) Close() error { return nil }
