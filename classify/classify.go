// Package classify turns an inference session into an image classifier:
// it works out the input size, layout, preprocessing and class names of a
// model (from the metadata resnetctl's exports carry, see package
// modelmeta, else from the caller's Flags), ranks scores into top-k
// predictions with class names like Keras' decode_predictions, and
// accumulates evaluation statistics (top-1/top-5, per-class accuracy,
// confusion matrix).
//
// Classifying image files with a model:
//
//	sess, err := infer.Load("model.onnx", infer.Options{})
//	setup, err := classify.ResolveSession(sess, classify.Flags{})
//	img, err := imgproc.DecodeFile("cat.jpg")
//	preds, err := setup.Classify(ctx, sess, []*imgproc.Image{img}, 5)
//	for _, p := range preds[0] {
//		fmt.Printf("%d. %s %.1f%%\n", p.Rank, p.Label, 100*p.Prob)
//	}
//
// Setup.Sample, Setup.Run and Setup.Predict are the steps of Classify, for
// callers that batch images themselves; DecodePredictions and TopK rank
// scores from anywhere.
package classify

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/resnetctl/resnetctl/imgproc"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/internal/regularfile"
	"github.com/resnetctl/resnetctl/modelmeta"
	"github.com/resnetctl/resnetctl/models"
)

// Flags are the caller's overrides of what a model's metadata says (they
// are the options of `resnetctl predict`, named in messages as its flags);
// zero values mean "from the model".
type Flags struct {
	// Preprocess is torch, caffe, tf or raw ("" = the model's metadata,
	// else torch with ImageNet statistics).
	Preprocess string
	// Mean and Std override the per-channel statistics (torch mode, on the
	// 0–1 scale).
	Mean, Std []float32
	// Size is the input side for models whose input size is not fixed.
	Size int
	// Labels is a label set name (cifar10, cifar100, imagenet …) or a file
	// with one class name a line.
	Labels string
	// Layout is NCHW or NHWC ("" = the metadata's, else guessed from the
	// input's shape).
	Layout string
	// Output names the graph output holding the scores ("" =
	// modelmeta.ProbabilitiesName when there is one, else the first).
	Output string
}

// The input layouts.
const (
	NCHW = "NCHW"
	NHWC = "NHWC"
)

// Setup is how to feed a model and read its answer.
type Setup struct {
	Input   string // graph input name
	C, H, W int    // input channels (1: gray, 3: colour) and size
	Layout  string // NCHW or NHWC
	// InputType is the input's element type: float32, float16 (fp16
	// exports) or uint8 (raw pixels; the graph normalises).
	InputType infer.DType
	// Batch is the model's fixed batch size, 0 when the batch is dynamic:
	// Run cuts work into runs of exactly that many samples.
	Batch int
	// Resize is the shorter side an image is scaled to before the centre
	// crop; 0 resizes straight to W×H (small models such as CIFAR's).
	Resize int
	Norm   *imgproc.Normalizer
	// Output is the graph output read; Probabilities says whether it
	// already holds probabilities (else softmax is applied to logits, and
	// to log-probabilities, which it turns back into probabilities).
	Output        string
	Probabilities bool
	Classes       []string // nil when unknown
	// Describe says where each choice came from, for the user.
	Describe []string
}

// Preprocessor returns a fresh preprocessor for this setup (one per
// goroutine: it keeps buffers).
func (s *Setup) Preprocessor() *imgproc.Preprocessor {
	return &imgproc.Preprocessor{Resize: s.Resize, W: s.W, H: s.H, Norm: s.Norm}
}

