package plot

import (
	"bytes"
	"image/png"
	"math"
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
	// The first train-loss point (epoch 1, the maximum) is drawn in blue.
	found := false
	for x := 40; x < 60 && !found; x++ {
		for y := 25; y < 60; y++ {
			if r, g, bb, _ := img.At(x, y).RGBA(); r>>8 == 31 && g>>8 == 119 && bb>>8 == 180 {
				found = true
				break
			}
		}
	}
	if !found {
		t.Error("no blue point near the top left of the loss panel")
	}
	if err := WritePNG(&b, []Panel{{Title: "x", Series: []Series{{Y: []float64{math.NaN()}}}}}); err == nil {
		t.Error("a panel without finite values was drawn")
	}
}
