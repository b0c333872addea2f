package classify

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/infer"
)

func TestDecodePredictions(t *testing.T) {
	scores := infer.NewFloat32([]int{2, 3}, []float32{0, 2, 1, 5, 0, 0})
	got, err := DecodePredictions(scores, 2, false, []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[0]) != 2 || got[0][0].Label != "b" || got[0][1].Label != "c" || got[1][0].Label != "a" || got[1][0].Rank != 1 {
		t.Errorf("predictions %+v", got)
	}
	if p := got[1][0].Prob; math.Abs(p-math.Exp(5)/(math.Exp(5)+2)) > 1e-12 {
		t.Errorf("probability %v", p)
	}
	// Unnamed classes, probabilities as given.
	got, err = DecodePredictions(infer.NewFloat32([]int{1, 2}, []float32{0.25, 0.75}), 5, true, nil)
	if err != nil || len(got[0]) != 2 || got[0][0].Label != "class 1" || got[0][0].Prob != 0.75 {
		t.Errorf("predictions %+v, %v", got, err)
	}
	for _, bad := range []*infer.Tensor{nil, infer.NewFloat32([]int{3}, make([]float32, 3)), infer.NewFloat32([]int{2, 2}, make([]float32, 3))} {
		if _, err := DecodePredictions(bad, 1, false, nil); err == nil {
			t.Errorf("%+v decoded", bad)
		}
	}
}

// scoreRunner answers every sample with scores: its first value, then 0s.
type scoreRunner struct{ classes int }

func (r scoreRunner) Run(_ context.Context, in map[string]*infer.Tensor) (map[string]*infer.Tensor, error) {
	x := in["input"]
	n, per := x.Shape[0], x.Len()/x.Shape[0]
	out := make([]float32, n*r.classes)
	for i := range n {
		out[i*r.classes] = x.Float32[i*per]
	}
	return map[string]*infer.Tensor{"logits": infer.NewFloat32([]int{n, r.classes}, out)}, nil
}

func TestClassify(t *testing.T) {
	norm, _ := imgproc.NewNormalizer(imgproc.Norm{Mode: imgproc.ModeRaw})
	s := &Setup{Input: "input", C: 3, H: 2, W: 2, Layout: NCHW, Norm: norm, Output: "logits", Classes: []string{"zero", "one", "two"}}
	bright, dark := imgproc.NewImage(4, 4), imgproc.NewImage(3, 5)
	for i := range bright.Pix {
		bright.Pix[i] = 200
	}
	got, err := s.Classify(context.Background(), scoreRunner{3}, []*imgproc.Image{bright, dark}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0][0].Label != "zero" || got[0][0].Prob < 0.99 || len(got[1]) != 2 || got[1][0].Prob > 0.34 {
		t.Errorf("predictions %+v", got)
	}
	if got, err := s.Classify(context.Background(), scoreRunner{3}, nil, 2); got != nil || err != nil {
		t.Errorf("no images: %v, %v", got, err)
	}
	// Non-finite scores are refused.
	nan := &Setup{Input: "input", C: 3, H: 2, W: 2, Layout: NCHW, Norm: norm, Output: "logits"}
	if _, err := nan.Classify(context.Background(), nanRunner{}, []*imgproc.Image{bright}, 1); !errors.Is(err, ErrNonFinite) {
		t.Errorf("NaN scores: %v", err)
	}
}

type nanRunner struct{}

func (nanRunner) Run(context.Context, map[string]*infer.Tensor) (map[string]*infer.Tensor, error) {
	return map[string]*infer.Tensor{"logits": infer.NewFloat32([]int{1, 2}, []float32{float32(math.NaN()), 0})}, nil
}
