package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/infer"
)

// postBinary sends a request of the binary tensor data extension: the
// JSON part, then bin, with Inference-Header-Content-Length set to the
// JSON part's length (or to header when it is not "").
func postBinary(t testing.TB, url, jsonPart string, bin []byte, header string) (int, http.Header, []byte) {
	t.Helper()
	body := append([]byte(jsonPart), bin...)
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header == "" {
		header = strconv.Itoa(len(jsonPart))
	}
	req.Header.Set("Inference-Header-Content-Length", header)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

func leFloats(x []float32) []byte {
	var b []byte
	for _, v := range x {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// TestBinaryTensorData: requests in the binary tensor data extension, laid
// out as Triton's documentation of the extension shows them (JSON, then the
// raw little-endian tensor, the JSON's length in a header), get the same
// bits as infer.Session and as the JSON form of the same request, with
// outputs as binary data when the request's binary_data_output or an
// output's binary_data asks for it, JSON otherwise.
func TestBinaryTensorData(t *testing.T) {
	_, sess := exportResNet8(t, t.TempDir(), "r8", 0)
	base, _ := startServer(t, Config{}, ModelConfig{Name: "r8", Session: sess})
	url := base + "/v2/models/r8/infer"
	const n = 4 // a run size the batcher does not pad (padding may change the last bits)
	x := randomImages(7, n)
	direct, err := sess.Run(context.Background(), map[string]*infer.Tensor{"input": infer.NewFloat32([]int{n, 3, 32, 32}, x)})
	if err != nil {
		t.Fatal(err)
	}
	code, md := do(t, "GET", base+"/v2", "", nil)
	if code != 200 || !slices.Contains(md["extensions"].([]any), any("binary_tensor_data")) {
		t.Errorf("server metadata %v does not list binary_tensor_data", md)
	}

	input := fmt.Sprintf(`{ "name" : "input", "shape" : [ %d, 3, 32, 32 ], "datatype" : "FP32", "parameters" : { "binary_data_size" : %d } }`, n, 4*len(x))
	tests := []struct {
		name   string
		json   string
		binary []string // outputs expected as binary data, in order
	}{
		{"all binary", `{ "id" : "b-1", "parameters" : { "binary_data_output" : true }, "inputs" : [ ` + input + ` ] }`, []string{"logits", "probabilities"}},
		{"one binary", `{ "inputs" : [ ` + input + ` ], "outputs" : [ { "name" : "probabilities" }, { "name" : "logits", "parameters" : { "binary_data" : true } } ] }`, []string{"logits"}},
		{"outputs as JSON", `{ "inputs" : [ ` + input + ` ] }`, nil},
	}
	for _, tt := range tests {
		code, h, raw := postBinary(t, url, tt.json, leFloats(x), "")
		if code != 200 {
			t.Fatalf("%s: %d %s", tt.name, code, raw)
		}
		jsonPart := raw
		if len(tt.binary) > 0 {
			k, err := strconv.Atoi(h.Get("Inference-Header-Content-Length"))
			if err != nil || k > len(raw) {
				t.Fatalf("%s: Inference-Header-Content-Length %q for a %d-byte answer", tt.name, h.Get("Inference-Header-Content-Length"), len(raw))
			}
			if ct := h.Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("%s: Content-Type %q", tt.name, ct)
			}
			jsonPart = raw[:k]
		} else if h.Get("Inference-Header-Content-Length") != "" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Errorf("%s: a JSON answer with headers %v", tt.name, h)
		}
		var resp struct {
			Outputs []struct {
				Name       string
				Shape      []int
				Datatype   string
				Parameters map[string]any
				Data       []float32
			}
		}
		if err := json.Unmarshal(jsonPart, &resp); err != nil {
			t.Fatalf("%s: %v: %q", tt.name, err, jsonPart)
		}
		off := len(jsonPart)
		var gotBinary []string
		for _, o := range resp.Outputs {
			want := direct[o.Name].Float32
			got := o.Data
			if size, ok := o.Parameters["binary_data_size"]; ok {
				gotBinary = append(gotBinary, o.Name)
				if o.Data != nil {
					t.Errorf("%s: output %s has both data and binary_data_size", tt.name, o.Name)
				}
				sz := int(size.(float64))
				if sz != 4*len(want) || off+sz > len(raw) {
					t.Fatalf("%s: output %s: binary_data_size %v at offset %d of %d bytes", tt.name, o.Name, size, off, len(raw))
				}
				got = make([]float32, len(want))
				for i := range got {
					got[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[off+4*i:]))
				}
				off += sz
			}
			if o.Datatype != "FP32" || !slices.Equal(o.Shape, []int{n, 10}) {
				t.Errorf("%s: output %s is %s %v", tt.name, o.Name, o.Datatype, o.Shape)
			}
			// The same batch shape runs the same kernels: the same bits.
			if !slices.Equal(got, want) {
				d, _ := maxDiff(got, want)
				t.Errorf("%s: output %s differs from infer.Session by up to %g", tt.name, o.Name, d)
			}
		}
		if off != len(raw) {
			t.Errorf("%s: %d bytes of the answer belong to no output", tt.name, len(raw)-off)
		}
		if !slices.Equal(gotBinary, tt.binary) {
			t.Errorf("%s: binary outputs %v; want %v", tt.name, gotBinary, tt.binary)
		}
	}

	// The same image as JSON gives the same bits.
	code, got := do(t, "POST", url, "application/json", inferBody("", n, jsonNumbers(x), "logits"))
	if code != 200 || !slices.Equal(floats(t, got["outputs"].([]any)[0].(map[string]any)["data"]), direct["logits"].Float32) {
		t.Errorf("the JSON form: %d, or different logits", code)
	}
}

