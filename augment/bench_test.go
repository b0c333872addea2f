package augment

import (
	"context"
	"fmt"
	"io"
	"testing"
)

// BenchmarkLoader measures augmented, normalised batches of 128 CIFAR
// images (32×32) a second as a training loop sees them: one op is one
// batch taken from Next. Training needs about 1,500 images/s at most here
// (PyTorch's speed on these cores), so this must stay far above that.
func BenchmarkLoader(b *testing.B) {
	d := tiled(b, 10000)
	for _, aug := range []string{"keras", "paper", "none"} {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/workers=%d", aug, workers), func(b *testing.B) {
				a, _ := Lookup(aug)
				l := newLoader(b, d, Config{BatchSize: 128, DropLast: true, Seed: 1, Augment: a, Workers: workers})
				epoch := 0
				bs := l.Epoch(context.Background(), epoch, 0)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					_, err := bs.Next()
					if err == io.EOF {
						bs.Close()
						epoch++
						bs = l.Epoch(context.Background(), epoch, 0)
						_, err = bs.Next()
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				bs.Close()
				b.ReportMetric(float64(b.N*128)/b.Elapsed().Seconds(), "img/s")
			})
		}
	}
}

// BenchmarkSample is one image's transform alone: drawing the parameters
// and writing the 32×32 pixel map.
func BenchmarkSample(b *testing.B) {
	m := make([]int32, 1024)
	for _, aug := range []string{"keras", "paper"} {
		b.Run(aug, func(b *testing.B) {
			a, _ := Lookup(aug)
			r := NewRand(1)
			for i := 0; i < b.N; i++ {
				a.Sample(m, 32, 32, &r)
			}
		})
	}
}
