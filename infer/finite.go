package infer

import (
	"fmt"
	"math"
)

// NonFinite describes a floating-point weight (an initializer or a
// Constant) holding NaN or infinite values.
type NonFinite struct {
	Name string
	// NaN and Inf count the tensor's NaN and ±Inf values, of Size.
	NaN, Inf, Size int
}

// String describes the weight, e.g. "conv1.weight (3 NaN of 432 values)".
func (n NonFinite) String() string {
	switch {
	case n.NaN > 0 && n.Inf > 0:
		return fmt.Sprintf("%s (%d NaN and %d infinite of %d values)", n.Name, n.NaN, n.Inf, n.Size)
	case n.NaN > 0:
		return fmt.Sprintf("%s (%d NaN of %d values)", n.Name, n.NaN, n.Size)
	}
	return fmt.Sprintf("%s (%d infinite of %d values)", n.Name, n.Inf, n.Size)
}

// NonFiniteWeights lists the model's floating-point initializers and
// Constants that hold NaN or ±Inf, in graph order, as found at load
// (before BatchNorm folding). Such a model loads — an ONNX graph may use
// infinities on purpose, and a weight may not reach the outputs — but its
// outputs are likely not finite; callers that rank or average outputs
// should warn. It is nil when every weight is finite, and always for the
// gorgonnx engine, which does not read the weights itself.
func (s *Session) NonFiniteWeights() []NonFinite {
	return append([]NonFinite(nil), s.nonFinite...)
}

// nonFiniteWeights scans m's constant values.
func nonFiniteWeights(m *model) []NonFinite {
	var out []NonFinite
	for _, v := range m.values {
		t := v.init
		if t == nil {
			continue
		}
		var n NonFinite
		switch t.Type() {
		case Float32:
			for _, x := range t.Float32 {
				if x-x != 0 { // NaN or ±Inf
					n.count(float64(x))
				}
			}
			n.Size = len(t.Float32)
		case Float64:
			for _, x := range t.Float64 {
				if x-x != 0 {
					n.count(x)
				}
			}
			n.Size = len(t.Float64)
		}
		if n.NaN+n.Inf > 0 {
			n.Name = v.name
			out = append(out, n)
		}
	}
	return out
}

func (n *NonFinite) count(x float64) {
	if math.IsNaN(x) {
		n.NaN++
	} else {
		n.Inf++
	}
}
