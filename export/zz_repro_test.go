package export_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/gorgonnx"
	"github.com/resnetctl/resnetctl/models"
)

func zzModel(t *testing.T, name string, mutate func(*models.Spec), opts export.Options, seed uint64) ([]byte, models.Spec) {
	s, err := models.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&s)
	}
	g, err := build.New(s, build.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	perturbBN(g, seed)
	b, err := export.Marshal(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, s
}

func zzRun(t *testing.T, b []byte, s models.Spec, seed uint64, batch int) []float32 {
	in := randomInput(seed, s, batch)
	out, err := gorgonnx.Run(context.Background(), b, in.Data, in.Dims)
	if err != nil {
		t.Logf("run: %v", strings.SplitN(err.Error(), "\n", 2)[0])
		return nil
	}
	return out[export.LogitsName].Data
}

func TestZZRepro(t *testing.T) {
	fold, s20 := zzModel(t, "resnet20", shortcutB, export.Options{Opset: 13, FoldBN: true, Softmax: true}, 5)
	ref1 := zzRun(t, fold, s20, 5, 1)
	ref3 := zzRun(t, fold, s20, 5, 3)
	poison := strings.Split(os.Getenv("ZZ_POISON"), ",")
	for i, p := range poison {
		if p == "" {
			continue
		}
		start := time.Now()
		b, s := zzModel(t, p, nil, export.Options{}, uint64(i+1))
		zzRun(t, b, s, uint64(i+1), 1)
		zzRun(t, b, s, uint64(i+1), 3)
		ok1, e1, _ := agree(zzRun(t, fold, s20, 5, 1), ref1)
		ok3, e3, _ := agree(zzRun(t, fold, s20, 5, 3), ref3)
		t.Logf("after %s (%v): fold agrees b1 %v (%.3g) b3 %v (%.3g)", p, time.Since(start).Round(time.Millisecond), ok1, e1, ok3, e3)
	}
}
