package interop

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Tensor is a dense float32 tensor in row-major (C) order.
type Tensor struct {
	// Dims is the shape, outermost dimension first.
	Dims []int
	// Data holds the product of Dims elements.
	Data []float32
}

// Job is one model run: a model file and the tensors to feed it.
type Job struct {
	// Model is the path of the .onnx file (relative paths are relative to
	// the working directory).
	Model string
	// Inputs maps graph input names to their values.
	Inputs map[string]Tensor
}

// Result is ONNX Runtime's answer to one [Job].
type Result struct {
	// Outputs maps each graph output name to its value. It is empty when
	// Err is set, except for outputs that were produced before a failure
	// that concerned only other outputs.
	Outputs map[string]Tensor
	// InputNames and OutputNames are the session's graph input and output
	// names, in the model's order; they are set whenever the model loaded.
	InputNames, OutputNames []string
	// InputInfo and OutputInfo describe the session's inputs and outputs
	// (element type and shape, symbolic dimensions included), as
	// onnxruntime-node reports them; set whenever the model loaded.
	InputInfo, OutputInfo []ValueInfo
	// SessionTime is how long creating the InferenceSession took. Sessions
	// are shared by jobs on the same model, so it is set only on the first
	// such job.
	SessionTime time.Duration
	// RunTime is how long InferenceSession.run took.
	RunTime time.Duration
	// Err is ONNX Runtime's (or the harness's) error message for this job,
	// empty on success. A failing job does not stop the others.
	Err string
}

// ValueInfo describes one graph input or output of a loaded session.
type ValueInfo struct {
	// Name is the value's name in the graph.
	Name string
	// IsTensor is false for sequences, maps and other non-tensor values;
	// Type and Shape are then empty.
	IsTensor bool
	// Type is the element type as onnxruntime-node names it: "float32",
	// "int64", "bool", ...
	Type string
	// Shape is one entry per dimension: a decimal size ("3") for a fixed
	// dimension, or the symbolic name ("N") for a dynamic one.
	Shape []string
}

// ORT runs jobs with ONNX Runtime on the CPU using the [DefaultTools]. See
// [Tools.ORT].
func ORT(ctx context.Context, jobs []Job) ([]Result, error) {
	t, err := DefaultTools()
	if err != nil {
		return nil, err
	}
	return t.ORT(ctx, jobs)
}

// ORT runs every job with ONNX Runtime (onnxruntime-node, CPU execution
// provider) in a single node process, sharing one InferenceSession between
// jobs on the same model, and returns one Result per job, in order.
//
// Problems confined to one job (a model that does not exist or does not
// load, a wrong input name, a failing run) are reported in that job's
// Result.Err and do not stop the others. The error return is for problems
// with the whole call: a malformed Job (data length not matching dims), a
// missing tool, a crash of the node process, or ctx being done.
func (t Tools) ORT(ctx context.Context, jobs []Job) ([]Result, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	for i, j := range jobs {
		if j.Model == "" {
			return nil, fmt.Errorf("interop: job %d: no model path", i)
		}
		for name, in := range j.Inputs {
			if err := in.check(); err != nil {
				return nil, fmt.Errorf("interop: job %d (%s): input %q: %w", i, j.Model, name, err)
			}
		}
	}
	dir, err := os.MkdirTemp("", "interop-ort-")
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	defer os.RemoveAll(dir)

	req := ortRequest{Jobs: make([]ortJob, len(jobs))}
	for i, j := range jobs {
		oj := ortJob{
			Model:  j.Model,
			Inputs: make(map[string]ortFile, len(j.Inputs)),
			OutDir: filepath.Join(dir, "out", strconv.Itoa(i)),
		}
		k := 0
		for name, in := range j.Inputs {
			file := filepath.Join(dir, fmt.Sprintf("in-%d-%d.f32", i, k))
			k++
			if err := writeFloat32s(file, in.Data); err != nil {
				return nil, fmt.Errorf("interop: %w", err)
			}
			oj.Inputs[name] = ortFile{Dims: in.Dims, File: file}
		}
		req.Jobs[i] = oj
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}

	script := filepath.Join(t.ORTDir, "run.js")
	cmd := exec.CommandContext(ctx, t.Node, script)
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interop: node %s: %w", script, ctx.Err())
	}

	var resp ortResponse
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("interop: node %s: %v; no JSON response (%v)%s",
			script, runErr, err, stderrTail(stderr.Bytes()))
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("interop: node %s: %s%s", script, resp.Error, stderrTail(stderr.Bytes()))
	}
	if runErr != nil {
		return nil, fmt.Errorf("interop: node %s: %v%s", script, runErr, stderrTail(stderr.Bytes()))
	}
	if len(resp.Results) != len(jobs) {
		return nil, fmt.Errorf("interop: node %s: %d results for %d jobs", script, len(resp.Results), len(jobs))
	}

	results := make([]Result, len(jobs))
	for i, r := range resp.Results {
		results[i] = r.toResult()
	}
	return results, nil
}

