package serve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/infer"
)

// TestBadRequests: each malformed or ill-fitting request is answered with
// the protocol's {"error": …} and its status, and the server goes on
// serving good requests.
func TestBadRequests(t *testing.T) {
	_, sess := exportResNet8(t, t.TempDir(), "r8", 0)
	base, _ := startServer(t, Config{MaxBody: 1 << 20, MaxElements: 100_000}, ModelConfig{Name: "r8", Session: sess})
	url := base + "/v2/models/r8/infer"
	one := jsonNumbers(randomImages(3, 1))
	input := func(shape, datatype, data string) string {
		return fmt.Sprintf(`{ "inputs" : [ { "name" : "input", "shape" : %s, "datatype" : %q, "data" : %s } ] }`, shape, datatype, data)
	}
	tests := []struct {
		name string
		body string
		code int
		msg  string
	}{
		{"empty body", ``, 400, "malformed inference request"},
		{"malformed JSON", `{ "inputs" : [ { "name" : "input", `, 400, "malformed inference request"},
		{"not an object", `[ 1, 2 ]`, 400, "malformed inference request"},
		{"id not a string", `{ "id" : 42, "inputs" : [] }`, 400, "malformed inference request"},
		{"shape not integers", input(`[ 1.5, 3, 32, 32 ]`, "FP32", one), 400, "malformed inference request"},
		{"no inputs", `{ "inputs" : [ ] }`, 400, `the request has no inputs (the model's: "input")`},
		{"wrong datatype", input(`[ 1, 3, 32, 32 ]`, "FP64", one), 400, `input input has datatype "FP64"; the model's input is FP32`},
		{"BYTES", input(`[ 1, 3, 32, 32 ]`, "BYTES", one), 400, `datatype "BYTES"`},
		{"wrong rank", input(`[ 3, 32, 32 ]`, "FP32", one), 400, "input input has shape [3 32 32]; the model's is [-1 3 32 32]"},
		{"wrong size", input(`[ 1, 3, 32, 31 ]`, "FP32", one), 400, "the model's is [-1 3 32 32]"},
		{"zero rows", input(`[ 0, 3, 32, 32 ]`, "FP32", `[]`), 400, "every dimension must be at least 1"},
		{"negative", input(`[ -1, 3, 32, 32 ]`, "FP32", one), 400, "every dimension must be at least 1"},
		{"too few elements", input(`[ 2, 3, 32, 32 ]`, "FP32", one), 400, "data has 3072 elements; shape [2 3 32 32] needs 6144"},
		{"too many elements", input(`[ 1, 3, 32, 32 ]`, "FP32", `[`+strings.Repeat("0,", 3072)+`0]`), 400, "more than the 3072 elements"},
		{"strings", input(`[ 1, 3, 32, 32 ]`, "FP32", `[ "a" ]`), 400, "data element 0 is a string"},
		{"bad nesting", input(`[ 1, 3, 32, 32 ]`, "FP32", `[ [ 1, 2 ] ]`), 400, "data must be a flat array or nested as shape [1 3 32 32]"},
		{"no data", `{ "inputs" : [ { "name" : "input", "shape" : [ 1, 3, 32, 32 ], "datatype" : "FP32" } ] }`, 400, "input input has no data"},
		{"unknown input", `{ "inputs" : [ { "name" : "image", "shape" : [ 1 ], "datatype" : "FP32", "data" : [ 1 ] } ] }`, 400, `input "input" is missing`},
		{"extra input", `{ "inputs" : [ { "name" : "input", "shape" : [ 1, 3, 32, 32 ], "datatype" : "FP32", "data" : ` + one + ` }, { "name" : "extra", "shape" : [ 1 ], "datatype" : "FP32", "data" : [ 1 ] } ] }`, 400, `unknown input "extra"`},
		{"duplicate input", `{ "inputs" : [ { "name" : "input" }, { "name" : "input" } ] }`, 400, `input "input" is given twice`},
		{"unknown output", `{ "inputs" : [ { "name" : "input", "shape" : [ 1, 3, 32, 32 ], "datatype" : "FP32", "data" : ` + one + ` } ], "outputs" : [ { "name" : "scores" } ] }`, 400, `unknown output "scores" (the model's: "logits", "probabilities")`},
		{"bad parameter", `{ "parameters" : { "p" : [ 1 ] }, "inputs" : [ ] }`, 400, `parameter "p" must be a string, number or boolean`},
		{"binary data", `{ "inputs" : [ { "name" : "input", "shape" : [ 1, 3, 32, 32 ], "datatype" : "FP32", "parameters" : { "binary_data_size" : 12288 } } ] }`, 400, "binary_data_size 12288 runs past the end of the body"},
		{"element limit", input(`[ 100, 3, 32, 32 ]`, "FP32", `[ 0 ]`), 413, "over the limit of 100000 elements"},
		{"body limit", input(`[ 1, 3, 32, 32 ]`, "FP32", `[`+strings.Repeat("0.000000000,", 100_000)+`0]`), 413, "the limit is 1048576"},
	}
	for _, tt := range tests {
		code, got := do(t, "POST", url, "application/json", []byte(tt.body))
		msg, _ := got["error"].(string)
		if code != tt.code || len(got) != 1 || !strings.Contains(msg, tt.msg) {
			t.Errorf("%s: %d %v; want %d and an error with %q", tt.name, code, got, tt.code, tt.msg)
		}
	}

	// A body over the limit without a Content-Length (chunked) is cut at
	// the limit.
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{ "inputs" : [ { "name" : "input", "shape" : [ 1, 3, 32, 32 ], "datatype" : "FP32", "data" : [`))
		chunk := []byte(strings.Repeat("0.5,", 1<<14))
		for range 40 { // 2.6 MB
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", url, pr)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pr.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), "over the limit of 1048576 bytes") {
		t.Errorf("chunked oversized body: %d %s", resp.StatusCode, b)
	}

	// The server is still serving.
	code, got := do(t, "POST", url, "application/json", inferBody("after", 1, one))
	if code != 200 {
		t.Errorf("a good request after the bad ones: %d %v", code, got)
	}
}

// TestSlowClient: a client that sends its body too slowly is answered 408
// when the read timeout passes and cut off; others are served meanwhile
// and after.
func TestSlowClient(t *testing.T) {
	_, sess := exportResNet8(t, t.TempDir(), "r8", 0)
	base, _ := startServer(t, Config{ReadTimeout: 300 * time.Millisecond}, ModelConfig{Name: "r8", Session: sess})
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v2/models/r8/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{ \"inputs\" : [")
	start := time.Now()
	code, _ := do(t, "POST", base+"/v2/models/r8/infer", "application/json", inferBody("meanwhile", 1, jsonNumbers(randomImages(4, 1))))
	if code != 200 {
		t.Errorf("a request while another client stalls: %d", code)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the stalled client got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"error":"the body did not arrive within the read timeout`) {
		t.Errorf("stalled client: %d %s", resp.StatusCode, body)
	}
	if took > 5*time.Second {
		t.Errorf("the stalled client was answered after %v; the read timeout is 300ms", took)
	}
	if code, _ := do(t, "GET", base+"/v2/health/live", "", nil); code != 200 {
		t.Errorf("live after a slow client: %d", code)
	}
}

// TestClassify: the classify endpoint answers what `resnetctl predict`'s
// steps give for the same image (classify.Resolve, Sample, Scores,
// Predict on the session directly), with the model's class names; images
// that do not decode are 400, and a model that is no image classifier
// says so.
func TestClassify(t *testing.T) {
	dir := t.TempDir()
	_, sess := exportResNet8(t, dir, "r8", 0)
	_, fixed := exportResNet8(t, dir, "r8b1", 1)
	cast := castModel(t, dir)
	base, _ := startServer(t, Config{}, ModelConfig{Name: "r8", Session: sess}, ModelConfig{Name: "r8b1", Session: fixed}, ModelConfig{Name: "cast", Session: cast})

	img := image.NewRGBA(image.Rect(0, 0, 40, 36))
	for y := range 36 {
		for x := range 40 {
			img.Set(x, y, color.RGBA{uint8(6 * x), uint8(7 * y), uint8(3*x + 2*y), 255})
		}
	}
	var pngBytes, jpegBytes bytes.Buffer
	png.Encode(&pngBytes, img)
	jpeg.Encode(&jpegBytes, img, &jpeg.Options{Quality: 90})

	for _, file := range []struct {
		name string
		data []byte
	}{{"png", pngBytes.Bytes()}, {"jpeg", jpegBytes.Bytes()}} {
		want := predictDirect(t, sess, file.data, 5)
		for _, model := range []string{"r8", "r8b1"} {
			code, got := do(t, "POST", base+"/v1/models/"+model+":classify?top=5", "image/"+file.name, file.data)
			if code != 200 || got["model_name"] != model || got["model_version"] != "1" {
				t.Fatalf("%s %s: %d %v", model, file.name, code, got)
			}
			preds := got["predictions"].([]any)
			if len(preds) != 5 {
				t.Fatalf("%d predictions, want 5", len(preds))
			}
			for i, p := range preds {
				p := p.(map[string]any)
				w := want[i]
				if p["label"] != w.Label || p["index"] != float64(w.Index) || p["rank"] != float64(i+1) || math.Abs(p["probability"].(float64)-w.Prob) > 1e-6 {
					t.Errorf("%s %s: prediction %d is %v; predict's steps give %+v", model, file.name, i, p, w)
				}
			}
		}
	}
	code, got := do(t, "POST", base+"/v1/models/r8:classify", "image/png", pngBytes.Bytes())
	if preds, _ := got["predictions"].([]any); code != 200 || len(preds) != 3 {
		t.Errorf("default top: %d %v", code, got)
	}

	for _, tt := range []struct {
		name, path string
		body       []byte
		code       int
		msg        string
	}{
		{"not an image", "/v1/models/r8:classify", []byte("hello, world"), 400, "the image: not a supported image (unknown format"},
		{"empty", "/v1/models/r8:classify", nil, 400, "empty file"},
		{"truncated PNG", "/v1/models/r8:classify", pngBytes.Bytes()[:60], 400, "the image: unreadable png"},
		{"top 0", "/v1/models/r8:classify?top=0", pngBytes.Bytes(), 400, "top=0: want a whole number of at least 1"},
		{"unknown model", "/v1/models/nope:classify", pngBytes.Bytes(), 404, `unknown model "nope"`},
		{"no classifier", "/v1/models/cast:classify", pngBytes.Bytes(), 400, "model cast does not classify images: the model has 2 inputs"},
	} {
		code, got := do(t, "POST", base+tt.path, "image/png", tt.body)
		msg, _ := got["error"].(string)
		if code != tt.code || !strings.Contains(msg, tt.msg) {
			t.Errorf("%s: %d %v; want %d and %q", tt.name, code, got, tt.code, tt.msg)
		}
	}
}

// predictDirect classifies an encoded image as `resnetctl predict` does.
func predictDirect(t *testing.T, sess *infer.Session, data []byte, top int) []classify.Prediction {
	t.Helper()
	setup, err := classify.Resolve(sess.Metadata(), classify.Flags{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := imgproc.Decode(data, "test")
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, setup.C*setup.H*setup.W)
	if err := setup.Sample(setup.Preprocessor(), x, 0, img, "test"); err != nil {
		t.Fatal(err)
	}
	out, err := sess.Run(context.Background(), map[string]*infer.Tensor{setup.Input: infer.NewFloat32([]int{1, setup.C, setup.H, setup.W}, x)})
	if err != nil {
		t.Fatal(err)
	}
	scores, err := setup.Scores(out, 1)
	if err != nil {
		t.Fatal(err)
	}
	preds, err := setup.Predict("test", scores.Float32, top, nil)
	if err != nil {
		t.Fatal(err)
	}
	if setup.Classes == nil || preds[0].Label != setup.Classes[preds[0].Index] {
		t.Fatalf("the model has no class names: %+v", preds)
	}
	return preds
}

// TestOverloadAndTimeout: beyond MaxInflight requests are refused with 429
// at once (their bodies unread, so the heap does not grow with them) while
// the admitted ones are answered; a request that outlives its timeout gets
// 504.
func TestOverloadAndTimeout(t *testing.T) {
	_, sess := exportResNet8(t, t.TempDir(), "r8", 0)
	// Three requests stay in flight (admitted, their bodies held back)
	// while the others arrive; they are sent in full afterwards.
	base, _ := startServer(t, Config{MaxInflight: 3, MaxBatch: 64, MaxDelay: 3 * time.Second}, ModelConfig{Name: "r8", Session: sess})
	url := base + "/v2/models/r8/infer"
	body := inferBody("", 1, jsonNumbers(randomImages(5, 1)))
	var wg sync.WaitGroup
	codes := make([]int, 3)
	held := make([]*io.PipeWriter, len(codes))
	for i := range codes {
		pr, pw := io.Pipe()
		held[i] = pw
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", url, pr)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("held request %d: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, m := doRaw(t, "GET", base+"/metrics", "", nil)
		if metricValue(t, string(m), "resnetctl_inflight_requests") == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the 3 requests were not in flight within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	big := append(bytes.Repeat([]byte(" "), 4<<20), body...) // 4 MiB each, never read
	start := time.Now()
	refused := 0
	for range 40 {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(big))
		resp, err := client.Do(req)
		if err != nil {
			// The server answers 429 without reading the body and closes
			// the connection; the client may see that as a broken write.
			if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
				refused++
				continue
			}
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "1" && strings.Contains(string(msg), "too many requests in flight (the limit is 3)") {
			refused++
		} else {
			t.Errorf("request over the limit: %d %s", resp.StatusCode, msg)
		}
	}
	took := time.Since(start)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("40 requests of 4 MiB over the limit: %d refused in %v; heap %+d KiB", refused, took, growth>>10)
	if refused != 40 || took > 2500*time.Millisecond {
		t.Errorf("%d of 40 refused in %v; want all, before the admitted ones ran", refused, took)
	}
	if growth > 16<<20 {
		t.Errorf("the heap grew by %d MiB over 40 refused requests", growth>>20)
	}
	for _, pw := range held {
		pw.Write(body)
		pw.Close()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("admitted request %d: %d", i, c)
		}
	}

	// A request timeout shorter than the batching delay: 504. The batcher
	// waits for company only while another request to the model is being
	// handled and not yet queued: here one whose body never arrives.
	base2, _ := startServer(t, Config{Timeout: 100 * time.Millisecond, MaxBatch: 64, MaxDelay: time.Second}, ModelConfig{Name: "r8", Session: sess})
	stalled, stall := io.Pipe()
	defer stall.Close()
	go func() {
		req, _ := http.NewRequest("POST", base2+"/v2/models/r8/infer", stalled)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond) // its handler has admitted it
	code, got := do(t, "POST", base2+"/v2/models/r8/infer", "application/json", body)
	if code != http.StatusGatewayTimeout || !strings.Contains(fmt.Sprint(got["error"]), "no answer within the request timeout (100ms)") {
		t.Errorf("timeout: %d %v", code, got)
	}

	// A lone request is not held back for company: with a 10 s delay it
	// is answered long before (the bound is the delay, not a speed).
	base3, _ := startServer(t, Config{MaxBatch: 64, MaxDelay: 10 * time.Second}, ModelConfig{Name: "r8", Session: sess})
	t0 := time.Now()
	code, got = do(t, "POST", base3+"/v2/models/r8/infer", "application/json", body)
	if el := time.Since(t0); code != 200 || el > 5*time.Second {
		t.Errorf("a lone request: %d after %v (the batching delay is 10s) %v", code, el, got)
	}
}

// TestGracefulShutdown: while clients send requests in a loop, Serve's
// context ends; Serve returns nil after answering every request it took:
// each request the access log records (a line per request that reached a
// handler, whatever became of it) was answered 200 and received by its
// client, and the clients' other requests were refused at connect.
func TestGracefulShutdown(t *testing.T) {
	_, sess := exportResNet8(t, t.TempDir(), "r8", 0)
	var logBuf syncBuffer
	srv, err := New(Config{MaxBatch: 8, AccessLog: &logBuf}, ModelConfig{Name: "r8", Session: sess})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String() + "/v2/models/r8/infer"
	body := inferBody("", 2, jsonNumbers(randomImages(6, 2)))
	// New connections for each request: a request is then either taken by
	// the server whole or refused at connect.
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	var ok, refused atomic.Int64
	var shuttingDown atomic.Bool
	var wg sync.WaitGroup
	failures := make(chan string, 100)
	stop := time.Now().Add(20 * time.Second)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200 && time.Now().Before(stop); i++ {
				resp, err := c.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					// After the shutdown began: refused at connect, or
					// reset while still in the kernel's accept queue
					// (seen as a reset, or a write to a closed
					// connection). Whether a request the server did take
					// was lost is told by the access log below.
					if shuttingDown.Load() {
						refused.Add(1)
						return
					}
					failures <- err.Error()
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					failures <- fmt.Sprintf("%d %s %v", resp.StatusCode, b, err)
					return
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	shuttingDown.Store(true)
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return within a minute of its context's end")
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("a request failed: %s", f)
	}
	logged := strings.Count(logBuf.String(), "POST /v2/models/r8/infer 200 ")
	lines := strings.Count(logBuf.String(), "\n")
	t.Logf("%d answered (%d in the access log, %d lines), %d clients refused after the shutdown began", ok.Load(), logged, lines, refused.Load())
	if int64(logged) != ok.Load() || lines != logged || ok.Load() == 0 {
		t.Errorf("the clients received %d answers; the server logged %d requests, %d of them 200", ok.Load(), lines, logged)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
