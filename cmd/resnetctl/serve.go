package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/serve"
	"github.com/spf13/cobra"
)

// ServeOptions are the inputs of `resnetctl serve`.
type ServeOptions struct {
	Streams     *Streams
	Models      []string
	Names       []string
	HTTP        string
	MaxBatch    int
	MaxDelayUS  int
	MaxInflight int
	MaxBody     int64
	MaxElements int
	Timeout     time.Duration
	Threads     int
	Instances   int
}

// NewCmdServe makes `resnetctl serve`; runF replaces the run function in tests.
func NewCmdServe(s *Streams, runF func(*ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{Streams: s}
	c := &cobra.Command{
		Use:   "serve [flags] MODEL.onnx...",
		Short: "Serve ONNX models over HTTP: the KServe Open Inference Protocol (v2)",
		Long: `Serve ONNX models over HTTP with the REST API of the KServe Open Inference
Protocol (v2), which Triton, KServe and Seldon MLServer speak: a client written
for them works against this server unchanged.

  GET  /v2/health/live, /v2/health/ready, /v2
  GET  /v2/models/NAME[/versions/1][/ready]
  POST /v2/models/NAME[/versions/1]/infer      JSON tensors
  POST /v1/models/NAME:classify[?top=K]        an image body: top-k class names
  GET  /metrics                                Prometheus text format

Each model is named by its file's stem, or by --name (once per model, in
order). Concurrent requests to a model with a dynamic batch dimension are
gathered into batches of up to --max-batch rows, waiting at most --max-delay
microseconds for the batch to fill; fixed-batch models run their batch size at
a time. --instances N loads each model N times, each instance with its share
of --threads, and runs N batches at once (Triton's instance group): more
throughput under load where one batch does not keep every core busy (small
images), at the cost of N copies of the weights and a longer latency when
alone. Beyond --max-inflight requests at once, requests are refused with 429.
SIGTERM or SIGINT stops accepting, answers the requests already taken, and
exits 0. The listening address is printed on stderr once the server is ready;
an access log line per request follows there.`,
		Example: `  resnetctl serve resnet20.onnx
  resnetctl serve --http 127.0.0.1:8000 --name r20 --name r50 resnet20.onnx resnet50.onnx
  curl -s localhost:8000/v2/models/resnet20
  curl -s --data-binary @cat.png localhost:8000/v1/models/resnet20:classify?top=5`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usageErrorf(c, "serve takes at least one model")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			opts.Models = args
			switch {
			case len(opts.Names) > 0 && len(opts.Names) != len(args):
				return usageErrorf(c, "%d --name for %d models: give one per model, in order, or none", len(opts.Names), len(args))
			case opts.MaxBatch < 1:
				return usageErrorf(c, "--max-batch %d: must be at least 1 (1 turns batching off)", opts.MaxBatch)
			case opts.MaxDelayUS < 0:
				return usageErrorf(c, "--max-delay %d: must be at least 0", opts.MaxDelayUS)
			case opts.MaxInflight < 1:
				return usageErrorf(c, "--max-inflight %d: must be at least 1", opts.MaxInflight)
			case opts.MaxBody < 1024:
				return usageErrorf(c, "--max-body %d: must be at least 1024", opts.MaxBody)
			case opts.MaxElements < 1:
				return usageErrorf(c, "--max-elements %d: must be at least 1", opts.MaxElements)
			case opts.Instances < 1:
				return usageErrorf(c, "--instances %d: must be at least 1", opts.Instances)
			case opts.Threads > 0 && opts.Instances > opts.Threads:
				return usageErrorf(c, "--instances %d with --threads %d: each instance needs a thread", opts.Instances, opts.Threads)
			case opts.Timeout <= 0:
				return usageErrorf(c, "--timeout %v: must be positive", opts.Timeout)
			}
			if runF != nil {
				return runF(opts)
			}
			return serveRun(c, opts)
		},
	}
	fs := c.Flags()
	fs.StringVar(&opts.HTTP, "http", ":8000", "address to listen on (port 0: any free port)")
	fs.StringArrayVar(&opts.Names, "name", nil, "model name in URLs, once per model in order (default: the file's stem)")
	fs.IntVar(&opts.MaxBatch, "max-batch", 32, "most rows in a dynamic batch (1: no batching)")
	fs.IntVar(&opts.MaxDelayUS, "max-delay", 1000, "microseconds the oldest request waits for a batch to fill")
	fs.IntVar(&opts.MaxInflight, "max-inflight", 64, "most inference requests at once; more get 429")
	fs.Int64Var(&opts.MaxBody, "max-body", 16<<20, "largest request body in bytes")
	fs.IntVar(&opts.MaxElements, "max-elements", 4<<20, "most elements of one input tensor")
	fs.DurationVar(&opts.Timeout, "timeout", 30*time.Second, "longest time a request may take")
	fs.IntVar(&opts.Threads, "threads", 0, "worker threads per model, shared among its instances (default: all cores)")
	fs.IntVar(&opts.Instances, "instances", 1, "instances of each model, each running a batch at the same time with threads/instances threads (2 on two cores suits small models such as ResNet-20 with batching; see the README)")
	return c
}

