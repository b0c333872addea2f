package onnximport

import (
	"errors"
	"fmt"
	"strings"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
)

// ErrInvalidModel: the bytes are not a well-formed ONNX model (bad or
// truncated protobuf, dangling names, cycles, tensors whose data does not
// match their shape …). It is internal/onnxmodel's, so it is also
// infer.ErrInvalidModel. Every error Load and FromBytes return wraps it or
// ErrUnsupported.
var ErrInvalidModel = onnxmodel.ErrInvalidModel

// ErrUnsupported: a well-formed model that cannot become a build.Graph (an
// op build.Graph has no equivalent for, an attribute value it cannot
// express, an opset or data type outside what is read).
var ErrUnsupported = errors.New("cannot import")

// Blocker is one node that stands between a model and a build.Graph.
type Blocker struct {
	Node   string `json:"node"`
	OpType string `json:"op_type"`
	Reason string `json:"reason"`
}

func (b Blocker) String() string {
	return fmt.Sprintf("node %q (%s): %s", b.Node, b.OpType, b.Reason)
}

// BlockedError lists every node that blocks an import, so one error names
// all of them. It wraps ErrUnsupported.
type BlockedError struct {
	Nodes []Blocker
}

func (e *BlockedError) Error() string {
	var b strings.Builder
	if len(e.Nodes) == 1 {
		b.WriteString("onnximport: cannot import: 1 node has no build.Graph equivalent: ")
		b.WriteString(e.Nodes[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, "onnximport: cannot import: %d nodes have no build.Graph equivalent:", len(e.Nodes))
	for _, n := range e.Nodes {
		b.WriteString("\n\t")
		b.WriteString(n.String())
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrUnsupported) true.
func (e *BlockedError) Unwrap() error { return ErrUnsupported }

func invalidf(format string, args ...any) error {
	return fmt.Errorf("onnximport: %w: %s", ErrInvalidModel, fmt.Sprintf(format, args...))
}

func unsupportedf(format string, args ...any) error {
	return fmt.Errorf("onnximport: %w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

// layerError makes an error of internal/onnxmodel one of this package:
// "not supported" there is "cannot import" (ErrUnsupported) here.
func layerError(err error) error {
	if errors.Is(err, onnxmodel.ErrUnsupported) {
		return fmt.Errorf("%w: %s", ErrUnsupported, onnxmodel.TrimSentinel(err))
	}
	return err
}
