package augment

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
)

// TestKerasGolden compares KerasParams.Map with keras_golden.json, made by
// testdata/keras_golden.py, a numpy re-implementation of Keras'
// apply_affine_transform (matrix composition, centring, scipy's order-0
// nearest sampling with mode 'nearest') and apply_transform's flip. The
// comparison is exact: every case's sampled coordinates are at least
// `margin` away from a rounding tie, far beyond the last-bit differences
// of sin, cos and dot products between numpy and Go.
func TestKerasGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/keras_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct {
			Name                  string
			H, W                  int
			Theta, Tx, Ty, Zx, Zy float64
			Flip                  bool
			Margin                float64
			Input, Output         string
		}
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	var ran []string
	for _, c := range f.Cases {
		in, err1 := hex.DecodeString(c.Input)
		want, err2 := hex.DecodeString(c.Output)
		if err1 != nil || err2 != nil || len(in) != 3*c.W*c.H || len(want) != len(in) {
			t.Fatalf("%s: bad fixture", c.Name)
		}
		if c.Margin < 1e-9 {
			t.Errorf("%s: margin %g to a rounding tie is too small for an exact comparison", c.Name, c.Margin)
		}
		p := KerasParams{Theta: c.Theta, Tx: c.Tx, Ty: c.Ty, Zx: c.Zx, Zy: c.Zy, Flip: c.Flip}
		m := make([]int32, c.W*c.H)
		p.Map(m, c.W, c.H)
		got := remap(in, m, c.W, c.H)
		if !bytes.Equal(got, want) {
			diff := 0
			for i := range got {
				if got[i] != want[i] {
					diff++
				}
			}
			t.Errorf("%s (%dx%d, %+v): %d of %d values differ from Keras", c.Name, c.W, c.H, p, diff, len(got))
		}
		ran = append(ran, c.Name)
	}
	sort.Strings(ran)
	const want = "all all-cifar all-cifar-flip flip-only rotate-11.3 rotate15 shift zoom"
	if got := strings.Join(ran, " "); got != want {
		t.Errorf("ran %q, want %q", got, want)
	}
}
