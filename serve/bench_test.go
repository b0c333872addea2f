package serve

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/resnetctl/resnetctl/infer"
)

// BenchmarkInferJSON measures one request's whole path in the server
// (JSON decoding, a batch-1 run of ResNet-8, JSON encoding) without the
// network: what the protocol costs next to the model.
func BenchmarkInferJSON(b *testing.B) {
	_, sess := exportResNet8(b, b.TempDir(), "r8", 0)
	srv, err := New(Config{MaxBatch: 1}, ModelConfig{Name: "r8", Session: sess})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	body := inferBody("", 1, jsonNumbers(randomImages(1, 1)))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest("POST", "/v2/models/r8/infer", bytes.NewReader(body)))
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// BenchmarkInferBinary is BenchmarkInferJSON in the binary tensor data
// extension (input and outputs as raw bytes).
func BenchmarkInferBinary(b *testing.B) {
	_, sess := exportResNet8(b, b.TempDir(), "r8", 0)
	srv, err := New(Config{MaxBatch: 1}, ModelConfig{Name: "r8", Session: sess})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	x := leFloats(randomImages(1, 1))
	js := `{"parameters":{"binary_data_output":true},"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","parameters":{"binary_data_size":12288}}]}`
	body := append([]byte(js), x...)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/v2/models/r8/infer", bytes.NewReader(body))
		r.Header.Set("Inference-Header-Content-Length", strconv.Itoa(len(js)))
		srv.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// BenchmarkModelOnly is the batch-1 run of the same model through
// infer.Session alone, for the two above to be read against.
func BenchmarkModelOnly(b *testing.B) {
	_, sess := exportResNet8(b, b.TempDir(), "r8", 0)
	in := map[string]*infer.Tensor{"input": infer.NewFloat32([]int{1, 3, 32, 32}, randomImages(1, 1))}
	for b.Loop() {
		if _, err := sess.Run(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}
