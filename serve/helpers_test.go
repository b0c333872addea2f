package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/testmodel"
	"github.com/resnetctl/resnetctl/models"
	"google.golang.org/protobuf/proto"
)

// exportResNet8 writes a CIFAR ResNet-8 (trained-looking BatchNorm, logits
// and probabilities outputs) to dir and loads it. fixedBatch > 0 declares
// the batch dimension of the input and outputs as that size instead of
// dynamic, making a fixed-batch model.
func exportResNet8(t testing.TB, dir, name string, fixedBatch int) (string, *infer.Session) {
	t.Helper()
	spec, err := models.Lookup("resnet8")
	if err != nil {
		t.Fatal(err)
	}
	g, err := build.New(spec, build.Options{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	testmodel.PerturbBN(g, 5)
	b, err := export.Marshal(g, export.Options{Softmax: true})
	if err != nil {
		t.Fatal(err)
	}
	mp := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, mp); err != nil {
		t.Fatal(err)
	}
	if fixedBatch > 0 {
		for _, v := range append(mp.Graph.Input, mp.Graph.Output...) {
			v.Type.GetTensorType().Shape.Dim[0].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(fixedBatch)}
		}
	}
	return writeModel(t, dir, name, mp)
}

func writeModel(t testing.TB, dir, name string, mp *onnxpb.ModelProto) (string, *infer.Session) {
	t.Helper()
	b, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sess, err := infer.Load(path, infer.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return path, sess
}

// castModel is a model shaped like the specification's example request:
// input0 INT32 [2, 2] and input1 BOOL [3], answered as output0 FP32 [2, 2]
// and output1 FP32 [3] (each input cast to float).
func castModel(t testing.TB, dir string) *infer.Session {
	t.Helper()
	vi := func(name string, dt infer.DType, dims ...int64) *onnxpb.ValueInfoProto {
		shape := &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(dt), Shape: shape}}}}
	}
	cast := func(in, out string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: "Cast", Name: out, Input: []string{in}, Output: []string{out},
			Attribute: []*onnxpb.AttributeProto{{Name: "to", Type: onnxpb.AttributeProto_INT, I: int64(infer.Float32)}}}
	}
	mp := &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}},
		Graph: &onnxpb.GraphProto{Name: "cast",
			Node:   []*onnxpb.NodeProto{cast("input0", "output0"), cast("input1", "output1")},
			Input:  []*onnxpb.ValueInfoProto{vi("input0", infer.Int32, 2, 2), vi("input1", infer.Bool, 3)},
			Output: []*onnxpb.ValueInfoProto{vi("output0", infer.Float32, 2, 2), vi("output1", infer.Float32, 3)},
		}}
	_, sess := writeModel(t, dir, "cast", mp)
	return sess
}

// startServer serves the models on a loopback port until the test ends
// and returns the base URL and the server.
func startServer(t testing.TB, cfg Config, mcs ...ModelConfig) (string, *Server) {
	t.Helper()
	srv, err := New(cfg, mcs...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(time.Minute):
			t.Errorf("Serve did not return a minute after its context ended")
		}
	})
	return "http://" + ln.Addr().String(), srv
}

// client is a plain HTTP client with a bound on every exchange.
var client = &http.Client{Timeout: time.Minute}

// do sends a request and returns the status and the body decoded as JSON
// (nil when the body is empty), failing the test on a transport error.
func do(t testing.TB, method, url, contentType string, body []byte) (int, map[string]any) {
	t.Helper()
	code, raw := doRaw(t, method, url, contentType, body)
	if len(raw) == 0 {
		return code, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: %d, body is not a JSON object: %v: %.200q", method, url, code, err, raw)
	}
	return code, m
}

func doRaw(t testing.TB, method, url, contentType string, body []byte) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	if ct := resp.Header.Get("Content-Type"); len(raw) > 0 && !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	return resp.StatusCode, raw
}

