package serve

import (
	"slices"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/infer"
)

func TestParseData(t *testing.T) {
	good := []struct {
		data  string
		dt    infer.DType
		shape []int
		want  any
	}{
		// The specification's two forms of the same matrix.
		{`[ [ 1, 2 ], [ 4, 5 ] ]`, infer.Float32, []int{2, 2}, []float32{1, 2, 4, 5}},
		{`[ 1, 2, 4, 5 ]`, infer.Float32, []int{2, 2}, []float32{1, 2, 4, 5}},
		{`[1.5e-3,-2,3.25]`, infer.Float32, []int{3}, []float32{1.5e-3, -2, 3.25}},
		{`[1e300]`, infer.Float64, []int{1}, []float64{1e300}},
		{`[[1,2,3],[-4,5,2147483647]]`, infer.Int32, []int{2, 3}, []int32{1, 2, 3, -4, 5, 2147483647}},
		{`[9007199254740993]`, infer.Int64, []int{1}, []int64{9007199254740993}},
		{`[true,false,true]`, infer.Bool, []int{3}, []bool{true, false, true}},
		{`[7]`, infer.Float32, []int{}, []float32{7}}, // a scalar
	}
	for _, tt := range good {
		n := 1
		for _, d := range tt.shape {
			n *= d
		}
		got, err := parseData([]byte(tt.data), tt.dt, tt.shape, n)
		if err != nil {
			t.Errorf("%s as %v: %v", tt.data, tt.dt, err)
			continue
		}
		var ok bool
		switch w := tt.want.(type) {
		case []float32:
			ok = slices.Equal(got.Float32, w)
		case []float64:
			ok = slices.Equal(got.Float64, w)
		case []int32:
			ok = slices.Equal(got.Int32, w)
		case []int64:
			ok = slices.Equal(got.Int64, w)
		case []bool:
			ok = slices.Equal(got.Bool, w)
		}
		if !ok || !slices.Equal(got.Shape, tt.shape) {
			t.Errorf("%s as %v: got %+v, want %v", tt.data, tt.dt, got, tt.want)
		}
	}

	bad := []struct {
		data  string
		dt    infer.DType
		shape []int
		msg   string
	}{
		{`[1,2,3]`, infer.Float32, []int{2, 2}, "has 3 elements; shape [2 2] needs 4"},
		{`[1,2,3,4,5]`, infer.Float32, []int{2, 2}, "more than the 4 elements"},
		{`[[1,2,3],[4]]`, infer.Float32, []int{2, 2}, "nested data has 3 entries"},
		{`[[1,2],[3,4],[5,6]]`, infer.Float32, []int{2, 2}, "more than the 4 elements"},
		{`[[1,2]]`, infer.Float32, []int{2, 2}, "nested data has 1 entries at depth 1"},
		{`[[[1]]]`, infer.Float32, []int{1, 1}, "flat array or nested as shape"},
		{`[[1,2],3,4]`, infer.Float32, []int{2, 2}, "flat array or nested as shape"},
		{`[1,[2,3],4]`, infer.Float32, []int{2, 2}, "flat array or nested as shape"},
		{`[1,"2",3,4]`, infer.Float32, []int{4}, "element 1 is a string"},
		{`[1,{"a":2}]`, infer.Float32, []int{2}, "element 1 is an object"},
		{`[1,null]`, infer.Float32, []int{2}, "element 1 (null) is not a number"},
		{`[1e39]`, infer.Float32, []int{1}, "not a number in float32 range"},
		{`[1.5]`, infer.Int64, []int{1}, "not an integer in int64 range"},
		{`[2147483648]`, infer.Int32, []int{1}, "not an integer in int32 range"},
		{`[1]`, infer.Bool, []int{1}, "not true or false"},
		{`{"a":1}`, infer.Float32, []int{1}, "must be a JSON array"},
		{`3`, infer.Float32, []int{1}, "must be a JSON array"},
	}
	for _, tt := range bad {
		n := 1
		for _, d := range tt.shape {
			n *= d
		}
		_, err := parseData([]byte(tt.data), tt.dt, tt.shape, n)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s as %v %v: error %v, want %q", tt.data, tt.dt, tt.shape, err, tt.msg)
		}
	}
}

func TestBatchModeOf(t *testing.T) {
	vi := func(shape ...int) infer.ValueInfo {
		return infer.ValueInfo{Name: "x", DType: infer.Float32, Shape: shape}
	}
	md := func(in, out []infer.ValueInfo) infer.Metadata { return infer.Metadata{Inputs: in, Outputs: out} }
	tests := []struct {
		md   infer.Metadata
		mode batchMode
		b    int
	}{
		{md([]infer.ValueInfo{vi(-1, 3, 32, 32)}, []infer.ValueInfo{vi(-1, 10), vi(-1, 10)}), batchDynamic, 0},
		{md([]infer.ValueInfo{vi(1, 3, 32, 32)}, []infer.ValueInfo{vi(1, 10)}), batchFixed, 1},
		{md([]infer.ValueInfo{vi(4, 3, 32, 32)}, []infer.ValueInfo{vi(4, 10)}), batchFixed, 4},
		{md([]infer.ValueInfo{vi(-1, 3, 32, 32)}, []infer.ValueInfo{vi(10)}), batchNone, 0},                 // output without rows
		{md([]infer.ValueInfo{vi(2, 2), vi(3)}, []infer.ValueInfo{vi(2, 2)}), batchNone, 0},                 // the spec's example
		{md([]infer.ValueInfo{{Name: "x", DType: infer.Float32}}, []infer.ValueInfo{vi(-1)}), batchNone, 0}, // undeclared shape
	}
	for i, tt := range tests {
		mode, b := batchModeOf(tt.md)
		if mode != tt.mode || b != tt.b {
			t.Errorf("case %d: mode %d, B %d; want %d, %d", i, mode, b, tt.mode, tt.b)
		}
	}
}

func TestRunRows(t *testing.T) {
	b := &batcher{mode: batchDynamic, size: 32}
	want := map[int]int{1: 1, 2: 2, 3: 4, 5: 8, 8: 8, 9: 16, 16: 16, 17: 24, 24: 24, 25: 32, 32: 32}
	for rows, w := range want {
		if got := b.runRows(rows); got != w {
			t.Errorf("%d rows run as %d; want %d", rows, got, w)
		}
	}
	if got := (&batcher{mode: batchDynamic, size: 12}).runRows(10); got != 12 {
		t.Errorf("10 rows of at most 12 run as %d", got)
	}
	if got := (&batcher{mode: batchFixed, size: 4}).runRows(1); got != 4 {
		t.Errorf("a fixed batch of 4 runs as %d", got)
	}
}
