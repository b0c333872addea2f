package cifar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/internal/numfmt"
	"github.com/resnetctl/resnetctl/internal/regularfile"
)

// ErrNoSplit is wrapped by Open's error when the data set has no part
// for the split asked for (no such split folder, no .bin file named for
// it), as opposed to a part that exists but cannot be read.
var ErrNoSplit = errors.New("no such split")

// noSplitError is an error that says which split is missing and where,
// and matches ErrNoSplit.
type noSplitError struct{ msg string }

func (e *noSplitError) Error() string        { return e.msg }
func (e *noSplitError) Is(target error) bool { return target == ErrNoSplit }

func noSplitf(format string, args ...any) error {
	return &noSplitError{fmt.Sprintf(format, args...)}
}

// Options say what to read from a data set and how.
type Options struct {
	// Format is FormatAuto (detect), FormatCIFAR10, FormatCIFAR100 or
	// FormatImageFolder. Needed only where detection cannot tell: a .bin
	// file of a size that fits both record kinds, or an archive holding both
	// .bin files and images.
	Format Format
	// Split selects a part of the data set:
	//   - official binary releases: "train" (data_batch_1..5.bin, or
	//     CIFAR-100's train.bin) or "test" (test_batch.bin, test.bin);
	//     required;
	//   - other .bin files in a folder or archive: the files whose names
	//     begin with Split ("test_0000-0999.bin" for "test"); "" takes all;
	//   - image folders: the folder named Split holding the class folders
	//     (root/<Split>/<class>/*.jpg); "" when the images are in class
	//     folders directly under the root, or there is one split folder;
	//   - a single .bin file: ignored, except that an official file of the
	//     other split is refused.
	Split string
	// Classes is the label list. Image folders: the class folder names in
	// label order; every class folder of the split must be in it (classes
	// without a folder are allowed). nil: the class folder names, sorted,
	// across all splits (so train and test agree). Binary sets: names for
	// the labels; nil: the release's label file, or the official names.
	Classes []string
	// Coarse selects CIFAR-100's 20 coarse labels instead of its 100 fine
	// ones.
	Coarse bool
	// AnyCount accepts official binary file names holding a record count
	// other than the release's (10,000 a batch; 50,000 in CIFAR-100's
	// train.bin). Sizes must still be whole records.
	AnyCount bool
	// Workers is the number of goroutines decoding images; 0 means
	// GOMAXPROCS.
	Workers int
	// Decoder holds the image decoding limits (zero: imgproc's defaults).
	Decoder imgproc.Decoder
	// Transform, if set, is applied to every image in the decoding workers
	// (e.g. a resize to the model's input size); it must be safe for
	// concurrent use.
	Transform func(*imgproc.Image) (*imgproc.Image, error)
	// Progress, if set, is called after each sample with the number done
	// and the total.
	Progress func(done, total int64)
}

// retainBudget is how many bytes of encoded images an archive listing
// keeps, so that Walk need not decompress the archive a second time (a
// variable so that tests can lower it).
var retainBudget int64 = 128 << 20

// Source is an opened data set, ready to stream. Open validates the layout
// (and, for binary sets, reads and validates every record) before any
// image is decoded.
type Source struct {
	Path    string   // as given to Open
	Format  Format   // what was found
	Split   string   // the split read ("" when there is none)
	Classes []string // label names
	Len     int      // number of samples

	opts   Options
	data   *Dataset   // binary sets: all records
	folder *folderSet // image folders
}

// Sample is one labelled image of a stream.
type Sample struct {
	Index int    // position in the stream, from 0
	Name  string // where it came from: "cifar10/test/cat/0000.jpg", "test_batch.bin#17"
	Label int    // index into Source.Classes
	Image *imgproc.Image
}

