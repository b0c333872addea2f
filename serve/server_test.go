package serve

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/interop"
)

// The JSON objects below are written as the Open Inference Protocol's REST
// specification shows them, and the answers are checked against its
// $…_response shapes field by field.

// TestHealthAndMetadata: the health, server metadata and model metadata
// endpoints answer the specification's objects; unknown models, versions
// and paths are 404 and wrong methods 405, each with {"error": …}.
func TestHealthAndMetadata(t *testing.T) {
	dir := t.TempDir()
	_, dyn := exportResNet8(t, dir, "r8", 0)
	_, fixed := exportResNet8(t, dir, "r8fixed", 1)
	base, _ := startServer(t, Config{Version: "test-1"}, ModelConfig{Name: "r8", Session: dyn}, ModelConfig{Name: "r8fixed", Session: fixed})

	for _, tt := range []struct {
		path string
		want map[string]any
	}{
		{"/v2/health/live", map[string]any{"live": true}},
		{"/v2/health/ready", map[string]any{"ready": true}},
		{"/v2", map[string]any{"name": "resnetctl", "version": "test-1", "extensions": []any{"binary_tensor_data"}}},
		{"/v2/", map[string]any{"name": "resnetctl", "version": "test-1", "extensions": []any{"binary_tensor_data"}}},
		{"/v2/models/r8/ready", map[string]any{"name": "r8", "ready": true}},
		{"/v2/models/r8/versions/1/ready", map[string]any{"name": "r8", "ready": true}},
		{"/v2/models/r8", map[string]any{
			"name": "r8", "versions": []any{"1"}, "platform": "onnx_onnxv1",
			"inputs": []any{map[string]any{"name": "input", "datatype": "FP32", "shape": []any{-1.0, 3.0, 32.0, 32.0}}},
			"outputs": []any{
				map[string]any{"name": "logits", "datatype": "FP32", "shape": []any{-1.0, 10.0}},
				map[string]any{"name": "probabilities", "datatype": "FP32", "shape": []any{-1.0, 10.0}},
			}}},
		{"/v2/models/r8fixed/versions/1", map[string]any{
			"name": "r8fixed", "versions": []any{"1"}, "platform": "onnx_onnxv1",
			"inputs": []any{map[string]any{"name": "input", "datatype": "FP32", "shape": []any{1.0, 3.0, 32.0, 32.0}}},
			"outputs": []any{
				map[string]any{"name": "logits", "datatype": "FP32", "shape": []any{1.0, 10.0}},
				map[string]any{"name": "probabilities", "datatype": "FP32", "shape": []any{1.0, 10.0}},
			}}},
	} {
		code, got := do(t, "GET", base+tt.path, "", nil)
		if code != http.StatusOK || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("GET %s: %d %v\n\twant 200 %v", tt.path, code, got, tt.want)
		}
	}

	for _, tt := range []struct {
		method, path string
		code         int
		msg          string
	}{
		{"GET", "/v2/models/nope", 404, `unknown model "nope" (serving r8, r8fixed)`},
		{"GET", "/v2/models/nope/ready", 404, `unknown model "nope"`},
		{"POST", "/v2/models/nope/infer", 404, `unknown model "nope"`},
		{"GET", "/v2/models/r8/versions/7", 404, `model r8 has no version "7"`},
		{"POST", "/v2/models/r8/versions/2/infer", 404, `no version "2"`},
		{"GET", "/v2/models/r8/explain", 404, "no endpoint GET /v2/models/r8/explain"},
		{"GET", "/v3", 404, "no endpoint"},
		{"GET", "/v2/models/r8/infer", 405, "use POST"},
		{"POST", "/v2/health/live", 405, "use GET"},
		{"DELETE", "/v2/models/r8", 405, "use GET"},
	} {
		code, got := do(t, tt.method, base+tt.path, "", nil)
		msg, _ := got["error"].(string)
		if code != tt.code || len(got) != 1 || !strings.Contains(msg, tt.msg) {
			t.Errorf("%s %s: %d %v; want %d and an error with %q", tt.method, tt.path, code, got, tt.code, tt.msg)
		}
	}
}

