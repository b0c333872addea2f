package imgproc

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The golden files are made by testdata/make_golden.py with Pillow 9.4 and
// torchvision 0.14 (Debian bookworm). Tolerances, in 8-bit levels (a level
// is 1/255/std after torch normalisation):
//
//   - PNG, GIF, BMP, WebP (lossless and lossy): decoding, resizing, cropping
//     and normalisation are bit-exact with Pillow and torchvision; only
//     float32 rounding is allowed (1e-6; the outputs are in fact identical).
//   - JPEG: Go's IDCT (a Chen-Wang IDCT) is not libjpeg's islow IDCT, so a
//     few decoded samples differ by a level or so. Measured: mean 0.04
//     levels on the 93×61 and 150×103 images (0.12 on a 9×8 one, where a
//     few pixels weigh more), max 3. We require mean ≤ 0.15 and max ≤ 4
//     levels. That is far
//     below anything that changes a prediction (JPEG re-encoding moves
//     pixels by several levels), and tight enough to catch a wrong chroma
//     upsampling or colour conversion: Go's stock YCbCr conversion
//     (nearest-neighbour chroma) is 2.0 levels off on average for 4:2:0.

type goldenCase struct {
	Kind   string    `json:"kind"`
	Label  string    `json:"label"`
	Mode   string    `json:"mode"`
	Input  string    `json:"input"`
	W      int       `json:"w"`
	H      int       `json:"h"`
	Resize any       `json:"resize"` // int: shorter side; [h, w]: direct
	Crop   []int     `json:"crop"`   // [h, w] or nil
	Mean   []float32 `json:"mean"`
	Std    []float32 `json:"std"`
	Shape  []int     `json:"shape"`
	File   string    `json:"file"`
}

func loadGolden(t *testing.T) []goldenCase {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct{ Cases []goldenCase }
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g.Cases
}

func decodeTestImage(t testing.TB, name string) *Image {
	t.Helper()
	img, err := DecodeFile(filepath.Join("testdata", "images", name))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type tolerance struct{ mean, max float64 }

// levelTolerance is the tolerance on 8-bit samples for an input file.
func levelTolerance(input string) tolerance {
	if strings.HasSuffix(input, ".jpg") {
		return tolerance{0.15, 4}
	}
	return tolerance{0, 0}
}

func diffStats(got, want []float64) (mean, max float64) {
	for i := range got {
		d := math.Abs(got[i] - want[i])
		mean += d
		max = math.Max(max, d)
	}
	return mean / float64(len(got)), max
}

func TestGolden(t *testing.T) {
	cases := loadGolden(t)
	seen := map[string]int{}
	for _, c := range cases {
		name := c.Kind + "/" + c.Input
		switch c.Kind {
		case "resize", "keras":
			name += fmt.Sprintf("/%s%dx%d", c.Mode, c.W, c.H)
		case "pipeline":
			name = c.Kind + "/" + c.Label
		}
		t.Run(name, func(t *testing.T) {
			seen[c.Kind]++
			raw, err := os.ReadFile(filepath.Join("testdata", "golden", c.File))
			if err != nil {
				t.Fatal(err)
			}
			img := decodeTestImage(t, c.Input)
			var got, want []float64
			tol := levelTolerance(c.Input)
			scale := 1.0 // of one level in output units
			switch c.Kind {
			case "decode", "resize":
				if c.Kind == "resize" {
					img = Resize(img, c.W, c.H)
				}
				if !slices.Equal([]int{3, img.H, img.W}, c.Shape) {
					t.Fatalf("shape 3x%dx%d, want %v", img.H, img.W, c.Shape)
				}
				for i := range raw {
					got = append(got, float64(img.Pix[i]))
					want = append(want, float64(raw[i]))
				}
			case "pipeline", "keras":
				want = floats(raw)
				var p Preprocessor
				var z *Normalizer
				if c.Kind == "keras" {
					p = Preprocessor{W: c.W, H: c.H}
					z, err = NewNormalizer(Norm{Mode: Mode(c.Mode)})
					if c.Mode == "tf" {
						scale = 1 / 127.5
					}
				} else {
					p, err = pipelineFor(c)
					if err == nil {
						z, err = NewNormalizer(Norm{Mode: ModeTorch, Mean: c.Mean, Std: c.Std})
					}
					scale = 1 / 255.0 / float64(slices.Min(c.Std))
				}
				if err != nil {
					t.Fatal(err)
				}
				p.Norm = z
				if len(want) != 3*p.W*p.H || !slices.Equal(c.Shape, []int{3, p.H, p.W}) {
					t.Fatalf("golden shape %v, %d values; preprocessor gives 3x%dx%d", c.Shape, len(want), p.H, p.W)
				}
				out := make([]float32, 2*len(want)) // a batch of two, item 1
				if err := p.Write(out, 1, img); err != nil {
					t.Fatal(err)
				}
				for _, v := range out[len(want):] {
					got = append(got, float64(v))
				}
			default:
				t.Fatalf("unknown case kind %q", c.Kind)
			}
			mean, max := diffStats(got, want)
			slack := 1e-6 // float32 rounding
			if mean > tol.mean*scale+slack || max > tol.max*scale+slack {
				t.Errorf("differs from the reference: mean abs %.3g, max abs %.3g (%.3g, %.3g levels); tolerance mean %g, max %g levels",
					mean, max, mean/scale, max/scale, tol.mean, tol.max)
			}
			t.Logf("mean abs diff %.3g levels, max %.3g levels", mean/scale, max/scale)
		})
	}
	// Every kind must have run, so a broken golden.json cannot skip them.
	for _, k := range []string{"decode", "resize", "pipeline", "keras"} {
		if seen[k] == 0 {
			t.Errorf("no %s cases ran", k)
		}
	}
}

func pipelineFor(c goldenCase) (Preprocessor, error) {
	var p Preprocessor
	switch r := c.Resize.(type) {
	case float64: // shorter side, then the crop
		if len(c.Crop) != 2 {
			return p, fmt.Errorf("resize %v without a crop", r)
		}
		p.Resize, p.H, p.W = int(r), c.Crop[0], c.Crop[1]
	case []any: // [h, w], direct
		if len(r) != 2 || c.Crop != nil {
			return p, fmt.Errorf("unsupported resize %v with crop %v", r, c.Crop)
		}
		p.H, p.W = int(r[0].(float64)), int(r[1].(float64))
	default:
		return p, fmt.Errorf("unsupported resize %v", c.Resize)
	}
	return p, nil
}

func floats(raw []byte) []float64 {
	out := make([]float64, len(raw)/4)
	for i := range out {
		out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
	}
	return out
}
