package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestServeFlags(t *testing.T) {
	var got *ServeOptions
	cmd := NewCmdServe(&Streams{Out: io.Discard, ErrOut: io.Discard}, func(o *ServeOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"a.onnx", "b.onnx", "--name", "x", "--name", "y", "--http", "127.0.0.1:0", "--max-batch", "8",
		"--max-delay", "250", "--max-inflight", "5", "--max-body", "4096", "--timeout", "2s", "--threads", "1", "--instances", "1"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Models, []string{"a.onnx", "b.onnx"}) || !slices.Equal(got.Names, []string{"x", "y"}) || got.HTTP != "127.0.0.1:0" ||
		got.MaxBatch != 8 || got.MaxDelayUS != 250 || got.MaxInflight != 5 || got.MaxBody != 4096 || got.Timeout != 2*time.Second || got.Threads != 1 || got.Instances != 1 {
		t.Errorf("options %+v", got)
	}
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"serve"}, "serve takes at least one model"},
		{[]string{"serve", "a.onnx", "b.onnx", "--name", "x"}, "1 --name for 2 models"},
		{[]string{"serve", "a.onnx", "--max-batch", "0"}, "--max-batch 0: must be at least 1"},
		{[]string{"serve", "a.onnx", "--max-inflight", "0"}, "--max-inflight 0"},
		{[]string{"serve", "a.onnx", "--timeout", "0s"}, "--timeout 0s: must be positive"},
		{[]string{"serve", "a.onnx", "--instances", "0"}, "--instances 0: must be at least 1"},
		{[]string{"serve", "a.onnx", "--instances", "3", "--threads", "2"}, "--instances 3 with --threads 2: each instance needs a thread"},
	} {
		code, _, errOut := runCLI(tt.args...)
		if code != exitUsage || !strings.Contains(errOut, tt.msg) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tt.args, code, errOut, exitUsage, tt.msg)
		}
	}
	code, _, errOut := runCLI("serve", filepath.Join(t.TempDir(), "missing.onnx"), "--http", "127.0.0.1:0")
	if code != exitError || !strings.Contains(errOut, "missing.onnx") {
		t.Errorf("missing model: exit %d, %q", code, errOut)
	}
}

// TestServeSIGTERM runs `resnetctl serve` as its own process on a ResNet-8
// export, under load from clients looping on plain HTTP requests, then
// sends SIGTERM: the process exits 0, and every request its access log
// shows was answered 200 to its client (the others were refused at
// connect once the listener closed). The model runs as two instances,
// so batches are running on both when the signal comes.
func TestServeSIGTERM(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "r8.onnx")
	if code, _, errOut := runCLI("export", "--model", "resnet8", model); code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	cmd := exec.Command(os.Args[0], "serve", model, "--name", "cifar", "--http", "127.0.0.1:0", "--max-delay", "500", "--threads", "2", "--instances", "2")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 10000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var log []string
	var base string
	addr := regexp.MustCompile(`^resnetctl: serving cifar on (http://127\.0\.0\.1:\d+)$`)
	timeout := time.After(2 * time.Minute)
	for base == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve ended before listening: %v", log)
			}
			log = append(log, l)
			if m := addr.FindStringSubmatch(l); m != nil {
				base = m[1]
			}
		case <-timeout:
			t.Fatal("serve did not print its address within 2 minutes")
		}
	}

	var resp map[string]any
	get := func(path string) int {
		r, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		resp = nil
		json.NewDecoder(r.Body).Decode(&resp)
		return r.StatusCode
	}
	if get("/v2/health/ready") != 200 || resp["ready"] != true {
		t.Errorf("ready: %v", resp)
	}
	if get("/v2/models/cifar") != 200 || resp["name"] != "cifar" {
		t.Errorf("metadata: %v", resp)
	}
	var png bytes.Buffer
	writeTestPNG(&png)
	r, err := http.Post(base+"/v1/models/cifar:classify?top=2", "image/png", &png)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(r.Body).Decode(&resp)
	r.Body.Close()
	if preds, _ := resp["predictions"].([]any); r.StatusCode != 200 || len(preds) != 2 || preds[0].(map[string]any)["label"] == "" {
		t.Errorf("classify: %d %v", r.StatusCode, resp)
	}

	data := make([]string, 3*32*32)
	for i := range data {
		data[i] = fmt.Sprint(float32(i%97) / 50)
	}
	body := []byte(`{ "inputs" : [ { "name" : "input", "shape" : [ 1, 3, 32, 32 ], "datatype" : "FP32", "data" : [ ` + strings.Join(data, ", ") + ` ] } ] }`)
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	var answered atomic.Int64
	var signalled atomic.Bool
	var wg sync.WaitGroup
	failures := make(chan string, 16)
	stop := time.Now().Add(30 * time.Second)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300 && time.Now().Before(stop); i++ {
				r, err := client.Post(base+"/v2/models/cifar/infer", "application/json", bytes.NewReader(body))
				if err != nil {
					// After SIGTERM: refused at connect, or reset while
					// still in the kernel's accept queue; the access log
					// tells whether a request the server took was lost.
					if !signalled.Load() {
						failures <- err.Error()
					}
					return
				}
				b, err := io.ReadAll(r.Body)
				r.Body.Close()
				if err != nil || r.StatusCode != 200 {
					failures <- fmt.Sprintf("%d %s %v", r.StatusCode, b, err)
					return
				}
				answered.Add(1)
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	signalled.Store(true)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		log = append(log, l)
	}
	err = cmd.Wait()
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("a request failed: %s", f)
	}
	if err != nil {
		t.Errorf("serve exited with %v after SIGTERM; want 0", err)
	}
	infers, infer200 := 0, 0
	for _, l := range log {
		if strings.Contains(l, " POST /v2/models/cifar/infer ") {
			infers++
			if strings.Contains(l, " POST /v2/models/cifar/infer 200 ") {
				infer200++
			}
		}
	}
	t.Logf("%d inference requests answered before and during the shutdown; the log's last line: %s", answered.Load(), log[len(log)-1])
	if infers != infer200 || int64(infer200) != answered.Load() || answered.Load() == 0 {
		t.Errorf("the access log has %d inference requests (%d of them 200); the clients received %d answers", infers, infer200, answered.Load())
	}
	if last := log[len(log)-1]; last != "resnetctl: stopped; every accepted request was answered" {
		t.Errorf("last line %q", last)
	}
}

// writeTestPNG writes a 32×32 gradient.
func writeTestPNG(w io.Writer) {
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for y := range 32 {
		for x := range 32 {
			img.Set(x, y, color.RGBA{uint8(8 * x), uint8(8 * y), 128, 255})
		}
	}
	png.Encode(w, img)
}