// randomImages is a batch of n standard-normal 3×32×32 inputs.
func randomImages(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 3))
	x := make([]float32, n*3*32*32)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// jsonNumbers writes x as a JSON array, flat, each value in the shortest
// form that reads back as the same float32.
func jsonNumbers(x []float32) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range x {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
	}
	b.WriteByte(']')
	return b.String()
}

// nestedNumbers writes x nested as [n][3][32][32].
func nestedNumbers(x []float32, n int) string {
	var b strings.Builder
	k := 0
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		for c := range 3 {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('[')
			for y := range 32 {
				if y > 0 {
					b.WriteByte(',')
				}
				b.WriteString(jsonNumbers(x[k : k+32]))
				k += 32
			}
			b.WriteByte(']')
		}
		b.WriteByte(']')
	}
	b.WriteByte(']')
	return b.String()
}

// inferBody is an $inference_request for a CIFAR model, written as the
// specification's example is, with the data array given (and no "id"
// when id is "").
func inferBody(id string, n int, data string, outputs ...string) []byte {
	var outs []string
	for _, o := range outputs {
		outs = append(outs, fmt.Sprintf(`{ "name" : %q }`, o))
	}
	idField := ""
	if id != "" {
		idField = fmt.Sprintf(`
  "id" : %q,`, id)
	}
	s := fmt.Sprintf(`{%s
  "inputs" : [
    {
      "name" : "input",
      "shape" : [ %d, 3, 32, 32 ],
      "datatype" : "FP32",
      "data" : %s
    }
  ]`, idField, n, data)
	if len(outs) > 0 {
		s += `,
  "outputs" : [ ` + strings.Join(outs, ", ") + ` ]`
	}
	return []byte(s + "\n}")
}

// floats reads a JSON array of numbers.
func floats(t testing.TB, v any) []float32 {
	t.Helper()
	a, ok := v.([]any)
	if !ok {
		t.Fatalf("data is %T, not an array", v)
	}
	out := make([]float32, len(a))
	for i, e := range a {
		f, ok := e.(float64)
		if !ok {
			t.Fatalf("data[%d] is %T, not a number", i, e)
		}
		out[i] = float32(f)
	}
	return out
}

// maxDiff returns max|a-b| and max|b|.
func maxDiff(a, b []float32) (diff, scale float64) {
	if len(a) != len(b) {
		return math.Inf(1), 0
	}
	for i := range a {
		diff = math.Max(diff, math.Abs(float64(a[i])-float64(b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return diff, scale
}

// concurrentClients sends n requests at once to url (a ResNet-8's infer
// endpoint), client i with 1 + i%3 rows of images seeded seed+i, and
// checks that each is answered with its own id and with ref's logits for
// its rows alone: other batch compositions and thread counts change the
// summation order only (float32 rounding, 1e-5 relative).
func concurrentClients(t *testing.T, url string, ref *infer.Session, n int, seed uint64) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows := 1 + i%3
			x := randomImages(seed+uint64(i), rows)
			want, err := ref.Run(context.Background(), map[string]*infer.Tensor{"input": infer.NewFloat32([]int{rows, 3, 32, 32}, x)})
			if err != nil {
				errs <- err.Error()
				return
			}
			code, got := do(t, "POST", url, "application/json", inferBody(fmt.Sprint(i), rows, jsonNumbers(x), "logits"))
			if code != 200 {
				errs <- fmt.Sprintf("client %d: %d %v", i, code, got)
				return
			}
			o := got["outputs"].([]any)[0].(map[string]any)
			d, scale := maxDiff(floats(t, o["data"]), want["logits"].Float32)
			if got["id"] != fmt.Sprint(i) || !reflect.DeepEqual(o["shape"], []any{float64(rows), 10.0}) || !(d <= 1e-5*(1+scale)) {
				errs <- fmt.Sprintf("client %d: id %v shape %v, logits off by %g", i, got["id"], o["shape"], d)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
