package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/infer"
)

// httpError is an answer other than 200: a status and a message for
// {"error": …}. A zero code means the client has gone: nothing is written.
type httpError struct {
	code int
	msg  string
}

func errorf(code int, format string, args ...any) *httpError {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(errorResponse{Error: "encoding the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorResponse{Error: msg})
}

func (e *httpError) write(w http.ResponseWriter) {
	if e.code == 0 {
		return
	}
	if e.code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, e.code, e.msg)
}

func (s *Server) live(w http.ResponseWriter, _ *http.Request, _ *route) {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
}

// ready is true while the server takes requests: every model is loaded
// before it listens, and it turns false when a shutdown begins, so that a
// load balancer stops sending before the listener closes.
func (s *Server) ready(w http.ResponseWriter, _ *http.Request, _ *route) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

func (s *Server) serverMetadata(w http.ResponseWriter, _ *http.Request, _ *route) {
	writeJSON(w, http.StatusOK, serverMetadata{Name: "resnetctl", Version: s.cfg.Version, Extensions: []string{extensionBinary}})
}

func (s *Server) modelMetadata(w http.ResponseWriter, _ *http.Request, rt *route) {
	if m := s.lookup(w, rt); m != nil {
		writeJSON(w, http.StatusOK, m.metadata())
	}
}

func (s *Server) modelReady(w http.ResponseWriter, _ *http.Request, rt *route) {
	m := s.lookup(w, rt)
	if m == nil {
		return
	}
	code, ready := http.StatusOK, !s.draining.Load()
	if !ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, struct {
		Name  string `json:"name"`
		Ready bool   `json:"ready"`
	}{m.name, ready})
}

// admit counts an inference request in, or refuses it with 429 when
// MaxInflight are running: refusing at once keeps queues, and the memory
// of the bodies they hold, bounded.
func (s *Server) admit() (release func(), e *httpError) {
	if s.inflight.Add(1) > int64(s.cfg.MaxInflight) {
		s.inflight.Add(-1)
		return nil, errorf(http.StatusTooManyRequests, "too many requests in flight (the limit is %d); retry later", s.cfg.MaxInflight)
	}
	return func() { s.inflight.Add(-1) }, nil
}

// readBody reads the request body, at most MaxBody bytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *httpError) {
	if r.ContentLength > s.cfg.MaxBody {
		return nil, errorf(http.StatusRequestEntityTooLarge, "the body is %d bytes; the limit is %d", r.ContentLength, s.cfg.MaxBody)
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case err == nil:
		return buf.Bytes(), nil
	case errors.As(err, &tooLarge):
		return nil, errorf(http.StatusRequestEntityTooLarge, "the body is over the limit of %d bytes", s.cfg.MaxBody)
	case errors.As(err, &netErr) && netErr.Timeout():
		return nil, errorf(http.StatusRequestTimeout, "the body did not arrive within the read timeout (%v)", s.cfg.ReadTimeout)
	}
	return nil, errorf(http.StatusBadRequest, "reading the body: %v", err)
}

func (s *Server) infer(w http.ResponseWriter, r *http.Request, rt *route) {
	m := s.lookup(w, rt)
	if m == nil {
		return
	}
	if e := s.inferRequest(w, r, m); e != nil {
		e.write(w)
	}
}

func (s *Server) inferRequest(w http.ResponseWriter, r *http.Request, m *model) *httpError {
	release, e := s.admit()
	if e != nil {
		return e
	}
	defer release()
	defer m.begin()()
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	body, e := s.readBody(w, r)
	if e != nil {
		return e
	}
	jsonPart, binPart, e := splitBody(r, body)
	if e != nil {
		return e
	}
	var req inferRequest
	if err := json.Unmarshal(jsonPart, &req); err != nil {
		return errorf(http.StatusBadRequest, "malformed inference request: %v", err)
	}
	inputs, rows, e := m.requestInputs(&req, binPart, s.cfg.MaxElements)
	if e != nil {
		return e
	}
	outputs, e := m.requestedOutputs(&req)
	if e != nil {
		return e
	}
	allBinary, _ := req.Parameters.boolParam("binary_data_output") // checked in requestInputs
	j, e := s.wait(ctx, r, m, inputs, rows)
	if e != nil {
		return e
	}
	resp := inferResponse{ModelName: m.name, ModelVersion: m.version, ID: req.ID, Outputs: make([]responseOutput, 0, len(outputs))}
	var bin []byte
	anyBinary := false
	for _, o := range outputs {
		t := j.out[o.name]
		if t == nil {
			return errorf(http.StatusInternalServerError, "model %s gave no output %q", m.name, o.name)
		}
		ro := responseOutput{Name: o.name, Shape: t.Shape, Datatype: datatypeOf(t.Type())}
		if allBinary || o.binary {
			start := len(bin)
			bin = appendBinary(bin, t)
			ro.Parameters = map[string]any{"binary_data_size": len(bin) - start}
			anyBinary = true
		} else {
			if t.Type() == infer.Float16 {
				for _, h := range t.Float16 {
					if h&0x7c00 == 0x7c00 {
						return errorf(http.StatusInternalServerError, "output %s holds NaN or infinity, which JSON cannot carry (ask for binary_data)", o.name)
					}
				}
			}
			if t.Type() == infer.Float32 {
				if k := classify.NonFinite(t.Float32); k != "" {
					return errorf(http.StatusInternalServerError, "output %s holds %s, which JSON cannot carry (ask for binary_data)", o.name, k)
				}
			}
			ro.Data = tensorData(t)
		}
		resp.Outputs = append(resp.Outputs, ro)
	}
	writeInferResponse(w, &resp, bin, anyBinary)
	return nil
}

