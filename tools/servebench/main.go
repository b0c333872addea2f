// Command servebench load-tests `resnetctl serve` on loopback: for each
// model and for batching off (--max-batch 1) and on (--max-batch B
// --max-delay D), and for each -instances count, it starts the server as its own process, then runs 1, 8
// and 64 concurrent clients (each sending one-image /infer requests in a
// loop, a keep-alive connection each) for a bounded time and number of
// requests, and records throughput, p50/p99 latency and the mean batch
// the server ran (from its /metrics). For comparison it runs `resnetctl
// bench` at batch 1 and at B. Everything goes to a JSON file.
//
//	go run ./tools/servebench -models resnet20,resnet50 -duration 10s
//
// `make bench-serve` runs it; it is not part of `go test`.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type result struct {
	Model    string `json:"model"`
	Encoding string `json:"encoding"`
	// Loader is the load generator: wrk (C, one thread, a keep-alive
	// connection per client) or go (this program's net/http clients).
	Loader     string  `json:"loader"`
	Batching   bool    `json:"batching"`
	Instances  int     `json:"instances"`
	MaxBatch   int     `json:"max_batch"`
	MaxDelayUS int     `json:"max_delay_us"`
	Clients    int     `json:"clients"`
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	Seconds    float64 `json:"seconds"`
	ImagesPerS float64 `json:"images_per_s"`
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	MeanBatch  float64 `json:"mean_batch"`
	// ServerCPU and ClientCPU are the CPU seconds (user + system) the
	// server process and this load generator used per second of the run:
	// both share the machine's cores.
	ServerCPU float64 `json:"server_cpu"`
	ClientCPU float64 `json:"client_cpu"`
	// BenchRatio is ImagesPerS over `resnetctl bench` at the batch size the
	// server may run (1 without batching, max_batch with it).
	BenchRatio float64 `json:"bench_ratio"`
	// BenchImagesPerS is that `resnetctl bench` result, measured right
	// before the server started.
	BenchImagesPerS float64 `json:"bench_images_per_s"`
}

type benchResult struct {
	Model      string  `json:"model"`
	Batch      int     `json:"batch"`
	ImagesPerS float64 `json:"images_per_s"`
	MedianMS   float64 `json:"median_ms"`
}

