package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// CheckError is returned by [CheckONNX] when the checker rejected one or
// more models.
type CheckError struct {
	// Failures lists the rejected models in the order they were given.
	Failures []CheckFailure
}

// CheckFailure is one model rejected by the ONNX checker.
type CheckFailure struct {
	// Path is the model path as passed to CheckONNX.
	Path string
	// Reason is the checker's message (for example an onnx ValidationError).
	Reason string
}

// Error lists every failing path with its reason, one per line.
func (e *CheckError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "onnx checker rejected %d model(s):", len(e.Failures))
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "\n  %s: %s", f.Path, f.Reason)
	}
	return b.String()
}

// CheckONNX validates model files with the reference ONNX checker using the
// [DefaultTools]. See [Tools.CheckONNX].
func CheckONNX(ctx context.Context, paths ...string) error {
	t, err := DefaultTools()
	if err != nil {
		return err
	}
	return t.CheckONNX(ctx, paths...)
}

// CheckONNX runs onnx.checker.check_model(model, full_check=True) on every
// path in one Python process (tools/onnxcheck/check.py). It returns nil if
// all passed, a *[CheckError] naming each rejected path and the checker's
// reason, or another error if the checker itself could not run. Models that
// import a default-domain opset newer than the installed onnx supports (17
// for Debian's onnx 1.12) are rejected rather than checked against the wrong
// operator schemas.
func (t Tools) CheckONNX(ctx context.Context, paths ...string) error {
	if len(paths) == 0 {
		return nil
	}
	script := filepath.Join(t.Root, "tools", "onnxcheck", "check.py")
	args := append([]string{script}, paths...)
	cmd := exec.CommandContext(ctx, t.Python, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("interop: %s %s: %w", t.Python, script, ctx.Err())
	}

	type line struct {
		Path  *string `json:"path"`
		OK    bool    `json:"ok"`
		Error string  `json:"error"`
	}
	var got []line
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("interop: %s: unexpected output %q: %v%s", script, sc.Text(), err, stderrTail(stderr.Bytes()))
		}
		if l.Path == nil { // the checker could not start (no onnx module)
			return fmt.Errorf("interop: %s: %s%s", script, l.Error, stderrTail(stderr.Bytes()))
		}
		got = append(got, l)
	}
	if len(got) != len(paths) {
		return fmt.Errorf("interop: %s %s: %v; %d results for %d paths%s",
			t.Python, script, runErr, len(got), len(paths), stderrTail(stderr.Bytes()))
	}

	ce := &CheckError{}
	for i, l := range got {
		if !l.OK {
			ce.Failures = append(ce.Failures, CheckFailure{Path: paths[i], Reason: oneLine(l.Error)})
		}
	}
	var ee *exec.ExitError
	switch {
	case len(ce.Failures) > 0:
		return ce
	case runErr != nil && !errors.As(runErr, &ee):
		return fmt.Errorf("interop: %s: %w", script, runErr)
	case runErr != nil:
		return fmt.Errorf("interop: %s: all models passed but the checker exited with %v%s",
			script, runErr, stderrTail(stderr.Bytes()))
	}
	return nil
}

// oneLine collapses runs of white space, including the newlines onnx puts
// in its messages, to single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
