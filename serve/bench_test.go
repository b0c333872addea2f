package serve

import (
	"bytes"
	"net/http/httptest"
	"testing"
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
