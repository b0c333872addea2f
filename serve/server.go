package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config holds the server's limits and settings. Zero fields take the
// defaults given.
type Config struct {
	// MaxBatch is the most rows a dynamic batch holds (default 32); 1
	// turns dynamic batching off.
	MaxBatch int
	// MaxDelay is how long the oldest waiting request of a model waits for
	// others to fill a batch; 0 runs what is there at once (requests that
	// arrive during a run still share the next).
	MaxDelay time.Duration
	// MaxInflight is the most inference requests (infer and classify)
	// accepted at once; more are answered 429 at once (default 64).
	MaxInflight int
	// MaxBody is the largest request body in bytes (default 16 MiB).
	MaxBody int64
	// MaxElements is the most elements of one input tensor (default 4Mi).
	MaxElements int
	// MaxImagePixels is the largest image (width × height) the classify
	// endpoint decodes (default 16Mi, 48 MiB of RGB): a small compressed
	// file may claim a huge image.
	MaxImagePixels int64
	// Timeout bounds each inference request from its arrival to its
	// answer (default 30 s).
	Timeout time.Duration
	// ReadTimeout bounds reading a request, body included (default 30 s):
	// a client that sends too slowly gets 408 and is cut off.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from its headers to the end of the
	// answer (default ReadTimeout + Timeout + 10 s).
	WriteTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections (default 2 min).
	IdleTimeout time.Duration
	// DrainTimeout bounds the graceful shutdown (default Timeout + 5 s):
	// connections still busy after it are closed.
	DrainTimeout time.Duration
	// AccessLog receives a line per request; nil: no log.
	AccessLog io.Writer
	// Version is the server version in its metadata.
	Version string
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxBatch, 32)
	def(&c.MaxInflight, 64)
	def(&c.MaxElements, 4<<20)
	if c.MaxBody <= 0 {
		c.MaxBody = 16 << 20
	}
	if c.MaxImagePixels <= 0 {
		c.MaxImagePixels = 16 << 20
	}
	defDur(&c.Timeout, 30*time.Second)
	defDur(&c.ReadTimeout, 30*time.Second)
	defDur(&c.WriteTimeout, c.ReadTimeout+c.Timeout+10*time.Second)
	defDur(&c.IdleTimeout, 2*time.Minute)
	defDur(&c.DrainTimeout, c.Timeout+5*time.Second)
	if c.Version == "" {
		c.Version = "dev"
	}
}

// Server serves models over the Open Inference Protocol's REST API. It is
// an http.Handler; Serve runs it on a listener with timeouts and graceful
// shutdown.
type Server struct {
	cfg      Config
	models   map[string]*model
	names    []string // in the order given, for logs
	metrics  *metrics
	inflight atomic.Int64
	draining atomic.Bool
	closed   sync.Once
}

// New starts serving the models (each gets a batcher goroutine; Close or
// Serve's end stops them).
func New(cfg Config, models ...ModelConfig) (*Server, error) {
	cfg.setDefaults()
	if len(models) == 0 {
		return nil, errors.New("serve: no models")
	}
	s := &Server{cfg: cfg, models: map[string]*model{}, metrics: newMetrics()}
	for _, mc := range models {
		if _, dup := s.models[mc.Name]; dup {
			s.Close()
			return nil, fmt.Errorf("serve: two models named %q (give --name)", mc.Name)
		}
		name := mc.Name
		m, err := newModel(mc, &s.cfg, func(rows int) { s.metrics.batch(name, rows) })
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("serve: %w", err)
		}
		s.models[mc.Name] = m
		s.names = append(s.names, mc.Name)
	}
	return s, nil
}

// Models returns the served models' names, in the order given.
func (s *Server) Models() []string { return append([]string(nil), s.names...) }

// Close stops the batchers; requests still waiting get 503. Serve calls
// it once the last request is answered.
func (s *Server) Close() {
	s.closed.Do(func() {
		s.draining.Store(true)
		for _, m := range s.models {
			m.batcher.close()
		}
	})
}

// Serve answers requests on ln until ctx ends, then shuts down
// gracefully: it stops accepting, stops reporting ready, waits for every
// accepted request to be answered (at most DrainTimeout), stops the
// batchers and returns nil. Other errors of the listener are returned.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: min(10*time.Second, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		// Request contexts do not derive from ctx: a shutdown lets the
		// requests it accepted finish rather than cancelling them.
		BaseContext: func(net.Listener) context.Context { return context.Background() },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	dctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	err := hs.Shutdown(dctx)
	if err != nil {
		hs.Close()
		err = fmt.Errorf("serve: requests still running after %v of draining were cut off", s.cfg.DrainTimeout)
	}
	<-errc // http.ErrServerClosed
	s.Close()
	return err
}

