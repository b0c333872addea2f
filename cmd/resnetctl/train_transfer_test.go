package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/train"
	"google.golang.org/protobuf/proto"
)

func TestParseClassList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
		err  string
	}{
		{"0-4", []int{0, 1, 2, 3, 4}, ""},
		{"0,2,5", []int{0, 2, 5}, ""},
		{"7, 0-2", []int{7, 0, 1, 2}, ""},
		{"3", nil, "at least 2"},
		{"0-2,1", nil, "twice"},
		{"4-2", nil, "range"},
		{"a-b", nil, "not a class index"},
		{"-1,2", nil, "not a class index"},
	} {
		got, err := parseClassList(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%q: %v %v, want %v", c.in, got, err, c.want)
		}
	}
}

func TestOnlyClasses(t *testing.T) {
	ds, err := cifar.EmbeddedSample("test")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := onlyClasses(ds, []int{3, 5})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sub.Classes, []string{ds.Classes[3], ds.Classes[5]}) {
		t.Errorf("classes %v", sub.Classes)
	}
	n := 0
	for i, l := range ds.Labels {
		if l != 3 && l != 5 {
			continue
		}
		if want := map[int]int{3: 0, 5: 1}[l]; sub.Labels[n] != want || !slices.Equal(sub.Image(n).Pix, ds.Image(i).Pix) {
			t.Fatalf("image %d (original %d): label %d, want %d, or different pixels", n, i, sub.Labels[n], want)
		}
		n++
	}
	if n != sub.Len() || n == 0 {
		t.Errorf("%d images kept, want %d", sub.Len(), n)
	}
	if _, err := onlyClasses(ds, []int{0, 10}); err == nil {
		t.Error("class 10 of CIFAR-10 accepted")
	}
}

// TestTrainTransferLearning is the CLI side of the transfer experiment on
// the embedded sample: pretrain on classes 0-4 (a 5-class model, the
// subset recorded), then a new 10-class head on all classes with the
// backbone frozen and BatchNorm re-estimated (recorded; the convolutions
// stay the pretrained ones), resume (still frozen), and an --init from a
// file without resnetctl metadata takes its preprocessing from the data
// and says so.
func TestTrainTransferLearning(t *testing.T) {
	dir := t.TempDir()
	common := []string{"--data", "sample", "--limit", "64", "--batch", "32", "--model", "resnet8"}
	pre := filepath.Join(dir, "pre5")
	code, _, errOut := runCLI(append([]string{"train", "--only-classes", "0-4", "--epochs", "1", "--out", pre}, common...)...)
	if code != 0 || !strings.Contains(errOut, "only classes [0 1 2 3 4] of 10") {
		t.Fatalf("pretraining: exit %d %q", code, errOut)
	}
	c, err := train.LoadCheckpoint(filepath.Join(pre, "best"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.State.Recipe.OnlyClasses, []int{0, 1, 2, 3, 4}) || c.Graph.Spec.Classes != 5 {
		t.Fatalf("pretrained: recipe only_classes %v, %d classes", c.State.Recipe.OnlyClasses, c.Graph.Spec.Classes)
	}
	base := filepath.Join(pre, "best", "model.onnx")

	common = common[:len(common)-2] // --init fixes the model
	out := filepath.Join(dir, "transfer")
	code, _, errOut = runCLI(append([]string{"train", "--init", base, "--classes", "10", "--freeze", "backbone",
		"--bn", "reestimate", "--bn-batches", "2", "--epochs", "1", "--out", out}, common...)...)
	if code != 0 || !strings.Contains(errOut, "new 10-class head") || !strings.Contains(errOut, "over 2 batches of 32") {
		t.Fatalf("transfer: exit %d %q", code, errOut)
	}
	tr, err := train.LoadCheckpoint(filepath.Join(out, "epoch-0001"))
	if err != nil {
		t.Fatal(err)
	}
	if r := tr.State.Recipe; r.Freeze != train.FreezeBackbone || r.BNReestimate != 2 || r.OnlyClasses != nil {
		t.Errorf("transfer recipe: freeze %q, bn_reestimate %d, only_classes %v", r.Freeze, r.BNReestimate, r.OnlyClasses)
	}
	sameBackbone := func(name string, ck *train.Checkpoint) {
		t.Helper()
		for _, p := range c.Graph.Params {
			q := ck.Graph.Param(p.Name)
			switch {
			case strings.HasPrefix(p.Name, "fc."):
			case strings.Contains(p.Name, "running_"): // re-estimated
			case q == nil || !slices.Equal(p.Data, q.Data):
				t.Errorf("%s: %s is not the pretrained one", name, p.Name)
			}
		}
	}
	sameBackbone("transfer", tr)
	if code, _, errOut := runCLI("train", "--out", out, "--resume", "--epochs", "2"); code != 0 {
		t.Fatalf("resume: exit %d %q", code, errOut)
	}
	res, err := train.LoadCheckpoint(filepath.Join(out, "epoch-0002"))
	if err != nil {
		t.Fatal(err)
	}
	sameBackbone("resumed", res)
	for _, p := range tr.Graph.Params {
		if strings.Contains(p.Name, "running_") && !slices.Equal(p.Data, res.Graph.Param(p.Name).Data) {
			t.Errorf("resumed: frozen BatchNorm statistic %s changed", p.Name)
		}
	}

	// A stranger's file: no preprocessing metadata.
	m := &onnxpb.ModelProto{}
	b, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	m.MetadataProps, m.ProducerName = nil, "someone"
	if b, err = proto.Marshal(m); err != nil {
		t.Fatal(err)
	}
	stranger := filepath.Join(dir, "stranger.onnx")
	if err := os.WriteFile(stranger, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(append([]string{"train", "--init", stranger, "--only-classes", "0-4", "--epochs", "1", "--out", filepath.Join(dir, "s")}, common...)...)
	if code != 0 || !strings.Contains(errOut, "does not say how its inputs were preprocessed; training with the cifar10 preset") || !strings.Contains(errOut, "fine-tuning") {
		t.Fatalf("stranger: exit %d %q", code, errOut)
	}
	s, err := train.LoadCheckpoint(filepath.Join(dir, "s", "epoch-0001"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Graph.Spec.Preprocess.Name != "cifar10" {
		t.Errorf("the stranger's checkpoint records preprocessing %+v", s.Graph.Spec.Preprocess)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--freeze", "head"}, "--freeze"},
		{[]string{"train", "--bn", "guess"}, "--bn"},
		{[]string{"train", "--bn-batches", "3"}, "goes with --bn reestimate"},
		{[]string{"train", "--only-classes", "4"}, "at least 2"},
		{[]string{"train", "--resume", "--out", "x", "--bn", "reestimate"}, "does not go with --resume"},
	} {
		if code, _, errOut := runCLI(c.args...); code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d %q, want usage error with %q", c.args, code, errOut, c.want)
		}
	}
}