// TestSpecificationExample sends the specification's example request
// as written. Its UINT32 input is refused (the model's input0 is INT32,
// and datatypes must match, as in Triton); with INT32, and input1's data
// completed to its shape's 3 elements (the example gives 1 for shape
// [3]), the answer is the example's response object: the id echoed and
// only the requested output0.
func TestSpecificationExample(t *testing.T) {
	sess := castModel(t, t.TempDir())
	base, _ := startServer(t, Config{}, ModelConfig{Name: "mymodel", Session: sess})
	example := `{
      "id" : "42",
      "inputs" : [
        {
          "name" : "input0",
          "shape" : [ 2, 2 ],
          "datatype" : "UINT32",
          "data" : [ 1, 2, 3, 4 ]
        },
        {
          "name" : "input1",
          "shape" : [ 3 ],
          "datatype" : "BOOL",
          "data" : [ true ]
        }
      ],
      "outputs" : [
        {
          "name" : "output0"
        }
      ]
    }`
	code, got := do(t, "POST", base+"/v2/models/mymodel/infer", "application/json", []byte(example))
	if code != 400 || got["error"] != `input input0 has datatype "UINT32"; the model's input is INT32` {
		t.Errorf("UINT32: %d %v", code, got)
	}
	fixed := strings.Replace(example, `"UINT32"`, `"INT32"`, 1)
	code, got = do(t, "POST", base+"/v2/models/mymodel/infer", "application/json", []byte(fixed))
	if code != 400 || got["error"] != "input input1: data has 1 elements; shape [3] needs 3" {
		t.Errorf("short BOOL data: %d %v", code, got)
	}
	fixed = strings.Replace(fixed, `[ true ]`, `[ true, false, true ]`, 1)
	code, got = do(t, "POST", base+"/v2/models/mymodel/infer", "application/json", []byte(fixed))
	want := map[string]any{
		"model_name": "mymodel", "model_version": "1", "id": "42",
		"outputs": []any{map[string]any{"name": "output0", "shape": []any{2.0, 2.0}, "datatype": "FP32", "data": []any{1.0, 2.0, 3.0, 4.0}}},
	}
	if code != 200 || !reflect.DeepEqual(got, want) {
		t.Errorf("the example: %d %v\n\twant %v", code, got, want)
	}
	// Without "outputs", every output, in the model's order; without
	// "id", no id; nested data as the specification allows.
	code, got = do(t, "POST", base+"/v2/models/mymodel/versions/1/infer", "application/json", []byte(`{
      "inputs" : [
        { "name" : "input1", "shape" : [ 3 ], "datatype" : "BOOL", "data" : [ false, true, true ], "parameters" : { "note" : "any" } },
        { "name" : "input0", "shape" : [ 2, 2 ], "datatype" : "INT32", "data" : [ [ 1, 2 ], [ 4, 5 ] ] }
      ],
      "parameters" : { "priority" : 1, "flag" : true }
    }`))
	want = map[string]any{
		"model_name": "mymodel", "model_version": "1",
		"outputs": []any{
			map[string]any{"name": "output0", "shape": []any{2.0, 2.0}, "datatype": "FP32", "data": []any{1.0, 2.0, 4.0, 5.0}},
			map[string]any{"name": "output1", "shape": []any{3.0}, "datatype": "FP32", "data": []any{0.0, 1.0, 1.0}},
		},
	}
	if code != 200 || !reflect.DeepEqual(got, want) {
		t.Errorf("all outputs: %d %v\n\twant %v", code, got, want)
	}
}

