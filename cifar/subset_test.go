package cifar

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// labelled makes a dataset of 1x1 images with the given class sizes, its
// images sorted by class as the shared archive's are.
func labelled(sizes ...int) *Dataset {
	d := &Dataset{Name: "t", H: 1, W: 1}
	for k, n := range sizes {
		d.Classes = append(d.Classes, fmt.Sprintf("c%d", k))
		for i := 0; i < n; i++ {
			d.Labels = append(d.Labels, k)
			d.Pixels = append(d.Pixels, uint8(k), uint8(i), uint8(i>>8))
		}
	}
	return d
}

func countsOf(d *Dataset, idx []int) []int {
	c := make([]int, len(d.Classes))
	for _, i := range idx {
		c[d.Labels[i]]++
	}
	return c
}

func TestBalancedIndices(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int
		n     int
		want  []int
	}{
		{"even", []int{100, 100, 100, 100}, 40, []int{10, 10, 10, 10}},
		{"remainder to the first classes", []int{100, 100, 100}, 10, []int{4, 3, 3}},
		{"a small class gives all it has", []int{2, 100, 100}, 30, []int{2, 14, 14}},
		{"everything", []int{3, 5}, 8, []int{3, 5}},
		{"more than everything", []int{3, 5}, 100, []int{3, 5}},
		{"an empty class", []int{10, 0, 10}, 6, []int{3, 0, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := labelled(tc.sizes...)
			idx := d.BalancedIndices(tc.n, 7)
			if got := countsOf(d, idx); !slices.Equal(got, tc.want) {
				t.Errorf("class counts %v, want %v", got, tc.want)
			}
			if !slices.IsSorted(idx) || len(slices.Compact(slices.Clone(idx))) != len(idx) {
				t.Errorf("indices not sorted and distinct: %v", idx)
			}
			if again := d.BalancedIndices(tc.n, 7); !slices.Equal(again, idx) {
				t.Error("the same seed chose other images")
			}
		})
	}
	d := labelled(1000, 1000)
	if a, b := d.BalancedIndices(10, 1), d.BalancedIndices(10, 2); slices.Equal(a, b) {
		t.Error("seeds 1 and 2 chose the same images")
	}
	if idx := d.BalancedIndices(10, 1); slices.Equal(idx[:5], []int{0, 1, 2, 3, 4}) {
		t.Errorf("the subset is the first files: %v", idx)
	}
}

func TestStratifiedSplit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sizes    []int
		frac     float64
		wantHeld []int
		err      string
	}{
		{"ten percent", []int{50, 50, 30}, 0.1, []int{5, 5, 3}, ""},
		{"at least one of a class of two", []int{2, 40}, 0.1, []int{1, 4}, ""},
		{"a class of one stays in training", []int{1, 40}, 0.1, []int{0, 4}, ""},
		{"nothing left to train", []int{1, 3}, 0.9, nil, "leaves none to train on"},
		{"out of range", []int{5}, 1, nil, "not in (0, 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := labelled(tc.sizes...)
			kept, held, err := d.StratifiedSplit(tc.frac, 3)
			if tc.err != "" {
				errContains(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := countsOf(d, held); !slices.Equal(got, tc.wantHeld) {
				t.Errorf("held out %v, want %v", got, tc.wantHeld)
			}
			all := append(slices.Clone(kept), held...)
			slices.Sort(all)
			if len(all) != d.Len() || len(slices.Compact(all)) != d.Len() {
				t.Errorf("kept and held do not partition the %d images", d.Len())
			}
		})
	}
}

// TestSourceLimit: evaluate --limit picks the subset before decoding, for
// binary files, folders and streamed archives alike.
func TestSourceLimit(t *testing.T) {
	dir := t.TempDir()
	var files []file
	for _, c := range []string{"cat", "dog", "emu"} {
		for i := 0; i < 12; i++ {
			files = append(files, file{fmt.Sprintf("set/test/%s/%02d.png", c, i), pngBytes(t, solid(4, 4, classColor(c)))})
		}
	}
	writeTree(t, filepath.Join(dir, "folder"), files)
	arch := writeFile(t, filepath.Join(dir, "set.tar.gz"), tarGz(t, files))
	bin := writeFile(t, filepath.Join(dir, "test_x.bin"), records(FormatCIFAR10, 30, 1, mod(10)))
	for _, tc := range []struct {
		name, path string
		n          int
		per        []int
		stream     bool
	}{
		{"folder", filepath.Join(dir, "folder"), 6, []int{2, 2, 2}, false},
		{"archive", arch, 7, []int{3, 2, 2}, false},
		{"streamed archive", arch, 9, []int{3, 3, 3}, true},
		{"binary", bin, 20, []int{2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.stream {
				old := retainBudget
				retainBudget = 0
				defer func() { retainBudget = old }()
			}
			s, err := Open(context.Background(), tc.path, Options{Split: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Limit(tc.n, 5); err != nil {
				t.Fatal(err)
			}
			got := make([]int, len(s.Classes))
			n := 0
			err = s.Walk(context.Background(), func(smp Sample) error {
				got[smp.Label]++
				n++
				return nil
			})
			if err != nil || n != tc.n || s.Len != tc.n || !slices.Equal(got, tc.per) {
				t.Errorf("walked %d (Len %d, %v): per class %v, want %d and %v", n, s.Len, err, got, tc.n, tc.per)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	a, b := labelled(3, 4), labelled(3, 4)
	if a.Fingerprint() != b.Fingerprint() {
		t.Error("the same data, two fingerprints")
	}
	b.Pixels[5]++
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("other pixels, the same fingerprint")
	}
	c := labelled(3, 4)
	c.Labels[0], c.Labels[4] = 1, 0
	if a.Fingerprint() == c.Fingerprint() {
		t.Error("other labels, the same fingerprint")
	}
	d := labelled(3, 4)
	d.Classes[0] = "other"
	if a.Fingerprint() == d.Fingerprint() {
		t.Error("other class names, the same fingerprint")
	}
}
