package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/resnetctl/resnetctl/cifar"
	"github.com/resnetctl/resnetctl/internal/printable"
	"github.com/resnetctl/resnetctl/models"
	"github.com/resnetctl/resnetctl/train"
	"github.com/spf13/cobra"
)

// The transfer-learning side of `resnetctl train`: --only-classes, the
// preprocessing of an --init model whose file does not state it, and
// --bn reestimate.

// parseClassList parses "0-4", "0,2,5" or "0-2,7" into class indices in
// the order given, refusing repeats and negative numbers.
func parseClassList(s string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil {
			return nil, fmt.Errorf("%q is not a class index or range (like 0-4 or 0,2,5)", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a range low-high", part)
			}
		}
		for k := a; k <= b; k++ {
			if k < 0 {
				return nil, fmt.Errorf("class %d is negative", k)
			}
			if seen[k] {
				return nil, fmt.Errorf("class %d is listed twice", k)
			}
			seen[k] = true
			out = append(out, k)
		}
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("%q selects %d class; a classifier needs at least 2", s, len(out))
	}
	return out, nil
}

// onlyClasses keeps the images of the given classes, relabelled densely
// in the order given (classes[i] becomes label i), with the class names
// to match.
func onlyClasses(ds *cifar.Dataset, classes []int) (*cifar.Dataset, error) {
	newLabel := map[int]int{}
	for i, k := range classes {
		if k >= len(ds.Classes) {
			return nil, fmt.Errorf("--only-classes: %s has %d classes (0-%d), not %d", ds.Name, len(ds.Classes), len(ds.Classes)-1, k)
		}
		newLabel[k] = i
	}
	var idx []int
	for i, l := range ds.Labels {
		if _, ok := newLabel[l]; ok {
			idx = append(idx, i)
		}
	}
	sub, err := ds.Subset(idx)
	if err != nil {
		return nil, err
	}
	for i, l := range sub.Labels {
		sub.Labels[i] = newLabel[l]
	}
	sub.Classes = make([]string, len(classes))
	for i, k := range classes {
		sub.Classes[i] = ds.Classes[k]
	}
	return sub, sub.Validate()
}

// flagPreprocess is the preprocessing train's --preprocess names: predict's
// modes (torch is the imagenet preset, tf scales to [-1, 1], raw keeps
// 0-255) and the CIFAR presets, as the formula training and the exported
// metadata use. caffe is refused: it feeds BGR, and training feeds RGB.
func flagPreprocess(name string) (models.Preprocess, error) {
	ones := []float32{1, 1, 1}
	switch name {
	case "torch":
		return models.PreprocessPreset("imagenet")
	case "cifar10", "cifar100":
		return models.PreprocessPreset(name)
	case "tf":
		return models.Preprocess{Name: "tf", Scale: 1 / 127.5, Mean: ones, Std: ones}, nil
	case "raw":
		return models.Preprocess{Name: "raw", Scale: 1, Mean: []float32{0, 0, 0}, Std: ones}, nil
	case "caffe":
		return models.Preprocess{}, fmt.Errorf("caffe feeds BGR channels and training feeds RGB; choose torch, tf, raw, cifar10 or cifar100")
	}
	return models.Preprocess{}, fmt.Errorf("%q: want torch, tf, raw, cifar10 or cifar100", name)
}

// dataPreprocess is the preprocessing to train an --init model with when
// nothing else gives one: neither --preprocess, nor the file's metadata, nor
// the catalog preset `resnetctl import` assumes for a recognised catalog
// architecture (onnximport.Preprocessing, the rule both commands share).
// It is the CIFAR-10 or CIFAR-100 preset when the data
// has exactly that label set's classes, otherwise pixels scaled to [0, 1]
// and normalised by the training images' per-channel mean and standard
// deviation. It also says where the choice came from.
func dataPreprocess(ds *cifar.Dataset) (models.Preprocess, string) {
	for _, set := range []string{"cifar10", "cifar100"} {
		if names, err := models.Labels(set); err == nil && slices.Equal(names, ds.Classes) && ds.H == 32 && ds.W == 32 {
			p, _ := models.PreprocessPreset(set)
			return p, fmt.Sprintf("the %s preset (the data has %s's classes)", set, set)
		}
	}
	var sum, sq [3]float64
	hw := ds.H * ds.W
	for i := 0; i < ds.Len(); i++ {
		img := ds.Pixels[i*3*hw : (i+1)*3*hw]
		for c := 0; c < 3; c++ {
			for _, v := range img[c*hw : (c+1)*hw] {
				x := float64(v) / 255
				sum[c] += x
				sq[c] += x * x
			}
		}
	}
	n := float64(ds.Len() * hw)
	p := models.Preprocess{Name: "data", Scale: 1.0 / 255}
	for c := 0; c < 3; c++ {
		mean := sum[c] / n
		p.Mean = append(p.Mean, float32(mean))
		p.Std = append(p.Std, float32(math.Sqrt(max(sq[c]/n-mean*mean, 1e-6))))
	}
	return p, fmt.Sprintf("the training images' per-channel mean %.4f and standard deviation %.4f", p.Mean, p.Std)
}

