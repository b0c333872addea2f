package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/imgproc"
)

// TestEvaluateTTAFlip: evaluate --tta flip reports the accuracy and loss
// of the average of the softmax probabilities of each image and its
// mirror image, as computed by hand from predict's probabilities of both
// (at batches that do and do not divide the data); without --tta the
// loss is that of the image alone; and on left-right symmetric images
// flip TTA changes nothing.
func TestEvaluateTTAFlip(t *testing.T) {
	model, _, _ := sampleFiles(t)
	ds, err := cifar.EmbeddedSample("test")
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	dir := t.TempDir()
	mirror := func(img *imgproc.Image) *imgproc.Image {
		out := &imgproc.Image{W: img.W, H: img.H, Pix: make([]byte, len(img.Pix))}
		for c := 0; c < 3; c++ {
			for y := 0; y < img.H; y++ {
				for x := 0; x < img.W; x++ {
					out.Pix[(c*img.H+y)*img.W+x] = img.Pix[(c*img.H+y)*img.W+img.W-1-x]
				}
			}
		}
		return out
	}
	symmetric := func(img *imgproc.Image) *imgproc.Image {
		out := &imgproc.Image{W: img.W, H: img.H, Pix: append([]byte(nil), img.Pix...)}
		for c := 0; c < 3; c++ {
			for y := 0; y < img.H; y++ {
				for x := 0; x < img.W/2; x++ {
					out.Pix[(c*img.H+y)*img.W+img.W-1-x] = out.Pix[(c*img.H+y)*img.W+x]
				}
			}
		}
		return out
	}
	writePNG := func(name string, img *imgproc.Image) string {
		rgba := image.NewRGBA(image.Rect(0, 0, img.W, img.H))
		for y := 0; y < img.H; y++ {
			for x := 0; x < img.W; x++ {
				o := y*img.W + x
				rgba.Set(x, y, color.RGBA{img.Pix[o], img.Pix[img.W*img.H+o], img.Pix[2*img.W*img.H+o], 255})
			}
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := png.Encode(f, rgba); err != nil {
			t.Fatal(err)
		}
		return f.Name()
	}
	var rec, symRec []byte
	var plain, mirrored []string
	labels := make([]int, n)
	for i := 0; i < n; i++ {
		img := ds.Image(i)
		labels[i] = ds.Labels[i]
		rec = append(append(rec, byte(ds.Labels[i])), img.Pix...)
		symRec = append(append(symRec, byte(ds.Labels[i])), symmetric(img).Pix...)
		plain = append(plain, writePNG(fmt.Sprintf("img%d.png", i), img))
		mirrored = append(mirrored, writePNG(fmt.Sprintf("mirror%d.png", i), mirror(img)))
	}
	bin, symBin := filepath.Join(dir, "six.bin"), filepath.Join(dir, "symmetric.bin")
	if err := os.WriteFile(bin, rec, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(symBin, symRec, 0o644); err != nil {
		t.Fatal(err)
	}
	// probs returns predict's probabilities of all 10 classes per image.
	probs := func(files []string) [][]float64 {
		code, out, errOut := runCLI(append([]string{"predict", "--json", "--top", "10", model}, files...)...)
		if code != 0 {
			t.Fatal(errOut)
		}
		var p [][]float64
		for _, r := range decodeLines(t, out) {
			row := make([]float64, 10)
			for _, q := range r.Predictions {
				row[q.Index] = q.Prob
			}
			p = append(p, row)
		}
		if len(p) != n {
			t.Fatalf("predict gave %d results for %d images", len(p), n)
		}
		return p
	}
	pa, pb := probs(plain), probs(mirrored)
	differ := false
	for i := range pa {
		for j := range pa[i] {
			differ = differ || math.Abs(pa[i][j]-pb[i][j]) > 1e-6
		}
	}
	if !differ {
		t.Fatal("the model gives its mirror images the same probabilities: the test would prove nothing")
	}
	byHand := func(tta bool) (top1, loss float64) {
		for i := 0; i < n; i++ {
			p := append([]float64(nil), pa[i]...)
			if tta {
				for j := range p {
					p[j] = (pa[i][j] + pb[i][j]) / 2
				}
			}
			best := 0
			for j := range p {
				if p[j] > p[best] {
					best = j
				}
			}
			if best == labels[i] {
				top1++
			}
			loss -= math.Log(p[labels[i]])
		}
		return top1 / n, loss / n
	}
	type result struct {
		Images int     `json:"images"`
		Top1   float64 `json:"top1"`
		Loss   float64 `json:"loss"`
		TTA    string  `json:"tta"`
	}
	evaluate := func(data string, args ...string) result {
		t.Helper()
		code, out, errOut := runCLI(append([]string{"evaluate", model, "--data", data, "--json"}, args...)...)
		if code != 0 {
			t.Fatal(errOut)
		}
		var r result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		args []string
		tta  bool
	}{
		{"flip, batch 4", []string{"--tta", "flip", "--batch", "4"}, true},
		{"flip, one batch", []string{"--tta", "flip"}, true},
		{"none", []string{"--batch", "4"}, false},
		{"none given", []string{"--tta", "none"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := evaluate(bin, tc.args...)
			top1, loss := byHand(tc.tta)
			if got.Images != n || got.Top1 != top1 || math.Abs(got.Loss-loss) > 1e-6 {
				t.Errorf("evaluate %+v; by hand top1 %g, loss %g", got, top1, loss)
			}
		})
	}
	a, b := evaluate(symBin), evaluate(symBin, "--tta", "flip")
	if a.Top1 != b.Top1 || math.Abs(a.Loss-b.Loss) > 1e-12 || b.TTA != "flip" {
		t.Errorf("symmetric images: %+v without TTA, %+v with", a, b)
	}
	code, out, _ := runCLI("evaluate", model, "--data", bin, "--tta", "flip")
	if code != 0 || !strings.Contains(out, "flip TTA") || !strings.Contains(out, "loss (mean cross-entropy)") {
		t.Errorf("text output (exit %d): %q", code, out)
	}
	if code, _, errOut := runCLI("evaluate", model, "--data", bin, "--tta", "crop"); code != exitUsage || !strings.Contains(errOut, "--tta") {
		t.Errorf("--tta crop: exit %d, %q", code, errOut)
	}
}