// Load reads the data set at path into memory. Every image must have the
// same size (use Options.Transform to resize ones that do not).
func Load(ctx context.Context, path string, opts Options) (*Dataset, error) {
	s, err := Open(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	return s.Load(ctx)
}

// Open finds out what the data set at path is and validates it: a folder
// (an official binary release, a folder of .bin files, or an image folder),
// a .tar.gz/.tgz/.tar archive of any of these, or a single .bin file.
func Open(ctx context.Context, p string, opts Options) (*Source, error) {
	switch opts.Format {
	case FormatAuto, FormatCIFAR10, FormatCIFAR100, FormatImageFolder:
	default:
		return nil, fmt.Errorf("unknown data set format %q (want cifar10, cifar100 or folder)", opts.Format)
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	// Only folders and regular files: sniffing a FIFO would block forever.
	if !st.IsDir() {
		if err := regularfile.Check(p, st.Mode()); err != nil {
			return nil, err
		}
	}
	s := &Source{Path: p, Split: opts.Split, opts: opts}
	switch {
	case st.IsDir():
		err = s.openDir(ctx, p)
	case isArchiveName(p) || sniffArchive(p):
		err = s.openArchive(ctx, p)
	case strings.EqualFold(filepath.Ext(p), ".bin"):
		err = s.openBinFile(p, st.Size())
	default:
		err = fmt.Errorf("%s: not a data set (want a folder, a .tar.gz, .tgz or .tar archive, or a .bin file)", p)
	}
	if err != nil {
		return nil, err
	}
	if s.data != nil {
		s.Format, s.Classes, s.Len = s.dataFormat(), s.data.Classes, s.data.Len()
	} else {
		s.Format, s.Classes, s.Len = FormatImageFolder, s.folder.classes, len(s.folder.items)
	}
	return s, nil
}

func (s *Source) dataFormat() Format {
	if s.Format != "" {
		return s.Format
	}
	return FormatCIFAR10
}

// sniffArchive reports whether a file starts like a gzip or tar file.
func sniffArchive(p string) bool {
	f, err := regularfile.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	return (n >= 2 && head[0] == 0x1f && head[1] == 0x8b) || (n >= 263 && string(head[257:262]) == "ustar")
}

// openBinFile reads one .bin file.
func (s *Source) openBinFile(p string, size int64) error {
	name := filepath.Base(p)
	role := roleOf(name, filepath.Base(filepath.Dir(p)))
	f, err := s.binFormat(name, size, role)
	if err != nil {
		return err
	}
	if err := s.checkSplit(name, role); err != nil {
		return err
	}
	if err := checkSize(name, size, f, role, s.opts.AnyCount); err != nil {
		return err
	}
	// At most the size checked: a file that grows meanwhile is refused.
	data, err := regularfile.ReadFile(p, size)
	if err != nil {
		return err
	}
	// A label file beside the batch (as in the release folder) names the
	// classes (regular and under 1 MiB, as in archives; else ignored).
	lf, _ := labelFile(f, s.opts.Coarse)
	meta, _ := regularfile.ReadFile(filepath.Join(filepath.Dir(p), lf), 1<<20)
	return s.binBytes(name, data, role, meta)
}

func (s *Source) checkSplit(name string, role binRole) error {
	if s.opts.Split != "" && role.split != "" && role.split != s.opts.Split {
		return fmt.Errorf("%s is the official %s file, not %s data (split %q)", name, role.split, s.opts.Split, s.opts.Split)
	}
	return nil
}

// binBytes makes the data set of one .bin file's contents; meta is the
// release's label file, or nil.
func (s *Source) binBytes(name string, data []byte, role binRole, meta []byte) error {
	f, err := s.binFormat(name, int64(len(data)), role)
	if err != nil {
		return err
	}
	if err := s.checkSplit(name, role); err != nil {
		return err
	}
	if err := checkSize(name, int64(len(data)), f, role, s.opts.AnyCount); err != nil {
		return err
	}
	d := &Dataset{Name: name, H: Side, W: Side}
	if err := appendRecords(d, name, data, f, s.opts.Coarse); err != nil {
		return err
	}
	lf, _ := labelFile(f, s.opts.Coarse)
	if err := s.finishBinary(d, f, lf, meta); err != nil {
		return err
	}
	s.Split = role.split
	return nil
}

// binFormat decides the record kind of a file.
func (s *Source) binFormat(name string, size int64, role binRole) (Format, error) {
	switch {
	case s.opts.Format == FormatImageFolder:
		return "", fmt.Errorf("%s: a .bin file is not an image folder", name)
	case s.opts.Format != FormatAuto:
		if role.format != FormatAuto && role.format != s.opts.Format {
			return "", fmt.Errorf("%s is a %s file, but format %s was asked for", name, role.format.title(), s.opts.Format.title())
		}
		return s.opts.Format, nil
	case role.format != FormatAuto:
		return role.format, nil
	}
	return detectFormat(name, size)
}

// finishBinary sets the classes of a binary data set and validates it.
func (s *Source) finishBinary(d *Dataset, f Format, metaName string, meta []byte) error {
	s.Format = f
	switch {
	case s.opts.Classes != nil:
		d.Classes = slices.Clone(s.opts.Classes)
	case meta != nil:
		_, want := labelFile(f, s.opts.Coarse)
		names, err := parseLabelNames(metaName, meta, want)
		if err != nil {
			return err
		}
		d.Classes = names
	default:
		names, err := defaultClasses(f, s.opts.Coarse)
		if err != nil {
			return err
		}
		d.Classes = names
	}
	if err := d.Validate(); err != nil {
		return err
	}
	s.data = d
	return nil
}

// binMember is a .bin file of a folder or archive.
type binMember struct {
	name string // as found (archive member name or file name)
	size int64
	role binRole
	data []byte                 // read already (archives), or nil
	load func() ([]byte, error) // reads it (folders)
}

// wantBin says whether a .bin file belongs to the split asked for.
func (s *Source) wantBin(name string, role binRole) bool {
	switch {
	case s.opts.Split == "":
		return role.format == FormatAuto // an official release needs a split
	case role.format != FormatAuto:
		return role.split == s.opts.Split
	}
	return strings.HasPrefix(path.Base(name), s.opts.Split)
}

// buildBinary makes the data set from the .bin files of a folder or
// archive called where.
func (s *Source) buildBinary(where string, members []binMember, meta map[string][]byte) error {
	official := map[Format]bool{}
	for _, m := range members {
		if m.role.format != FormatAuto {
			official[m.role.format] = true
		}
	}
	f := s.opts.Format
	switch {
	case f == FormatImageFolder:
		return fmt.Errorf("%s holds CIFAR .bin files, not an image folder", where)
	case len(official) == 2 && f == FormatAuto:
		return fmt.Errorf("%s holds both CIFAR-10 and CIFAR-100 files; say which (Options.Format)", where)
	case f == FormatAuto && len(official) == 1:
		for k := range official {
			f = k
		}
	}
	var selected []binMember
	if official[f] {
		if s.opts.Split == "" {
			return fmt.Errorf("%s is the %s release: choose a split, train or test", where, f.title())
		}
		if s.opts.Split != "train" && s.opts.Split != "test" {
			return fmt.Errorf("%s is the %s release: no split %q (want train or test)", where, f.title(), s.opts.Split)
		}
		have := map[string]binMember{}
		for _, m := range members {
			if m.role.format == f && m.role.split == s.opts.Split {
				if prev, dup := have[path.Base(m.name)]; dup {
					return fmt.Errorf("%s: %s and %s are the same batch", where, prev.name, m.name)
				}
				have[path.Base(m.name)] = m
			}
		}
		for _, want := range officialFiles(f, s.opts.Split) {
			m, ok := have[want]
			if !ok {
				return fmt.Errorf("%s: %s is missing (the %s %s split has %s)", where, want, f.title(), s.opts.Split, strings.Join(officialFiles(f, s.opts.Split), ", "))
			}
			selected = append(selected, m)
		}
	} else {
		for _, m := range members {
			if m.role.format == FormatAuto && s.wantBin(m.name, m.role) {
				selected = append(selected, m)
			}
		}
		if len(selected) == 0 {
			var names []string
			for _, m := range members {
				names = append(names, path.Base(m.name))
			}
			return noSplitf("%s: no .bin file for split %q (found %s)", where, s.opts.Split, strings.Join(names, ", "))
		}
		sort.Slice(selected, func(i, j int) bool { return selected[i].name < selected[j].name })
		if f == FormatAuto {
			for _, m := range selected {
				g, err := detectFormat(m.name, m.size)
				if err != nil {
					return err
				}
				if f != FormatAuto && g != f {
					return fmt.Errorf("%s: %s holds %s records but %s holds %s records", where, selected[0].name, f.title(), m.name, g.title())
				}
				f = g
			}
		}
	}
	total := 0
	for _, m := range selected {
		if err := checkSize(m.name, m.size, f, m.role, s.opts.AnyCount); err != nil {
			return err
		}
		total += int(m.size) / f.recordBytes()
	}
	d := &Dataset{Name: where, H: Side, W: Side, Pixels: make([]uint8, 0, total*ImageBytes), Labels: make([]int, 0, total)}
	if s.opts.Split != "" {
		d.Name += " " + s.opts.Split
	}
	for _, m := range selected {
		data := m.data
		if data == nil {
			var err error
			if data, err = m.load(); err != nil {
				return err
			}
		}
		if int64(len(data)) != m.size {
			return fmt.Errorf("%s: %s bytes read, %s expected (the file changed?)", m.name, numfmt.Commas(int64(len(data))), numfmt.Commas(m.size))
		}
		if err := appendRecords(d, m.name, data, f, s.opts.Coarse); err != nil {
			return err
		}
	}
	lf, _ := labelFile(f, s.opts.Coarse)
	return s.finishBinary(d, f, lf, meta[lf])
}

// officialFiles lists the files of a split of a release, in order.
func officialFiles(f Format, split string) []string {
	switch {
	case f == FormatCIFAR100:
		return []string{split + ".bin"}
	case split == "test":
		return []string{"test_batch.bin"}
	}
	return []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
}

func isLabelFile(name string) bool {
	switch path.Base(name) {
	case "batches.meta.txt", "fine_label_names.txt", "coarse_label_names.txt":
		return true
	}
	return false
}

// openDir opens a folder: a binary release (or its parent), a folder of
// .bin files, or an image folder.
func (s *Source) openDir(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var bins []fs.DirEntry
	subs := map[string]bool{}
	for _, e := range entries {
		switch {
		case e.IsDir():
			subs[e.Name()] = true
		case strings.EqualFold(path.Ext(e.Name()), ".bin") && e.Type().IsRegular():
			bins = append(bins, e)
		}
	}
	if len(bins) == 0 && s.opts.Format != FormatImageFolder {
		// The parent of an unpacked release.
		var found []string
		for _, sub := range []string{dir10, dir100} {
			if subs[sub] && (s.opts.Format == FormatAuto || (sub == dir10) == (s.opts.Format == FormatCIFAR10)) {
				found = append(found, sub)
			}
		}
		switch len(found) {
		case 1:
			return s.openDir(ctx, filepath.Join(dir, found[0]))
		case 2:
			return fmt.Errorf("%s holds both %s and %s; say which (Options.Format)", dir, dir10, dir100)
		}
	}
	if len(bins) == 0 || s.opts.Format == FormatImageFolder {
		return s.openImageDir(ctx, dir)
	}
	hint := filepath.Base(dir)
	var members []binMember
	for _, e := range bins {
		info, err := e.Info()
		if err != nil {
			return err
		}
		full := filepath.Join(dir, e.Name())
		members = append(members, binMember{name: e.Name(), size: info.Size(), role: roleOf(e.Name(), hint),
			load: func() ([]byte, error) { return regularfile.ReadFile(full, 0) }})
	}
	meta := map[string][]byte{}
	for _, e := range entries {
		if isLabelFile(e.Name()) {
			if b, err := regularfile.ReadFile(filepath.Join(dir, e.Name()), 1<<20); err == nil {
				meta[e.Name()] = b
			}
		}
	}
	return s.buildBinary(filepath.Base(dir), members, meta)
}

// openArchive reads an archive once: .bin files of the split are read,
// image files are listed (and their bytes kept, within retainBudget).
func (s *Source) openArchive(ctx context.Context, file string) error {
	var (
		members  []binMember
		meta     = map[string][]byte{}
		list     listing
		retained int64
		overflow bool
	)
	list.dirs = map[string]bool{}
	err := walkArchive(ctx, file, func(m member, isDir bool, r io.Reader) error {
		if isDir {
			list.dirs[m.Name] = true
			return nil
		}
		if hidden(m.Name) {
			return nil
		}
		switch {
		case strings.EqualFold(path.Ext(m.Name), ".bin") && s.opts.Format != FormatImageFolder:
			role := roleOf(m.Name, "")
			bm := binMember{name: m.Name, size: m.Size, role: role}
			if s.wantBin(m.Name, role) {
				var err error
				if bm.data, err = readMember(r, m.Size); err != nil {
					return fmt.Errorf("reading %s: %w", m.Name, err)
				}
			}
			members = append(members, bm)
		case isLabelFile(m.Name) && m.Size < 1<<20:
			b, err := readMember(r, m.Size)
			if err != nil {
				return fmt.Errorf("reading %s: %w", m.Name, err)
			}
			meta[path.Base(m.Name)] = b
		default:
			fe := fileEntry{name: m.Name, size: m.Size}
			if imgproc.IsImageName(m.Name) && !overflow && s.inSplit(m.Name) {
				if retained+m.Size > retainBudget {
					overflow = true
				} else {
					b, err := readMember(r, m.Size)
					if err != nil {
						return fmt.Errorf("reading %s: %w", m.Name, err)
					}
					fe.data = b
					retained += m.Size
				}
			}
			list.files = append(list.files, fe)
		}
		return nil
	})
	if err != nil {
		return err
	}
	base := filepath.Base(file)
	hasImages := false
	for _, f := range list.files {
		if imgproc.IsImageName(f.name) {
			hasImages = true
			break
		}
	}
	switch {
	case len(members) > 0 && hasImages && s.opts.Format == FormatAuto:
		return fmt.Errorf("%s holds both CIFAR .bin files and images; say which to read (Options.Format)", base)
	case len(members) > 0 && s.opts.Format != FormatImageFolder:
		return s.buildBinary(base, members, meta)
	case !hasImages:
		return fmt.Errorf("%s: no CIFAR .bin files and no images (%s) in the archive", base, strings.Join(imgproc.Extensions(), ", "))
	}
	if overflow {
		for i := range list.files {
			list.files[i].data = nil
		}
	}
	fsrc, err := selectImages(base, &list, s.opts)
	if err != nil {
		return err
	}
	fsrc.root, fsrc.archive = file, true
	fsrc.retained = !overflow
	for _, it := range fsrc.items {
		if it.data == nil {
			fsrc.retained = false
			break
		}
	}
	s.folder = fsrc
	s.Split = fsrc.split
	return nil
}

// inSplit says whether an archive member may belong to the split asked
// for (its grandparent folder is named so), to decide what to keep.
func (s *Source) inSplit(name string) bool {
	if s.opts.Split == "" {
		return true
	}
	parts := strings.Split(name, "/")
	return len(parts) >= 3 && slices.Contains(parts[:len(parts)-2], s.opts.Split)
}

// openImageDir lists an image folder.
func (s *Source) openImageDir(ctx context.Context, dir string) error {
	list := listing{dirs: map[string]bool{}}
	n := 0
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if hidden(rel) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case e.IsDir():
			list.dirs[rel] = true
		case e.Type().IsRegular() || e.Type()&fs.ModeSymlink != 0:
			list.files = append(list.files, fileEntry{name: rel})
		}
		return nil
	})
	if err != nil {
		return err
	}
	fsrc, err := selectImages(filepath.Base(dir), &list, s.opts)
	if err != nil {
		return err
	}
	fsrc.root = dir
	s.folder = fsrc
	s.Split = fsrc.split
	return nil
}

