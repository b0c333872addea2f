package infer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// nodeTestsAtOpset7 are node tests written at an opset below the 7 this
// runtime starts at, whose ops have the same version at opset 7: the
// model's opset import is raised to 7 and the test's own data checked.
var nodeTestsAtOpset7 = []string{
	"test_instancenorm_epsilon", // InstanceNormalization-6
	"test_instancenorm_example",
	"test_globalaveragepool", // GlobalAveragePool-1
	"test_globalaveragepool_precomputed",
	"test_globalmaxpool", // GlobalMaxPool-1
	"test_globalmaxpool_precomputed",
}

// TestNodeTestsAtOpset7 runs nodeTestsAtOpset7 (each is also in
// nodeTestsIgnored, since at its own opset it is refused).
func TestNodeTestsAtOpset7(t *testing.T) {
	if _, err := os.Stat(nodeTestDir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("ONNX node test data is not installed (%v); CI is set, so this is a failure", err)
		}
		t.Skipf("SKIP (not a pass): ONNX node test data is not installed (%v)", err)
	}
	for _, name := range nodeTestsAtOpset7 {
		t.Run(name, func(t *testing.T) {
			if _, ok := nodeTestsIgnored[name]; !ok {
				t.Fatalf("%s is not in the ignore list: it runs at its own opset", name)
			}
			dir := filepath.Join(nodeTestDir, name)
			b, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			mp := &onnxpb.ModelProto{}
			if err := proto.Unmarshal(b, mp); err != nil {
				t.Fatal(err)
			}
			raised := false
			for _, o := range mp.GetOpsetImport() {
				if (o.GetDomain() == "" || o.GetDomain() == "ai.onnx") && o.GetVersion() < MinOpset {
					o.Version = MinOpset
					raised = true
				}
			}
			if !raised {
				t.Fatalf("%s is at opset %d already: move it to the run list", name, mp.GetOpsetImport()[0].GetVersion())
			}
			b, err = proto.Marshal(mp)
			if err != nil {
				t.Fatal(err)
			}
			if err := nodeTest(dir, b); err != nil {
				t.Fatal(err)
			}
		})
	}
}
