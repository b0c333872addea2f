package onnxmodel

import (
	"fmt"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// AttrType is an attribute's type (AttributeProto.AttributeType).
type AttrType = onnxpb.AttributeProto_AttributeType

// Attribute types.
const (
	AttrFloat   = onnxpb.AttributeProto_FLOAT
	AttrInt     = onnxpb.AttributeProto_INT
	AttrString  = onnxpb.AttributeProto_STRING
	AttrTensor  = onnxpb.AttributeProto_TENSOR
	AttrFloats  = onnxpb.AttributeProto_FLOATS
	AttrInts    = onnxpb.AttributeProto_INTS
	AttrStrings = onnxpb.AttributeProto_STRINGS
)

// Attributes maps a node's attributes by name. dup lists the names given
// more than once (each repeat), in order; the last one given is kept.
func Attributes(np *onnxpb.NodeProto) (attrs map[string]*onnxpb.AttributeProto, dup []string) {
	attrs = map[string]*onnxpb.AttributeProto{}
	for _, a := range np.GetAttribute() {
		if _, ok := attrs[a.GetName()]; ok {
			dup = append(dup, a.GetName())
		}
		attrs[a.GetName()] = a
	}
	return attrs, dup
}

// TypeOf is the declared type of an attribute, or the one its filled
// field implies when the type is unset (very old files).
func TypeOf(a *onnxpb.AttributeProto) AttrType {
	if a.GetType() != onnxpb.AttributeProto_UNDEFINED {
		return a.GetType()
	}
	switch {
	case len(a.GetInts()) > 0:
		return AttrInts
	case len(a.GetFloats()) > 0:
		return AttrFloats
	case len(a.GetStrings()) > 0:
		return AttrStrings
	case a.GetT() != nil:
		return AttrTensor
	case a.GetG() != nil:
		return onnxpb.AttributeProto_GRAPH
	case len(a.GetS()) > 0:
		return AttrString
	case a.GetF() != 0:
		return AttrFloat
	}
	return AttrInt
}

// AttrError says why an attribute cannot be read as the type wanted.
type AttrError struct {
	Name string
	// Ref: the attribute refers to a function's attribute (unsupported);
	// otherwise it has another type than the one wanted (invalid).
	Ref       bool
	Got, Want AttrType
}

func (e *AttrError) Error() string {
	if e.Ref {
		return fmt.Sprintf("attribute %q refers to a function attribute", e.Name)
	}
	return fmt.Sprintf("attribute %q is %s, want %s", e.Name, e.Got, e.Want)
}

// Attr checks that a (nil when absent) can be read as want. It returns
// a, nil when it can, nil, nil when a is nil, and an *AttrError when not.
func Attr(name string, a *onnxpb.AttributeProto, want AttrType) (*onnxpb.AttributeProto, error) {
	if a == nil {
		return nil, nil
	}
	if a.GetRefAttrName() != "" {
		return nil, &AttrError{Name: name, Ref: true}
	}
	if got := TypeOf(a); got != want {
		return nil, &AttrError{Name: name, Got: got, Want: want}
	}
	return a, nil
}
