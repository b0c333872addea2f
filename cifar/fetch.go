package cifar

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/resnetctl/resnetctl/internal/numfmt"
	"github.com/resnetctl/resnetctl/internal/regularfile"
)

// Release is an official archive: where it is and what it must be.
type Release struct {
	Name   string // "cifar10", "cifar100"
	URL    string
	File   string // the archive's file name in the cache
	Size   int64
	SHA256 string
	MD5    string // as published on the CIFAR page
}

// releases are the official binary archives. The sizes and MD5 sums are
// the ones https://www.cs.toronto.edu/~kriz/cifar.html publishes; the
// SHA-256 sums are those other projects pin (CIFAR-10's is also in
// /work/shared/data/README.md; CIFAR-100's is the one GoMLX's and
// MLDatasets.jl's downloaders check, and its size and MD5 agree with the
// datasets-mila/datasets--cifar100 git-annex key
// MD5E-s168513733--03b5dce01913d631647c71ecec9e9cb8). Both sums are
// checked.
var releases = map[string]Release{
	"cifar10": {
		Name:   "cifar10",
		URL:    "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
		File:   "cifar-10-binary.tar.gz",
		Size:   170_052_171,
		SHA256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
		MD5:    "c32a1d4ab5d03f1284b67883e8d87530",
	},
	"cifar100": {
		Name:   "cifar100",
		URL:    "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
		File:   "cifar-100-binary.tar.gz",
		Size:   168_513_733,
		SHA256: "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
		MD5:    "03b5dce01913d631647c71ecec9e9cb8",
	},
}

// DefaultCacheDir is a cache folder for Fetch: resnetctl/datasets under the
// user's cache folder (os.UserCacheDir: $XDG_CACHE_HOME or ~/.cache on
// Linux).
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder: %w", err)
	}
	return filepath.Join(dir, "resnetctl", "datasets"), nil
}

// FetchOptions change how Fetch downloads.
type FetchOptions struct {
	// URL replaces the release's URL (a mirror, or a test server). The
	// bytes must still be the release's unless Size/SHA256/MD5 say
	// otherwise.
	URL string
	// Size, SHA256 and MD5 replace the release's (tests serving other
	// bytes). Size < 0 means unknown; an empty sum is not checked, but at
	// least one sum must be.
	Size   int64
	SHA256 string
	MD5    string
	// Client does the requests; nil means a client with no overall
	// timeout (the context cancels) and a 30 s response header timeout.
	Client *http.Client
	// Attempts is how many times a broken transfer is resumed (or
	// restarted) before giving up; 0 means 4.
	Attempts int
	// Retry is the pause before the first retry, doubled after each; 0
	// means 1 s.
	Retry time.Duration
	// Progress is called as bytes arrive with the bytes on disk so far and
	// the total (-1 when unknown).
	Progress func(done, total int64)
}

// Fetch makes sure the official archive of name ("cifar10" or "cifar100")
// is in cacheDir and returns its path. An archive already there is checked
// (size and checksums) and used; otherwise it is downloaded, checked, and
// moved into place under its final name only when complete, so the cache
// never holds a partial or corrupt archive under that name. A download
// interrupted (in this call, or by a crash) resumes from the partial file
// ("."+file+".part") with an HTTP range request when the server allows,
// and starts over when it does not. The result is the archive itself:
// Open and Load read it in place.
func Fetch(ctx context.Context, name, cacheDir string, progress func(done, total int64)) (string, error) {
	return FetchWith(ctx, name, cacheDir, FetchOptions{Progress: progress})
}

// LookupRelease returns the official archive of name: "cifar10" or
// "cifar100".
func LookupRelease(name string) (Release, error) {
	rel, ok := releases[name]
	if !ok {
		return Release{}, fmt.Errorf("unknown data set %q (want cifar10 or cifar100)", name)
	}
	return rel, nil
}

// FetchWith is Fetch with options.
func FetchWith(ctx context.Context, name, cacheDir string, opts FetchOptions) (string, error) {
	rel, err := LookupRelease(name)
	if err != nil {
		return "", err
	}
	if opts.URL != "" {
		rel.URL = opts.URL
	}
	if opts.Size != 0 {
		rel.Size = opts.Size
	}
	if opts.SHA256 != "" || opts.MD5 != "" {
		rel.SHA256, rel.MD5 = strings.ToLower(opts.SHA256), strings.ToLower(opts.MD5)
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 4
	}
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: 30 * time.Second,
		}}
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	final := filepath.Join(cacheDir, rel.File)
	if _, err := os.Stat(final); err == nil {
		if err := verifyFile(final, rel); err == nil {
			if opts.Progress != nil {
				opts.Progress(rel.Size, rel.Size)
			}
			return final, nil
		} else if err := os.Remove(final); err != nil {
			// Not ours to fix (read-only cache?): say so rather than download.
			return "", fmt.Errorf("%s is in the cache but fails its check, and cannot be removed: %w", final, err)
		}
	}
	part := filepath.Join(cacheDir, "."+rel.File+".part")
	var lastErr error
	wait := opts.Retry
	for attempt := 1; attempt <= opts.Attempts; attempt++ {
		err := download(ctx, opts, rel, part)
		if err == nil {
			if err = verifyFile(part, rel); err != nil {
				os.Remove(part) // bad bytes: the next try starts over
				return "", fmt.Errorf("downloaded %s: %w", rel.URL, err)
			}
			if err = place(part, final); err != nil {
				return "", err
			}
			return final, nil
		}
		lastErr = err
		var perm *permanentError
		if errors.As(err, &perm) || ctx.Err() != nil {
			break
		}
		if attempt < opts.Attempts {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			wait *= 2
		}
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("download %s: %w (the partial file %s is kept for resuming)", rel.URL, ctx.Err(), part)
	}
	return "", fmt.Errorf("download %s: %w", rel.URL, lastErr)
}

