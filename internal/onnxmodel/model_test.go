package onnxmodel

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

func TestCheck(t *testing.T) {
	ok := func() *onnxpb.ModelProto {
		return &onnxpb.ModelProto{IrVersion: 8, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: 13}}, Graph: &onnxpb.GraphProto{}}
	}
	r := Reader{Name: "this test", Verb: "takes"}
	for _, c := range []struct {
		name   string
		mutate func(m *onnxpb.ModelProto)
		want   string
		is     error
	}{
		{"ok", func(*onnxpb.ModelProto) {}, "", nil},
		{"no IR", func(m *onnxpb.ModelProto) { m.IrVersion = 0 }, "no IR version", ErrInvalidModel},
		{"IR 11", func(m *onnxpb.ModelProto) { m.IrVersion = 11 }, "IR version 11 (this test reads IR versions 3 to 10)", ErrUnsupported},
		{"opset 22", func(m *onnxpb.ModelProto) { m.OpsetImport[0].Version = 22 }, "ai.onnx opset 22 (this test takes opsets 7 to 21)", ErrUnsupported},
		{"other domain", func(m *onnxpb.ModelProto) { m.OpsetImport[0].Domain = "com.x" }, "no ai.onnx opset import", ErrInvalidModel},
		{"no graph", func(m *onnxpb.ModelProto) { m.Graph = nil }, "no graph", ErrInvalidModel},
	} {
		m := ok()
		c.mutate(m)
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		mp, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		_, opset, err := Check(mp, r)
		if c.is == nil {
			if err != nil || opset != 13 {
				t.Errorf("%s: opset %d, %v", c.name, opset, err)
			}
			continue
		}
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %v containing %q", c.name, err, c.is, c.want)
		}
	}
	if _, err := Decode([]byte("not a model")); !errors.Is(err, ErrInvalidModel) {
		t.Errorf("Decode of text: %v", err)
	}
}

func TestIndexSources(t *testing.T) {
	g := &onnxpb.GraphProto{
		Initializer: []*onnxpb.TensorProto{{Name: "w"}, {Name: ""}, {Name: "w"}},
		Input:       []*onnxpb.ValueInfoProto{{Name: "x"}, {Name: "w"}, {Name: "x"}, {Name: ""}},
	}
	src, probs := IndexSources(g)
	var msgs []string
	for _, p := range probs {
		msgs = append(msgs, p.Msg)
	}
	want := []string{`initializer 1 has no name`, `initializer "w" is defined twice`, `graph input "x" is listed twice`, `graph input 3 has no name`}
	if !slices.Equal(msgs, want) || len(src.Initializers) != 1 || len(src.Inputs) != 1 || src.Inputs[0].GetName() != "x" {
		t.Errorf("problems %q, %d initializers, inputs %v", msgs, len(src.Initializers), src.Inputs)
	}
}

func TestAttr(t *testing.T) {
	a := &onnxpb.AttributeProto{Name: "axis", F: 1} // no type: FLOAT from its field
	if got, err := Attr("axis", a, AttrInt); got != nil || err == nil || err.Error() != `attribute "axis" is FLOAT, want INT` {
		t.Errorf("wrong type: %v, %v", got, err)
	}
	if got, err := Attr("axis", a, AttrFloat); got != a || err != nil {
		t.Errorf("right type: %v, %v", got, err)
	}
	if got, err := Attr("axis", nil, AttrFloat); got != nil || err != nil {
		t.Errorf("absent: %v, %v", got, err)
	}
	var ae *AttrError
	if _, err := Attr("x", &onnxpb.AttributeProto{RefAttrName: "y"}, AttrInt); !errors.As(err, &ae) || !ae.Ref {
		t.Errorf("reference: %v", err)
	}
	_, dup := Attributes(&onnxpb.NodeProto{Attribute: []*onnxpb.AttributeProto{{Name: "a"}, {Name: "b"}, {Name: "a"}}})
	if !slices.Equal(dup, []string{"a"}) {
		t.Errorf("duplicates %v", dup)
	}
}
