package classify

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/infer"
)

func TestNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		x    []float32
		want string
	}{
		{nil, ""},
		{[]float32{1, -2, math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32}, ""},
		{[]float32{1, nan}, "NaN"},
		{[]float32{inf, 0}, "+Inf"},
		{[]float32{-inf, inf}, "-Inf"},
		{[]float32{inf, nan}, "NaN"}, // NaN first: it is what breaks ranking
	}
	for _, tt := range tests {
		if got := NonFinite(tt.x); got != tt.want {
			t.Errorf("NonFinite(%v) = %q, want %q", tt.x, got, tt.want)
		}
	}
}

func TestCheckOutputAndInput(t *testing.T) {
	nan := float32(math.NaN())
	if err := CheckOutput("a.png", []float32{1, 2}, nil); err != nil {
		t.Fatal(err)
	}
	err := CheckOutput("a.png", []float32{1, nan}, nil)
	if !errors.Is(err, ErrNonFinite) || err.Error() != "the model's output for image a.png contains NaN: the weights or input are not finite, or the computation overflowed" {
		t.Errorf("%v", err)
	}
	w := []infer.NonFinite{{Name: "a", NaN: 1, Size: 4}, {Name: "b", Inf: 2, Size: 3}, {Name: "c", NaN: 1, Inf: 1, Size: 2}, {Name: "d", NaN: 1, Size: 1}}
	err = CheckOutput("x.jpg", []float32{float32(math.Inf(-1))}, w)
	want := "the model's output for image x.jpg contains -Inf: the model's weights are not finite: a (1 NaN of 4 values), b (2 infinite of 3 values), c (1 NaN and 1 infinite of 2 values), and 1 more"
	if !errors.Is(err, ErrNonFinite) || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if err := CheckInput("y.png", []float32{0, float32(math.Inf(1))}); !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "input for image y.png contains +Inf") {
		t.Errorf("%v", err)
	}
}

// TestEvalRefusesNonFiniteScores: NaN compares false with everything, so
// it would have counted as a correct top-1 answer.
func TestEvalRefusesNonFiniteScores(t *testing.T) {
	e := NewEval(nil, 3)
	nan := float32(math.NaN())
	if err := e.Add(1, []float32{nan, nan, nan}); !errors.Is(err, ErrNonFinite) {
		t.Fatalf("Add(NaN scores): %v", err)
	}
	if e.Total != 0 || e.Top1 != 0 {
		t.Errorf("NaN scores were counted: %+v", e)
	}
}