// Resolve works out the setup of a model from its metadata and the flags.
func Resolve(md infer.Metadata, f Flags) (*Setup, error) {
	s := &Setup{}
	if len(md.Inputs) != 1 {
		return nil, fmt.Errorf("the model has %d inputs; an image classifier needs exactly one", len(md.Inputs))
	}
	in := md.Inputs[0]
	s.Input = in.Name
	// Not an image input: one line saying so, and that bench still runs it.
	if in.DType != infer.Float32 && in.DType != infer.Float16 && in.DType != infer.Uint8 {
		return nil, fmt.Errorf("input %s is %v, not an image: images need a float32, float16 or uint8 input (bench runs it with --input)", in.Name, in.DType)
	}
	s.InputType = in.DType
	if len(in.Shape) != 4 {
		return nil, fmt.Errorf("input %s has shape %v, not an image: images need [N, C, H, W] or [N, H, W, C] (bench runs it with --input)", in.Name, in.Shape)
	}
	// Checked here, not only by the engines that refuse such graphs:
	// an output is read below.
	if len(md.Outputs) == 0 {
		return nil, errors.New("the model has no outputs")
	}
	pre, err := md.Preprocessing()
	if err != nil {
		return nil, err
	}
	// Images are decoded to RGB, which feeds RGB and (channels swapped)
	// BGR models (and 1-channel ones their luma); any other colour model
	// (CMYK, YCbCr) would be fed RGB without a word. No colour said is RGB.
	if pre != nil && pre.Color != "" && !strings.EqualFold(pre.Color, "RGB") && !strings.EqualFold(pre.Color, "BGR") {
		return nil, fmt.Errorf("metadata %q: color %q is not supported (want RGB or BGR)", modelmeta.MetaPreprocess, pre.Color)
	}
	if s.Layout, err = layoutOf(in.Shape, pre, f.Layout, &s.Describe); err != nil {
		return nil, err
	}
	s.C, s.H, s.W = in.Shape[1], in.Shape[2], in.Shape[3]
	if s.Layout == NHWC {
		s.H, s.W, s.C = in.Shape[1], in.Shape[2], in.Shape[3]
	}
	if in.Shape[0] > 0 {
		s.Batch = in.Shape[0]
	}
	if s.C == -1 && pre != nil && len(pre.InputSize) == 3 {
		s.C = pre.InputSize[0]
	}
	switch s.C {
	case -1:
		s.C = 3
	case 1:
		s.Describe = append(s.Describe, "gray input (the image's luma)")
	case 3:
	default:
		return nil, fmt.Errorf("input %s has %d channels in layout %s; images give 1 (gray) or 3 (RGB); set --layout if the layout is wrong", in.Name, s.C, s.Layout)
	}
	switch {
	case f.Size > 0:
		s.H, s.W = f.Size, f.Size
		s.Describe = append(s.Describe, fmt.Sprintf("input %dx%d (--size)", f.Size, f.Size))
	case s.H > 0 && s.W > 0:
		s.Describe = append(s.Describe, fmt.Sprintf("input %dx%d (the model's)", s.H, s.W))
	case pre != nil && len(pre.InputSize) == 3:
		s.H, s.W = pre.InputSize[1], pre.InputSize[2]
		s.Describe = append(s.Describe, fmt.Sprintf("input %dx%d (metadata)", s.H, s.W))
	default:
		return nil, errors.New("the model's input size is not fixed and its metadata does not say it: give --size")
	}
	// ImageNet-sized inputs: shorter side to size/0.875 (256 for 224), then
	// centre crop, as torchvision's evaluation transforms; small ones direct.
	if min(s.H, s.W) > 64 {
		s.Resize = int(math.Round(float64(min(s.H, s.W)) / 0.875))
	}

	norm := imgproc.Norm{Mode: imgproc.Mode(f.Preprocess)}
	switch {
	case s.InputType == infer.Uint8:
		// A uint8 input takes pixels: whatever normalising there is, the
		// graph does it.
		if f.Preprocess != "" && f.Preprocess != string(imgproc.ModeRaw) || f.Mean != nil || f.Std != nil {
			return nil, fmt.Errorf("input %s is uint8: it takes raw pixels, not --preprocess %s or --mean/--std", in.Name, nonEmpty(f.Preprocess, "torch"))
		}
		norm = imgproc.Norm{Mode: imgproc.ModeRaw}
		s.Describe = append(s.Describe, "uint8 input: raw pixels (the graph normalises)")
	case f.Preprocess != "" && f.Preprocess != string(imgproc.ModeTorch):
		if f.Mean != nil || f.Std != nil {
			return nil, fmt.Errorf("--mean and --std go with --preprocess torch, not %s", f.Preprocess)
		}
		s.Describe = append(s.Describe, "preprocessing "+f.Preprocess+" (--preprocess)")
	case f.Mean != nil || f.Std != nil:
		norm = imgproc.Norm{Mode: imgproc.ModeTorch, Mean: s.perChannel(f.Mean), Std: s.perChannel(f.Std)}
		s.Describe = append(s.Describe, "preprocessing torch with --mean/--std")
	case pre != nil && f.Preprocess == "":
		norm = imgproc.Norm{Mode: imgproc.ModeCustom, Scale: pre.Scale, Mean: s.perChannel(pre.Mean), Std: s.perChannel(pre.Std), BGR: strings.EqualFold(pre.Color, "BGR")}
		s.Describe = append(s.Describe, fmt.Sprintf("preprocessing from metadata (%s)", nonEmpty(pre.Preset, "custom")))
	default:
		norm = imgproc.Norm{Mode: imgproc.ModeTorch}
		s.Describe = append(s.Describe, "preprocessing torch, ImageNet mean/std (no metadata; set --preprocess)")
	}
	if s.Norm, err = imgproc.NewNormalizer(norm); err != nil {
		return nil, err
	}

	out, err := outputOf(md, f.Output)
	if err != nil {
		return nil, err
	}
	// Our exports name their Softmax output so; ResolveSession also looks
	// at the node computing it.
	s.Probabilities = out.Name == modelmeta.ProbabilitiesName
	s.Output = out.Name
	// A classifier of no classes ranks nothing: predict printed no
	// predictions and exited 0. (predict and evaluate check the shape
	// of each run's output too: a declared shape may be symbolic.)
	if len(out.Shape) == 2 && out.Shape[1] == 0 {
		return nil, fmt.Errorf("output %s has shape %v: the model has no classes", out.Name, out.Shape)
	}
	switch {
	case f.Labels != "":
		if s.Classes, err = LoadLabels(f.Labels); err != nil {
			return nil, err
		}
		s.Describe = append(s.Describe, "labels "+f.Labels)
	default:
		if s.Classes, err = md.Classes(); err != nil {
			return nil, err
		}
		if s.Classes != nil {
			s.Describe = append(s.Describe, "labels from metadata")
		}
	}
	return s, nil
}

