package serve

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/onnxmodel"
)

// The binary tensor data extension of the protocol (as Triton defines it,
// "binary_tensor_data"): the body is the JSON request followed by the
// tensors' raw bytes. The header Inference-Header-Content-Length says
// where the JSON ends; an input whose parameters hold binary_data_size
// takes that many bytes, in the order of the request's inputs, as
// little-endian row-major elements. Outputs come back the same way when
// the request's parameters say binary_data_output: true or an output's
// say binary_data: true; the answer then carries the same header.
// JSON numbers cost more to write and read than the models cost to run on
// small inputs (a CIFAR image is 3,072 of them), so this is what clients
// that care about throughput speak.
const (
	headerLength    = "Inference-Header-Content-Length"
	extensionBinary = "binary_tensor_data"
)

// splitBody returns the JSON part of a request body and its binary part.
func splitBody(r *http.Request, body []byte) (jsonPart, binPart []byte, e *httpError) {
	h := r.Header.Get(headerLength)
	if h == "" {
		return body, nil, nil
	}
	n, err := strconv.ParseInt(h, 10, 64)
	if err != nil || n < 0 || n > int64(len(body)) {
		return nil, nil, errorf(http.StatusBadRequest, "header %s is %q; it must be the length of the JSON part, 0 to %d", headerLength, h, len(body))
	}
	return body[:n], body[n:], nil
}

// intParam returns the parameter name as a non-negative integer, if given.
func (p parameters) intParam(name string) (int64, bool, error) {
	v, ok := p[name]
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 0 {
		return 0, true, fmt.Errorf("parameter %s is %s; it must be a non-negative integer", name, v)
	}
	return n, true, nil
}

// boolParam returns the parameter name as a boolean (false when absent).
func (p parameters) boolParam(name string) (bool, error) {
	v, ok := p[name]
	if !ok {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		return false, fmt.Errorf("parameter %s is %s; it must be true or false", name, v)
	}
	return b, nil
}

// binaryInputs assigns the binary part to the request's inputs that ask
// for it, in the request's order. Every byte must be taken.
func binaryInputs(req *inferRequest, bin []byte) (map[string][]byte, error) {
	parts := map[string][]byte{}
	off := int64(0)
	for i := range req.Inputs {
		in := &req.Inputs[i]
		size, ok, err := in.Parameters.intParam("binary_data_size")
		if err != nil {
			return nil, fmt.Errorf("input %s: %v", in.Name, err)
		}
		if !ok {
			continue
		}
		if len(in.Data) != 0 {
			return nil, fmt.Errorf("input %s has both data and binary_data_size; give one", in.Name)
		}
		if size > int64(len(bin))-off {
			return nil, fmt.Errorf("input %s: binary_data_size %d runs past the end of the body (%d binary bytes from offset %d)", in.Name, size, int64(len(bin))-off, off)
		}
		parts[in.Name] = bin[off : off+size]
		off += size
	}
	if off != int64(len(bin)) {
		return nil, fmt.Errorf("the body has %d bytes after the JSON part; the inputs' binary_data_size add up to %d", len(bin), off)
	}
	return parts, nil
}

// elemBytes is the size of one element of dt on the wire.
func elemBytes(dt infer.DType) int {
	switch dt {
	case infer.Float32, infer.Int32:
		return 4
	case infer.Float64, infer.Int64:
		return 8
	case infer.Bool, infer.Uint8, infer.Int8:
		return 1
	case infer.Float16:
		return 2
	}
	return 0
}

// decodeBinary reads n little-endian elements of dt. Float inputs must be
// finite, as JSON numbers are: NaN or ±Inf would come back as outputs no
// answer can carry.
func decodeBinary(b []byte, dt infer.DType, shape []int, n int) (*infer.Tensor, error) {
	size := elemBytes(dt)
	if size == 0 {
		return nil, fmt.Errorf("datatype %s has no binary form here", datatypeOf(dt))
	}
	if len(b) != n*size {
		return nil, fmt.Errorf("binary_data_size is %d bytes; shape %v of %s needs %d", len(b), shape, datatypeOf(dt), n*size)
	}
	t := newTensor(dt, append([]int(nil), shape...))
	switch dt {
	case infer.Float32:
		// The finiteness test is on the bits (an all-ones exponent is
		// NaN or infinity): converting to float64 for math.IsNaN/IsInf
		// made this loop 2.6% of the server's CPU.
		b := b[:4*len(t.Float32)]
		for k := range t.Float32 {
			u := binary.LittleEndian.Uint32(b[4*k:])
			if u&0x7f800000 == 0x7f800000 {
				return nil, fmt.Errorf("element %d is %v; inputs must be finite", k, math.Float32frombits(u))
			}
			t.Float32[k] = math.Float32frombits(u)
		}
	case infer.Float64:
		for k := range t.Float64 {
			v := math.Float64frombits(binary.LittleEndian.Uint64(b[8*k:]))
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("element %d is %v; inputs must be finite", k, v)
			}
			t.Float64[k] = v
		}
	case infer.Int32:
		for k := range t.Int32 {
			t.Int32[k] = int32(binary.LittleEndian.Uint32(b[4*k:]))
		}
	case infer.Int64:
		for k := range t.Int64 {
			t.Int64[k] = int64(binary.LittleEndian.Uint64(b[8*k:]))
		}
	case infer.Uint8:
		copy(t.Uint8, b)
	case infer.Int8:
		for k, c := range b {
			t.Int8[k] = int8(c)
		}
	case infer.Float16:
		for k := range t.Float16 {
			h := binary.LittleEndian.Uint16(b[2*k:])
			if h&0x7c00 == 0x7c00 {
				return nil, fmt.Errorf("element %d is %v; inputs must be finite", k, onnxmodel.HalfToFloat(h))
			}
			t.Float16[k] = h
		}
	case infer.Bool:
		for k, c := range b {
			if c > 1 {
				return nil, fmt.Errorf("element %d is byte %d; BOOL elements are 0 or 1", k, c)
			}
			t.Bool[k] = c == 1
		}
	}
	return t, nil
}

// appendBinary appends t's elements, little-endian.
func appendBinary(dst []byte, t *infer.Tensor) []byte {
	switch t.Type() {
	case infer.Float32:
		for _, v := range t.Float32 {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case infer.Float64:
		for _, v := range t.Float64 {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
		}
	case infer.Int32:
		for _, v := range t.Int32 {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(v))
		}
	case infer.Int64:
		for _, v := range t.Int64 {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(v))
		}
	case infer.Uint8:
		dst = append(dst, t.Uint8...)
	case infer.Int8:
		for _, v := range t.Int8 {
			dst = append(dst, byte(v))
		}
	case infer.Float16:
		for _, h := range t.Float16 {
			dst = binary.LittleEndian.AppendUint16(dst, h)
		}
	case infer.Bool:
		for _, v := range t.Bool {
			if v {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		}
	}
	return dst
}

// writeInferResponse writes the answer: plain JSON, or, when some outputs
// are binary, the JSON followed by their bytes with the length header.
func writeInferResponse(w http.ResponseWriter, resp *inferResponse, bin []byte, binary bool) {
	if !binary {
		writeJSON(w, http.StatusOK, resp)
		return
	}
	js, err := json.Marshal(resp)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(headerLength, strconv.Itoa(len(js)))
	w.Header().Set("Content-Length", strconv.Itoa(len(js)+len(bin)))
	w.WriteHeader(http.StatusOK)
	w.Write(js)
	w.Write(bin)
}