func serveRun(c *cobra.Command, opts *ServeOptions) error {
	var models []serve.ModelConfig
	defer func() {
		for _, m := range models {
			m.Session.Close()
			for _, s := range m.Instances {
				s.Close()
			}
		}
	}()
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	perInstance := max(1, threads/opts.Instances)
	for i, path := range opts.Models {
		name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		if len(opts.Names) > 0 {
			name = opts.Names[i]
		}
		var sessions []*infer.Session
		for range opts.Instances {
			sess, err := infer.Load(path, infer.Options{Threads: perInstance})
			if err != nil {
				for _, s := range sessions {
					s.Close()
				}
				return err
			}
			sessions = append(sessions, sess)
		}
		models = append(models, serve.ModelConfig{Name: name, Session: sessions[0], Instances: sessions[1:]})
	}
	log := newLogWriter(opts.Streams.ErrOut)
	defer log.Flush()
	srv, err := serve.New(serve.Config{
		MaxBatch:    opts.MaxBatch,
		MaxDelay:    time.Duration(opts.MaxDelayUS) * time.Microsecond,
		MaxInflight: opts.MaxInflight,
		MaxBody:     opts.MaxBody,
		MaxElements: opts.MaxElements,
		Timeout:     opts.Timeout,
		AccessLog:   log,
		Version:     version,
	}, models...)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.HTTP)
	if err != nil {
		srv.Close()
		return fmt.Errorf("serve: %w", err)
	}
	fmt.Fprintf(log, "resnetctl: serving %s on http://%s\n", strings.Join(srv.Models(), ", "), ln.Addr())
	log.Flush()
	err = srv.Serve(c.Context(), ln)
	if err == nil {
		// A signal ended the context: every request taken was answered.
		fmt.Fprintf(log, "resnetctl: stopped; every accepted request was answered\n")
		log.Flush()
	}
	return err
}

// logWriter is the access log: the lines of concurrent requests, kept in a
// buffer and written at most every flushEvery (or when the buffer fills), so
// that a request costs no write system call of its own (one per request was
// 1.6% of the server's CPU at 3,700 requests a second). Flush writes at
// once; the server's start and stop lines use it.
type logWriter struct {
	mu    sync.Mutex
	buf   *bufio.Writer
	timer *time.Timer // pending flush, nil when the buffer is empty
}

const flushEvery = 100 * time.Millisecond

func newLogWriter(w io.Writer) *logWriter {
	return &logWriter{buf: bufio.NewWriterSize(w, 64<<10)}
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.buf.Write(p)
	if l.timer == nil && l.buf.Buffered() > 0 {
		l.timer = time.AfterFunc(flushEvery, func() { l.Flush() })
	}
	return n, err
}

// Flush writes what the buffer holds.
func (l *logWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	return l.buf.Flush()
}