// ResolveSession is Resolve for a loaded model, which also tells from the
// graph whether the output is already a distribution: a Softmax output is
// not normalised again (a confident 1000-class model was shown at 0.27%),
// and a LogSoftmax one goes through softmax, which turns log-probabilities
// back into the probabilities.
func ResolveSession(sess *infer.Session, f Flags) (*Setup, error) {
	s, err := Resolve(sess.Metadata(), f)
	if err != nil {
		return nil, err
	}
	switch op := sess.OutputOp(s.Output); op {
	case "Softmax":
		s.Probabilities = true
		s.Describe = append(s.Describe, fmt.Sprintf("output %s holds probabilities (the graph ends in Softmax)", s.Output))
	case "LogSoftmax":
		s.Probabilities = false
		s.Describe = append(s.Describe, fmt.Sprintf("output %s holds log-probabilities (the graph ends in LogSoftmax)", s.Output))
	}
	return s, nil
}

// layoutOf works out the input's layout: --layout, else the metadata's,
// else from the shape: a last dimension of 1 or 3 channels with a second
// that is not is NHWC (tf2onnx and Keras files, [N, 224, 224, 3]).
func layoutOf(shape []int, pre *modelmeta.Preprocessing, flag string, describe *[]string) (string, error) {
	layout, from := strings.ToUpper(flag), "--layout"
	switch {
	case layout != "":
	case pre != nil && pre.Layout != "":
		layout, from = strings.ToUpper(pre.Layout), "metadata"
	default:
		layout, from = NCHW, "the input's shape"
		if ch := func(d int) bool { return d == 1 || d == 3 }; ch(shape[3]) && !ch(shape[1]) {
			layout = NHWC
		}
	}
	if layout != NCHW && layout != NHWC {
		return "", fmt.Errorf("layout %q (%s): want NCHW or NHWC", layout, from)
	}
	if layout != NCHW || from == "--layout" { // NCHW is the usual: said only when asked for
		*describe = append(*describe, fmt.Sprintf("layout %s (%s)", layout, from))
	}
	return layout, nil
}

