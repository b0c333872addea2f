package onnximport

import (
	"fmt"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// attrs reads a node's attributes, checking their types with
// internal/onnxmodel. Its errors carry no sentinel: the node that reads
// an attribute of the wrong type blocks the import.
type attrs map[string]*onnxpb.AttributeProto

func attrsOf(np *onnxpb.NodeProto) (attrs, error) {
	a, dup := onnxmodel.Attributes(np)
	if len(dup) > 0 {
		return nil, fmt.Errorf("attribute %q is given twice", dup[0])
	}
	return a, nil
}

// get returns the named attribute (nil when absent) if it has type want.
func (a attrs) get(name string, want onnxmodel.AttrType) (*onnxpb.AttributeProto, error) {
	return onnxmodel.Attr(name, a[name], want)
}

func (a attrs) int(name string, def int64) (int64, error) {
	p, err := a.get(name, onnxmodel.AttrInt)
	if p == nil {
		return def, err
	}
	return p.GetI(), nil
}

func (a attrs) float(name string, def float32) (float32, error) {
	p, err := a.get(name, onnxmodel.AttrFloat)
	if p == nil {
		return def, err
	}
	return p.GetF(), nil
}

func (a attrs) str(name, def string) (string, error) {
	p, err := a.get(name, onnxmodel.AttrString)
	if p == nil {
		return def, err
	}
	return string(p.GetS()), nil
}

// ints returns an INTS attribute, or def (which may be nil) when absent.
func (a attrs) ints(name string, def []int64) ([]int64, error) {
	p, err := a.get(name, onnxmodel.AttrInts)
	if p == nil {
		return def, err
	}
	if len(p.GetInts()) > maxRank*2 {
		return nil, fmt.Errorf("attribute %s has %d values", name, len(p.GetInts()))
	}
	return p.GetInts(), nil
}

// floats returns a FLOATS attribute; absent is an error.
func (a attrs) floats(name string) ([]float32, error) {
	p, err := a.get(name, onnxmodel.AttrFloats)
	if p == nil && err == nil {
		err = fmt.Errorf("attribute %s is missing", name)
	}
	return p.GetFloats(), err
}