// requestInputs checks a request's inputs against the model and decodes
// them, in the model's input order, with the number of rows they hold.
func (m *model) requestInputs(req *inferRequest, bin []byte, maxElems int) ([]*infer.Tensor, int, *httpError) {
	bad := func(format string, args ...any) ([]*infer.Tensor, int, *httpError) {
		return nil, 0, errorf(http.StatusBadRequest, format, args...)
	}
	if err := req.Parameters.check(""); err != nil {
		return bad("%v", err)
	}
	for i := range req.Inputs {
		if err := req.Inputs[i].Parameters.check("input " + req.Inputs[i].Name + ": "); err != nil {
			return bad("%v", err)
		}
	}
	binParts, err := binaryInputs(req, bin)
	if err != nil {
		return bad("%v", err)
	}
	if len(req.Inputs) == 0 {
		return bad("the request has no inputs (the model's: %s)", m.inputNames())
	}
	given := map[string]*requestInput{}
	for i := range req.Inputs {
		in := &req.Inputs[i]
		if given[in.Name] != nil {
			return bad("input %q is given twice", in.Name)
		}
		given[in.Name] = in
	}
	tensors := make([]*infer.Tensor, len(m.meta.Inputs))
	rows := -1
	for i, v := range m.meta.Inputs {
		in := given[v.Name]
		if in == nil {
			return bad("input %q is missing (the model's: %s)", v.Name, m.inputNames())
		}
		delete(given, v.Name)
		if want := datatypeOf(v.DType); in.Datatype != want {
			return bad("input %s has datatype %q; the model's input is %s", v.Name, in.Datatype, want)
		}
		if in.Shape == nil {
			return bad("input %s has no shape", v.Name)
		}
		shape, n := make([]int, len(in.Shape)), 1
		for k, d := range in.Shape {
			if d <= 0 {
				return bad("input %s: shape %v: every dimension must be at least 1", v.Name, in.Shape)
			}
			if d > int64(maxElems/n) {
				return nil, 0, errorf(http.StatusRequestEntityTooLarge, "input %s: shape %v is over the limit of %d elements", v.Name, in.Shape, maxElems)
			}
			shape[k], n = int(d), n*int(d)
		}
		if err := m.checkShape(v, shape); err != nil {
			return bad("%v", err)
		}
		var t *infer.Tensor
		var err error
		if b, ok := binParts[v.Name]; ok {
			t, err = decodeBinary(b, v.DType, shape, n)
		} else if len(in.Data) == 0 {
			return bad("input %s has no data", v.Name)
		} else {
			t, err = parseData(in.Data, v.DType, shape, n)
		}
		if err != nil {
			return bad("input %s: %v", v.Name, err)
		}
		if m.mode != batchNone {
			if rows >= 0 && shape[0] != rows {
				return bad("the inputs have %d and %d rows; batched inputs must have as many", rows, shape[0])
			}
			rows = shape[0]
		}
		tensors[i] = t
	}
	for name := range given {
		return bad("unknown input %q (the model's: %s)", name, m.inputNames())
	}
	return tensors, max(rows, 1), nil
}

// wantedOutput is an output to answer with, and whether as binary data.
type wantedOutput struct {
	name   string
	binary bool
}

// requestedOutputs returns the outputs to answer with: those the request
// names, in its order, else all of the model's.
func (m *model) requestedOutputs(req *inferRequest) ([]wantedOutput, *httpError) {
	var names []wantedOutput
	if len(req.Outputs) == 0 {
		for _, o := range m.meta.Outputs {
			names = append(names, wantedOutput{name: o.Name})
		}
		return names, nil
	}
	known := map[string]bool{}
	var all []string
	for _, o := range m.meta.Outputs {
		known[o.Name] = true
		all = append(all, strconv.Quote(o.Name))
	}
	seen := map[string]bool{}
	for _, o := range req.Outputs {
		if !known[o.Name] {
			return nil, errorf(http.StatusBadRequest, "unknown output %q (the model's: %s)", o.Name, strings.Join(all, ", "))
		}
		if seen[o.Name] {
			return nil, errorf(http.StatusBadRequest, "output %q is requested twice", o.Name)
		}
		if err := o.Parameters.check("output " + o.Name + ": "); err != nil {
			return nil, errorf(http.StatusBadRequest, "%v", err)
		}
		bin, _ := o.Parameters.boolParam("binary_data") // checked above
		seen[o.Name] = true
		names = append(names, wantedOutput{name: o.Name, binary: bin})
	}
	return names, nil
}

