package cifar

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/resnetctl/resnetctl/imgproc"
)

// imageTree makes split/class/NNNN.png images, each class its own colour
// (classColor), the first image of every class a JPEG.
func imageTree(t testing.TB, prefix string, splits map[string]map[string]int) []file {
	var files []file
	for _, split := range sortedKeys(splits) {
		for _, class := range sortedKeys(splits[split]) {
			dir := strings.TrimLeft(prefix+"/"+split+"/"+class, "/")
			files = append(files, dirEntry(dir))
			for i := 0; i < splits[split][class]; i++ {
				m := solid(8, 8, classColor(class))
				if i == 0 {
					files = append(files, file{fmt.Sprintf("%s/%04d.jpg", dir, i), jpegBytes(t, m)})
				} else {
					files = append(files, file{fmt.Sprintf("%s/%04d.png", dir, i), pngBytes(t, m)})
				}
			}
		}
	}
	return files
}

func TestImageFolders(t *testing.T) {
	std := map[string]map[string]int{
		"train": {"cat": 3, "dog": 2, "emu": 2},
		"test":  {"cat": 2, "dog": 1, "emu": 1},
	}
	tree := imageTree(t, "", std)
	wrapped := imageTree(t, "cifar10", std)
	flat := imageTree(t, "", map[string]map[string]int{"": {"cat": 2, "dog": 2}})
	one := imageTree(t, "only", map[string]map[string]int{"": {"cat": 2}})
	extra := func(files []file, more ...file) []file { return append(slices.Clone(files), more...) }
	big := pngBytes(t, solid(9, 8, classColor("dog")))
	type layout int
	const (
		folder layout = iota
		archive
	)
	tests := []struct {
		name    string
		files   []file
		opts    Options
		open    string // relative path to open in the folder layout
		err     string
		count   int
		classes []string
		labels  []int
		name0   string
	}{
		{name: "test split", files: tree, opts: Options{Split: "test"},
			count: 4, classes: []string{"cat", "dog", "emu"}, labels: []int{0, 0, 1, 2}, name0: "test/cat/0000.jpg"},
		{name: "train split", files: tree, opts: Options{Split: "train"},
			count: 7, labels: []int{0, 0, 0, 1, 1, 2, 2}},
		{name: "wrapped in a folder", files: wrapped, opts: Options{Split: "test"},
			count: 4, classes: []string{"cat", "dog", "emu"}, name0: "cifar10/test/cat/0000.jpg"},
		{name: "no split given", files: tree, err: "has the splits test, train: choose one"},
		{name: "unknown split", files: tree, opts: Options{Split: "val"}, err: `no split folder "val" holding class folders (found test, train)`},
		{name: "class folders only", files: flat, count: 4, classes: []string{"cat", "dog"}},
		{name: "class folders only, split given", files: flat, opts: Options{Split: "test"}, err: "the images are in class folders directly; use no split"},
		{name: "one class in a wrapper", files: one, count: 2, classes: []string{"cat"}},
		{name: "one split folder", files: imageTree(t, "", map[string]map[string]int{"val": {"a": 1, "b": 1}}), count: 2, classes: []string{"a", "b"}},
		{name: "readme and hidden files ignored", files: extra(tree, file{"README.md", []byte("hi")}, file{"test/LICENSE", []byte("x")},
			file{"test/cat/.DS_Store", []byte{0}}, file{"test/dog/._0000.png", []byte{0}}, file{"__MACOSX/test/cat/x.png", []byte{1}}),
			opts: Options{Split: "test"}, count: 4},
		{name: "non-image in a class folder", files: extra(tree, file{"test/dog/notes.txt", []byte("a dog")}), opts: Options{Split: "test"},
			err: "test/dog/notes.txt is not an image"},
		{name: "image outside class folders", files: extra(tree, file{"test/stray.png", pngBytes(t, solid(8, 8, color.NRGBA{A: 255}))}), opts: Options{Split: "test"},
			err: "test/stray.png is not in a class folder"},
		{name: "empty class folder", files: extra(tree, dirEntry("test/fox"), dirEntry("train/fox")), opts: Options{Split: "test"},
			err: "class folder test/fox is empty"},
		{name: "class missing from split", files: extra(tree, file{"train/fox/0.png", pngBytes(t, solid(8, 8, classColor("fox")))}), opts: Options{Split: "test"},
			err: `no folder for class "fox" in test (train has one)`},
		{name: "unreadable image", files: extra(tree, file{"test/dog/0009.jpg", []byte("JFIF? no")}), opts: Options{Split: "test"},
			err: "test/dog/0009.jpg: not a supported image"},
		{name: "truncated image", files: extra(tree, file{"test/emu/0009.png", pngBytes(t, solid(8, 8, classColor("emu")))[:60]}), opts: Options{Split: "test"},
			err: "test/emu/0009.png: unreadable png"},
		{name: "sizes differ", files: extra(tree, file{"test/dog/0009.png", big}), opts: Options{Split: "test"},
			err: "test/dog/0009.png is 9x8 but test/cat/0000.jpg is 8x8"},
		{name: "sizes differ, resized", files: extra(tree, file{"test/dog/0009.png", big}),
			opts:  Options{Split: "test", Transform: func(m *imgproc.Image) (*imgproc.Image, error) { return imgproc.Resize(m, 4, 4), nil }},
			count: 5},
		{name: "label list", files: tree, opts: Options{Split: "test", Classes: []string{"emu", "dog", "cat", "yak"}},
			count: 4, classes: []string{"emu", "dog", "cat", "yak"}, labels: []int{2, 2, 1, 0}},
		{name: "label list missing a class", files: tree, opts: Options{Split: "test", Classes: []string{"cat", "dog"}},
			err: "class folder test/emu is not in the label list (2 classes: cat, dog)"},
		{name: "label list with a duplicate", files: tree, opts: Options{Split: "test", Classes: []string{"cat", "dog", "cat"}},
			err: `class "cat" is twice in the label list`},
		{name: "nested folders in a class", files: extra(flat, file{"cat/more/x.png", pngBytes(t, solid(8, 8, classColor("cat")))}), count: 5},
		{name: "images at mixed depths", files: extra(flat, file{"a/b/c/x.png", pngBytes(t, solid(8, 8, classColor("cat")))}, file{"y.png", pngBytes(t, solid(8, 8, classColor("cat")))}),
			err: "y.png is not in a class folder"},
		{name: "no images", files: []file{{"a/b.txt", []byte("x")}}, err: "no images"},
		{name: "bomb", files: tree, opts: Options{Split: "test", Decoder: imgproc.Decoder{MaxPixels: 10}}, err: "image too large"},
	}
	ctx := context.Background()
	for _, tc := range tests {
		for _, lay := range []layout{folder, archive} {
			name := tc.name + map[layout]string{folder: " (folder)", archive: " (archive)"}[lay]
			if lay == archive && strings.HasPrefix(tc.name, "no images") {
				continue // an archive says so differently, tested elsewhere
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				var p string
				if lay == folder {
					writeTree(t, filepath.Join(dir, "data"), tc.files)
					p = filepath.Join(dir, "data")
				} else {
					p = writeFile(t, filepath.Join(dir, "data.tar.gz"), tarGz(t, tc.files))
				}
				d, err := Load(ctx, p, tc.opts)
				errContains(t, err, tc.err)
				if err != nil {
					return
				}
				if d.Len() != tc.count {
					t.Errorf("%d images, want %d", d.Len(), tc.count)
				}
				if tc.classes != nil && !slices.Equal(d.Classes, tc.classes) {
					t.Errorf("classes %v, want %v", d.Classes, tc.classes)
				}
				if tc.labels != nil && !slices.Equal(d.Labels, tc.labels) {
					t.Errorf("labels %v, want %v", d.Labels, tc.labels)
				}
				if tc.name0 != "" && d.Origin(0) != tc.name0 {
					t.Errorf("first image %q, want %q", d.Origin(0), tc.name0)
				}
				// Every image has its class's colour (JPEG within a few levels).
				for i := 0; i < d.Len(); i++ {
					want := classColor(d.Classes[d.Labels[i]])
					r, g, b := d.Image(i).RGB(0, 0)
					if diff(r, want.R) > 6 || diff(g, want.G) > 6 || diff(b, want.B) > 6 {
						t.Fatalf("%s: colour %d,%d,%d is not class %s's %v", d.Origin(i), r, g, b, d.Classes[d.Labels[i]], want)
					}
				}
			})
		}
	}
}

