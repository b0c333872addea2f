package serve

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Prometheus's text exposition format, written by hand: it is a few lines
// of "name{label="value"} number", and a client library would be the
// project's largest dependency for them.

// Histogram bucket bounds: request latency in seconds, from a CIFAR model's
// single image to a large ImageNet batch; batch sizes in rows.
var (
	latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	batchBuckets   = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}
)

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	n      uint64
}

func (h *histogram) observe(bounds []float64, v float64) {
	if h.counts == nil {
		h.counts = make([]uint64, len(bounds))
	}
	if i, _ := slices.BinarySearch(bounds, v); i < len(bounds) {
		h.counts[i]++
	}
	h.sum += v
	h.n++
}

type requestKey struct {
	model, endpoint string
	code            int
}

type latencyKey struct{ model, endpoint string }

// metrics are the server's counters. Model labels hold served models only
// (or ""), so the label sets are bounded.
type metrics struct {
	mu       sync.Mutex
	requests map[requestKey]uint64
	latency  map[latencyKey]*histogram
	batches  map[string]*histogram
}

func newMetrics() *metrics {
	return &metrics{requests: map[requestKey]uint64{}, latency: map[latencyKey]*histogram{}, batches: map[string]*histogram{}}
}

func (m *metrics) request(model, endpoint string, code int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[requestKey{model, endpoint, code}]++
	k := latencyKey{model, endpoint}
	h := m.latency[k]
	if h == nil {
		h = &histogram{}
		m.latency[k] = h
	}
	h.observe(latencyBuckets, d.Seconds())
}

func (m *metrics) batch(model string, rows int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.batches[model]
	if h == nil {
		h = &histogram{}
		m.batches[model] = h
	}
	h.observe(batchBuckets, float64(rows))
}

// write writes every metric in the text format, series sorted so that
// scrapes compare line by line.
func (m *metrics) write(w io.Writer, inflight int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := bufio.NewWriter(w)
	defer b.Flush()

	fmt.Fprintln(b, "# HELP resnetctl_requests_total Requests answered, by model, endpoint and HTTP status code.")
	fmt.Fprintln(b, "# TYPE resnetctl_requests_total counter")
	keys := make([]requestKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, c requestKey) int {
		return cmp.Or(strings.Compare(a.model, c.model), strings.Compare(a.endpoint, c.endpoint), cmp.Compare(a.code, c.code))
	})
	for _, k := range keys {
		fmt.Fprintf(b, "resnetctl_requests_total{model=%s,endpoint=%s,code=\"%d\"} %d\n", label(k.model), label(k.endpoint), k.code, m.requests[k])
	}

	fmt.Fprintln(b, "# HELP resnetctl_request_duration_seconds Time from a request's arrival to its answer.")
	fmt.Fprintln(b, "# TYPE resnetctl_request_duration_seconds histogram")
	lkeys := make([]latencyKey, 0, len(m.latency))
	for k := range m.latency {
		lkeys = append(lkeys, k)
	}
	slices.SortFunc(lkeys, func(a, c latencyKey) int {
		return cmp.Or(strings.Compare(a.model, c.model), strings.Compare(a.endpoint, c.endpoint))
	})
	for _, k := range lkeys {
		writeHistogram(b, "resnetctl_request_duration_seconds", fmt.Sprintf("model=%s,endpoint=%s", label(k.model), label(k.endpoint)), latencyBuckets, m.latency[k])
	}

	fmt.Fprintln(b, "# HELP resnetctl_batch_size Rows per model run (requests gathered by dynamic batching; padding not counted).")
	fmt.Fprintln(b, "# TYPE resnetctl_batch_size histogram")
	models := make([]string, 0, len(m.batches))
	for k := range m.batches {
		models = append(models, k)
	}
	slices.Sort(models)
	for _, k := range models {
		writeHistogram(b, "resnetctl_batch_size", "model="+label(k), batchBuckets, m.batches[k])
	}

	fmt.Fprintln(b, "# HELP resnetctl_inflight_requests Inference requests being handled.")
	fmt.Fprintln(b, "# TYPE resnetctl_inflight_requests gauge")
	fmt.Fprintf(b, "resnetctl_inflight_requests %d\n", inflight)
}

func writeHistogram(w io.Writer, name, labels string, bounds []float64, h *histogram) {
	var cum uint64
	for i, le := range bounds {
		cum += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{%s,le=\"%s\"} %d\n", name, labels, strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	fmt.Fprintf(w, "%s_bucket{%s,le=\"+Inf\"} %d\n", name, labels, h.n)
	fmt.Fprintf(w, "%s_sum{%s} %s\n", name, labels, strconv.FormatFloat(h.sum, 'g', -1, 64))
	fmt.Fprintf(w, "%s_count{%s} %d\n", name, labels, h.n)
}

// label quotes a label value: backslash, double quote and line feed
// escaped, as the format says.
func label(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}

func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request, _ *route) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.metrics.write(w, s.inflight.Load())
}