// check reports whether len(Data) matches Dims.
func (x Tensor) check() error {
	n := 1
	for _, d := range x.Dims {
		if d < 0 {
			return fmt.Errorf("negative dimension in %v", x.Dims)
		}
		if d != 0 && n > math.MaxInt/d {
			return fmt.Errorf("dims %v overflow", x.Dims)
		}
		n *= d
	}
	if n != len(x.Data) {
		return fmt.Errorf("dims %v need %d values, have %d", x.Dims, n, len(x.Data))
	}
	return nil
}

// ortRequest is run.js's stdin.
type ortRequest struct {
	Jobs []ortJob `json:"jobs"`
}

// ortJob is one job in an ortRequest.
type ortJob struct {
	Model  string             `json:"model"`
	Inputs map[string]ortFile `json:"inputs"`
	OutDir string             `json:"out_dir"`
}

// ortFile is a tensor stored as a raw little-endian file.
type ortFile struct {
	Dims []int  `json:"dims"`
	Type string `json:"type,omitempty"`
	File string `json:"file"`
}

// ortResponse is run.js's stdout.
type ortResponse struct {
	Error      string      `json:"error"`
	ORTVersion string      `json:"ort_version"`
	Results    []ortResult `json:"results"`
}

// ortResult is one job's entry in an ortResponse.
type ortResult struct {
	InputNames     []string           `json:"input_names"`
	OutputNames    []string           `json:"output_names"`
	InputMetadata  []ortValueMeta     `json:"input_metadata"`
	OutputMetadata []ortValueMeta     `json:"output_metadata"`
	Outputs        map[string]ortFile `json:"outputs"`
	SessionMS      float64            `json:"session_ms"`
	RunMS          float64            `json:"run_ms"`
	Error          string             `json:"error"`
}

// ortValueMeta is run.js's description of a graph input or output.
type ortValueMeta struct {
	Name     string            `json:"name"`
	IsTensor bool              `json:"is_tensor"`
	Type     string            `json:"type"`
	Shape    []json.RawMessage `json:"shape"`
}

// toResult converts a job's response, reading its output files.
func (r ortResult) toResult() Result {
	res := Result{
		InputNames:  r.InputNames,
		OutputNames: r.OutputNames,
		InputInfo:   valueInfos(r.InputMetadata),
		OutputInfo:  valueInfos(r.OutputMetadata),
		SessionTime: msDuration(r.SessionMS),
		RunTime:     msDuration(r.RunMS),
		Err:         r.Error,
	}
	var errs []string
	if r.Error != "" {
		errs = append(errs, r.Error)
	}
	for _, name := range r.OutputNames {
		f, ok := r.Outputs[name]
		if !ok {
			continue
		}
		if f.Type != "float32" {
			errs = append(errs, fmt.Sprintf("output %q has element type %s; interop.Tensor holds float32 only", name, f.Type))
			continue
		}
		data, err := readFloat32s(f.File, f.Dims)
		if err != nil {
			errs = append(errs, fmt.Sprintf("output %q: %v", name, err))
			continue
		}
		if res.Outputs == nil {
			res.Outputs = make(map[string]Tensor)
		}
		res.Outputs[name] = Tensor{Dims: f.Dims, Data: data}
	}
	res.Err = strings.Join(errs, "; ")
	return res
}

// valueInfos converts run.js's metadata, rendering numeric dimensions in
// decimal and symbolic ones by name.
func valueInfos(ms []ortValueMeta) []ValueInfo {
	if ms == nil {
		return nil
	}
	out := make([]ValueInfo, len(ms))
	for i, m := range ms {
		vi := ValueInfo{Name: m.Name, IsTensor: m.IsTensor, Type: m.Type}
		for _, d := range m.Shape {
			var s string
			if json.Unmarshal(d, &s) != nil {
				s = string(d) // a number: keep its JSON text
			}
			vi.Shape = append(vi.Shape, s)
		}
		out[i] = vi
	}
	return out
}

// msDuration converts fractional milliseconds to a Duration.
func msDuration(ms float64) time.Duration {
	return time.Duration(ms * float64(time.Millisecond))
}

// writeFloat32s writes data to path as raw little-endian float32.
func writeFloat32s(path string, data []float32) error {
	buf := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return os.WriteFile(path, buf, 0o600)
}

// readFloat32s reads a raw little-endian float32 file holding a tensor of
// the given dims.
func readFloat32s(path string, dims []int) ([]float32, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	n := 1
	for _, d := range dims {
		n *= d
	}
	if len(buf) != 4*n {
		return nil, fmt.Errorf("%s has %d bytes, dims %v need %d", path, len(buf), dims, 4*n)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return out, nil
}

// stderrTail formats the last part of a tool's stderr for an error message,
// or returns "" when it is empty.
func stderrTail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	const max = 2000
	if len(s) > max {
		s = "..." + s[len(s)-max:]
	}
	return "\nstderr:\n" + s
}