// permanentError is a failure retrying cannot fix (404, a bad size).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// download appends to the partial file part what is missing, resuming with
// a range request when part is non-empty.
func download(ctx context.Context, opts FetchOptions, rel Release, part string) error {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return &permanentError{err}
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return &permanentError{err}
	}
	if rel.Size > 0 && have > rel.Size {
		// Longer than the archive: not a prefix of it.
		if err := restart(f); err != nil {
			return err
		}
		have = 0
	}
	if rel.Size > 0 && have == rel.Size {
		return nil // complete; the caller verifies
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rel.URL, nil)
	if err != nil {
		return &permanentError{err}
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := opts.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	total := rel.Size
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have || (total > 0 && size >= 0 && size != total) {
			// Not the range asked for, or another file: start over.
			if err := restart(f); err != nil {
				return err
			}
			return fmt.Errorf("the server answered the resume request with range %q; starting over", resp.Header.Get("Content-Range"))
		}
		if total <= 0 {
			total = size
		}
	case resp.StatusCode == http.StatusOK:
		if have > 0 { // the server ignores ranges: start over
			if err := restart(f); err != nil {
				return err
			}
			have = 0
		}
		if total <= 0 {
			total = resp.ContentLength
		} else if resp.ContentLength >= 0 && resp.ContentLength != total {
			return &permanentError{fmt.Errorf("the server sends %s bytes; the archive has %s", numfmt.Commas(resp.ContentLength), numfmt.Commas(total))}
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		// The partial file is no prefix of what the server has.
		if err := restart(f); err != nil {
			return err
		}
		return fmt.Errorf("the server refused to resume at byte %s; starting over", numfmt.Commas(have))
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("server error: %s", resp.Status)
	default:
		return &permanentError{fmt.Errorf("%s", resp.Status)}
	}
	if opts.Progress != nil {
		opts.Progress(have, total)
	}
	buf := make([]byte, 256<<10)
	done := have
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if total > 0 && done+int64(n) > total {
				restart(f)
				return &permanentError{fmt.Errorf("the server sends more than the archive's %s bytes", numfmt.Commas(total))}
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return &permanentError{err}
			}
			done += int64(n)
			if opts.Progress != nil {
				opts.Progress(done, total)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("after %s bytes: %w", numfmt.Commas(done), rerr)
		}
	}
	if total > 0 && done != total {
		return fmt.Errorf("the transfer ended at %s of %s bytes", numfmt.Commas(done), numfmt.Commas(total))
	}
	return f.Sync()
}

// restart empties the partial file.
func restart(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return &permanentError{err}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return &permanentError{err}
	}
	return nil
}

// parseContentRange reads "bytes start-end/size" (size may be "*": -1).
func parseContentRange(v string) (start, size int64, ok bool) {
	v, ok = strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, sz, ok := strings.Cut(v, "/")
	if !ok {
		return 0, 0, false
	}
	first, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	size = -1
	if sz != "*" {
		if size, err = strconv.ParseInt(sz, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, size, true
}

// verifyFile checks a file's size and checksums against the release.
func verifyFile(p string, rel Release) error {
	if rel.SHA256 == "" && rel.MD5 == "" {
		return fmt.Errorf("no checksum to verify %s against", filepath.Base(p))
	}
	f, err := regularfile.Open(p) // a FIFO in its place would block forever
	if err != nil {
		return err
	}
	defer f.Close()
	var hs []hash.Hash
	s, m := sha256.New(), md5.New()
	if rel.SHA256 != "" {
		hs = append(hs, s)
	}
	if rel.MD5 != "" {
		hs = append(hs, m)
	}
	writers := make([]io.Writer, len(hs))
	for i, h := range hs {
		writers[i] = h
	}
	n, err := io.Copy(io.MultiWriter(writers...), f)
	if err != nil {
		return err
	}
	if rel.Size > 0 && n != rel.Size {
		return fmt.Errorf("%s has %s bytes, want %s", filepath.Base(p), numfmt.Commas(n), numfmt.Commas(rel.Size))
	}
	if got := hex.EncodeToString(s.Sum(nil)); rel.SHA256 != "" && got != rel.SHA256 {
		return fmt.Errorf("%s: sha256 %s, want %s", filepath.Base(p), got, rel.SHA256)
	}
	if got := hex.EncodeToString(m.Sum(nil)); rel.MD5 != "" && got != rel.MD5 {
		return fmt.Errorf("%s: md5 %s, want %s", filepath.Base(p), got, rel.MD5)
	}
	return nil
}

// place renames the verified partial file to its final name (same
// directory, so atomic) and syncs the directory so the rename is durable.
func place(part, final string) error {
	if err := os.Rename(part, final); err != nil {
		return fmt.Errorf("placing %s: %w", final, err)
	}
	if d, err := os.Open(filepath.Dir(final)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
