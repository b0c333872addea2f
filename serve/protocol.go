package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unsafe"

	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/onnxmodel"
)

// The JSON objects of the Open Inference Protocol's REST API, named as the
// specification names them ($inference_request, $metadata_model_response …).

type inferRequest struct {
	ID         *string         `json:"id"`
	Parameters parameters      `json:"parameters"`
	Inputs     []requestInput  `json:"inputs"`
	Outputs    []requestOutput `json:"outputs"`
}

type requestInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters parameters      `json:"parameters"`
	Data       json.RawMessage `json:"data"`
}

type requestOutput struct {
	Name       string     `json:"name"`
	Parameters parameters `json:"parameters"`
}

type inferResponse struct {
	ModelName    string           `json:"model_name"`
	ModelVersion string           `json:"model_version,omitempty"`
	ID           *string          `json:"id,omitempty"`
	Outputs      []responseOutput `json:"outputs"`
}

type responseOutput struct {
	Name       string         `json:"name"`
	Shape      []int          `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data,omitempty"`
}

type serverMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

type modelMetadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions,omitempty"`
	Platform string           `json:"platform"`
	Inputs   []metadataTensor `json:"inputs"`
	Outputs  []metadataTensor `json:"outputs"`
}

type metadataTensor struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

type errorResponse struct {
	Error string `json:"error"`
}

// parameters is a $parameters object: names to a string, number or
// boolean. None is defined by the protocol and none changes what this
// server does, but malformed ones are refused.
type parameters map[string]json.RawMessage

func (p parameters) check(where string) error {
	for name, v := range p {
		v = bytes.TrimSpace(v)
		if len(v) == 0 || !(v[0] == '"' || v[0] == '-' || v[0] >= '0' && v[0] <= '9' || v[0] == 't' || v[0] == 'f') {
			return fmt.Errorf("%sparameter %q must be a string, number or boolean", where, name)
		}
	}
	// The binary tensor extension's parameters, checked where they
	// apply; here only their form.
	if _, _, err := p.intParam("binary_data_size"); err != nil {
		return fmt.Errorf("%s%v", where, err)
	}
	for _, name := range []string{"binary_data", "binary_data_output"} {
		if _, err := p.boolParam(name); err != nil {
			return fmt.Errorf("%s%v", where, err)
		}
	}
	return nil
}

// datatypes are the protocol's names of the element types the runtime
// holds.
var datatypes = map[infer.DType]string{
	infer.Float32: "FP32",
	infer.Float64: "FP64",
	infer.Int32:   "INT32",
	infer.Int64:   "INT64",
	infer.Bool:    "BOOL",
	infer.Uint8:   "UINT8",
	infer.Int8:    "INT8",
	infer.Float16: "FP16",
}

func datatypeOf(dt infer.DType) string {
	if s, ok := datatypes[dt]; ok {
		return s
	}
	return dt.String()
}

// newTensor returns a zeroed tensor of type dt.
func newTensor(dt infer.DType, shape []int) *infer.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	t := &infer.Tensor{Shape: shape, DType: dt}
	switch dt {
	case infer.Float32:
		t.Float32 = make([]float32, n)
	case infer.Float64:
		t.Float64 = make([]float64, n)
	case infer.Int32:
		t.Int32 = make([]int32, n)
	case infer.Int64:
		t.Int64 = make([]int64, n)
	case infer.Bool:
		t.Bool = make([]bool, n)
	case infer.Uint8:
		t.Uint8 = make([]uint8, n)
	case infer.Int8:
		t.Int8 = make([]int8, n)
	case infer.Float16:
		t.Float16 = make([]uint16, n)
	}
	return t
}

// tensorData returns the data field of t's type, for JSON: numbers for
// UINT8 (a []uint8 would be written as base64) and FP16 (as the float32
// values the half-precision numbers are).
func tensorData(t *infer.Tensor) any {
	switch t.Type() {
	case infer.Uint8:
		v := make([]int, len(t.Uint8))
		for i, x := range t.Uint8 {
			v[i] = int(x)
		}
		return v
	case infer.Int8:
		return t.Int8
	case infer.Float16:
		v := make([]float32, len(t.Float16))
		for i, h := range t.Float16 {
			v[i] = onnxmodel.HalfToFloat(h)
		}
		return v
	case infer.Float64:
		return t.Float64
	case infer.Int32:
		return t.Int32
	case infer.Int64:
		return t.Int64
	case infer.Bool:
		return t.Bool
	}
	return t.Float32
}

// parseData decodes the "data" of an input: a JSON array in row-major
// order, either flat or nested exactly as shape says (the two forms the
// protocol allows), whose elements fit dt: numbers for FP32/FP64, integers
// in range for INT32/INT64, true/false for BOOL. raw is valid JSON (the
// request was decoded before), so the scanner only tells structure and
// tokens apart. n is the product of shape.
func parseData(raw []byte, dt infer.DType, shape []int, n int) (*infer.Tensor, error) {
	t := newTensor(dt, append([]int(nil), shape...))
	p := dataParser{raw: raw, dt: dt, t: t, shape: shape, n: n, leafDepth: -1}
	p.skipSpace()
	if p.i >= len(raw) || raw[p.i] != '[' {
		return nil, fmt.Errorf("data must be a JSON array")
	}
	if err := p.array(1); err != nil {
		return nil, err
	}
	if p.count != n {
		return nil, fmt.Errorf("data has %d elements; shape %v needs %d", p.count, shape, n)
	}
	return t, nil
}

