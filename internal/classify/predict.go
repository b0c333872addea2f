package classify

import (
	"fmt"

	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/imgproc"
)

// The three steps of classifying images with a Setup, shared by
// `resnetctl predict` and the server's classify endpoint so that both feed
// a model and read its answer the same way: Sample writes each image into
// the input batch, Scores checks the output of the run, Predict ranks one
// image's row of it.

// Sample preprocesses img into sample i of the NCHW batch dst (which holds
// at least i+1 samples of C×H×W) and checks that the values are finite;
// name identifies the image in errors.
func (s *Setup) Sample(pre *imgproc.Preprocessor, dst []float32, i int, img *imgproc.Image, name string) error {
	if err := pre.Write(dst, i, img); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	per := s.C * s.H * s.W
	return CheckInput(name, dst[i*per:(i+1)*per])
}

// Scores returns the scores of a run on n images: the output s.Output,
// which must be [n, classes] float32 with one class per class name when
// the names are known.
func (s *Setup) Scores(out map[string]*infer.Tensor, n int) (*infer.Tensor, error) {
	scores := out[s.Output]
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