// outputOf picks the output holding the scores: name, else
// modelmeta.ProbabilitiesName when the model has it, else the first.
func outputOf(md infer.Metadata, name string) (infer.ValueInfo, error) {
	var names []string
	for _, o := range md.Outputs {
		if o.Name == name || name == "" && o.Name == modelmeta.ProbabilitiesName {
			return o, nil
		}
		names = append(names, o.Name)
	}
	if name != "" {
		return infer.ValueInfo{}, fmt.Errorf("--output %q: the model's outputs are %s", name, strings.Join(names, ", "))
	}
	return md.Outputs[0], nil
}

// perChannel repeats a single mean or std of a gray model over the three
// tables the normaliser keeps (a gray model reads table 0 only).
func (s *Setup) perChannel(v []float32) []float32 {
	if s.C == 1 && len(v) == 1 {
		return []float32{v[0], v[0], v[0]}
	}
	return v
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// LoadLabels reads a label set by catalog name, else from a file with one
// class name a line (blank lines at the end ignored).
func LoadLabels(nameOrFile string) ([]string, error) {
	if l, err := models.Labels(nameOrFile); err == nil {
		return l, nil
	}
	// A regular file of at most 64 MiB (a FIFO would block forever).
	b, err := regularfile.ReadFile(nameOrFile, 64<<20)
	if err != nil {
		return nil, fmt.Errorf("labels %q: not a label set (%s) and not a readable file: %w", nameOrFile, strings.Join(models.LabelSets(), ", "), err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, strings.TrimSpace(sc.Text()))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("labels file %s is empty", nameOrFile)
	}
	return out, nil
}

// Prediction is one ranked class.
type Prediction struct {
	Rank  int     `json:"rank"`        // 1 for the most probable class
	Index int     `json:"index"`       // the class index
	Label string  `json:"label"`       // the class name, or "class N" when unknown
	Prob  float64 `json:"probability"` // the class's probability, 0 to 1
}

// Softmax returns the probabilities of logits, computed in float64.
func Softmax(logits []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	p := make([]float64, len(logits))
	sum := 0.0
	for i, v := range logits {
		p[i] = math.Exp(float64(v) - mx)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

// TopK ranks scores (logits, or probabilities when probs is set) and
// returns the k best, naming classes where known.
func TopK(scores []float32, k int, probs bool, classes []string) []Prediction {
	var p []float64
	if probs {
		p = make([]float64, len(scores))
		for i, v := range scores {
			p[i] = float64(v)
		}
	} else {
		p = Softmax(scores)
	}
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] > p[idx[b]] })
	k = min(k, len(idx))
	out := make([]Prediction, k)
	for r := 0; r < k; r++ {
		i := idx[r]
		label := fmt.Sprintf("class %d", i)
		if i < len(classes) {
			label = classes[i]
		}
		out[r] = Prediction{Rank: r + 1, Index: i, Label: label, Prob: p[i]}
	}
	return out
}
