package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Install instructions shown when a tool is missing.
const (
	// InstallORT tells how to install ONNX Runtime for [ORT].
	InstallORT = "make setup  (or: cd tools/ort && ONNXRUNTIME_NODE_INSTALL=skip npm ci; needs Node.js >= 20 with npm)"
	// InstallChecker tells how to install the ONNX checker for [CheckONNX].
	InstallChecker = "make setup  (or: apt-get install -y python3-onnx)"
)

// RequireORT makes the calling test usable only where [ORT] can run. If
// node or tools/ort/node_modules/onnxruntime-node is missing (or is not the
// version tools/ort/package.json pins), the test fails when the environment
// variable CI is non-empty and is skipped otherwise; both print what is
// missing and how to install it ([InstallORT]).
func RequireORT(t testing.TB) {
	t.Helper()
	tools, err := DefaultTools()
	if err == nil {
		err = tools.ORTAvailable()
	}
	require(t, "ONNX Runtime (onnxruntime-node)", InstallORT, err)
}

// RequireChecker makes the calling test usable only where [CheckONNX] can
// run. If the Python interpreter or its onnx module is missing, the test
// fails when the environment variable CI is non-empty and is skipped
// otherwise; both print what is missing and how to install it
// ([InstallChecker]).
func RequireChecker(t testing.TB) {
	t.Helper()
	tools, err := DefaultTools()
	if err == nil {
		err = tools.CheckerAvailable(context.Background())
	}
	require(t, "ONNX checker (python3-onnx)", InstallChecker, err)
}

// require skips or fails t, as the CI environment variable says, when err
// reports a missing tool.
func require(t testing.TB, what, install string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s is not available: %v\n\tinstall it with: %s", what, err, install)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s\n\tCI is set, so a missing interop tool is a failure, not a skip", msg)
		return
	}
	t.Skipf("SKIP (not a pass): %s\n\twith CI set this test would fail", msg)
}

// ORTAvailable returns nil if [Tools.ORT] can run: node is found, run.js is
// there, and node_modules holds onnxruntime-node at the version that
// package.json pins. Otherwise it says what is missing. It does not start
// node, so it is cheap.
func (t Tools) ORTAvailable() error {
	if _, err := os.Stat(filepath.Join(t.ORTDir, "run.js")); err != nil {
		return fmt.Errorf("runner script: %w", err)
	}
	if _, err := exec.LookPath(t.Node); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	want, err := pinnedVersion(filepath.Join(t.ORTDir, "package.json"))
	if err != nil {
		return err
	}
	installed := filepath.Join(t.ORTDir, "node_modules", "onnxruntime-node", "package.json")
	have, err := packageVersion(installed)
	if err != nil {
		return fmt.Errorf("onnxruntime-node is not installed: %w", err)
	}
	if have != want {
		return fmt.Errorf("%s is version %s but package.json pins %s (rerun npm ci)", installed, have, want)
	}
	return nil
}

// pinnedVersion returns the onnxruntime-node version that the package.json
// at path depends on.
func pinnedVersion(path string) (string, error) {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &pkg)
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	v := pkg.Dependencies["onnxruntime-node"]
	if v == "" {
		return "", fmt.Errorf("%s does not depend on onnxruntime-node", path)
	}
	return v, nil
}

// packageVersion returns the "version" field of the package.json at path.
func packageVersion(path string) (string, error) {
	var pkg struct {
		Version string `json:"version"`
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return pkg.Version, nil
}

// checkerProbes caches CheckerAvailable's answer per interpreter, since
// importing onnx takes a noticeable fraction of a second.
var checkerProbes sync.Map // Python path -> *checkerProbe

// checkerProbe is one cached CheckerAvailable answer.
type checkerProbe struct {
	once sync.Once
	err  error
}

// CheckerAvailable returns nil if [Tools.CheckONNX] can run: the Python
// interpreter is found and can import onnx.checker, and check.py is there.
// Otherwise it says what is missing. The import is tried once per
// interpreter per process.
func (t Tools) CheckerAvailable(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(t.Root, "tools", "onnxcheck", "check.py")); err != nil {
		return fmt.Errorf("checker script: %w", err)
	}
	if _, err := exec.LookPath(t.Python); err != nil {
		return fmt.Errorf("python: %w", err)
	}
	v, _ := checkerProbes.LoadOrStore(t.Python, &checkerProbe{})
	p := v.(*checkerProbe)
	p.once.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, t.Python, "-c", "import onnx.checker, onnx.defs").CombinedOutput()
		if err != nil {
			p.err = fmt.Errorf("%s cannot import onnx: %v: %s", t.Python, err, strings.TrimSpace(string(out)))
		}
	})
	return p.err
}
