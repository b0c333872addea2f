// Command quantcheck measures an int8 model against its float32 original
// on labelled images, in our runtime and in ONNX Runtime: the top-1
// accuracy of each model in each runtime, and how often the two runtimes
// give the int8 file's images the same top-1 class.
//
//	go run ./tools/quantcheck -float model.onnx -int8 model.int8.onnx -data ../shared/data/cifar10-jpeg.tar.gz
//
// `make bench-quant` runs it; it is not part of `go test`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/classify"
	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/interop"
)

func main() {
	floatPath := flag.String("float", "", "the float32 model")
	int8Path := flag.String("int8", "", "its quantized form")
	data := flag.String("data", "", "labelled images (anything evaluate --data reads)")
	split := flag.String("split", "test", "split of -data")
	limit := flag.Int("n", 0, "images (0: all)")
	batch := flag.Int("batch", 100, "images per run")
	threads := flag.Int("threads", 2, "threads of our runtime")
	noORT := flag.Bool("no-ort", false, "skip ONNX Runtime")
	out := flag.String("json", "", "write the results here too")
	flag.Parse()
	if *floatPath == "" || *int8Path == "" || *data == "" {
		flag.Usage()
		os.Exit(2)
	}
	res, err := run(context.Background(), *floatPath, *int8Path, *data, *split, *limit, *batch, *threads, !*noORT)
	if err != nil {
		fmt.Fprintln(os.Stderr, "quantcheck:", err)
		os.Exit(1)
	}
	b, _ := json.MarshalIndent(res, "", " ")
	fmt.Println(string(b))
	if *out != "" {
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "quantcheck:", err)
			os.Exit(1)
		}
	}
}

// Result is what quantcheck measures.
type Result struct {
	Float, Int8, Data string
	Images            int
	// Top-1 accuracy of each model in each runtime.
	OursFloat, OursInt8, ORTFloat, ORTInt8 float64 `json:",omitempty"`
	// Agreement of the two runtimes' top-1 classes, per model.
	AgreeInt8, AgreeFloat float64 `json:",omitempty"`
	// Agreement of our int8 and float top-1 classes.
	AgreeOursInt8Float float64
	Seconds            float64
}

func run(ctx context.Context, floatPath, int8Path, data, split string, limit, batch, threads int, withORT bool) (*Result, error) {
	start := time.Now()
	fs, err := infer.Load(floatPath, infer.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	qs, err := infer.Load(int8Path, infer.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	defer qs.Close()
	// The int8 file's metadata: quantize records the preprocessing its
	// flags gave for a float file that had none.
	setup, err := classify.ResolveSession(qs, classify.Flags{})
	if err != nil {
		return nil, err
	}
	transform := func(img *imgproc.Image) (*imgproc.Image, error) {
		if setup.Resize > 0 {
			return imgproc.CenterCrop(imgproc.ResizeShorter(img, setup.Resize), setup.W, setup.H), nil
		}
		if img.W == setup.W && img.H == setup.H {
			return img, nil
		}
		return imgproc.Resize(img, setup.W, setup.H), nil
	}
	src, err := cifar.Open(ctx, data, cifar.Options{Split: split, Transform: transform})
	if err != nil {
		return nil, err
	}
	if limit > 0 && limit < src.Len {
		if err := src.Limit(limit, 1); err != nil {
			return nil, err
		}
	}
	per := setup.C * setup.H * setup.W
	var labels []int
	var oursF, oursQ []int
	var jobs []interop.Job
	buf := make([]float32, batch*per)
	n := 0
	argmaxes := func(t *infer.Tensor, rows int) ([]int, error) {
		if t == nil || t.Type() != infer.Float32 || len(t.Shape) != 2 || t.Shape[0] != rows {
			return nil, fmt.Errorf("output is not a [%d, classes] float32 tensor", rows)
		}
		return argmaxRows(t.Float32, rows), nil
	}
	flush := func() error {
		if n == 0 {
			return nil
		}
		x := setup.Tensor(n, buf[:n*per])
		for _, s := range []struct {
			sess *infer.Session
			dst  *[]int
		}{{fs, &oursF}, {qs, &oursQ}} {
			o, err := s.sess.Run(ctx, map[string]*infer.Tensor{setup.Input: x})
			if err != nil {
				return err
			}
			a, err := argmaxes(o[setup.Output], n)
			if err != nil {
				return err
			}
			*s.dst = append(*s.dst, a...)
		}
		if withORT {
			in := interop.Tensor{Dims: setup.Shape(n), Data: append([]float32(nil), buf[:n*per]...)}
			for _, p := range []string{floatPath, int8Path} {
				jobs = append(jobs, interop.Job{Model: p, Inputs: map[string]interop.Tensor{setup.Input: in}})
			}
		}
		n = 0
		return nil
	}
	err = src.Walk(ctx, func(s cifar.Sample) error {
		if err := setup.Write(buf, n, s.Image, s.Name); err != nil {
			return err
		}
		labels = append(labels, s.Label)
		if n++; n == batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return nil, err
	}
	res := &Result{Float: floatPath, Int8: int8Path, Data: data, Images: len(labels)}
	res.OursFloat, res.OursInt8 = accuracy(oursF, labels), accuracy(oursQ, labels)
	res.AgreeOursInt8Float = agreement(oursF, oursQ)
	if withORT {
		results, err := interop.ORT(ctx, jobs)
		if err != nil {
			return nil, err
		}
		var ortF, ortQ []int
		for i, r := range results {
			if r.Err != "" {
				return nil, fmt.Errorf("ONNX Runtime, %s: %s", jobs[i].Model, r.Err)
			}
			t := r.Outputs[setup.Output]
			rows := t.Dims[0]
			a := argmaxRows(t.Data, rows)
			if i%2 == 0 {
				ortF = append(ortF, a...)
			} else {
				ortQ = append(ortQ, a...)
			}
		}
		res.ORTFloat, res.ORTInt8 = accuracy(ortF, labels), accuracy(ortQ, labels)
		res.AgreeFloat, res.AgreeInt8 = agreement(oursF, ortF), agreement(oursQ, ortQ)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func argmaxRows(x []float32, rows int) []int {
	k := len(x) / rows
	out := make([]int, rows)
	for r := range rows {
		best := 0
		for j := 1; j < k; j++ {
			if x[r*k+j] > x[r*k+best] {
				best = j
			}
		}
		out[r] = best
	}
	return out
}

func accuracy(pred, labels []int) float64 {
	ok := 0
	for i, p := range pred {
		if p == labels[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(labels))
}

func agreement(a, b []int) float64 {
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	return float64(same) / float64(len(a))
}
