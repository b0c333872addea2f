package cifar

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/internal/regularfile"
)

// Walk calls fn with every sample, in storage order (records in file
// order; image folders sorted by path; archives in archive order), and
// stops at the first error, which it returns. Images are decoded (and
// transformed) by Options.Workers goroutines ahead of fn; fn runs on the
// calling goroutine, one sample at a time, and owns each Sample.Image.
// Archives whose images Open could not keep in memory are read a second
// time. Walk may be called more than once.
func (s *Source) Walk(ctx context.Context, fn func(Sample) error) error {
	if s.data != nil {
		d := s.data
		return s.pipeline(ctx, fn, func(emit func(*job) error) error {
			for i := 0; i < d.Len(); i++ {
				if err := emit(&job{name: d.Origin(i), label: d.Labels[i], img: d.Image(i).Clone()}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	f := s.folder
	switch {
	case !f.archive:
		return s.pipeline(ctx, fn, func(emit func(*job) error) error {
			for _, it := range f.items {
				if err := emit(&job{name: it.name, label: it.label, path: filepath.Join(f.root, filepath.FromSlash(it.name))}); err != nil {
					return err
				}
			}
			return nil
		})
	case f.retained:
		return s.pipeline(ctx, fn, func(emit func(*job) error) error {
			for _, it := range f.items {
				if err := emit(&job{name: it.name, label: it.label, data: it.data}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// Stream the archive again; the items are in archive order.
	return s.pipeline(ctx, fn, func(emit func(*job) error) error {
		next := 0
		err := walkArchive(ctx, f.root, func(m member, isDir bool, r io.Reader) error {
			if isDir || next == len(f.items) || m.Name != f.items[next].name {
				return nil
			}
			if limit := maxImageBytes(s.opts.Decoder.MaxBytes); m.Size > limit {
				return fmt.Errorf("%s: %w: %d bytes, over the limit of %d", m.Name, imgproc.ErrTooLarge, m.Size, limit)
			}
			data, err := readMember(r, m.Size)
			if err != nil {
				return fmt.Errorf("reading %s: %w", m.Name, err)
			}
			it := f.items[next]
			next++
			if err := emit(&job{name: it.name, label: it.label, data: data}); err != nil {
				return err
			}
			if next == len(f.items) {
				return errStop // the rest of the archive is other splits
			}
			return nil
		})
		if err == nil && next < len(f.items) {
			err = fmt.Errorf("%s: %s not found on the second reading (did the archive change?)", filepath.Base(f.root), f.items[next].name)
		}
		return err
	})
}

// job is one sample on its way through the decoding workers.
type job struct {
	index int
	name  string
	label int
	path  string         // read this file,
	data  []byte         // or decode these bytes,
	img   *imgproc.Image // or take this image
	done  chan struct{}
	err   error
}

// pipeline runs produce, which emits jobs in order, through the workers
// and hands the results to fn in the same order.
func (s *Source) pipeline(ctx context.Context, fn func(Sample) error, produce func(emit func(*job) error) error) error {
	workers := s.opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	todo := make(chan *job, 2*workers)
	order := make(chan *job, 8*workers) // bounds the samples in flight
	var produceErr error
	go func() {
		defer close(order)
		defer close(todo)
		n := 0
		produceErr = produce(func(j *job) error {
			j.index, j.done = n, make(chan struct{})
			n++
			select {
			case order <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case todo <- j:
			case <-ctx.Done():
				j.err = ctx.Err()
				close(j.done)
				return ctx.Err()
			}
			return nil
		})
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range todo {
				if ctx.Err() != nil {
					j.err = ctx.Err()
				} else {
					j.img, j.err = s.decode(j)
				}
				j.data = nil
				close(j.done)
			}
		}()
	}
	var err error
	total := int64(s.Len)
	for j := range order {
		<-j.done
		if err != nil {
			continue // draining
		}
		if j.err != nil {
			err = j.err
		} else {
			err = fn(Sample{Index: j.index, Name: j.name, Label: j.label, Image: j.img})
			if err == nil && s.opts.Progress != nil {
				s.opts.Progress(int64(j.index+1), total)
			}
		}
		if err != nil {
			cancel()
		}
	}
	wg.Wait()
	if err == nil {
		err = produceErr
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// decode turns a job into an image: read, decode, transform.
func (s *Source) decode(j *job) (*imgproc.Image, error) {
	img := j.img
	if img == nil {
		data := j.data
		if j.path != "" {
			var err error
			if data, err = readLimited(j.path, s.opts.Decoder.MaxBytes); err != nil {
				return nil, err // names the file
			}
		}
		var err error
		if img, _, err = s.opts.Decoder.Decode(data, j.name); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(s.Path), err)
		}
	}
	if s.opts.Transform != nil {
		out, err := s.opts.Transform(img)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", j.name, err)
		}
		img = out
	}
	return img, nil
}

// maxImageBytes is the size limit of an encoded image for a Decoder
// whose MaxBytes is maxBytes.
func maxImageBytes(maxBytes int64) int64 {
	if maxBytes <= 0 {
		return imgproc.DefaultMaxBytes
	}
	return maxBytes
}

// readLimited reads the file at path, or its first maxImageBytes(maxBytes)
// + 1 bytes when it is longer (the decoder then refuses it as too large),
// so that a huge file in an image folder is not read whole.
func readLimited(path string, maxBytes int64) ([]byte, error) {
	f, err := regularfile.Open(path) // a FIFO would block forever
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxImageBytes(maxBytes)+1))
}
