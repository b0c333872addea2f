// Package interop checks this project's ONNX exports against other people's
// software, for use from Go tests:
//
//   - [ORT] runs models with ONNX Runtime (npm onnxruntime-node, CPU execution
//     provider) through the Node.js script tools/ort/run.js, one node process
//     per call however many jobs it holds.
//   - [CheckONNX] validates model files with the reference ONNX checker
//     (Debian's python3-onnx, onnx 1.12) through tools/onnxcheck/check.py.
//   - [RequireORT] and [RequireChecker] make a test skip, with instructions,
//     when a tool is not installed, or fail when the environment variable CI
//     is non-empty, so that a missing tool never passes silently in CI.
//
// The tools are installed by
//
//	apt-get install -y python3-onnx
//	cd tools/ort && ONNXRUNTIME_NODE_INSTALL=skip npm ci
//
// (Node.js 20 and npm come with the machine). The package is internal and
// meant for tests only, which is why it imports "testing".
package interop

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Environment variables that override where the tools are looked for. They
// exist for unusual machines and for checking the skip/fail behaviour by
// pointing at a tool that is not there.
const (
	// EnvNode names the node executable (default "node", looked up in PATH).
	EnvNode = "RESNETCTL_NODE"
	// EnvPython names the Python interpreter that has the onnx module
	// (default /usr/bin/python3, Debian's, which python3-onnx installs into).
	EnvPython = "RESNETCTL_PYTHON"
	// EnvORTDir names the directory holding run.js, package.json and
	// node_modules (default tools/ort under the repository root).
	EnvORTDir = "RESNETCTL_ORT_DIR"
)

// Tools says where the external programs used by this package are.
type Tools struct {
	// Root is the repository root: the directory that holds go.mod.
	Root string
	// Node is the node executable, a path or a name looked up in PATH.
	Node string
	// Python is the Python interpreter that can import onnx.
	Python string
	// ORTDir is the directory with run.js, package.json and node_modules.
	ORTDir string
}

// DefaultTools finds the repository root with [RepoRoot] and fills in the
// default tool locations, each overridable by its environment variable
// ([EnvNode], [EnvPython], [EnvORTDir]).
func DefaultTools() (Tools, error) {
	root, err := RepoRoot()
	if err != nil {
		return Tools{}, err
	}
	t := Tools{
		Root:   root,
		Node:   envOr(EnvNode, "node"),
		Python: envOr(EnvPython, "/usr/bin/python3"),
		ORTDir: envOr(EnvORTDir, filepath.Join(root, "tools", "ort")),
	}
	return t, nil
}

// RepoRoot walks up from the working directory to the first directory that
// contains a go.mod file and returns it.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("interop: find repository root: %w", err)
	}
	for dir := wd; ; {
		if st, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !st.IsDir() {
			return dir, nil
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("interop: find repository root: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("interop: no go.mod in %s or any parent directory", wd)
		}
		dir = parent
	}
}

// envOr returns the value of the environment variable key, or def when it
// is unset or empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
