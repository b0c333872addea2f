package onnximport

import (
	"fmt"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// attrs reads a node's attributes, checking their types.
type attrs map[string]*onnxpb.AttributeProto

func attrsOf(np *onnxpb.NodeProto) (attrs, error) {
	a := attrs{}
	for _, p := range np.GetAttribute() {
		if _, dup := a[p.GetName()]; dup {
			return nil, fmt.Errorf("attribute %q is given twice", p.GetName())
		}
		a[p.GetName()] = p
	}
	return a, nil
}

// kind is the attribute's type; old files may leave it UNDEFINED, so it is
// then read from which field is set.
func kind(p *onnxpb.AttributeProto) onnxpb.AttributeProto_AttributeType {
	if t := p.GetType(); t != onnxpb.AttributeProto_UNDEFINED {
		return t
	}
	switch {
	case len(p.GetInts()) > 0:
		return onnxpb.AttributeProto_INTS
	case len(p.GetFloats()) > 0:
		return onnxpb.AttributeProto_FLOATS
	case p.GetT() != nil:
		return onnxpb.AttributeProto_TENSOR
	case len(p.GetS()) > 0:
		return onnxpb.AttributeProto_STRING
	case p.GetF() != 0:
		return onnxpb.AttributeProto_FLOAT
	}
	return onnxpb.AttributeProto_INT
}

func (a attrs) int(name string, def int64) (int64, error) {
	p, ok := a[name]
	if !ok {
		return def, nil
	}
	if kind(p) != onnxpb.AttributeProto_INT {
		return 0, fmt.Errorf("attribute %s is %s, want INT", name, kind(p))
	}
	return p.GetI(), nil
}

func (a attrs) float(name string, def float32) (float32, error) {
	p, ok := a[name]
	if !ok {
		return def, nil
	}
	if kind(p) != onnxpb.AttributeProto_FLOAT {
		return 0, fmt.Errorf("attribute %s is %s, want FLOAT", name, kind(p))
	}
	return p.GetF(), nil
}

func (a attrs) str(name, def string) (string, error) {
	p, ok := a[name]
	if !ok {
		return def, nil
	}
	if kind(p) != onnxpb.AttributeProto_STRING {
		return "", fmt.Errorf("attribute %s is %s, want STRING", name, kind(p))
	}
	return string(p.GetS()), nil
}

// ints returns an INTS attribute, or def (which may be nil) when absent.
func (a attrs) ints(name string, def []int64) ([]int64, error) {
	p, ok := a[name]
	if !ok {
		return def, nil
	}
	if kind(p) != onnxpb.AttributeProto_INTS {
		return nil, fmt.Errorf("attribute %s is %s, want INTS", name, kind(p))
	}
	if len(p.GetInts()) > maxRank*2 {
		return nil, fmt.Errorf("attribute %s has %d values", name, len(p.GetInts()))
	}
	return p.GetInts(), nil
}

func (a attrs) floats(name string) ([]float32, error) {
	p := a[name]
	if kind(p) != onnxpb.AttributeProto_FLOATS {
		return nil, fmt.Errorf("attribute %s is %s, want FLOATS", name, kind(p))
	}
	return p.GetFloats(), nil
}
