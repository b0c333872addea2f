package augment

import (
	"context"
	"encoding/hex"
	"fmt"
	"testing"
)

// TestPinnedBatches pins the first batch of seed 1 on the embedded sample
// for each augmentation: the order of images, and a SHA-256 of the values,
// labels and indices. A change here means every checkpoint resumed with
// the new code gets different batches than the run that wrote it; make it
// only on purpose, and say so.
func TestPinnedBatches(t *testing.T) {
	want := map[string]struct{ index, digest string }{
		"keras": {"[300 665 754 917 299 655 228 296]", "40654b244a4e9d9af1c35ecc654c51dd7e7967a7ffb31814a6332995d465ec4b"},
		"paper": {"[300 665 754 917 299 655 228 296]", "3451c51e2c06f08a4de567931cf2448c6a00f03d1b205076c3f33a2e696e26c9"},
		"none":  {"[300 665 754 917 299 655 228 296]", "2abb414283e304537986e8da7e3a259ff729e7c86ab39de160eaa54964f5d9d8"},
	}
	for _, name := range Names() {
		a, _ := Lookup(name)
		l := newLoader(t, sample(t), Config{BatchSize: 8, Seed: 1, Augment: a, Workers: 1})
		bs := l.Epoch(context.Background(), 0, 0)
		b, err := bs.Next()
		if err != nil {
			t.Fatal(err)
		}
		d := batchDigest(b)
		index, digest := fmt.Sprint(b.Index), hex.EncodeToString(d[:])
		bs.Close()
		if w := want[name]; index != w.index || digest != w.digest {
			t.Errorf("%s: first batch is images %s with digest %s, pinned %s and %s", name, index, digest, w.index, w.digest)
		}
	}
}
