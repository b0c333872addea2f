package gorgonnx

import (
	"errors"
	"fmt"
)

// This file holds a minimal, read-only protobuf wire decoder for the parts of
// an ONNX ModelProto the wrapper must see before handing the bytes to onnx-go:
// opset imports, node names/op types/domains/inputs/outputs, initializer
// names and the graph inputs/outputs with their declared shapes. onnx-go's own
// protobuf package (internal/onnx/ir) is internal and cannot be imported, and
// onnx-go does not expose opsets, node names or domains. Attributes are not
// decoded here: the wrapper sees them as onnx-go decoded them (see check.go).

// Field numbers from onnx.proto (stable since IR version 1).
const (
	fModelIRVersion   = 1
	fModelGraph       = 7
	fModelOpsetImport = 8

	fOpsetDomain  = 1
	fOpsetVersion = 2

	fGraphNode              = 1
	fGraphInitializer       = 5
	fGraphInput             = 11
	fGraphOutput            = 12
	fGraphSparseInitializer = 15

	fNodeInput  = 1
	fNodeOutput = 2
	fNodeName   = 3
	fNodeOpType = 4
	fNodeDomain = 7

	fTensorName = 8

	fValueInfoName = 1
	fValueInfoType = 2

	fTypeTensor = 1

	fTensorTypeElem  = 1
	fTensorTypeShape = 2

	fShapeDim = 1

	fDimValue = 1
	fDimParam = 2
)

// Protobuf wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// onnxFloat is TensorProto.DataType FLOAT.
const onnxFloat = 1

// modelInfo is what the wrapper needs to know about a model.
type modelInfo struct {
	irVersion    int64
	opsets       map[string]int64 // domain ("" for ai.onnx) -> version
	nodes        []*nodeInfo
	initializers map[string]bool
	inputs       []valueInfo // graph inputs, initializers included (IR<4 style)
	outputs      []valueInfo
	sparseInit   bool
	hasGraph     bool
}

// nodeInfo is one NodeProto without its attributes.
type nodeInfo struct {
	name, opType, domain string
	inputs, outputs      []string
}

// label names the node for error messages.
func (n *nodeInfo) label() string {
	name := n.name
	if name == "" && len(n.outputs) > 0 {
		name = "producing " + n.outputs[0]
	}
	return fmt.Sprintf("node %q (%s)", name, n.opType)
}

// valueInfo is one ValueInfoProto.
type valueInfo struct {
	name     string
	isTensor bool  // type is a tensor type
	elemType int64 // TensorProto.DataType, 0 if unknown
	hasShape bool
	dims     []dimInfo
}

// dimInfo is one TensorShapeProto.Dimension.
type dimInfo struct {
	value    int64 // valid when hasValue
	hasValue bool
	param    string // symbolic name, e.g. "batch"
}

// wireField is one decoded field.
type wireField struct {
	num  int
	typ  int
	u    uint64 // varint and fixed values
	data []byte // length-delimited payload
}

// errTruncated reports malformed protobuf bytes.
var errTruncated = errors.New("truncated or malformed protobuf")

// readVarint decodes a base-128 varint from b.
func readVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		v |= uint64(c&0x7f) << (7 * uint(i))
		if c < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errTruncated
}

