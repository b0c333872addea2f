package serve

import (
	"encoding/binary"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// edgeTypesModel takes u8 UINT8 [4], i8 INT8 [3] and h FP16 [2] and
// answers f_u8 and f_i8 (FP32 casts of the first two), h_out (FP16, h
// itself) and u8_out (UINT8, u8 itself): the integer and half types an
// image model's input or output may have.
func edgeTypesModel(t testing.TB, dir string) *infer.Session {
	t.Helper()
	vi := func(name string, dt infer.DType, d int64) *onnxpb.ValueInfoProto {
		shape := &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}}}}
		return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(dt), Shape: shape}}}}
	}
	node := func(op, in, out string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: op, Name: out, Input: []string{in}, Output: []string{out}, Attribute: attrs}
	}
	toFloat := &onnxpb.AttributeProto{Name: "to", Type: onnxpb.AttributeProto_INT, I: int64(infer.Float32)}
	mp := &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 17}},
		Graph: &onnxpb.GraphProto{Name: "edge",
			Node: []*onnxpb.NodeProto{node("Cast", "u8", "f_u8", toFloat), node("Cast", "i8", "f_i8", toFloat),
				node("Identity", "h", "h_out"), node("Identity", "u8", "u8_out")},
			Input: []*onnxpb.ValueInfoProto{vi("u8", infer.Uint8, 4), vi("i8", infer.Int8, 3), vi("h", infer.Float16, 2)},
			Output: []*onnxpb.ValueInfoProto{vi("f_u8", infer.Float32, 4), vi("f_i8", infer.Float32, 3),
				vi("h_out", infer.Float16, 2), vi("u8_out", infer.Uint8, 4)},
		}}
	_, sess := writeModel(t, dir, "edge", mp)
	return sess
}