// reestimateBN runs Model.ReestimateBN over the training data before the
// first epoch and reports it.
func reestimateBN(ctx context.Context, w io.Writer, m *train.Model, src train.Source, batch, batches int) error {
	n, err := m.ReestimateBN(ctx, src, batch, batches)
	if err != nil {
		return fmt.Errorf("--bn reestimate: %w", err)
	}
	fmt.Fprintf(w, "re-estimated the BatchNorm running statistics over %d batches of %d training images (cumulative average, weights unchanged)\n", n, batch)
	return nil
}

// transferFlags checks --freeze, --bn, --bn-batches and --only-classes
// and puts them into the recipe (only-classes also sets --classes to its
// count when --classes is not given).
func transferFlags(c *cobra.Command, opts *TrainOptions, r *train.Recipe) error {
	changed := c.Flags().Changed
	if opts.Resume {
		// --freeze and --only-classes are compared with the record by
		// checkResumeFlags; BatchNorm re-estimation belongs before a
		// run's first epoch.
		for _, f := range []string{"bn", "bn-batches"} {
			if changed(f) {
				return usageErrorf(c, "--%s does not go with --resume (it runs before a run's first epoch)", f)
			}
		}
		return nil
	}
	switch opts.Freeze {
	case train.FreezeNone:
		r.Freeze = ""
	case train.FreezeBackbone:
		r.Freeze = train.FreezeBackbone
	default:
		return usageErrorf(c, "--freeze %q: want backbone or none", opts.Freeze)
	}
	switch opts.BN {
	case "keep":
		if changed("bn-batches") {
			return usageErrorf(c, "--bn-batches goes with --bn reestimate")
		}
	case "reestimate":
		if opts.BNBatches < 0 {
			return usageErrorf(c, "--bn-batches must be ≥ 0")
		}
	default:
		return usageErrorf(c, "--bn %q: want keep or reestimate", opts.BN)
	}
	if changed("only-classes") {
		classes, err := parseClassList(opts.OnlyClasses)
		if err != nil {
			return usageErrorf(c, "--only-classes: %v", err)
		}
		r.OnlyClasses = classes
		if !changed("classes") {
			if err := c.Flags().Set("classes", strconv.Itoa(len(classes))); err != nil {
				return err
			}
		}
	}
	return nil
}

// transferData applies --only-classes (or the resumed run's subset) to
// both splits, and gives an --init model whose preprocessing is not known
// (preKnown false: see dataPreprocess) the data's, saying so. An --init
// model whose input size is not the data's is refused with the --input
// that would fit: adapting silently would change what the pretrained
// filters see (a 224x224 model at 32x32) without the user asking.
func transferData(opts *TrainOptions, m *train.Model, r train.Recipe, preKnown bool, trainDS, testDS *cifar.Dataset) (*cifar.Dataset, *cifar.Dataset, error) {
	errw := opts.Streams.ErrOut
	if data := (models.Shape{C: 3, H: trainDS.H, W: trainDS.W}); opts.Init != "" && m.Graph.Spec.Input != data {
		if opts.InitInput != (models.Shape{}) {
			return nil, nil, fmt.Errorf("--input %s: the data's images are %s", opts.InitInput, data)
		}
		hint := ""
		if m.Graph.Spec.Input.C == data.C {
			hint = fmt.Sprintf(": give --input %s to fine-tune at the data's size (it works when the graph pools globally before its head)", data)
		}
		return nil, nil, fmt.Errorf("%s takes %s images and the data's are %s%s", opts.Init, m.Graph.Spec.Input, data, hint)
	}
	if opts.Init != "" && !preKnown {
		pre, why := dataPreprocess(trainDS)
		m.Graph.Spec.Preprocess = pre
		opts.Spec.Preprocess = pre
		fmt.Fprintf(errw, "%s does not say how its inputs were preprocessed; training with %s (from --data), which the checkpoints record\n", opts.Init, why)
	}
	if r.Freeze == train.FreezeBackbone && !opts.Resume {
		fmt.Fprintln(errw, "backbone frozen: only the final dense layer trains; the frozen BatchNorms run in inference mode (running statistics unchanged)")
	}
	if len(r.OnlyClasses) == 0 {
		return trainDS, testDS, nil
	}
	all := len(trainDS.Classes)
	var err error
	if trainDS, err = onlyClasses(trainDS, r.OnlyClasses); err != nil {
		return nil, nil, err
	}
	tests := "no test split"
	if testDS != nil {
		if testDS, err = onlyClasses(testDS, r.OnlyClasses); err != nil {
			return nil, nil, err
		}
		tests = fmt.Sprintf("%d test images", testDS.Len())
	}
	names := make([]string, len(trainDS.Classes)) // folder names: quoted if they hold control characters
	for i, n := range trainDS.Classes {
		names[i] = printable.Name(n)
	}
	fmt.Fprintf(errw, "only classes %v of %d (relabelled 0-%d: %s): %d training images, %s\n",
		r.OnlyClasses, all, len(r.OnlyClasses)-1, strings.Join(names, ", "), trainDS.Len(), tests)
	return trainDS, testDS, nil
}
