package gorgonnx

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Each Run evaluates the model in a child process: the current executable,
// started again with childEnv set. The init function below notices the
// variable before main (or the test runner) starts, serves one request and
// exits, so every binary that links this package can act as its own helper
// and no separate binary has to be built or installed.
//
// Protocol: the parent writes the request to the child's stdin (childMagic,
// then uvarint-prefixed shape, model bytes and little-endian float32 input);
// the child answers on stdout with one gob-encoded childResponse and exits 0.
// Anything else (a non-zero exit, a signal, a missing or unreadable answer)
// is a failed evaluation; the start of the child's stderr goes into the
// error message.

const (
	childEnv   = "RESNETCTL_GORGONNX_CHILD"
	childMagic = "gorgonnx-child-1"

	// maxChildStderr is how much of a failed child's stderr is kept.
	maxChildStderr = 4 << 10
	// childWaitDelay bounds how long Run waits for the child's pipes after
	// the child exited or was killed.
	childWaitDelay = 5 * time.Second
)

func init() {
	if os.Getenv(childEnv) == childMagic {
		os.Exit(serveChild(os.Stdin, os.Stdout))
	}
}

// childResponse is the child's answer.
type childResponse struct {
	Outputs map[string]Output
	// Err is the evaluation's error message, empty on success.
	Err string
	// Unsupported reports that Err wraps ErrUnsupported.
	Unsupported bool
}

// childError is an evaluation error reported by the child, with the same
// message as the error runLocal returned there.
type childError struct {
	msg         string
	unsupported bool
}

func (e *childError) Error() string { return e.msg }

// Unwrap makes errors.Is(err, ErrUnsupported) work across the process
// boundary.
func (e *childError) Unwrap() error {
	if e.unsupported {
		return ErrUnsupported
	}
	return nil
}

// executable is the path of the current executable, found once.
var executable = sync.OnceValues(os.Executable)

// runChild evaluates the model in a fresh child process. The caller has
// checked the input and the model's structure.
func runChild(ctx context.Context, model []byte, input []float32, shape []int) (map[string]Output, error) {
	exe, err := executable()
	if err != nil {
		return nil, fmt.Errorf("gorgonnx: cannot find the current executable to run onnx-go in a child process: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"="+childMagic)
	cmd.Stdin = requestReader(model, input, shape)
	var stdout bytes.Buffer
	stderr := &headBuffer{max: maxChildStderr}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	cmd.WaitDelay = childWaitDelay
	runErr := cmd.Run()
	if runErr != nil {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("gorgonnx: onnx-go child process %s failed: %v%s", exe, runErr, stderr.excerpt())
	}
	var resp childResponse
	if err := gob.NewDecoder(&stdout).Decode(&resp); err != nil {
		return nil, fmt.Errorf("gorgonnx: onnx-go child process %s gave no readable answer: %v%s", exe, err, stderr.excerpt())
	}
	if resp.Err != "" {
		return nil, &childError{msg: resp.Err, unsupported: resp.Unsupported}
	}
	return resp.Outputs, nil
}

// serveChild is the child's side: it reads one request from in, evaluates
// it and writes the answer to out. It returns the process exit code.
func serveChild(in io.Reader, out *os.File) int {
	// The answer owns stdout; route anything else printed to stderr.
	os.Stdout = os.Stderr
	model, input, shape, err := readRequest(bufio.NewReaderSize(in, 1<<20))
	if err != nil {
		fmt.Fprintf(os.Stderr, "gorgonnx child: reading the request: %v\n", err)
		return 2
	}
	var resp childResponse
	resp.Outputs, err = runLocal(model, input, shape)
	if err != nil {
		resp = childResponse{Err: err.Error(), Unsupported: errors.Is(err, ErrUnsupported)}
	}
	w := bufio.NewWriter(out)
	if err := gob.NewEncoder(w).Encode(&resp); err != nil {
		fmt.Fprintf(os.Stderr, "gorgonnx child: writing the answer: %v\n", err)
		return 2
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(os.Stderr, "gorgonnx child: writing the answer: %v\n", err)
		return 2
	}
	return 0
}

// requestReader streams a request without copying the model.
func requestReader(model []byte, input []float32, shape []int) io.Reader {
	head := []byte(childMagic)
	head = binary.AppendUvarint(head, uint64(len(shape)))
	for _, d := range shape {
		head = binary.AppendUvarint(head, uint64(d))
	}
	head = binary.AppendUvarint(head, uint64(len(model)))
	tail := binary.AppendUvarint(nil, uint64(len(input)))
	tail = append(make([]byte, 0, len(tail)+4*len(input)), tail...)
	for _, v := range input {
		tail = binary.LittleEndian.AppendUint32(tail, math.Float32bits(v))
	}
	return io.MultiReader(bytes.NewReader(head), bytes.NewReader(model), bytes.NewReader(tail))
}

// readRequest decodes what requestReader wrote.
func readRequest(r *bufio.Reader) (model []byte, input []float32, shape []int, err error) {
	magic := make([]byte, len(childMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		return nil, nil, nil, err
	}
	if string(magic) != childMagic {
		return nil, nil, nil, fmt.Errorf("bad magic %q", magic)
	}
	length := func(what string, max uint64) (int, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		if n > max {
			return 0, fmt.Errorf("%s %d is too large", what, n)
		}
		return int(n), nil
	}
	rank, err := length("rank", 64)
	if err != nil {
		return nil, nil, nil, err
	}
	shape = make([]int, rank)
	for i := range shape {
		if shape[i], err = length("dimension", math.MaxInt32); err != nil {
			return nil, nil, nil, err
		}
	}
	n, err := length("model size", math.MaxInt32)
	if err != nil {
		return nil, nil, nil, err
	}
	model = make([]byte, n)
	if _, err := io.ReadFull(r, model); err != nil {
		return nil, nil, nil, fmt.Errorf("model: %w", err)
	}
	if n, err = length("input size", math.MaxInt32/4); err != nil {
		return nil, nil, nil, err
	}
	raw := make([]byte, 4*n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, nil, nil, fmt.Errorf("input: %w", err)
	}
	input = make([]float32, n)
	for i := range input {
		input[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return model, input, shape, nil
}

// headBuffer keeps the first max bytes written to it and drops the rest.
type headBuffer struct {
	buf bytes.Buffer
	max int
	cut bool
}

func (b *headBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room < len(p) {
		b.buf.Write(p[:max(room, 0)])
		b.cut = true
	} else {
		b.buf.Write(p)
	}
	return len(p), nil
}

// excerpt formats the kept stderr for an error message.
func (b *headBuffer) excerpt() string {
	s := strings.TrimSpace(b.buf.String())
	if s == "" {
		return ""
	}
	if b.cut {
		s += "\n..."
	}
	return "; its stderr:\n" + s
}
