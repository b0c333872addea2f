package cifar

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
)

// The subsets a training run takes of a data set: a class-balanced sample
// of a given size (--limit), and a stratified hold-out for validation
// (--val-split). Both are drawn from a seed, so a resumed run (or a second
// command with the same seed) picks the same images.

// perClass returns the indices of each class's images, in data order.
func perClass(labels []int, classes int) [][]int {
	idx := make([][]int, classes)
	for i, l := range labels {
		idx[l] = append(idx[l], i)
	}
	return idx
}

// shuffled returns a seeded permutation of each class's indices (one
// stream per class, so that one class's size does not change another's
// draw).
func shuffled(classes [][]int, seed uint64, stream uint64) [][]int {
	out := make([][]int, len(classes))
	for k, idx := range classes {
		r := rand.New(rand.NewPCG(seed, stream<<32|uint64(k)))
		p := slices.Clone(idx)
		r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		out[k] = p
	}
	return out
}

// BalancedIndices chooses n images with as equal a count per class as the
// data allows (n/classes each, the remainder one more for the first
// classes; a class with too few images gives all it has and the others
// make up the difference), each class's images drawn at random from seed.
// The indices come back in data order. n ≥ Len() selects everything.
func (d *Dataset) BalancedIndices(n int, seed uint64) []int {
	return balancedIndices(d.Labels, len(d.Classes), n, seed)
}

func balancedIndices(labels []int, nClasses, n int, seed uint64) []int {
	if n >= len(labels) {
		all := make([]int, len(labels))
		for i := range all {
			all[i] = i
		}
		return all
	}
	classes := shuffled(perClass(labels, nClasses), seed, 1)
	take := make([]int, len(classes))
	// Hand out one image per class in turn (water-filling), skipping
	// classes that have run out: the counts differ by at most one where
	// every class has enough.
	for left := n; left > 0; {
		gave := false
		for k := range classes {
			if left > 0 && take[k] < len(classes[k]) {
				take[k]++
				left--
				gave = true
			}
		}
		if !gave {
			break
		}
	}
	var out []int
	for k, idx := range classes {
		out = append(out, idx[:take[k]]...)
	}
	slices.Sort(out)
	return out
}

// Limit restricts the source to n samples chosen as Dataset.BalancedIndices
// chooses them (seeded, class-balanced), before anything is decoded, so
// that evaluating on a subset of a large folder reads only that subset.
// n ≤ 0 or n ≥ Len keeps everything.
func (s *Source) Limit(n int, seed uint64) error {
	if n <= 0 || n >= s.Len {
		return nil
	}
	switch {
	case s.data != nil:
		sub, err := s.data.Subset(s.data.BalancedIndices(n, seed))
		if err != nil {
			return err
		}
		s.data = sub
	case s.folder != nil:
		labels := make([]int, len(s.folder.items))
		for i, it := range s.folder.items {
			labels[i] = it.label
		}
		idx := balancedIndices(labels, len(s.folder.classes), n, seed)
		items := make([]item, len(idx))
		for i, k := range idx {
			items[i] = s.folder.items[k]
		}
		s.folder.items = items
	default:
		return fmt.Errorf("%s: nothing to limit", s.Path)
	}
	s.Len = n
	return nil
}

// StratifiedSplit holds out frac of each class's images (rounded, at
// least one of a class with two or more), drawn from seed, and returns the
// indices kept and those held out, each in data order.
func (d *Dataset) StratifiedSplit(frac float64, seed uint64) (kept, held []int, err error) {
	if !(frac > 0 && frac < 1) {
		return nil, nil, fmt.Errorf("%s: a validation split of %g is not in (0, 1)", d.Name, frac)
	}
	for k, idx := range shuffled(perClass(d.Labels, len(d.Classes)), seed, 2) {
		h := int(float64(len(idx))*frac + 0.5)
		if h == 0 && len(idx) >= 2 {
			h = 1
		}
		if h >= len(idx) && len(idx) > 0 {
			return nil, nil, fmt.Errorf("%s: holding out %g of class %q (%d images) leaves none to train on", d.Name, frac, d.Classes[k], len(idx))
		}
		held = append(held, idx[:h]...)
		kept = append(kept, idx[h:]...)
	}
	if len(held) == 0 {
		return nil, nil, fmt.Errorf("%s: a validation split of %g of %d images holds out none", d.Name, frac, d.Len())
	}
	slices.Sort(kept)
	slices.Sort(held)
	return kept, held, nil
}

// Fingerprint is the SHA-256 (hex) of what was read: the class names, the
// image size, the labels and the pixels, in order. The same images read
// from a moved archive, or from a folder it was unpacked into, give the
// same fingerprint; any other data gives another.
func (d *Dataset) Fingerprint() string {
	h := sha256.New()
	var buf [8]byte
	put := func(v int) {
		binary.LittleEndian.PutUint64(buf[:], uint64(v))
		h.Write(buf[:])
	}
	put(len(d.Classes))
	for _, c := range d.Classes {
		put(len(c))
		h.Write([]byte(c))
	}
	put(d.H)
	put(d.W)
	put(len(d.Labels))
	lab := make([]byte, 0, 4*len(d.Labels))
	for _, l := range d.Labels {
		lab = binary.LittleEndian.AppendUint32(lab, uint32(l))
	}
	h.Write(lab)
	h.Write(d.Pixels)
	return hex.EncodeToString(h.Sum(nil))
}
