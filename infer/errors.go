package infer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
)

// Sentinel errors. Every error Load, LoadBytes and Run return wraps one of
// them (a *LoadError matches each kind of problem it lists).
var (
	// ErrInvalidModel: the file is not a well-formed ONNX model (bad
	// protobuf, dangling names, cycles, tensors whose data does not match
	// their shape …). It is internal/onnxmodel's, so it is also
	// onnximport.ErrInvalidModel.
	ErrInvalidModel = onnxmodel.ErrInvalidModel
	// ErrUnsupported: a well-formed model uses something this runtime does
	// not implement (an op, an attribute value, a data type, an IR version
	// or opset outside the supported range). It is internal/onnxmodel's.
	ErrUnsupported = onnxmodel.ErrUnsupported
	// ErrInput: the tensors given to Run do not fit the model (unknown or
	// missing names, wrong shapes or element types), or an option is out
	// of range.
	ErrInput = errors.New("bad input")
	// ErrMemoryBudget: a plan (the model's buffers for one set of input
	// shapes) needs more memory than Options.MaxMemory allows; nothing of
	// it was allocated. The error names the largest tensors.
	ErrMemoryBudget = errors.New("memory budget exceeded")
	// ErrInternal: a bug in the runtime (a panic, in a kernel or one of
	// its worker tasks, caught and reported as an error of the run; the
	// session stays usable). It names the node that was running.
	ErrInternal = errors.New("internal error")
)

// Problem is one thing wrong with a model, found while loading it.
type Problem struct {
	// Node and OpType identify the node; both are empty for problems with
	// the model or graph as a whole (an initializer, a graph input …).
	Node   string
	OpType string
	// Msg says what is wrong.
	Msg string
	// Invalid is true for a malformed model (ErrInvalidModel), false for
	// something well-formed the runtime does not support (ErrUnsupported).
	Invalid bool
}

func (p Problem) String() string {
	if p.OpType == "" && p.Node == "" {
		return p.Msg
	}
	return fmt.Sprintf("node %q (%s): %s", p.Node, p.OpType, p.Msg)
}

// LoadError lists every problem found while validating a model, so one
// error tells the user everything that stands between the model and a run.
type LoadError struct {
	Problems []Problem
}

func (e *LoadError) Error() string {
	var b strings.Builder
	unsupported, invalid := 0, 0
	for _, p := range e.Problems {
		if p.Invalid {
			invalid++
		} else {
			unsupported++
		}
	}
	switch {
	case invalid == 0:
		fmt.Fprintf(&b, "infer: the model uses %d unsupported feature%s:", unsupported, plural(unsupported))
	case unsupported == 0:
		fmt.Fprintf(&b, "infer: invalid model, %d problem%s:", invalid, plural(invalid))
	default:
		fmt.Fprintf(&b, "infer: invalid model, %d problem%s and %d unsupported feature%s:", invalid, plural(invalid), unsupported, plural(unsupported))
	}
	for _, p := range e.Problems {
		b.WriteString("\n\t")
		b.WriteString(p.String())
	}
	return b.String()
}

// Is matches ErrInvalidModel and ErrUnsupported by the kinds of problem
// the error lists.
func (e *LoadError) Is(target error) bool {
	for _, p := range e.Problems {
		if (target == ErrInvalidModel && p.Invalid) || (target == ErrUnsupported && !p.Invalid) {
			return true
		}
	}
	return false
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// NodeError is an error found while planning or running one node; it
// wraps the cause (ErrInput for shapes that do not fit the op, …).
type NodeError struct {
	Node, OpType string
	Err          error
}

func (e *NodeError) Error() string {
	return fmt.Sprintf("infer: node %q (%s): %v", e.Node, e.OpType, e.Err)
}

func (e *NodeError) Unwrap() error { return e.Err }

func nodeError(n *node, err error) error {
	return &NodeError{Node: n.name, OpType: n.opType, Err: err}
}

// errShape is a shape problem found while planning: the inputs are
// well-typed but their shapes do not fit the op. It wraps ErrInput since
// the shapes come from the inputs given to Run.
func errShape(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInput, fmt.Sprintf(format, args...))
}