// TestBadBinaryRequests: each malformed binary request is refused with 400
// and a message naming what is wrong; the server goes on serving.
func TestBadBinaryRequests(t *testing.T) {
	_, sess := exportResNet8(t, t.TempDir(), "r8", 0)
	base, _ := startServer(t, Config{}, ModelConfig{Name: "r8", Session: sess})
	url := base + "/v2/models/r8/infer"
	x := leFloats(randomImages(3, 1))
	req := func(size string) string {
		return `{ "inputs" : [ { "name" : "input", "shape" : [ 1, 3, 32, 32 ], "datatype" : "FP32", "parameters" : { "binary_data_size" : ` + size + ` } } ] }`
	}
	nan := slices.Clone(x)
	binary.LittleEndian.PutUint32(nan[40:], math.Float32bits(float32(math.NaN())))
	tests := []struct {
		name, json string
		bin        []byte
		header     string
		msg        string
	}{
		{"header not a number", req("12288"), x, "twelve", `Inference-Header-Content-Length is "twelve"`},
		{"header past the body", req("12288"), x, "99999", "it must be the length of the JSON part"},
		{"bytes left over", req("12288"), append(slices.Clone(x), 0, 0, 0, 0), "", "12292 bytes after the JSON part; the inputs' binary_data_size add up to 12288"},
		{"size past the end", req("12292"), x, "", "runs past the end of the body"},
		{"size not the shape's", req("12284"), x[:12284], "", "binary_data_size is 12284 bytes; shape [1 3 32 32] of FP32 needs 12288"},
		{"negative size", req("-4"), x, "", "must be a non-negative integer"},
		{"size not a number", req(`"12288"`), x, "", "must be a non-negative integer"},
		{"both data and binary", `{ "inputs" : [ { "name" : "input", "shape" : [ 1 ], "datatype" : "FP32", "data" : [ 1 ], "parameters" : { "binary_data_size" : 4 } } ] }`, x[:4], "", "has both data and binary_data_size"},
		{"NaN", req("12288"), nan, "", "element 10 is NaN; inputs must be finite"},
		{"binary_data not boolean", `{ "parameters" : { "binary_data_output" : 1 }, "inputs" : [ ] }`, nil, "", "binary_data_output is 1; it must be true or false"},
	}
	for _, tt := range tests {
		code, _, raw := postBinary(t, url, tt.json, tt.bin, tt.header)
		var e errorResponse
		json.Unmarshal(raw, &e)
		if code != 400 || !strings.Contains(e.Error, tt.msg) {
			t.Errorf("%s: %d %s; want 400 and %q", tt.name, code, raw, tt.msg)
		}
	}
	code, _, raw := postBinary(t, url, req("12288"), x, "")
	if code != 200 {
		t.Errorf("a good request after the bad ones: %d %s", code, raw)
	}
}