func diff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

// TestWalk streams a folder and an archive (with and without the bytes
// kept from the listing) and checks order, indices, progress and stopping.
func TestWalk(t *testing.T) {
	tree := imageTree(t, "set", map[string]map[string]int{"test": {"a": 30, "b": 20, "c": 25}})
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "folder"), tree)
	arch := writeFile(t, filepath.Join(dir, "set.tar.gz"), tarGz(t, tree))
	ctx := context.Background()
	var wantNames []string
	for _, f := range tree {
		if imgproc.IsImageName(f.name) {
			wantNames = append(wantNames, f.name)
		}
	}
	for _, tc := range []struct {
		name    string
		path    string
		budget  int64
		workers int
	}{
		{"folder", filepath.Join(dir, "folder"), retainBudget, 3},
		{"archive kept", arch, retainBudget, 2},
		{"archive read twice", arch, 100, 4},
		{"archive one worker", arch, 100, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(b int64) { retainBudget = b }(retainBudget)
			retainBudget = tc.budget
			var mu sync.Mutex
			var progress []int64
			s, err := Open(ctx, tc.path, Options{Split: "test", Workers: tc.workers, Progress: func(done, total int64) {
				mu.Lock()
				defer mu.Unlock()
				if total != 75 {
					t.Errorf("progress total %d", total)
				}
				progress = append(progress, done)
			}})
			if err != nil {
				t.Fatal(err)
			}
			if s.Len != 75 || s.Split != "test" || s.Format != FormatImageFolder || !slices.Equal(s.Classes, []string{"a", "b", "c"}) {
				t.Fatalf("source %+v", s)
			}
			if s.folder.retained != (tc.budget > 100) && tc.path == arch {
				t.Fatalf("retained %v with budget %d", s.folder.retained, tc.budget)
			}
			for pass := 0; pass < 2; pass++ { // Walk can run twice
				var names []string
				err = s.Walk(ctx, func(smp Sample) error {
					if smp.Index != len(names) {
						t.Fatalf("index %d at position %d", smp.Index, len(names))
					}
					names = append(names, strings.TrimPrefix(smp.Name, ""))
					if smp.Image.W != 8 || smp.Label != int(smp.Name[len("set/test/")]-'a') {
						t.Fatalf("%s: label %d, %dx%d", smp.Name, smp.Label, smp.Image.W, smp.Image.H)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				for i := range names {
					names[i] = strings.TrimPrefix(names[i], "")
				}
				if !slices.Equal(trimAll(names, "set/"), trimAll(wantNames, "set/")) {
					t.Fatalf("order %v…, want %v…", names[:5], wantNames[:5])
				}
			}
			if len(progress) != 150 || progress[74] != 75 {
				t.Errorf("progress calls %d, last of the first walk %d", len(progress), progress[74])
			}
			// An error from fn stops the walk and is returned.
			stop := errors.New("enough")
			seen := 0
			err = s.Walk(ctx, func(smp Sample) error {
				if seen++; seen == 10 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || seen != 10 {
				t.Errorf("walk after error: %v, %d samples", err, seen)
			}
			// So does cancelling.
			cctx, cancel := context.WithCancel(ctx)
			seen = 0
			err = s.Walk(cctx, func(smp Sample) error {
				if seen++; seen == 5 {
					cancel()
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) || seen > 5+8*max(tc.workers, 1)+1 {
				t.Errorf("walk after cancel: %v, %d samples", err, seen)
			}
		})
	}
}

func trimAll(names []string, prefix string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.TrimPrefix(n, prefix)
	}
	return out
}

// TestWalkBinary streams a binary set with a transform.
func TestWalkBinary(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, filepath.Join(dir, "x.bin"), records(FormatCIFAR10, 9, 1, mod(10)))
	s, err := Open(context.Background(), p, Options{Transform: func(m *imgproc.Image) (*imgproc.Image, error) {
		return imgproc.Resize(m, 16, 16), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = s.Walk(context.Background(), func(smp Sample) error {
		if smp.Image.W != 16 || smp.Label != n || smp.Name != fmt.Sprintf("x.bin#%d", n) {
			t.Errorf("sample %d: %s label %d %dx%d", n, smp.Name, smp.Label, smp.Image.W, smp.Image.H)
		}
		n++
		return nil
	})
	if err != nil || n != 9 {
		t.Fatalf("%v after %d", err, n)
	}
	d, err := s.Load(context.Background())
	if err != nil || d.W != 16 || d.Len() != 9 {
		t.Fatalf("load with transform: %v", err)
	}
	failing := Options{Transform: func(m *imgproc.Image) (*imgproc.Image, error) { return nil, errors.New("no") }}
	_, err = Load(context.Background(), p, failing)
	errContains(t, err, "x.bin#0: no")
}