// TestInferMatchesSessionAndORT: a ResNet-8 served over JSON answers the
// logits and probabilities that infer.Session gives for the same input
// (flat and nested data), and that ONNX Runtime gives within
// 1e-4·(1+max|ref|), DESIGN.md's bound.
func TestInferMatchesSessionAndORT(t *testing.T) {
	dir := t.TempDir()
	path, sess := exportResNet8(t, dir, "r8", 0)
	base, _ := startServer(t, Config{}, ModelConfig{Name: "r8", Session: sess})
	const n = 4
	x := randomImages(1, n)
	direct, err := sess.Run(context.Background(), map[string]*infer.Tensor{"input": infer.NewFloat32([]int{n, 3, 32, 32}, x)})
	if err != nil {
		t.Fatal(err)
	}
	var served map[string][]float32
	for _, data := range []string{jsonNumbers(x), nestedNumbers(x, n)} {
		code, got := do(t, "POST", base+"/v2/models/r8/infer", "application/json", inferBody("a-1", n, data, "probabilities", "logits"))
		if code != 200 {
			t.Fatalf("%d %v", code, got)
		}
		if got["model_name"] != "r8" || got["id"] != "a-1" || got["model_version"] != "1" || len(got) != 4 {
			t.Errorf("response fields: %v", got)
		}
		outs := got["outputs"].([]any)
		served = map[string][]float32{}
		var order []string
		for _, o := range outs {
			o := o.(map[string]any)
			order = append(order, o["name"].(string))
			if o["datatype"] != "FP32" || !reflect.DeepEqual(o["shape"], []any{float64(n), 10.0}) || len(o) != 4 {
				t.Errorf("output %v", o)
			}
			served[o["name"].(string)] = floats(t, o["data"])
		}
		if !slices.Equal(order, []string{"probabilities", "logits"}) {
			t.Errorf("outputs in order %v; want the request's", order)
		}
		for name, want := range direct {
			// The server ran the same batch shape: the same kernels, so
			// the same bits (JSON carries float32 exactly).
			if !slices.Equal(served[name], want.Float32) {
				d, _ := maxDiff(served[name], want.Float32)
				t.Errorf("%s differs from infer.Session by up to %g", name, d)
			}
		}
	}

	interop.RequireORT(t)
	res, err := interop.ORT(context.Background(), []interop.Job{{Model: path, Inputs: map[string]interop.Tensor{"input": {Dims: []int{n, 3, 32, 32}, Data: x}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != "" {
		t.Fatal(res[0].Err)
	}
	for _, name := range []string{"logits", "probabilities"} {
		ref := res[0].Outputs[name]
		d, scale := maxDiff(served[name], ref.Data)
		t.Logf("%s: max |served - ORT| %.3g, max |ORT| %.3g", name, d, scale)
		if !(d <= 1e-4*(1+scale)) {
			t.Errorf("%s differs from ONNX Runtime by %g (max |ref| %g)", name, d, scale)
		}
	}
}

// TestDynamicBatching: concurrent requests of different sizes are gathered
// into shared runs (the batch-size histogram shows fewer runs than
// requests) and each gets exactly its own rows: the same as running its
// input alone, within float rounding of a different batch composition.
func TestDynamicBatching(t *testing.T) {
	_, sess := exportResNet8(t, t.TempDir(), "r8", 0)
	base, _ := startServer(t, Config{MaxBatch: 8, MaxDelay: 200 * time.Millisecond}, ModelConfig{Name: "r8", Session: sess})
	const clients = 12
	concurrentClients(t, base+"/v2/models/r8/infer", sess, clients, 10)
	_, metrics := doRaw(t, "GET", base+"/metrics", "", nil)
	runs := metricValue(t, string(metrics), `resnetctl_batch_size_count{model="r8"}`)
	rows := metricValue(t, string(metrics), `resnetctl_batch_size_sum{model="r8"}`)
	t.Logf("%d requests, %g rows in %g runs", clients, rows, runs)
	if rows != 24 || runs >= clients {
		t.Errorf("%g rows in %g runs; want 24 rows in fewer runs than the %d requests", rows, runs, clients)
	}
}

// TestFixedBatchModels: models whose batch dimension is fixed (1, or 2)
// take requests of any number of rows, run B at a time (the last run
// padded), and answer each row as the model run on it alone.
func TestFixedBatchModels(t *testing.T) {
	dir := t.TempDir()
	_, one := exportResNet8(t, dir, "b1", 1)
	_, two := exportResNet8(t, dir, "b2", 2)
	_, dyn := exportResNet8(t, dir, "dyn", 0)
	base, _ := startServer(t, Config{}, ModelConfig{Name: "b1", Session: one}, ModelConfig{Name: "b2", Session: two})
	const n = 3
	x := randomImages(2, n)
	want, err := dyn.Run(context.Background(), map[string]*infer.Tensor{"input": infer.NewFloat32([]int{n, 3, 32, 32}, x)})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b1", "b2"} {
		code, got := do(t, "POST", base+"/v2/models/"+name+"/infer", "application/json", inferBody("", n, jsonNumbers(x), "logits"))
		if code != 200 {
			t.Fatalf("%s: %d %v", name, code, got)
		}
		if _, has := got["id"]; has {
			t.Errorf("%s: an id in the answer to a request without one: %v", name, got["id"])
		}
		o := got["outputs"].([]any)[0].(map[string]any)
		d, scale := maxDiff(floats(t, o["data"]), want["logits"].Float32)
		if !reflect.DeepEqual(o["shape"], []any{float64(n), 10.0}) || !(d <= 1e-5*(1+scale)) {
			t.Errorf("%s: shape %v, logits off by %g", name, o["shape"], d)
		}
	}
	// A fixed dimension other than the batch still has to match.
	code, got := do(t, "POST", base+"/v2/models/b1/infer", "application/json",
		[]byte(`{"inputs":[{"name":"input","shape":[1,3,32,16],"datatype":"FP32","data":`+jsonNumbers(make([]float32, 3*32*16))+`}]}`))
	if code != 400 || !strings.Contains(fmt.Sprint(got["error"]), "input input has shape [1 3 32 16]; the model's is [1 3 32 32]") {
		t.Errorf("wrong width: %d %v", code, got)
	}
}

// metricValue reads one series' value from the text format.
func metricValue(t testing.TB, text, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in\n%s", series, text)
	return 0
}