// eachField calls fn for every field of the message encoded in b.
func eachField(b []byte, fn func(f wireField) error) error {
	for len(b) > 0 {
		key, n, err := readVarint(b)
		if err != nil {
			return err
		}
		b = b[n:]
		f := wireField{num: int(key >> 3), typ: int(key & 7)}
		if f.num <= 0 {
			return fmt.Errorf("invalid field number %d", f.num)
		}
		switch f.typ {
		case wireVarint:
			f.u, n, err = readVarint(b)
			if err != nil {
				return err
			}
			b = b[n:]
		case wireFixed64:
			if len(b) < 8 {
				return errTruncated
			}
			b = b[8:]
		case wireFixed32:
			if len(b) < 4 {
				return errTruncated
			}
			b = b[4:]
		case wireBytes:
			l, n, err := readVarint(b)
			if err != nil {
				return err
			}
			b = b[n:]
			if l > uint64(len(b)) {
				return errTruncated
			}
			f.data = b[:l]
			b = b[l:]
		default:
			return fmt.Errorf("unsupported protobuf wire type %d", f.typ)
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// parseModel decodes the parts of a ModelProto listed in modelInfo.
func parseModel(b []byte) (*modelInfo, error) {
	m := &modelInfo{opsets: map[string]int64{}, initializers: map[string]bool{}}
	err := eachField(b, func(f wireField) error {
		switch {
		case f.num == fModelIRVersion && f.typ == wireVarint:
			m.irVersion = int64(f.u)
		case f.num == fModelGraph && f.typ == wireBytes:
			m.hasGraph = true // repeated occurrences merge, as in protobuf
			return parseGraph(f.data, m)
		case f.num == fModelOpsetImport && f.typ == wireBytes:
			var domain string
			var version int64
			err := eachField(f.data, func(f wireField) error {
				switch {
				case f.num == fOpsetDomain && f.typ == wireBytes:
					domain = string(f.data)
				case f.num == fOpsetVersion && f.typ == wireVarint:
					version = int64(f.u)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if domain == "ai.onnx" {
				domain = ""
			}
			m.opsets[domain] = version
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// parseGraph decodes a GraphProto into m.
func parseGraph(b []byte, m *modelInfo) error {
	return eachField(b, func(f wireField) error {
		if f.typ != wireBytes {
			return nil
		}
		switch f.num {
		case fGraphNode:
			n, err := parseNode(f.data)
			if err != nil {
				return err
			}
			m.nodes = append(m.nodes, n)
		case fGraphInitializer:
			var name string
			err := eachField(f.data, func(f wireField) error {
				if f.num == fTensorName && f.typ == wireBytes {
					name = string(f.data)
				}
				return nil
			})
			if err != nil {
				return err
			}
			m.initializers[name] = true
		case fGraphInput, fGraphOutput:
			v, err := parseValueInfo(f.data)
			if err != nil {
				return err
			}
			if f.num == fGraphInput {
				m.inputs = append(m.inputs, v)
			} else {
				m.outputs = append(m.outputs, v)
			}
		case fGraphSparseInitializer:
			m.sparseInit = true
		}
		return nil
	})
}

// parseNode decodes a NodeProto, skipping its attributes.
func parseNode(b []byte) (*nodeInfo, error) {
	n := &nodeInfo{}
	err := eachField(b, func(f wireField) error {
		if f.typ != wireBytes {
			return nil
		}
		switch f.num {
		case fNodeInput:
			n.inputs = append(n.inputs, string(f.data))
		case fNodeOutput:
			n.outputs = append(n.outputs, string(f.data))
		case fNodeName:
			n.name = string(f.data)
		case fNodeOpType:
			n.opType = string(f.data)
		case fNodeDomain:
			n.domain = string(f.data)
		}
		return nil
	})
	return n, err
}

// parseValueInfo decodes a ValueInfoProto with a tensor type.
func parseValueInfo(b []byte) (valueInfo, error) {
	var v valueInfo
	err := eachField(b, func(f wireField) error {
		switch {
		case f.num == fValueInfoName && f.typ == wireBytes:
			v.name = string(f.data)
		case f.num == fValueInfoType && f.typ == wireBytes:
			return eachField(f.data, func(f wireField) error {
				if f.num != fTypeTensor || f.typ != wireBytes {
					return nil
				}
				v.isTensor = true
				return eachField(f.data, func(f wireField) error {
					switch {
					case f.num == fTensorTypeElem && f.typ == wireVarint:
						v.elemType = int64(f.u)
					case f.num == fTensorTypeShape && f.typ == wireBytes:
						v.hasShape = true
						return eachField(f.data, func(f wireField) error {
							if f.num != fShapeDim || f.typ != wireBytes {
								return nil
							}
							var d dimInfo
							err := eachField(f.data, func(f wireField) error {
								switch {
								case f.num == fDimValue && f.typ == wireVarint:
									d.value, d.hasValue = int64(f.u), true
								case f.num == fDimParam && f.typ == wireBytes:
									d.param = string(f.data)
								}
								return nil
							})
							v.dims = append(v.dims, d)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	return v, err
}
