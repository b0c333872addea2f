package cifar

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/resnetctl/resnetctl/imgproc"
)

// An image folder is root/[split/]class/image, like torchvision's
// ImageFolder: every image under a class folder (at any depth) has that
// class. Hidden files and folders (.DS_Store, ._x.jpg, __MACOSX) are
// skipped. Files beside the split or class folders (README, LICENSE) are
// ignored unless they are images; inside a class folder every file must be
// an image. An archive may wrap all of it in one or more folders
// (cifar10/train/cat/0000.jpg).

// fileEntry is a file found in a folder or archive.
type fileEntry struct {
	name string // slash-separated, relative to the folder, or the archive member name
	size int64
	data []byte // kept bytes (archives), or nil
}

// listing is what a folder or archive holds.
type listing struct {
	files []fileEntry
	dirs  map[string]bool
}

// folderSet is the selected images of an image folder, in storage order.
type folderSet struct {
	root     string // the folder or archive
	archive  bool
	retained bool // archive: every item's bytes are kept
	split    string
	base     string // the folder holding the class folders
	classes  []string
	items    []item
}

type item struct {
	name  string // as in fileEntry
	label int
	data  []byte
}

// selectImages works out the layout of an image folder called where and
// selects the images of the split asked for, with their labels.
func selectImages(where string, l *listing, opts Options) (*folderSet, error) {
	type file struct {
		fileEntry
		parts []string
	}
	var images []file
	for _, f := range l.files {
		if imgproc.IsImageName(f.name) {
			images = append(images, file{f, strings.Split(f.name, "/")})
		}
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("%s: no images (%s) found", where, strings.Join(imgproc.Extensions(), ", "))
	}
	// classDir is the folder holding the class folders; splitsDir, when
	// there are split folders, the one holding them.
	var classDir, splitsDir, split string
	if opts.Split != "" {
		// The split folder is the nearest ancestor named Split that has
		// class folders under it; it must be the same for every image.
		places := map[string]bool{}
		for _, f := range images {
			for i := len(f.parts) - 3; i >= 0; i-- {
				if f.parts[i] == opts.Split {
					places[strings.Join(f.parts[:i+1], "/")] = true
					break
				}
			}
		}
		switch len(places) {
		case 0:
			var names []string
			for _, f := range images {
				names = append(names, f.name)
			}
			return nil, noSplitf("%s: no split folder %q holding class folders (%s)", where, opts.Split, describeSplits(names))
		case 1:
			for p := range places {
				classDir = p
			}
		default:
			return nil, fmt.Errorf("%s: split %q is in more than one place: %s", where, opts.Split, strings.Join(sortedKeys(places), ", "))
		}
		splitsDir, split = path.Dir(classDir), opts.Split
		if splitsDir == "." {
			splitsDir = ""
		}
	} else {
		// Strip the folders that wrap everything, keeping at least
		// class/image; what remains is class/image or split/class/image.
		minDepth := len(images[0].parts)
		for _, f := range images {
			minDepth = min(minDepth, len(f.parts))
		}
		prefix := images[0].parts[:max(minDepth-2, 0)]
		for _, f := range images {
			k := 0
			for k < len(prefix) && f.parts[k] == prefix[k] {
				k++
			}
			prefix = prefix[:k]
		}
		// The shallowest image decides: class/image, or split/class/image
		// (deeper images are in folders inside a class folder).
		shallowest := images[0]
		for _, f := range images {
			if len(f.parts) < len(shallowest.parts) {
				shallowest = f
			}
		}
		top := strings.Join(prefix, "/")
		switch len(shallowest.parts) - len(prefix) {
		case 1:
			return nil, fmt.Errorf("%s: %s is not in a class folder (want [split/]class/image)", where, shallowest.name)
		case 2:
			classDir = top
		default:
			splits := map[string]bool{}
			for _, f := range images {
				splits[f.parts[len(prefix)]] = true
			}
			if len(splits) > 1 {
				return nil, fmt.Errorf("%s has the splits %s: choose one (Options.Split)", where, strings.Join(sortedKeys(splits), ", "))
			}
			for sp := range splits {
				split = sp
			}
			splitsDir, classDir = top, path.Join(top, split)
		}
	}
	under := func(name, dir string) (string, bool) { // name relative to dir
		if dir == "" {
			return name, true
		}
		rest, ok := strings.CutPrefix(name, dir+"/")
		return rest, ok
	}
	// Class folders: those in the split, and those in the other splits so
	// that every split gets the same labels.
	inSplit := map[string]bool{}    // class folders of this split
	anySplit := map[string]string{} // class folder -> a split that has it
	addClassDir := func(d string) {
		if rest, ok := under(d, classDir); ok && rest != "" {
			inSplit[strings.Split(rest, "/")[0]] = true
		}
		if split != "" {
			if rest, ok := under(d, splitsDir); ok && rest != "" {
				p := strings.Split(rest, "/")
				if len(p) >= 2 && p[0] != split {
					anySplit[p[1]] = p[0]
				}
			}
		}
	}
	for d := range l.dirs {
		if !hidden(d) {
			addClassDir(d)
		}
	}
	counts := map[string]int{}
	var picked []item
	for _, f := range l.files {
		rest, ok := under(f.name, classDir)
		if !ok {
			// In another split: only its class folder matters.
			if split != "" {
				if r, ok := under(f.name, splitsDir); ok && strings.Count(r, "/") >= 2 && imgproc.IsImageName(f.name) {
					addClassDir(path.Dir(f.name))
				}
			}
			continue
		}
		if !strings.Contains(rest, "/") {
			if imgproc.IsImageName(f.name) {
				return nil, fmt.Errorf("%s: %s is not in a class folder (want %s/<class>/image)", where, f.name, strings.TrimSuffix(classDir, "/"))
			}
			continue // a README beside the class folders
		}
		if !imgproc.IsImageName(f.name) {
			return nil, fmt.Errorf("%s: %s is not an image (a class folder may only hold %s files)", where, f.name, strings.Join(imgproc.Extensions(), ", "))
		}
		class := strings.Split(rest, "/")[0]
		inSplit[class] = true
		counts[class]++
		picked = append(picked, item{name: f.name, data: f.data, label: -1})
	}
	if len(picked) == 0 {
		return nil, fmt.Errorf("%s: no images in %s", where, classDir)
	}
	folderOf := func(class string) string { return path.Join(classDir, class) }
	var classes []string
	index := map[string]int{}
	if opts.Classes != nil {
		classes = slices.Clone(opts.Classes)
		for i, c := range classes {
			if _, dup := index[c]; dup {
				return nil, fmt.Errorf("class %q is twice in the label list", c)
			}
			index[c] = i
		}
		for _, c := range sortedKeys(inSplit) {
			if _, ok := index[c]; !ok {
				return nil, fmt.Errorf("%s: class folder %s is not in the label list (%d classes: %s)", where, folderOf(c), len(classes), abbreviate(classes))
			}
		}
	} else {
		all := map[string]bool{}
		for c := range inSplit {
			all[c] = true
		}
		for c, other := range anySplit {
			if !inSplit[c] {
				return nil, fmt.Errorf("%s: no folder for class %q in %s (%s has one)", where, c, classDir, path.Join(splitsDir, other))
			}
		}
		classes = sortedKeys(all)
		for i, c := range classes {
			index[c] = i
		}
	}
	for c := range inSplit {
		if counts[c] == 0 {
			return nil, fmt.Errorf("%s: class folder %s is empty (no images)", where, folderOf(c))
		}
	}
	for i := range picked {
		rest, _ := under(picked[i].name, classDir)
		picked[i].label = index[strings.Split(rest, "/")[0]]
	}
	return &folderSet{split: split, base: classDir, classes: classes, items: picked}, nil
}

// describeSplits names the folders that hold class folders, for an error.
func describeSplits(names []string) string {
	splits := map[string]bool{}
	for _, n := range names {
		p := strings.Split(n, "/")
		if len(p) >= 3 {
			splits[p[len(p)-3]] = true
		}
	}
	if len(splits) == 0 {
		return "the images are in class folders directly; use no split"
	}
	return "found " + strings.Join(sortedKeys(splits), ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func abbreviate(names []string) string {
	if len(names) > 12 {
		return strings.Join(names[:12], ", ") + ", …"
	}
	return strings.Join(names, ", ")
}