// TestEdgeTypes: UINT8, INT8 and FP16 tensors go in and come out as the
// protocol names them, as JSON numbers (not base64 for UINT8; FP16 as the
// values the half-precision numbers hold) and as binary data; values out
// of their type's range are refused with 400.
func TestEdgeTypes(t *testing.T) {
	sess := edgeTypesModel(t, t.TempDir())
	base, _ := startServer(t, Config{}, ModelConfig{Name: "edge", Session: sess})
	url := base + "/v2/models/edge/infer"

	code, md := do(t, "GET", base+"/v2/models/edge", "", nil)
	var types []string
	for _, in := range md["inputs"].([]any) {
		types = append(types, in.(map[string]any)["datatype"].(string))
	}
	for _, o := range md["outputs"].([]any) {
		types = append(types, o.(map[string]any)["datatype"].(string))
	}
	if code != 200 || strings.Join(types, " ") != "UINT8 INT8 FP16 FP32 FP32 FP16 UINT8" {
		t.Errorf("metadata: %d, datatypes %v", code, types)
	}

	in := func(u8, i8, h string) string {
		return `{ "inputs" : [ { "name" : "u8", "shape" : [ 4 ], "datatype" : "UINT8", "data" : ` + u8 + ` },
			{ "name" : "i8", "shape" : [ 3 ], "datatype" : "INT8", "data" : ` + i8 + ` },
			{ "name" : "h", "shape" : [ 2 ], "datatype" : "FP16", "data" : ` + h + ` } ] }`
	}
	code, got := do(t, "POST", url, "application/json", []byte(in(`[ 0, 255, 7, 128 ]`, `[ -128, 0, 127 ]`, `[ 1.5, -65504 ]`)))
	if code != 200 {
		t.Fatalf("%d %v", code, got)
	}
	want := map[string]any{"f_u8": []any{0.0, 255.0, 7.0, 128.0}, "f_i8": []any{-128.0, 0.0, 127.0},
		"h_out": []any{1.5, -65504.0}, "u8_out": []any{0.0, 255.0, 7.0, 128.0}}
	for _, o := range got["outputs"].([]any) {
		o := o.(map[string]any)
		if name := o["name"].(string); !reflect.DeepEqual(o["data"], want[name]) {
			t.Errorf("output %s: %v, want %v", name, o["data"], want[name])
		}
	}

	// The same as binary data: 4 + 3 + 4 bytes in, bytes out.
	js := `{ "parameters" : { "binary_data_output" : true }, "inputs" : [
		{ "name" : "u8", "shape" : [ 4 ], "datatype" : "UINT8", "parameters" : { "binary_data_size" : 4 } },
		{ "name" : "i8", "shape" : [ 3 ], "datatype" : "INT8", "parameters" : { "binary_data_size" : 3 } },
		{ "name" : "h", "shape" : [ 2 ], "datatype" : "FP16", "parameters" : { "binary_data_size" : 4 } } ],
		"outputs" : [ { "name" : "u8_out" }, { "name" : "h_out" } ] }`
	bin := []byte{0, 255, 7, 128, 0x80, 0, 0x7f}
	bin = binary.LittleEndian.AppendUint16(bin, 0x3e00) // 1.5
	bin = binary.LittleEndian.AppendUint16(bin, 0xfbff) // -65504
	code, h, raw := postBinary(t, url, js, bin, "")
	if code != 200 {
		t.Fatalf("binary: %d %s", code, raw)
	}
	k, _ := strconv.Atoi(h.Get("Inference-Header-Content-Length"))
	var resp struct {
		Outputs []struct{ Name, Datatype string }
	}
	if err := json.Unmarshal(raw[:k], &resp); err != nil || len(resp.Outputs) != 2 || resp.Outputs[0].Datatype != "UINT8" || resp.Outputs[1].Datatype != "FP16" {
		t.Fatalf("binary answer %q: %v", raw[:k], err)
	}
	if tail := raw[k:]; string(tail) != string([]byte{0, 255, 7, 128, 0x00, 0x3e, 0xff, 0xfb}) {
		t.Errorf("binary outputs % x", tail)
	}

	bad := []struct{ name, body, msg string }{
		{"UINT8 256", in(`[ 0, 256, 7, 128 ]`, `[ 0, 0, 0 ]`, `[ 0, 0 ]`), "data element 1 (256) is not an integer from 0 to 255"},
		{"UINT8 negative", in(`[ -1, 0, 7, 128 ]`, `[ 0, 0, 0 ]`, `[ 0, 0 ]`), "data element 0 (-1) is not an integer from 0 to 255"},
		{"INT8 -129", in(`[ 0, 0, 0, 0 ]`, `[ -129, 0, 0 ]`, `[ 0, 0 ]`), "data element 0 (-129) is not an integer from -128 to 127"},
		{"FP16 overflow", in(`[ 0, 0, 0, 0 ]`, `[ 0, 0, 0 ]`, `[ 0, 70000 ]`), "data element 1 (70000) is not a number in float16 range"},
		{"UINT8 fraction", in(`[ 0.5, 0, 0, 0 ]`, `[ 0, 0, 0 ]`, `[ 0, 0 ]`), "data element 0 (0.5) is not an integer from 0 to 255"},
	}
	for _, tt := range bad {
		code, got := do(t, "POST", url, "application/json", []byte(tt.body))
		if msg, _ := got["error"].(string); code != 400 || !strings.Contains(msg, tt.msg) {
			t.Errorf("%s: %d %v; want 400 and %q", tt.name, code, got, tt.msg)
		}
	}
	nan := append([]byte{0, 0, 0, 0, 0, 0, 0}, 0x00, 0x7e, 0, 0)
	if code, _, raw := postBinary(t, url, strings.Replace(js, `"binary_data_output" : true`, `"binary_data_output" : false`, 1), nan, ""); code != 400 || !strings.Contains(string(raw), "element 0 is NaN; inputs must be finite") {
		t.Errorf("binary FP16 NaN: %d %s", code, raw)
	}
}
