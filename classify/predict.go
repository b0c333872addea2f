package classify

import (
	"context"
	"fmt"

	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/infer"
)

// The three steps of classifying images with a Setup, shared by
// `resnetctl predict` and the server's classify endpoint so that both feed
// a model and read its answer the same way: Sample writes each image into
// the input batch, Scores checks the output of the run, Predict ranks one
// image's row of it.

// Shape is the input shape of a batch of n samples, in the model's layout.
func (s *Setup) Shape(n int) []int {
	if s.Layout == NHWC {
		return []int{n, s.H, s.W, s.C}
	}
	return []int{n, s.C, s.H, s.W}
}

// Sample preprocesses img into sample i of the batch dst (which holds at
// least i+1 samples of C×H×W, in the model's layout) and checks that the
// values are finite; name identifies the image in errors.
func (s *Setup) Sample(pre *imgproc.Preprocessor, dst []float32, i int, img *imgproc.Image, name string) error {
	m, err := pre.Prepare(img)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return s.Write(dst, i, m, name)
}

// Write normalises img, already W×H, into sample i of dst in the model's
// layout and channels, and checks that the values are finite.
func (s *Setup) Write(dst []float32, i int, img *imgproc.Image, name string) error {
	per := s.C * s.H * s.W
	if img.W != s.W || img.H != s.H || i < 0 || len(dst) < (i+1)*per {
		return fmt.Errorf("%s: a %dx%d image as sample %d of %d values (want %dx%d)", name, img.W, img.H, i, len(dst), s.W, s.H)
	}
	out := dst[i*per : (i+1)*per]
	n := s.W * s.H
	switch {
	case s.C == 3 && s.Layout != NHWC: // planar, the normaliser's own (fast) path
		if err := s.Norm.Write(dst, i, img); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	case s.C == 3: // interleaved
		for c := 0; c < 3; c++ {
			src := c
			if s.Norm.BGR() {
				src = 2 - c
			}
			plane := img.Plane(src)
			for p := 0; p < n; p++ {
				out[3*p+c] = s.Norm.Value(c, plane[p])
			}
		}
	default: // gray: one plane, the same in either layout
		r, g, b := img.Plane(0), img.Plane(1), img.Plane(2)
		for p := 0; p < n; p++ {
			// Pillow's convert("L"): ITU-R 601-2 luma in 16-bit fixed point.
			l := (uint32(r[p])*19595 + uint32(g[p])*38470 + uint32(b[p])*7471 + 0x8000) >> 16
			out[p] = s.Norm.Value(0, uint8(l))
		}
	}
	return CheckInput(name, out)
}

// Runner runs a model: an *infer.Session, or a stand-in in tests.
type Runner interface {
	Run(ctx context.Context, inputs map[string]*infer.Tensor) (map[string]*infer.Tensor, error)
}

// Run runs the n samples in x and returns their scores, [n, classes]
// (checked as Scores does). A model with a fixed batch B refuses any
// other, so it gets runs of exactly B samples, the last padded with zeros
// whose rows are dropped (samples are independent at inference).
func (s *Setup) Run(ctx context.Context, r Runner, x []float32, n int) (*infer.Tensor, error) {
	per := s.C * s.H * s.W
	if s.Batch == 0 || s.Batch == n {
		out, err := r.Run(ctx, map[string]*infer.Tensor{s.Input: s.inputTensor(s.Shape(n), x[:n*per])})
		if err != nil {
			return nil, err
		}
		return s.Scores(out, n)
	}
	var rows []float32
	k := 0
	for lo := 0; lo < n; lo += s.Batch {
		m := min(s.Batch, n-lo)
		chunk := x[lo*per : (lo+m)*per]
		if m < s.Batch {
			padded := make([]float32, s.Batch*per)
			copy(padded, chunk)
			chunk = padded
		}
		out, err := r.Run(ctx, map[string]*infer.Tensor{s.Input: s.inputTensor(s.Shape(s.Batch), chunk)})
		if err != nil {
			return nil, err
		}
		scores, err := s.Scores(out, s.Batch)
		if err != nil {
			return nil, err
		}
		k = scores.Shape[1]
		rows = append(rows, scores.Float32[:m*k]...)
	}
	return infer.NewFloat32([]int{n, k}, rows), nil
}

