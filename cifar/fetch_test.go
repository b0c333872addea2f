package cifar

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// archiveServer serves content at /cifar.tar.gz on 127.0.0.1 (httptest
// listens on the loopback interface only), with range requests, and can
// misbehave as the test needs.
type archiveServer struct {
	*httptest.Server
	content []byte

	mu       sync.Mutex
	requests []string // "GET" or "GET bytes=N-"
	// cutAt, when > 0, makes the next full response stop after this many
	// bytes (the connection is closed mid-body).
	cutAt int
	// noRanges makes the server ignore Range headers (always 200).
	noRanges bool
	status   int // when non-zero, every response has this status
}

func newArchiveServer(t *testing.T, content []byte) *archiveServer {
	s := &archiveServer{content: content}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *archiveServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rng := r.Header.Get("Range")
	s.requests = append(s.requests, strings.TrimSpace("GET "+rng))
	cut, status := s.cutAt, s.status
	s.cutAt = 0
	if s.noRanges {
		r.Header.Del("Range")
	}
	s.mu.Unlock()
	if r.URL.Path != "/cifar.tar.gz" {
		http.NotFound(w, r)
		return
	}
	if status != 0 {
		http.Error(w, "no", status)
		return
	}
	if cut > 0 {
		w.Header().Set("Content-Length", fmt.Sprint(len(s.content)))
		w.WriteHeader(http.StatusOK)
		w.Write(s.content[:cut])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	http.ServeContent(w, r, "cifar.tar.gz", time.Time{}, bytes.NewReader(s.content))
}

func (s *archiveServer) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func sums(b []byte) (string, string) {
	s, m := sha256.Sum256(b), md5.Sum(b)
	return hex.EncodeToString(s[:]), hex.EncodeToString(m[:])
}

func TestFetch(t *testing.T) {
	content := make([]byte, 3<<20+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	sha, md := sums(content)
	ctx := context.Background()
	opts := func(s *archiveServer, progress func(done, total int64)) FetchOptions {
		return FetchOptions{URL: s.URL + "/cifar.tar.gz", Size: int64(len(content)), SHA256: sha, MD5: md,
			Retry: time.Millisecond, Progress: progress}
	}
	check := func(t *testing.T, path, cache string) {
		t.Helper()
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("cached archive differs (%v)", err)
		}
		if path != filepath.Join(cache, "cifar-10-binary.tar.gz") {
			t.Errorf("path %s", path)
		}
		entries, _ := os.ReadDir(cache)
		if len(entries) != 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("cache holds %v", names)
		}
	}

	t.Run("download, then use the cache", func(t *testing.T) {
		s := newArchiveServer(t, content)
		cache := filepath.Join(t.TempDir(), "cache", "nested")
		var last, calls int64
		monotonic := true
		p, err := FetchWith(ctx, "cifar10", cache, opts(s, func(done, total int64) {
			if done < last || total != int64(len(content)) {
				monotonic = false
			}
			last, calls = done, calls+1
		}))
		if err != nil {
			t.Fatal(err)
		}
		check(t, p, cache)
		if !monotonic || last != int64(len(content)) || calls < 3 {
			t.Errorf("progress: monotonic %v, last %d, %d calls", monotonic, last, calls)
		}
		if _, err := FetchWith(ctx, "cifar10", cache, opts(s, nil)); err != nil {
			t.Fatal(err)
		}
		if got := s.log(); len(got) != 1 {
			t.Errorf("requests %v: the cached archive was downloaded again", got)
		}
	})

	t.Run("resume after a broken connection", func(t *testing.T) {
		s := newArchiveServer(t, content)
		s.cutAt = 1 << 20
		cache := t.TempDir()
		p, err := FetchWith(ctx, "cifar10", cache, opts(s, nil))
		if err != nil {
			t.Fatal(err)
		}
		check(t, p, cache)
		got := s.log()
		if len(got) != 2 || got[0] != "GET" || !strings.HasPrefix(got[1], "GET bytes=") || got[1] == "GET bytes=0-" {
			t.Errorf("requests %v, want a full request then a resume", got)
		}
	})

	t.Run("resume a partial file left by a crash", func(t *testing.T) {
		s := newArchiveServer(t, content)
		cache := t.TempDir()
		writeFile(t, filepath.Join(cache, ".cifar-10-binary.tar.gz.part"), content[:777777])
		p, err := FetchWith(ctx, "cifar10", cache, opts(s, nil))
		if err != nil {
			t.Fatal(err)
		}
		check(t, p, cache)
		if got := s.log(); len(got) != 1 || got[0] != "GET bytes=777777-" {
			t.Errorf("requests %v", got)
		}
	})

	t.Run("server without ranges: start over", func(t *testing.T) {
		s := newArchiveServer(t, content)
		s.noRanges = true
		cache := t.TempDir()
		writeFile(t, filepath.Join(cache, ".cifar-10-binary.tar.gz.part"), content[:5000])
		p, err := FetchWith(ctx, "cifar10", cache, opts(s, nil))
		if err != nil {
			t.Fatal(err)
		}
		check(t, p, cache)
	})

	t.Run("a bad partial file fails the check and is removed", func(t *testing.T) {
		s := newArchiveServer(t, content)
		cache := t.TempDir()
		part := filepath.Join(cache, ".cifar-10-binary.tar.gz.part")
		writeFile(t, part, bytes.Repeat([]byte{7}, 4096))
		_, err := FetchWith(ctx, "cifar10", cache, opts(s, nil))
		errContains(t, err, "sha256")
		if _, serr := os.Stat(part); serr == nil {
			t.Error("the bad partial file was kept")
		}
		if _, serr := os.Stat(filepath.Join(cache, "cifar-10-binary.tar.gz")); serr == nil {
			t.Error("a bad archive was placed in the cache")
		}
		p, err := FetchWith(ctx, "cifar10", cache, opts(s, nil)) // the next try starts over
		if err != nil {
			t.Fatal(err)
		}
		check(t, p, cache)
	})

	t.Run("a corrupt cached archive is replaced", func(t *testing.T) {
		s := newArchiveServer(t, content)
		cache := t.TempDir()
		bad := append([]byte(nil), content...)
		bad[100] ^= 1
		writeFile(t, filepath.Join(cache, "cifar-10-binary.tar.gz"), bad)
		p, err := FetchWith(ctx, "cifar10", cache, opts(s, nil))
		if err != nil {
			t.Fatal(err)
		}
		check(t, p, cache)
	})

	t.Run("wrong checksum", func(t *testing.T) {
		s := newArchiveServer(t, content)
		cache := t.TempDir()
		o := opts(s, nil)
		o.SHA256 = strings.Repeat("0", 64)
		_, err := FetchWith(ctx, "cifar10", cache, o)
		errContains(t, err, "sha256 "+sha+", want 0000")
		if entries, _ := os.ReadDir(cache); len(entries) != 0 {
			t.Errorf("cache holds %d files after a failed check", len(entries))
		}
	})

	t.Run("not found is not retried", func(t *testing.T) {
		s := newArchiveServer(t, content)
		o := opts(s, nil)
		o.URL = s.URL + "/missing.tar.gz"
		_, err := FetchWith(ctx, "cifar100", t.TempDir(), o)
		errContains(t, err, "404 Not Found")
		if got := s.log(); len(got) != 1 {
			t.Errorf("requests %v", got)
		}
	})

	t.Run("server errors are retried", func(t *testing.T) {
		s := newArchiveServer(t, content)
		s.status = http.StatusServiceUnavailable
		o := opts(s, nil)
		o.Attempts = 3
		_, err := FetchWith(ctx, "cifar10", t.TempDir(), o)
		errContains(t, err, "503 Service Unavailable")
		if got := s.log(); len(got) != 3 {
			t.Errorf("requests %v, want 3 attempts", got)
		}
	})

	t.Run("wrong size from the server", func(t *testing.T) {
		s := newArchiveServer(t, content[:1000])
		o := opts(s, nil)
		_, err := FetchWith(ctx, "cifar10", t.TempDir(), o)
		errContains(t, err, "the server sends 1,000 bytes; the archive has 3,158,073")
	})

	t.Run("cancelled", func(t *testing.T) {
		s := newArchiveServer(t, content)
		cctx, cancel := context.WithCancel(ctx)
		cache := t.TempDir()
		o := opts(s, func(done, total int64) {
			if done > 1<<20 {
				cancel()
			}
		})
		_, err := FetchWith(cctx, "cifar10", cache, o)
		errContains(t, err, "context canceled")
		errContains(t, err, "is kept for resuming")
		if _, serr := os.Stat(filepath.Join(cache, ".cifar-10-binary.tar.gz.part")); serr != nil {
			t.Errorf("partial file: %v", serr)
		}
		p, err := FetchWith(ctx, "cifar10", cache, opts(s, nil))
		if err != nil {
			t.Fatal(err)
		}
		check(t, p, cache)
		if got := s.log(); !strings.HasPrefix(got[len(got)-1], "GET bytes=") {
			t.Errorf("requests %v: the second call did not resume", got)
		}
	})

	t.Run("unknown data set", func(t *testing.T) {
		_, err := Fetch(ctx, "mnist", t.TempDir(), nil)
		errContains(t, err, `unknown data set "mnist"`)
	})
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/tmp/xdg")
	if dir, err := DefaultCacheDir(); err != nil || dir != "/tmp/xdg/resnetctl/datasets" {
		t.Errorf("%q, %v", dir, err)
	}
}

func TestReleases(t *testing.T) {
	for name, r := range releases {
		if got, err := LookupRelease(name); err != nil || got != r {
			t.Errorf("LookupRelease(%s) = %+v, %v", name, got, err)
		}
		if r.Name != name || len(r.SHA256) != 64 || len(r.MD5) != 32 || r.Size < 160e6 || !strings.HasPrefix(r.URL, "https://www.cs.toronto.edu/~kriz/") || !strings.HasSuffix(r.URL, "/"+r.File) {
			t.Errorf("release %s: %+v", name, r)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	for in, want := range map[string][3]int64{
		"bytes 100-199/1000": {100, 1000, 1},
		"bytes 5-9/*":        {5, -1, 1},
		"bytes */1000":       {0, 0, 0},
		"items 1-2/3":        {0, 0, 0},
		"":                   {0, 0, 0},
	} {
		start, size, ok := parseContentRange(in)
		if ok != (want[2] == 1) || (ok && (start != want[0] || size != want[1])) {
			t.Errorf("%q: %d %d %v", in, start, size, ok)
		}
	}
}