// ServeHTTP routes a request, timing, counting and logging it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	rt := s.route(r)
	rt.handle(rec, r)
	code := rec.code
	if code == 0 {
		code = 499 // the client left before an answer (nginx's convention)
	}
	d := time.Since(start)
	model := rt.model
	if s.models[model] == nil {
		model = "" // label only served models: names from URLs would grow the metrics without bound
	}
	s.metrics.request(model, rt.endpoint, code, d)
	if s.cfg.AccessLog != nil {
		fmt.Fprintf(s.cfg.AccessLog, "%s %s %s %s %d %dB %.3fms\n", start.UTC().Format("2006-01-02T15:04:05.000Z"),
			r.RemoteAddr, r.Method, strings.ReplaceAll(r.URL.RequestURI(), " ", "%20"), code, rec.bytes, float64(d.Microseconds())/1000)
	}
}

// recorder remembers the status and size of an answer.
type recorder struct {
	http.ResponseWriter
	code  int
	bytes int
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// route is a request's endpoint, model and handler.
type route struct {
	endpoint string
	model    string
	version  string
	methods  string // "GET" or "POST"
	handler  func(s *Server, w http.ResponseWriter, r *http.Request, rt *route)
	s        *Server
}

func (rt *route) handle(w http.ResponseWriter, r *http.Request) {
	if rt.methods != "" && r.Method != rt.methods && !(rt.methods == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", rt.methods)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, rt.methods))
		return
	}
	rt.handler(rt.s, w, r, rt)
}

// route matches the protocol's paths:
//
//	/v2, /v2/health/{live,ready}, /v2/models/{name}[/versions/{v}][/ready|/infer],
//	/v1/models/{name}:classify, /metrics
func (s *Server) route(r *http.Request) *route {
	p := strings.TrimSuffix(r.URL.Path, "/")
	seg := strings.Split(strings.TrimPrefix(p, "/"), "/")
	rt := &route{endpoint: "unknown", handler: (*Server).notFound, s: s}
	get := func(ep string, h func(*Server, http.ResponseWriter, *http.Request, *route)) *route {
		rt.endpoint, rt.handler, rt.methods = ep, h, http.MethodGet
		return rt
	}
	post := func(ep string, h func(*Server, http.ResponseWriter, *http.Request, *route)) *route {
		rt.endpoint, rt.handler, rt.methods = ep, h, http.MethodPost
		return rt
	}
	switch {
	case p == "/metrics":
		return get("metrics", (*Server).serveMetrics)
	case p == "/v2":
		return get("server_metadata", (*Server).serverMetadata)
	case p == "/v2/health/live":
		return get("live", (*Server).live)
	case p == "/v2/health/ready":
		return get("ready", (*Server).ready)
	case len(seg) == 3 && seg[0] == "v1" && seg[1] == "models" && strings.HasSuffix(seg[2], ":classify"):
		rt.model = strings.TrimSuffix(seg[2], ":classify")
		return post("classify", (*Server).classify)
	case len(seg) >= 3 && seg[0] == "v2" && seg[1] == "models":
		rt.model = seg[2]
		rest := seg[3:]
		if len(rest) >= 2 && rest[0] == "versions" {
			rt.version = rest[1]
			rest = rest[2:]
		}
		switch {
		case len(rest) == 0:
			return get("model_metadata", (*Server).modelMetadata)
		case len(rest) == 1 && rest[0] == "ready":
			return get("model_ready", (*Server).modelReady)
		case len(rest) == 1 && rest[0] == "infer":
			return post("infer", (*Server).infer)
		}
	}
	return rt
}

// lookup finds the route's model and version, answering 404 when either
// is unknown.
func (s *Server) lookup(w http.ResponseWriter, rt *route) *model {
	m := s.models[rt.model]
	if m == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown model %q (serving %s)", rt.model, strings.Join(s.names, ", ")))
		return nil
	}
	if rt.version != "" && rt.version != m.version {
		writeError(w, http.StatusNotFound, fmt.Sprintf("model %s has no version %q (it has %q)", m.name, rt.version, m.version))
		return nil
	}
	return m
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, _ *route) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
}