type dataParser struct {
	raw       []byte
	i         int
	dt        infer.DType
	t         *infer.Tensor
	shape     []int
	n, count  int
	leafDepth int // depth of the arrays holding elements: 1 (flat) or len(shape) (nested)
}

func (p *dataParser) skipSpace() {
	for p.i < len(p.raw) && (p.raw[p.i] == ' ' || p.raw[p.i] == '\n' || p.raw[p.i] == '\t' || p.raw[p.i] == '\r') {
		p.i++
	}
}

// array reads the array starting at p.i, at nesting depth (1 outermost).
func (p *dataParser) array(depth int) error {
	p.i++ // '['
	items := 0
	for {
		p.skipSpace()
		if p.raw[p.i] == ']' {
			p.i++
			break
		}
		if items > 0 {
			p.i++ // ','
			p.skipSpace()
		}
		items++
		if p.raw[p.i] == '[' {
			if depth >= len(p.shape) {
				return p.nestingError()
			}
			if err := p.array(depth + 1); err != nil {
				return err
			}
			continue
		}
		if p.leafDepth == -1 {
			p.leafDepth = depth
			if depth != 1 && depth != len(p.shape) {
				return p.nestingError()
			}
		} else if depth != p.leafDepth {
			return p.nestingError()
		}
		if err := p.element(); err != nil {
			return err
		}
	}
	// Nested data must match the shape at every level; flat data is
	// counted as a whole by parseData.
	if p.leafDepth > 1 && items != p.shape[depth-1] {
		return fmt.Errorf("nested data has %d entries at depth %d; shape %v says %d", items, depth, p.shape, p.shape[depth-1])
	}
	return nil
}

func (p *dataParser) nestingError() error {
	return fmt.Errorf("data must be a flat array or nested as shape %v", p.shape)
}

// element reads one scalar into the tensor.
func (p *dataParser) element() error {
	start := p.i
	for p.i < len(p.raw) && p.raw[p.i] != ',' && p.raw[p.i] != ']' && p.raw[p.i] != ' ' && p.raw[p.i] != '\n' && p.raw[p.i] != '\t' && p.raw[p.i] != '\r' {
		switch p.raw[p.i] {
		case '"':
			return fmt.Errorf("data element %d is a string; %s wants %s", p.count, datatypeOf(p.dt), p.want())
		case '{':
			return fmt.Errorf("data element %d is an object; %s wants %s", p.count, datatypeOf(p.dt), p.want())
		}
		p.i++
	}
	if p.i == start {
		return fmt.Errorf("data element %d is missing", p.count)
	}
	// A view of the bytes, not a copy: a string per element would be
	// most of the allocation of a request. raw does not change meanwhile,
	// and errors copy tok into their message.
	tok := unsafe.String(&p.raw[start], p.i-start)
	if p.count >= p.n {
		return fmt.Errorf("data has more than the %d elements shape %v needs", p.n, p.shape)
	}
	k := p.count
	p.count++
	var err error
	switch p.dt {
	case infer.Float32:
		var v float64
		v, err = strconv.ParseFloat(tok, 32)
		p.t.Float32[k] = float32(v)
	case infer.Float64:
		p.t.Float64[k], err = strconv.ParseFloat(tok, 64)
	case infer.Int32:
		var v int64
		v, err = strconv.ParseInt(tok, 10, 32)
		p.t.Int32[k] = int32(v)
	case infer.Int64:
		p.t.Int64[k], err = strconv.ParseInt(tok, 10, 64)
	case infer.Uint8:
		var v uint64
		v, err = strconv.ParseUint(tok, 10, 8)
		p.t.Uint8[k] = uint8(v)
	case infer.Int8:
		var v int64
		v, err = strconv.ParseInt(tok, 10, 8)
		p.t.Int8[k] = int8(v)
	case infer.Float16:
		var v float64
		v, err = strconv.ParseFloat(tok, 64)
		h := onnxmodel.HalfFromFloat64(v)
		if err == nil && h&0x7c00 == 0x7c00 { // rounds to ±Inf
			err = strconv.ErrRange
		}
		p.t.Float16[k] = h
	case infer.Bool:
		switch tok {
		case "true":
			p.t.Bool[k] = true
		case "false":
		default:
			err = strconv.ErrSyntax
		}
	}
	if err != nil {
		return fmt.Errorf("data element %d (%s) is not %s", k, tok, p.want())
	}
	return nil
}

// want describes the elements of the parser's type.
func (p *dataParser) want() string {
	switch p.dt {
	case infer.Float32:
		return "a number in float32 range"
	case infer.Float64:
		return "a number"
	case infer.Int32:
		return "an integer in int32 range"
	case infer.Int64:
		return "an integer in int64 range"
	case infer.Uint8:
		return "an integer from 0 to 255"
	case infer.Int8:
		return "an integer from -128 to 127"
	case infer.Float16:
		return "a number in float16 range (|x| < 65520)"
	}
	return "true or false"
}