func main() {
	bin := flag.String("resnetctl", "bin/resnetctl", "the resnetctl binary")
	modelList := flag.String("models", "resnet20,resnet50", "catalog models, exported to -dir when missing")
	dir := flag.String("dir", "bench-results/models", "folder of the exported models")
	clientList := flag.String("clients", "1,8,64", "concurrent clients, comma-separated")
	duration := flag.Duration("duration", 10*time.Second, "measuring time per configuration, at least (slow models get 10 x clients / bench img/s, so that the first answers are not most of the window)")
	maxRequests := flag.Int("requests", 5000, "most requests per configuration")
	threads := flag.Int("threads", runtime.NumCPU(), "server threads per model")
	maxBatch := flag.Int("max-batch", 32, "--max-batch with batching on")
	maxDelay := flag.Int("max-delay", 1000, "--max-delay (µs) with batching on")
	out := flag.String("out", "bench-results/serve.json", "the JSON results")
	loaderList := flag.String("loaders", defaultLoaders(), "load generators, comma-separated: wrk (Debian's wrk, in C: little CPU taken from the server) and go (net/http clients in this program)")
	instanceList := flag.String("instances", "1,2", "server --instances, comma-separated: each model runs that many batches at once, with threads/instances threads each")
	serverFlags := flag.String("server-flags", "", "more flags for each `resnetctl serve`, space-separated (e.g. \"--cpuprofile /tmp/serve.prof\")")
	encodingList := flag.String("encodings", "json,binary", "request encodings, comma-separated: json (data as JSON numbers) and binary (the binary tensor data extension, outputs binary too)")
	flag.Parse()
	var clients []int
	for _, s := range strings.Split(*clientList, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fatalf("-clients: %q", s)
		}
		clients = append(clients, n)
	}
	var loaders []string
	for _, l := range strings.Split(*loaderList, ",") {
		switch l {
		case "go":
		case "wrk":
			if _, err := exec.LookPath("wrk"); err != nil {
				fatalf("-loaders wrk: wrk is not installed ('make setup' installs Debian's wrk)")
			}
		default:
			fatalf("-loaders: %q is neither wrk nor go", l)
		}
		loaders = append(loaders, l)
	}
	var instances []int
	for _, s := range strings.Split(*instanceList, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > *threads {
			fatalf("-instances: %q (1 to -threads)", s)
		}
		instances = append(instances, n)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fatalf("%v", err)
	}
	doc := map[string]any{
		"date": time.Now().UTC().Format(time.RFC3339), "cpus": runtime.NumCPU(), "goarch": runtime.GOARCH,
		"cpu": cpuName(), "load_average_at_start": loadAverage(), "commit": commit(),
		"settings": map[string]any{"threads": *threads, "duration_s": duration.Seconds(), "max_requests": *maxRequests,
			"max_batch": *maxBatch, "max_delay_us": *maxDelay, "request": "one image per /v2/.../infer request, FP32 as JSON numbers (json) or in the binary tensor data extension (binary)"},
	}
	var results []result
	var benches []benchResult
	encodings := strings.Split(*encodingList, ",")
	for _, e := range encodings {
		if e != "json" && e != "binary" {
			fatalf("-encodings: %q is neither json nor binary", e)
		}
	}
	fmt.Printf("%-9s %-7s %-6s %-8s %9s %7s %8s %11s %9s %9s %10s %11s %10s %10s\n", "model", "encoding", "loader", "batching", "instances", "clients", "requests", "images/s", "p50_ms", "p99_ms", "mean_batch", "vs_bench", "server_cpu", "client_cpu")
	for _, name := range strings.Split(*modelList, ",") {
		path := filepath.Join(*dir, name+".onnx")
		if _, err := os.Stat(path); err != nil {
			run(*bin, "export", "--model", name, path)
		}
		benchAt := map[int]float64{}
		for _, inst := range instances {
			for _, batching := range []bool{false, true} {
				mb, md := 1, 0
				if batching {
					mb, md = *maxBatch, *maxDelay
				}
				// bench again right before each server, and before each run
				// of the most clients: this machine's speed drifts by 10-20%
				// over minutes, so the ratio compares measurements taken side
				// by side.
				br := bench(*bin, path, name, mb, *threads)
				benches = append(benches, br)
				benchAt[mb] = br.ImagesPerS
				srv := startServer(*bin, path, *threads, inst, mb, md, strings.Fields(*serverFlags))
				for _, enc := range encodings {
					body := requestBody(srv.inputShape, enc)
					load(srv, body, slices.Max(clients), time.Second, 200) // warm-up: plans for every batch size
					for _, loader := range loaders {
						for _, c := range clients {
							if c == slices.Max(clients) {
								// The ratio that matters: bench once more, right
								// before (the server idles meanwhile).
								br := bench(*bin, path, name, mb, *threads)
								benches = append(benches, br)
								benchAt[mb] = br.ImagesPerS
							}
							before := srv.batchStats()
							sc0 := srv.cpu()
							var r result
							d := runFor(*duration, c, benchAt[mb])
							if loader == "wrk" {
								r = loadWrk(srv, body, c, d)
							} else {
								cc0 := selfCPU()
								r = load(srv, body, c, d, *maxRequests)
								r.ClientCPU = (selfCPU() - cc0) / r.Seconds
							}
							r.ServerCPU = (srv.cpu() - sc0) / r.Seconds
							after := srv.batchStats()
							r.Model, r.Encoding, r.Loader, r.Batching, r.Instances, r.MaxBatch, r.MaxDelayUS = name, enc, loader, batching, inst, mb, md
							if runs := after[1] - before[1]; runs > 0 {
								r.MeanBatch = (after[0] - before[0]) / runs
							}
							if b := benchAt[mb]; b > 0 {
								r.BenchRatio = r.ImagesPerS / b
							}
							results = append(results, r)
							fmt.Printf("%-9s %-7s %-6s %-8v %9d %7d %8d %11.1f %9.2f %9.2f %10.2f %10.2fx %10.2f %10.2f\n", name, enc, loader, batching, inst, c, r.Requests, r.ImagesPerS, r.P50MS, r.P99MS, r.MeanBatch, r.BenchRatio, r.ServerCPU, r.ClientCPU)
						}
					}
				}
				srv.stop()
			}
		}
	}
	doc["results"], doc["bench"] = results, benches
	b, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fatalf("%v", err)
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		fatalf("%v", err)
	}
	for _, bn := range benches {
		fmt.Printf("bench %-9s batch %3d: %9.1f images/s\n", bn.Model, bn.Batch, bn.ImagesPerS)
	}
	fmt.Println("wrote", *out)
}

