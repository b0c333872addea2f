package cifar

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/models"
)

// sharedData finds the shared data folder: $RESNETCTL_SHARED_DATA, or
// ../shared/data relative to the repository root. Without it the test is
// skipped with a message, in CI too: the data set is not something the
// project's set-up can install (the embedded sample and generated files
// cover the readers everywhere).
func sharedData(t *testing.T, rel string) string {
	t.Helper()
	dir := os.Getenv("RESNETCTL_SHARED_DATA")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "..", "shared", "data")
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		msg := "shared data set not available (" + err.Error() + "); set RESNETCTL_SHARED_DATA or put it at ../shared/data beside the repository"
		t.Skip("SKIP (not a pass): " + msg)
	}
	return p
}

// repoRoot is the folder holding go.mod, above the test's folder.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

func TestSharedExactSample(t *testing.T) {
	dir := sharedData(t, "cifar10-exact-sample")
	ctx := context.Background()
	test, err := Load(ctx, filepath.Join(dir, "test_0000-0999.bin"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if test.Len() != 1000 || test.Labels[0] != 3 || test.Classes[3] != "cat" || test.Origin(0) != "test_0000-0999.bin#0" {
		t.Errorf("exact test sample: %d records, first label %d (%s)", test.Len(), test.Labels[0], test.Classes[test.Labels[0]])
	}
	// The folder of both files, by split.
	train, err := Load(ctx, dir, Options{Split: "train"})
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 4000 {
		t.Errorf("exact train sample: %d records", train.Len())
	}
	// The embedded sample is bit-exact with the first records.
	for split, d := range map[string]*Dataset{"train": train, "test": test} {
		emb, err := EmbeddedSample(split)
		if err != nil {
			t.Fatal(err)
		}
		n := emb.Len()
		if !bytes.Equal(emb.Pixels, d.Pixels[:n*ImageBytes]) || !slices.Equal(emb.Labels, d.Labels[:n]) {
			t.Errorf("embedded %s sample differs from the shared exact records", split)
		}
	}
}

func TestSharedJPEGArchive(t *testing.T) {
	p := sharedData(t, "cifar10-jpeg.tar.gz")
	ctx := context.Background()
	labels, err := models.Labels("cifar10")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s, err := Open(ctx, p, Options{Split: "test"})
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Since(start)
	if s.Len != 10000 || !slices.Equal(s.Classes, labels) {
		t.Fatalf("test split: %d images, classes %v", s.Len, s.Classes)
	}
	counts := make([]int, 10)
	n := 0
	err = s.Walk(ctx, func(smp Sample) error {
		counts[smp.Label]++
		if smp.Image.W != 32 || smp.Image.H != 32 || !strings.Contains(smp.Name, "/test/"+labels[smp.Label]+"/") {
			t.Fatalf("%s: %dx%d, label %d", smp.Name, smp.Image.W, smp.Image.H, smp.Label)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)
	for c, k := range counts {
		if k != 1000 {
			t.Errorf("class %s: %d test images, want 1,000", labels[c], k)
		}
	}
	t.Logf("decoded the %d-image test split in place in %v (%v listing and decompressing the archive, %v decoding; %.0f images/s overall)",
		n, total.Round(time.Millisecond), opened.Round(time.Millisecond), (total - opened).Round(time.Millisecond), float64(n)/total.Seconds())
	if testing.Short() {
		return
	}
	// The label list given (no class discovery) gives the same.
	d, err := Load(ctx, p, Options{Split: "test", Classes: labels})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.ClassCounts(), counts) {
		t.Errorf("with the label list: counts %v", d.ClassCounts())
	}
}

// TestEmbeddedSample checks the sample against the checksums its generator
// recorded, and its shape.
func TestEmbeddedSample(t *testing.T) {
	f, err := os.Open(filepath.Join("sample", "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		want[fields[1]] = fields[0]
	}
	for split, n := range sampleSplits {
		d, err := EmbeddedSample(split)
		if err != nil {
			t.Fatal(err)
		}
		if d.Len() != n || d.W != 32 || d.H != 32 || len(d.Classes) != 10 {
			t.Fatalf("%s: %d images %dx%d", split, d.Len(), d.W, d.H)
		}
		// Rebuild the official records and hash them.
		h := sha256.New()
		for i := 0; i < d.Len(); i++ {
			h.Write([]byte{byte(d.Labels[i])})
			h.Write(d.Image(i).Pix)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want[split] {
			t.Errorf("%s: records hash to %s, SHA256SUMS says %s", split, got, want[split])
		}
		counts := d.ClassCounts()
		if slices.Min(counts) == 0 {
			t.Errorf("%s: a class with no images: %v", split, counts)
		}
	}
	if d, _ := EmbeddedSample("test"); d.Labels[0] != 3 || d.Origin(0) != "test_batch.bin#0" {
		t.Errorf("first test image: label %d, origin %s", d.Labels[0], d.Origin(0))
	}
	if d, _ := EmbeddedSample("train"); d.Origin(999) != "data_batch_1.bin#999" {
		t.Errorf("origin %s", d.Origin(999))
	}
	_, err = EmbeddedSample("val")
	errContains(t, err, `no split "val"`)
}
