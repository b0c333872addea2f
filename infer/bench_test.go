package infer

import (
	"context"
	"testing"
	"time"

	"github.com/resnetctl/resnetctl/export"
)

// benchSession exports a catalog model (default opset, BatchNorm not
// folded: the runtime folds it) and loads it with 2 threads.
func benchSession(b *testing.B, model string) *Session {
	b.Helper()
	_, g := buildExport(b, exportCase{name: model, model: model}, 1)
	bytes, err := export.Marshal(g, export.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := LoadBytes(bytes, Options{Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// benchRun measures Session.Run (which allocates the output map and
// tensors) and Session.RunInto (which reuses them).
func benchRun(b *testing.B, s *Session, input *Tensor) {
	ctx := context.Background()
	in := map[string]*Tensor{export.InputName: input}
	out := map[string]*Tensor{}
	if err := s.RunInto(ctx, in, out); err != nil { // plan and warm up
		b.Fatal(err)
	}
	report := func(b *testing.B, start time.Time) {
		per := time.Since(start).Seconds() / float64(b.N)
		b.ReportMetric(per*1e3, "ms/op")
		b.ReportMetric(float64(input.Shape[0])/per, "images/s")
	}
	b.Run("Run", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			if _, err := s.Run(ctx, in); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
	b.Run("RunInto", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			if err := s.RunInto(ctx, in, out); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
}

// BenchmarkResNet50Batch1 is torchvision ResNet-50 at 224x224, batch 1,
// 2 threads.
func BenchmarkResNet50Batch1(b *testing.B) {
	s := benchSession(b, "resnet50")
	defer s.Close()
	benchRun(b, s, randT(1, 1, 3, 224, 224))
}

// BenchmarkResNet20Batch128 is the CIFAR ResNet-20 (option A) at batch
// 128, 2 threads.
func BenchmarkResNet20Batch128(b *testing.B) {
	s := benchSession(b, "resnet20")
	defer s.Close()
	benchRun(b, s, randT(2, 128, 3, 32, 32))
}
