package examples

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the module's root folder.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	return root
}

// goCmd runs the go command in dir with extra environment, returning its
// combined output.
func goCmd(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestInferDeps: package infer links neither the gorgonnx engine (onnx-go,
// gorgonia and their dependencies, opt-in through package infer/gorgonnx)
// nor the exporter.
func TestInferDeps(t *testing.T) {
	out, err := goCmd(t, repoRoot(t), nil, "list", "-deps", "./infer")
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(out)
	for _, d := range deps {
		if strings.Contains(d, "gorgonia") || strings.Contains(d, "onnx-go") || strings.Contains(d, "owulveryck") ||
			d == "github.com/resnetctl/resnetctl/export" || strings.Contains(d, "gorgonnx") {
			t.Errorf("infer depends on %s", d)
		}
	}
	t.Logf("infer: %d packages", len(deps))
}

// TestOutsideModule builds the tutorial and the classify example in a
// temporary module that requires this one (replaced by this folder), as a
// program of another project would: internal packages are out of its
// reach. It runs the tutorial (one epoch on the embedded sample), then
// classifies an image with the model the tutorial saved, and checks that
// the classify program stays small (it links no onnx-go or gorgonia).
func TestOutsideModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and trains: slow")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	gomod := "module example.com/embed\n\ngo 1.26\n\nrequire github.com/resnetctl/resnetctl v0.0.0-00010101000000-000000000000\n\nreplace github.com/resnetctl/resnetctl => " + root + "\n"
	write := func(name string, b []byte) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write("go.mod", []byte(gomod))
	write("go.sum", read("go.sum"))
	write("tutorial/main.go", read("examples/tutorial/main.go"))
	write("classify/main.go", read("examples/classify/main.go"))

	// Offline when the module cache has everything, else through the
	// configured proxy.
	env := []string{"GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off", "GOTOOLCHAIN=local"}
	build := func(goproxy string) (string, error) {
		return goCmd(t, dir, append(env, "GOPROXY="+goproxy), "build", "-o", "bin/", "./tutorial", "./classify")
	}
	if out, err := build("off"); err != nil {
		proxy, _ := goCmd(t, dir, nil, "env", "GOPROXY")
		proxy = strings.TrimSpace(proxy)
		if proxy == "" || proxy == "off" {
			proxy = "https://proxy.golang.org,direct"
		}
		t.Logf("offline build failed (the module cache lacks some go.mod files), retrying with GOPROXY=%s: %v\n%s", proxy, err, out)
		if out, err := build(proxy); err != nil {
			t.Fatalf("building the examples in another module: %v\n%s", err, out)
		}
	}
	tutorial, classify := filepath.Join(dir, "bin", "tutorial"), filepath.Join(dir, "bin", "classify")

	st, err := os.Stat(classify)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("classify binary: %.1f MB", float64(st.Size())/1e6)
	if st.Size() >= 10<<20 {
		t.Errorf("the classify program is %d bytes, want under 10 MiB", st.Size())
	}
	if out, err := goCmd(t, dir, env, "version", "-m", classify); err != nil {
		t.Fatal(err)
	} else if strings.Contains(out, "gorgonia") || strings.Contains(out, "onnx-go") {
		t.Errorf("the classify program links onnx-go or gorgonia:\n%s", out)
	}

	model := filepath.Join(dir, "resnet20.onnx")
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s%s", filepath.Base(name), args, err, out, stderr.String())
		}
		return string(out)
	}
	out := run(tutorial, "-epochs", "1", "-out", model)
	t.Logf("tutorial:\n%s", out)
	for _, want := range []string{"train: 1000 images, test: 200 images", "epoch 1: loss ", "saved " + model, "test image 0 (a ", "  1. ", "  3. "} {
		if !strings.Contains(out, want) {
			t.Errorf("the tutorial's output lacks %q", want)
		}
	}

	img := filepath.Join(root, "imgproc", "testdata", "images", "natural.png")
	out = run(classify, "-k", "3", model, img)
	t.Logf("classify:\n%s", out)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	cifar10 := strings.Fields("airplane automobile bird cat deer dog frog horse ship truck")
	if len(lines) != 4 || lines[0] != img {
		t.Fatalf("classify printed %q, want the image's path and 3 predictions", out)
	}
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != string(rune('1'+i))+"." || !slices.Contains(cifar10, f[1]) || !strings.HasSuffix(f[2], "%") {
			t.Errorf("prediction line %q", l)
		}
	}
}