// Scores returns the scores of a run on n images: the output s.Output,
// which must be [n, classes] float32 (or float16, widened) with one class per class name when
// the names are known.
func (s *Setup) Scores(out map[string]*infer.Tensor, n int) (*infer.Tensor, error) {
	scores := widenScores(out[s.Output]) // fp16 exports give float16
	if scores == nil || scores.Type() != infer.Float32 || len(scores.Shape) != 2 || scores.Shape[0] != n {
		return nil, fmt.Errorf("output %s is not [N, classes] float32", s.Output)
	}
	// No classes: nothing to rank (predict printed nothing and exited 0).
	// Resolve refuses a declared [N, 0]; a symbolic class dimension can
	// still come out 0.
	if scores.Shape[1] == 0 {
		return nil, fmt.Errorf("output %s has shape %v: the model has no classes", s.Output, scores.Shape)
	}
	if k := scores.Shape[1]; s.Classes != nil && len(s.Classes) != k {
		return nil, fmt.Errorf("%d class names for a model with %d outputs (check --labels)", len(s.Classes), k)
	}
	return scores, nil
}

// Predict ranks one image's row of scores into the top k with class names,
// refusing scores that are not all finite (weights are the model's
// non-finite weights, named in that error).
func (s *Setup) Predict(name string, row []float32, k int, weights []infer.NonFinite) ([]Prediction, error) {
	if err := CheckOutput(name, row, weights); err != nil {
		return nil, err
	}
	return TopK(row, k, s.Probabilities, s.Classes), nil
}

// Classify classifies images with the model r (an *infer.Session opened
// for this Setup): it preprocesses each image (Sample), runs them as one
// batch (Run, which respects a fixed batch size), and returns the top k
// predictions of each image with class names where known, like Keras'
// decode_predictions. Scores that are not all finite are refused with an
// error matching ErrNonFinite.
func (s *Setup) Classify(ctx context.Context, r Runner, images []*imgproc.Image, k int) ([][]Prediction, error) {
	n := len(images)
	if n == 0 {
		return nil, nil
	}
	pre := s.Preprocessor()
	x := make([]float32, n*s.C*s.H*s.W)
	for i, img := range images {
		if err := s.Sample(pre, x, i, img, fmt.Sprintf("image %d", i)); err != nil {
			return nil, err
		}
	}
	scores, err := s.Run(ctx, r, x, n)
	if err != nil {
		return nil, err
	}
	var weights []infer.NonFinite
	if sess, ok := r.(*infer.Session); ok {
		weights = sess.NonFiniteWeights()
	}
	out := make([][]Prediction, n)
	per := scores.Shape[1]
	for i := range out {
		if out[i], err = s.Predict(fmt.Sprintf("image %d", i), scores.Float32[i*per:(i+1)*per], k, weights); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DecodePredictions ranks every row of scores, a [N, classes] float32
// tensor (logits, or probabilities when probs is set), into its top k
// predictions, naming classes where classes has a name for them: Keras'
// decode_predictions for any model and label set.
func DecodePredictions(scores *infer.Tensor, k int, probs bool, classes []string) ([][]Prediction, error) {
	if scores == nil || scores.Type() != infer.Float32 || len(scores.Shape) != 2 || scores.Validate() != nil {
		return nil, fmt.Errorf("classify: scores are not a [N, classes] float32 tensor")
	}
	per := scores.Shape[1]
	out := make([][]Prediction, scores.Shape[0])
	for i := range out {
		out[i] = TopK(scores.Float32[i*per:(i+1)*per], k, probs, classes)
	}
	return out, nil
}
