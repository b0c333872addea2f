package classify

import (
	"context"
	"fmt"
	"testing"

	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/infer"
)

// TestWriteLayouts: the interleaved (NHWC) and gray samples hold the same
// values as the planar one, moved or reduced to the luma.
func TestWriteLayouts(t *testing.T) {
	img := imgproc.NewImage(2, 2)
	for i := range img.Pix {
		img.Pix[i] = uint8(10 * i)
	}
	norm, _ := imgproc.NewNormalizer(imgproc.Norm{Mode: imgproc.ModeRaw})
	planar := &Setup{C: 3, H: 2, W: 2, Layout: NCHW, Norm: norm}
	want := make([]float32, 12)
	if err := planar.Write(want, 0, img, "x"); err != nil {
		t.Fatal(err)
	}
	nhwc := &Setup{C: 3, H: 2, W: 2, Layout: NHWC, Norm: norm}
	got := make([]float32, 24)
	if err := nhwc.Write(got, 1, img, "x"); err != nil {
		t.Fatal(err)
	}
	for p := 0; p < 4; p++ {
		for c := 0; c < 3; c++ {
			if got[12+3*p+c] != want[c*4+p] {
				t.Fatalf("NHWC pixel %d channel %d: %v, want %v", p, c, got[12+3*p+c], want[c*4+p])
			}
		}
	}
	gray := &Setup{C: 1, H: 2, W: 2, Layout: NCHW, Norm: norm}
	g := make([]float32, 4)
	if err := gray.Write(g, 0, img, "x"); err != nil {
		t.Fatal(err)
	}
	// Pillow: L = R*299/1000 + G*587/1000 + B*114/1000, rounded.
	if r, gg, b := 0.0, 40.0, 80.0; g[0] != float32(int(r*0.299+gg*0.587+b*0.114+0.5)) {
		t.Errorf("gray %v", g)
	}
	if err := gray.Write(g, 0, imgproc.NewImage(3, 2), "x.png"); err == nil {
		t.Error("a 3x2 image written as 2x2")
	}
}

// fixedRunner is a model of batch b whose score row is its sample's
// first value and 0, refusing any other batch as the runtime does.
type fixedRunner struct {
	b, per int
	runs   int
}

func (r *fixedRunner) Run(_ context.Context, in map[string]*infer.Tensor) (map[string]*infer.Tensor, error) {
	x := in["input"]
	if x.Shape[0] != r.b {
		return nil, fmt.Errorf("input has shape %v, the model wants batch %d", x.Shape, r.b)
	}
	r.runs++
	out := make([]float32, 2*r.b)
	for i := range r.b {
		out[2*i] = x.Float32[i*r.per]
	}
	return map[string]*infer.Tensor{"logits": infer.NewFloat32([]int{r.b, 2}, out)}, nil
}

// TestRunFixedBatch: n samples run as whole batches of the model's size,
// the last padded, its padding rows dropped.
func TestRunFixedBatch(t *testing.T) {
	for _, b := range []int{1, 3, 8} {
		s := &Setup{Input: "input", Output: "logits", C: 1, H: 1, W: 2, Layout: NCHW, Batch: b}
		r := &fixedRunner{b: b, per: 2}
		x := []float32{1, 0, 2, 0, 3, 0, 4, 0, 5, 0}
		scores, err := s.Run(context.Background(), r, x, 5)
		if err != nil {
			t.Fatal(err)
		}
		if scores.Shape[0] != 5 || r.runs != (5+b-1)/b {
			t.Fatalf("batch %d: %v after %d runs", b, scores.Shape, r.runs)
		}
		for i := range 5 {
			if scores.Float32[2*i] != float32(i+1) {
				t.Errorf("batch %d: row %d is %v", b, i, scores.Float32[2*i:2*i+2])
			}
		}
	}
}

// TestHalf: every half widens and narrows back to itself, and float32
// values round to the nearest half, ties to even.
func TestHalf(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue // NaN
		}
		if got := halfFromFloat32(halfToFloat32(uint16(h))); got != uint16(h) {
			t.Fatalf("half %#04x → %v → %#04x", h, halfToFloat32(uint16(h)), got)
		}
	}
	for _, tc := range []struct {
		v    float32
		want uint16
	}{{1, 0x3c00}, {65504, 0x7bff}, {65520, 0x7c00}, {1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02}, {-2, 0xc000}, {5.96e-8, 0x0001}, {1e-9, 0}} {
		if got := halfFromFloat32(tc.v); got != tc.want {
			t.Errorf("%v → %#04x, want %#04x", tc.v, got, tc.want)
		}
	}
}
