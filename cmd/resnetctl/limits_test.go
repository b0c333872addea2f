package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/memcap"
	"github.com/resnetctl/resnetctl/internal/onnxpb"
)

// inputDims sets dims 2 and 3 (H, W) of the graph input: a number, or
// symbolic when 0.
func inputDims(h, w int64) func(*onnxpb.ModelProto) {
	return func(mp *onnxpb.ModelProto) {
		dims := mp.Graph.Input[0].GetType().GetTensorType().GetShape().GetDim()
		for i, v := range []int64{h, w} {
			if v > 0 {
				dims[2+i].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}
			} else {
				dims[2+i].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: []string{"H", "W"}[i]}
			}
		}
	}
}

// metaInputSize rewrites the metadata's preprocessing input_size.
func metaInputSize(size ...int) func(*onnxpb.ModelProto) {
	return func(mp *onnxpb.ModelProto) {
		for _, kv := range mp.MetadataProps {
			if kv.GetKey() == export.MetaPreprocess {
				var p map[string]any
				if err := json.Unmarshal([]byte(kv.GetValue()), &p); err != nil {
					panic(err)
				}
				p["input_size"] = size
				b, _ := json.Marshal(p)
				kv.Value = string(b)
			}
		}
	}
}

// TestSizeFlagsBounded: --size, --batch, --threads, --iters and what a
// model declares (its input shape, its metadata's input_size) are bounded
// and checked against the memory budget before anything of that size is
// allocated: one line naming the flag or the file, exit 2 for a flag and
// 1 for a file, a small allocation, never Go's fatal "out of memory".
func TestSizeFlagsBounded(t *testing.T) {
	model, _, images := sampleFiles(t)
	declared := poisonedModel(t, nil, inputDims(100000, 100000))
	meta := poisonedModel(t, nil, func(mp *onnxpb.ModelProto) {
		inputDims(0, 0)(mp)
		metaInputSize(3, 1000000000, 1000000000)(mp)
	})
	bigBatch := poisonedModel(t, nil, func(mp *onnxpb.ModelProto) {
		inputDims(0, 0)(mp)
		metaInputSize(3, 16384, 16384)(mp)
	})
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"predict", "--size", "100000", model, images[0]}, exitUsage, "resnetctl: --size 100000: must be between 0 and 16384"},
		{[]string{"predict", "--size", "-3", model, images[0]}, exitUsage, "resnetctl: --size -3: must be between 0 and 16384"},
		{[]string{"predict", "--threads", "1000000", model, images[0]}, exitUsage, "resnetctl: --threads 1000000: must be between 0 and "},
		{[]string{"evaluate", "--batch", "1000000000", model, "--data", "x"}, exitUsage, "resnetctl: --batch 1000000000: must be between 1 and 65536"},
		{[]string{"evaluate", "--threads", "-1", model, "--data", "x"}, exitUsage, "resnetctl: --threads -1: must be between 0 and "},
		{[]string{"bench", "--iters", "10000000000", model}, exitUsage, "resnetctl: --iters 10000000000: must be between 1 and 1048576"},
		{[]string{"bench", "--batch", "100000000", model}, exitUsage, "resnetctl: --batch 100000000: must be between 1 and 65536"},
		{[]string{"bench", "--size", "20000", model}, exitUsage, "resnetctl: --size 20000: must be between 0 and 16384"},
		{[]string{"bench", "--train", "--model", "resnet20", "--batch", "1000000"}, exitUsage, "resnetctl: --batch 1000000: must be between 1 and 65536"},
		{[]string{"bench", "--train", "--model", "resnet20", "--steps", "100000000000"}, exitUsage, "resnetctl: --steps 100000000000: must be between 1 and 1048576"},
		{[]string{"predict", declared, images[0]}, exitError, "resnetctl: " + declared + ": infer: memory budget exceeded: the declared inputs need 111.8 GiB"},
		{[]string{"bench", declared}, exitError, "resnetctl: " + declared + ": infer: memory budget exceeded: the declared inputs need 111.8 GiB"},
		{[]string{"predict", meta, images[0]}, exitError, "resnetctl: " + meta + " (metadata input_size): input 1000000000x1000000000: each side must be between 1 and 16384"},
		{[]string{"evaluate", meta, "--data", "x"}, exitError, "resnetctl: " + meta + " (metadata input_size): input 1000000000x1000000000: each side must be between 1 and 16384"},
		{[]string{"bench", meta}, exitError, "resnetctl: " + meta + " (the declared input shape or metadata input_size, --batch): input 1000000000x1000000000: each side must be between 1 and 16384"},
		// 65536 images of 16384x16384: 192 TiB.
		{[]string{"evaluate", "--batch", "65536", bigBatch, "--data", "x"}, exitError, "resnetctl: " + bigBatch + " (metadata input_size): an input batch of 65536×3×16384×16384 float32 needs more than the memory budget"},
		{[]string{"bench", "--batch", "65536", bigBatch}, exitError, "resnetctl: " + bigBatch + " (the declared input shape or metadata input_size, --batch): an input batch of 65536×3×16384×16384 float32 needs more than the memory budget"},
		{[]string{"bench", "--train", "--model", "resnet20", "--input", "3x16384x16384", "--batch", "65536"}, exitError, "resnetctl: resnet20 (--input, --batch): an input batch of 65536×3×16384×16384 float32 needs more than the memory budget"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var code int
			var out, errOut string
			alloc := memcap.Allocated(func() { code, out, errOut = runCLI(c.args...) })
			first, _, _ := strings.Cut(errOut, "\n")
			if code != c.code || !strings.HasPrefix(first, c.want) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q\nwant exit %d and a line starting %q", code, out, errOut, c.code, c.want)
			}
			if c.code == exitError && strings.Count(errOut, "\n") != 1 {
				t.Errorf("not one line: %q", errOut)
			}
			memcap.Check(t, alloc, 64<<20, "refusing it")
		})
	}
}