func (m *model) inputNames() string {
	var q []string
	for _, v := range m.meta.Inputs {
		q = append(q, strconv.Quote(v.Name))
	}
	return strings.Join(q, ", ")
}

// wait hands the inputs to the model's batcher and waits for the answer,
// the request's timeout, or the client leaving.
func (s *Server) wait(ctx context.Context, r *http.Request, m *model, inputs []*infer.Tensor, rows int) (*job, *httpError) {
	j := newJob(ctx, jobKey(m.mode, inputs), rows, inputs)
	switch err := m.batcher.submit(j); {
	case errors.Is(err, errStopped):
		return nil, errorf(http.StatusServiceUnavailable, "%v", err)
	case err != nil:
		return nil, errorf(http.StatusTooManyRequests, "model %s: %v; retry later", m.name, err)
	}
	select {
	case <-j.done:
	case <-ctx.Done():
	case <-m.batcher.done:
	}
	select {
	case <-j.done:
	default:
		switch {
		case r.Context().Err() != nil:
			return nil, &httpError{} // the client has gone
		case ctx.Err() != nil:
			return nil, errorf(http.StatusGatewayTimeout, "model %s: no answer within the request timeout (%v)", m.name, s.cfg.Timeout)
		}
		return nil, errorf(http.StatusServiceUnavailable, "%v", errStopped)
	}
	switch {
	case j.err == nil:
		return j, nil
	case errors.Is(j.err, infer.ErrInput):
		return nil, errorf(http.StatusBadRequest, "model %s: %v", m.name, j.err)
	case errors.Is(j.err, errStopped):
		return nil, errorf(http.StatusServiceUnavailable, "%v", j.err)
	case errors.Is(j.err, context.DeadlineExceeded):
		return nil, errorf(http.StatusGatewayTimeout, "model %s: no answer within the request timeout (%v)", m.name, s.cfg.Timeout)
	case errors.Is(j.err, context.Canceled) && r.Context().Err() != nil:
		return nil, &httpError{}
	}
	return nil, errorf(http.StatusInternalServerError, "model %s: %v", m.name, j.err)
}

// classifyResponse is the classify endpoint's answer.
type classifyResponse struct {
	ModelName    string                `json:"model_name"`
	ModelVersion string                `json:"model_version"`
	Predictions  []classify.Prediction `json:"predictions"`
}

// classify answers POST /v1/models/{name}:classify: the body is an image
// (JPEG, PNG, GIF, BMP or WebP), preprocessed as the model's metadata says
// (as `resnetctl predict` does), and the answer the top ?top= classes
// (default 3) with their names.
func (s *Server) classify(w http.ResponseWriter, r *http.Request, rt *route) {
	m := s.lookup(w, rt)
	if m == nil {
		return
	}
	if e := s.classifyRequest(w, r, m); e != nil {
		e.write(w)
	}
}

func (s *Server) classifyRequest(w http.ResponseWriter, r *http.Request, m *model) *httpError {
	if m.setup == nil {
		return errorf(http.StatusBadRequest, "model %s does not classify images: %v", m.name, m.setupErr)
	}
	top := 3
	if q := r.URL.Query().Get("top"); q != "" {
		k, err := strconv.Atoi(q)
		if err != nil || k < 1 {
			return errorf(http.StatusBadRequest, "top=%s: want a whole number of at least 1", q)
		}
		top = k
	}
	release, e := s.admit()
	if e != nil {
		return e
	}
	defer release()
	defer m.begin()()
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	body, e := s.readBody(w, r)
	if e != nil {
		return e
	}
	dec := imgproc.Decoder{MaxBytes: s.cfg.MaxBody, MaxPixels: s.cfg.MaxImagePixels}
	img, _, err := dec.Decode(body, "the image")
	switch {
	case errors.Is(err, imgproc.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "%v", err)
	case err != nil:
		return errorf(http.StatusBadRequest, "%v", err)
	}
	x, err := m.imageSample(img)
	if err != nil {
		return errorf(http.StatusInternalServerError, "model %s: preprocessing: %v", m.name, err)
	}
	j, e := s.wait(ctx, r, m, []*infer.Tensor{x}, 1)
	if e != nil {
		return e
	}
	scores, err := m.setup.Scores(j.out, 1)
	if err != nil {
		return errorf(http.StatusInternalServerError, "model %s: %v", m.name, err)
	}
	preds, err := m.setup.Predict("the image", scores.Float32, top, m.weights)
	if err != nil {
		return errorf(http.StatusInternalServerError, "model %s: %v", m.name, err)
	}
	writeJSON(w, http.StatusOK, classifyResponse{ModelName: m.name, ModelVersion: m.version, Predictions: preds})
	return nil
}