// Load reads every sample into a Dataset. Binary sets are returned as
// read by Open (unless there is a Transform); images must all have the
// same size after Transform.
func (s *Source) Load(ctx context.Context) (*Dataset, error) {
	if s.data != nil && s.opts.Transform == nil {
		if s.opts.Progress != nil {
			s.opts.Progress(int64(s.Len), int64(s.Len))
		}
		return s.data, nil
	}
	name := filepath.Base(s.Path)
	if s.Split != "" && s.data == nil {
		name += " " + s.Split
	}
	if s.data != nil {
		name = s.data.Name
	}
	d := &Dataset{Name: name, Classes: slices.Clone(s.Classes), Labels: make([]int, 0, s.Len), Origins: make([]string, 0, s.Len)}
	var first string
	err := s.Walk(ctx, func(smp Sample) error {
		img := smp.Image
		if smp.Index == 0 {
			d.H, d.W, first = img.H, img.W, smp.Name
			d.Pixels = make([]uint8, 0, s.Len*3*img.W*img.H)
		} else if img.W != d.W || img.H != d.H {
			return fmt.Errorf("%s is %dx%d but %s is %dx%d: a Dataset holds images of one size (resize them with Options.Transform)",
				smp.Name, img.W, img.H, first, d.W, d.H)
		}
		d.Pixels = append(d.Pixels, img.Pix...)
		d.Labels = append(d.Labels, smp.Label)
		d.Origins = append(d.Origins, smp.Name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if d.Len() == 0 {
		return nil, fmt.Errorf("%s: no images", name)
	}
	return d, d.Validate()
}

// hidden reports paths with a component that starts with a dot (.DS_Store,
// ._x.jpg) or is macOS's __MACOSX: skipped, not data.
func hidden(rel string) bool {
	for _, c := range strings.Split(rel, "/") {
		if strings.HasPrefix(c, ".") || c == "__MACOSX" {
			return true
		}
	}
	return false
}

// FromDataset streams a data set already in memory (the embedded sample,
// say) as Open's sources do; name stands for its path in sample names
// and errors.
func FromDataset(ds *Dataset, name string, opts Options) *Source {
	s := &Source{Path: name, Split: opts.Split, opts: opts, data: ds}
	s.Format, s.Classes, s.Len = s.dataFormat(), ds.Classes, ds.Len()
	return s
}
