package classify

import (
	"errors"
	"fmt"
	"strings"

	"github.com/resnetctl/resnetctl/infer"
)

// ErrNonFinite is wrapped by the errors CheckInput and CheckOutput return.
var ErrNonFinite = errors.New("not finite")

// NonFinite names the first value of x that is NaN or infinite — "NaN",
// "+Inf" or "-Inf", NaN taking precedence — or returns "" when every
// value is finite.
func NonFinite(x []float32) string {
	kind := ""
	for _, v := range x {
		if v-v == 0 { // finite
			continue
		}
		if v != v {
			return "NaN"
		}
		if kind == "" {
			kind = "+Inf"
			if v < 0 {
				kind = "-Inf"
			}
		}
	}
	return kind
}

// CheckInput reports a preprocessed image whose values are not all
// finite (a zero standard deviation in the preprocessing, say).
func CheckInput(image string, x []float32) error {
	if k := NonFinite(x); k != "" {
		return nonFiniteError(fmt.Sprintf("the preprocessed input for image %s contains %s: check --mean/--std or the model's preprocessing metadata", image, k))
	}
	return nil
}

// CheckOutput reports scores of an image that are not all finite: such
// scores cannot be ranked or counted (every comparison with NaN is false).
// weights are the model's non-finite weights (Session.NonFiniteWeights),
// named in the error as the likely cause; the input is assumed checked
// with CheckInput.
func CheckOutput(image string, scores []float32, weights []infer.NonFinite) error {
	k := NonFinite(scores)
	if k == "" {
		return nil
	}
	cause := "the weights or input are not finite, or the computation overflowed"
	if len(weights) > 0 {
		cause = "the model's weights are not finite: " + WeightList(weights, 3)
	}
	return nonFiniteError(fmt.Sprintf("the model's output for image %s contains %s: %s", image, k, cause))
}

// WeightList describes up to n non-finite weights, then how many more.
func WeightList(weights []infer.NonFinite, n int) string {
	var parts []string
	for i, w := range weights {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(weights)-n))
			break
		}
		parts = append(parts, w.String())
	}
	return strings.Join(parts, ", ")
}

// nonFiniteError is an error matching ErrNonFinite with its own message.
type nonFiniteError string

func (e nonFiniteError) Error() string        { return string(e) }
func (e nonFiniteError) Is(target error) bool { return target == ErrNonFinite }