// server is a running `resnetctl serve`.
type server struct {
	cmd        *exec.Cmd
	base       string
	model      string
	inputShape []int
	client     *http.Client
}

func startServer(bin, path string, threads, instances, maxBatch, maxDelay int, extra []string) *server {
	args := []string{"serve", path, "--http", "127.0.0.1:0", "--threads", strconv.Itoa(threads), "--instances", strconv.Itoa(instances),
		"--max-batch", strconv.Itoa(maxBatch), "--max-delay", strconv.Itoa(maxDelay), "--max-inflight", "256"}
	cmd := exec.Command(bin, append(args, extra...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		fatalf("%v", err)
	}
	if err := cmd.Start(); err != nil {
		fatalf("%v", err)
	}
	sc := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`serving (\S+) on (http://\S+)`)
	s := &server{cmd: cmd, client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			s.model, s.base = m[1], m[2]
			break
		}
	}
	if s.base == "" {
		fatalf("resnetctl serve did not start")
	}
	go io.Copy(io.Discard, stderr) // the access log
	var md struct {
		Inputs []struct {
			Shape []int `json:"shape"`
		} `json:"inputs"`
	}
	resp, err := http.Get(s.base + "/v2/models/" + s.model)
	if err != nil {
		fatalf("%v", err)
	}
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	s.inputShape = append([]int{1}, md.Inputs[0].Shape[1:]...)
	return s
}

// cpu is the CPU seconds (user + system) the server has used so far.
func (s *server) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return math.NaN() // not Linux: the column reads NaN
	}
	// Fields after the command (which is in parentheses): utime and
	// stime are the 12th and 13th, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return math.NaN()
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

// selfCPU is the CPU seconds this process has used so far.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
}

// batchStats returns the sum and count of the server's batch-size
// histogram.
func (s *server) batchStats() [2]float64 {
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		fatalf("%v", err)
	}
	defer resp.Body.Close()
	var st [2]float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		for i, p := range []string{"resnetctl_batch_size_sum{", "resnetctl_batch_size_count{"} {
			if strings.HasPrefix(l, p) {
				f := strings.Fields(l)
				st[i], _ = strconv.ParseFloat(f[len(f)-1], 64)
			}
		}
	}
	return st
}

// payload is an encoded request.
type payload struct {
	body []byte
	// jsonLength is the Inference-Header-Content-Length of a binary
	// request (0 for JSON).
	jsonLength int
}

// requestBody is an /infer request of one random image, encoded once, as
// JSON numbers or in the binary tensor data extension (binary outputs too).
func requestBody(shape []int, encoding string) payload {
	n := 1
	for _, d := range shape {
		n *= d
	}
	r := rand.New(rand.NewPCG(1, 2))
	dims := strings.ReplaceAll(fmt.Sprint(shape), " ", ",")
	var b bytes.Buffer
	if encoding == "binary" {
		fmt.Fprintf(&b, `{"parameters":{"binary_data_output":true},"inputs":[{"name":"input","shape":%s,"datatype":"FP32","parameters":{"binary_data_size":%d}}]}`, dims, 4*n)
		k := b.Len()
		for range n {
			b.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(r.NormFloat64()))))
		}
		return payload{body: b.Bytes(), jsonLength: k}
	}
	fmt.Fprintf(&b, `{"inputs":[{"name":"input","shape":%s,"datatype":"FP32","data":[`, dims)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(r.NormFloat64(), 'g', 6, 32))
	}
	b.WriteString(`]}]}`)
	return payload{body: b.Bytes()}
}

// load runs clients loops of requests for at most d and at most max
// requests in all.
func load(s *server, body payload, clients int, d time.Duration, max int) result {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	url := s.base + "/v2/models/" + s.model + "/infer"
	var mu sync.Mutex
	var lat []time.Duration
	errs, issued := 0, 0
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				if issued >= max {
					mu.Unlock()
					return
				}
				issued++
				mu.Unlock()
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(context.Background(), "POST", url, bytes.NewReader(body.body))
				req.Header.Set("Content-Type", "application/json")
				if body.jsonLength > 0 {
					req.Header.Set("Content-Type", "application/octet-stream")
					req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(body.jsonLength))
				}
				resp, err := s.client.Do(req)
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				el := time.Since(t0)
				mu.Lock()
				if ok {
					lat = append(lat, el)
				} else {
					errs++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	slices.Sort(lat)
	r := result{Clients: clients, Requests: len(lat), Errors: errs, Seconds: secs, ImagesPerS: float64(len(lat)) / secs}
	if len(lat) > 0 {
		r.P50MS = ms(lat[len(lat)/2])
		r.P99MS = ms(lat[min(len(lat)-1, len(lat)*99/100)])
	}
	return r
}

