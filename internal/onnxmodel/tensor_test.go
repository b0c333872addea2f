package onnxmodel

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

func TestDecodeTensor(t *testing.T) {
	le := binary.LittleEndian
	for _, c := range []struct {
		name   string
		tp     *onnxpb.TensorProto
		floats []float32
		ints   []int64
		err    string
	}{
		{"float raw", &onnxpb.TensorProto{DataType: int32(Float), Dims: []int64{1}, RawData: le.AppendUint32(nil, math.Float32bits(1.5))}, []float32{1.5}, nil, ""},
		{"double", &onnxpb.TensorProto{DataType: int32(Double), Dims: []int64{2}, DoubleData: []float64{0.5, -2}}, []float32{0.5, -2}, nil, ""},
		{"float16", &onnxpb.TensorProto{DataType: int32(Float16), Dims: []int64{1}, Int32Data: []int32{0x3c00}}, []float32{1}, nil, ""},
		{"bfloat16 raw", &onnxpb.TensorProto{DataType: int32(BFloat16), Dims: []int64{1}, RawData: []byte{0x80, 0x3f}}, []float32{1}, nil, ""},
		{"int16 raw", &onnxpb.TensorProto{DataType: int32(Int16), Dims: []int64{1}, RawData: []byte{0xfe, 0xff}}, nil, []int64{-2}, ""},
		{"uint64", &onnxpb.TensorProto{DataType: int32(Uint64), Dims: []int64{1}, Uint64Data: []uint64{7}}, nil, []int64{7}, ""},
		{"bool", &onnxpb.TensorProto{DataType: int32(Bool), Dims: []int64{2}, Int32Data: []int32{0, 3}}, nil, []int64{0, 1}, ""},
		{"int8 raw", &onnxpb.TensorProto{DataType: int32(Int8), Dims: []int64{1}, RawData: []byte{0xff}}, nil, []int64{-1}, ""},
		{"short raw", &onnxpb.TensorProto{DataType: int32(Int64), Dims: []int64{2}, RawData: make([]byte, 12)}, nil, nil, "raw_data has 12 bytes, dims [2] of int64 need 16"},
		{"few values", &onnxpb.TensorProto{DataType: int32(Float), Dims: []int64{3}, FloatData: []float32{1}}, nil, nil, "float_data has 1 values, dims [3] need 3"},
		{"huge", &onnxpb.TensorProto{DataType: int32(Float), Dims: []int64{1e6, 1e6}}, nil, nil, "dims [1000000 1000000] have 1000000000000 elements"},
		{"negative", &onnxpb.TensorProto{DataType: int32(Float), Dims: []int64{-1}}, nil, nil, "dimension -1 in dims [-1]"},
		{"string", &onnxpb.TensorProto{DataType: int32(String), Dims: []int64{1}}, nil, nil, "element type STRING"},
		{"from bytes", &onnxpb.TensorProto{DataType: int32(Float), Dims: []int64{1}, DataLocation: onnxpb.TensorProto_EXTERNAL,
			ExternalData: []*onnxpb.StringStringEntryProto{{Key: "location", Value: "w.bin"}}}, nil, nil, `external file "w.bin", but the model was loaded from bytes`},
	} {
		d, err := DecodeTensor(c.tp, nil)
		switch {
		case err != nil && (c.err == "" || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		case err == nil && c.err != "":
			t.Errorf("%s: no error, want %q", c.name, c.err)
		}
		if err != nil || c.err != "" {
			continue
		}
		f, _ := d.Floats()
		i, _ := d.Ints()
		if !slices.Equal(f, c.floats) || !slices.Equal(i, c.ints) {
			t.Errorf("%s: floats %v ints %v", c.name, f, i)
		}
	}
}

func le32(v ...uint32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	return b
}

func TestShapes(t *testing.T) {
	if n, err := Numel([]int{2, 3, 4}); n != 24 || err != nil {
		t.Errorf("Numel: %d, %v", n, err)
	}
	if _, err := Numel([]int{1 << 30, 1 << 30}); err == nil {
		t.Error("Numel: no overflow error")
	}
	if _, err := Numel([]int{2, -1}); err == nil {
		t.Error("Numel: no error for a negative dimension")
	}
	if s := Strides([]int{2, 3, 4}); !slices.Equal(s, []int{12, 4, 1}) {
		t.Errorf("Strides %v", s)
	}
	if b, ok := Broadcast([]int{2, 1, 4}, []int{3, 1}); !ok || !slices.Equal(b, []int{2, 3, 4}) {
		t.Errorf("Broadcast %v %v", b, ok)
	}
	if _, ok := Broadcast([]int{2}, []int{3}); ok {
		t.Error("Broadcast of [2] and [3]")
	}
	if a, ok := NormAxis(-1, 4); a != 3 || !ok {
		t.Errorf("NormAxis(-1, 4) = %d %v", a, ok)
	}
	if _, ok := NormAxis(4, 4); ok {
		t.Error("NormAxis(4, 4)")
	}
}

func TestFoldConvBN(t *testing.T) {
	w := []float32{1, 2, 3, 4} // two output channels of two weights
	gamma, beta, mean, variance := []float32{2, 0.5}, []float32{1, -1}, []float32{0.5, 2}, []float32{3, 0.25}
	const eps = 1e-5
	wf, bf := FoldConvBN(w, []float32{0.25, 1}, gamma, beta, mean, variance, eps)
	for o := range 2 {
		s := float64(gamma[o]) / math.Sqrt(float64(variance[o])+eps)
		for i := 2 * o; i < 2*o+2; i++ {
			if d := math.Abs(float64(wf[i]) - float64(w[i])*s); d > 1e-6 {
				t.Errorf("weight %d: %g, want %g", i, wf[i], float64(w[i])*s)
			}
		}
		want := (float64([]float32{0.25, 1}[o])-float64(mean[o]))*s + float64(beta[o])
		if d := math.Abs(float64(bf[o]) - want); d > 1e-6 {
			t.Errorf("bias %d: %g, want %g", o, bf[o], want)
		}
	}
}