// runFor is how long to load the server with clients: at least d, and
// at least ten times the time one request waits behind the others (clients
// over the images a second `bench` measured), so that a slow model's first
// answers — ResNet-50 at 64 clients answers its first requests after about
// 2 s — are not most of the window.
func runFor(d time.Duration, clients int, benchImagesPerS float64) time.Duration {
	if benchImagesPerS <= 0 {
		return d
	}
	return max(d, time.Duration(10*float64(clients)/benchImagesPerS*float64(time.Second)))
}

// defaultLoaders is wrk and go when wrk is installed, else go.
func defaultLoaders() string {
	if _, err := exec.LookPath("wrk"); err == nil {
		return "wrk,go"
	}
	return "go"
}

// wrkScript makes wrk send the request body with its headers and print
// one JSON line of results. wrk runs for -d (its thread can stop early,
// but its summary still counts the whole -d, so no request cap).
const wrkScript = `local f = assert(io.open(%q, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = %q
%s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%%d,"duration_us":%%d,"errors":%%d,"p50_us":%%d,"p99_us":%%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// loadWrk runs wrk with clients connections on one thread for d.
func loadWrk(s *server, body payload, clients int, d time.Duration) result {
	dir, err := os.MkdirTemp("", "servebench")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(dir)
	bodyPath := filepath.Join(dir, "body")
	if err := os.WriteFile(bodyPath, body.body, 0o644); err != nil {
		fatalf("%v", err)
	}
	ctype, extra := "application/json", ""
	if body.jsonLength > 0 {
		ctype = "application/octet-stream"
		extra = fmt.Sprintf(`wrk.headers["Inference-Header-Content-Length"] = "%d"`, body.jsonLength)
	}
	script := filepath.Join(dir, "post.lua")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(wrkScript, bodyPath, ctype, extra)), 0o644); err != nil {
		fatalf("%v", err)
	}
	cmd := exec.Command("wrk", "-t1", "-c"+strconv.Itoa(clients), "-d"+strconv.Itoa(int(math.Ceil(d.Seconds())))+"s",
		"--timeout", "60s", "-s", script, s.base+"/v2/models/"+s.model+"/infer")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		fatalf("wrk: %v: %s", err, stderr.String())
	}
	var w struct {
		Requests, DurationUS, Errors, P50US, P99US float64
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &struct {
		R  *float64 `json:"requests"`
		D  *float64 `json:"duration_us"`
		E  *float64 `json:"errors"`
		P5 *float64 `json:"p50_us"`
		P9 *float64 `json:"p99_us"`
	}{&w.Requests, &w.DurationUS, &w.Errors, &w.P50US, &w.P99US}); err != nil {
		fatalf("wrk: %v: %s", err, out)
	}
	secs := w.DurationUS / 1e6
	ok := w.Requests - w.Errors
	r := result{Clients: clients, Requests: int(ok), Errors: int(w.Errors), Seconds: secs, ImagesPerS: ok / secs,
		P50MS: w.P50US / 1000, P99MS: w.P99US / 1000}
	if st := cmd.ProcessState; st != nil {
		r.ClientCPU = (st.UserTime() + st.SystemTime()).Seconds() / secs
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// bench runs `resnetctl bench` on the model at a batch size.
func bench(bin, path, name string, batch, threads int) benchResult {
	outb := run(bin, "bench", path, "--batch", strconv.Itoa(batch), "--threads", strconv.Itoa(threads), "--json")
	var r benchResult
	if err := json.Unmarshal(outb, &r); err != nil {
		fatalf("resnetctl bench: %v: %s", err, outb)
	}
	r.Model, r.Batch = name, batch
	return r
}

func run(bin string, args ...string) []byte {
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			fatalf("%s %s: %v: %s", bin, strings.Join(args, " "), err, stderr.String())
		}
		fatalf("%v", err)
	}
	return out
}

func cpuName() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return ""
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "servebench: "+format+"\n", args...)
	os.Exit(1)
}
