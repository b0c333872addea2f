package train

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/resnetctl/resnetctl/build"
)

// optimCase runs three steps of an optimiser on a 4-element weight with
// fixed gradients and compares with torch.optim 1.13 (numbers printed by
// the script in the comment of TestOptimizersMatchPyTorch).
func optimStep(t *testing.T, cfg OptimizerConfig) []float32 {
	t.Helper()
	o, err := NewOptimizer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &build.Param{Name: "w", Shape: []int{4}, Data: []float32{0.5, -1.25, 2.0, 0.0}, Trainable: true}
	grads := [][]float32{{0.1, -0.2, 0.3, 0.4}, {-0.5, 0.25, 0.0, 1.0}, {0.05, 0.05, -0.05, -2.0}}
	gd := newDense(tensor.Shape{4})
	tr := trainableFor(p, gd)
	for _, g := range grads {
		copy(gd.Float32s(), g)
		if err := o.Step([]*Trainable{tr}, cfg.LR, cfg.Momentum); err != nil {
			t.Fatal(err)
		}
	}
	return p.Data
}

// TestOptimizersMatchPyTorch compares with
//
//	w = Parameter([0.5, -1.25, 2.0, 0.0]); three steps with gradients
//	[0.1,-0.2,0.3,0.4], [-0.5,0.25,0,1], [0.05,0.05,-0.05,-2]
//
// in PyTorch 1.13, within 2 float32 ulps of the result's magnitude.
func TestOptimizersMatchPyTorch(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  OptimizerConfig
		want []float64
	}{
		{"SGD(lr=0.1, momentum=0.9, weight_decay=0.01)", OptimizerConfig{Name: SGD, LR: 0.1, Momentum: 0.9, WeightDecay: 0.01},
			[]float64{0.5600854158401489, -1.2413445711135864, 1.9126036167144775, -0.09814804792404175}},
		{"SGD(lr=0.1, momentum=0.9, nesterov, weight_decay=5e-4)", OptimizerConfig{Name: SGD, LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4},
			[]float64{0.591404914855957, -1.2579728364944458, 1.9055405855178833, -0.02852134220302105}},
		{"SGD(lr=0.1, momentum=0.8, dampening=0.3)", OptimizerConfig{Name: SGD, LR: 0.1, Momentum: 0.8, Dampening: 0.3},
			[]float64{0.5351000428199768, -1.236199975013733, 1.930299997329712, -0.0836000069975853}},
		{"SGD(lr=0.1, weight_decay=0.1)", OptimizerConfig{Name: SGD, LR: 0.1, WeightDecay: 0.1},
			[]float64{0.5198485255241394, -1.2230217456817627, 1.916195034980774, 0.06179598346352577}},
		{"Adam(lr=1e-2, eps=1e-7, weight_decay=0.01)", OptimizerConfig{Name: Adam, LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-7, WeightDecay: 0.01},
			[]float64{0.49972665309906006, -1.2426618337631226, 1.9779469966888428, -0.01721395179629326}},
		{"AdamW(lr=1e-2, eps=1e-8, weight_decay=0.1)", OptimizerConfig{Name: AdamW, LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1},
			[]float64{0.498478502035141, -1.2401286363601685, 1.9732744693756104, -0.01718512549996376}},
	} {
		got := optimStep(t, tc.cfg)
		for i, w := range tc.want {
			if d := math.Abs(float64(got[i]) - w); d > 2*math.Max(math.Abs(w), 1e-3)*(1.0/(1<<23)) {
				t.Errorf("%s: w[%d] = %.9g, PyTorch %.9g", tc.name, i, got[i], w)
			}
		}
	}
}

func TestOptimizerValidation(t *testing.T) {
	for _, cfg := range []OptimizerConfig{
		{Name: "rmsprop", LR: 0.1},
		{Name: SGD, LR: -1},
		{Name: SGD, LR: 0.1, Nesterov: true},
		{Name: SGD, LR: 0.1, Momentum: 1},
		{Name: Adam, LR: 0.1, Beta1: 1, Beta2: 0.9, Eps: 1e-8},
		{Name: Adam, LR: 0.1, Beta1: 0.9, Beta2: 0.9},
		{Name: SGD, LR: math.NaN()},
	} {
		if _, err := NewOptimizer(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

func TestSchedulesMatchPyTorch(t *testing.T) {
	// torch.optim.lr_scheduler.OneCycleLR(max_lr=0.1, total_steps=20).
	oneLR := []float64{0.004, 0.01316718427, 0.03716718427, 0.06683281573, 0.09083281573, 0.1, 0.098746400624, 0.095048463201,
		0.089091617757, 0.081174565395, 0.071694300179, 0.061126202194, 0.0500002, 0.038874197806, 0.028306099821, 0.018825834605,
		0.010908782243, 0.004951936799, 0.001253999376, 4e-07}
	oneM := []float64{0.95, 0.940450849719, 0.915450849719, 0.884549150281, 0.859549150281, 0.85, 0.851253604391, 0.854951556605,
		0.860908425877, 0.868825509907, 0.878305813044, 0.888873953302, 0.9, 0.911126046698, 0.921694186956, 0.931174490093,
		0.939091574123, 0.945048443395, 0.948746395609, 0.95}
	s := OneCycleDefaults(0.1)
	for i := range oneLR {
		lr, m := s.At(i, 20, 5, 0.1, 0.9)
		if math.Abs(lr-oneLR[i]) > 1e-9 || math.Abs(m-oneM[i]) > 1e-9 {
			t.Errorf("one-cycle step %d: lr %.12g momentum %.12g, PyTorch %.12g %.12g", i, lr, m, oneLR[i], oneM[i])
		}
	}
	// MultiStepLR(milestones=[3, 5], gamma=0.1) stepped every iteration.
	st := ScheduleConfig{Kind: Steps, Milestones: []int{3, 5}, Gamma: 0.1}
	for i, want := range []float64{0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001} {
		if lr, _ := st.At(i, 7, 7, 0.1, 0.9); math.Abs(lr-want) > 1e-15 {
			t.Errorf("step schedule at %d: %g, want %g", i, lr, want)
		}
	}
	// The paper: 0.1, /10 at 32k and 48k.
	paper, _ := LookupRecipe("paper")
	for _, c := range []struct {
		step int
		want float64
	}{{0, 0.1}, {31999, 0.1}, {32000, 0.01}, {47999, 0.01}, {48000, 0.001}, {63999, 0.001}} {
		if lr, _ := paper.Schedule.At(c.step, 64000, 390, paper.Optimizer.LR, 0.9); math.Abs(lr-c.want) > 1e-12 {
			t.Errorf("paper schedule at %d: %g, want %g", c.step, lr, c.want)
		}
	}
	// Cosine with a 1-epoch warm-up (10 steps an epoch, 100 steps).
	cos := ScheduleConfig{Kind: Cosine, WarmupEpochs: 1}
	for _, c := range []struct {
		step int
		want float64
	}{{0, 0.01}, {4, 0.05}, {9, 0.1}, {10, 0.1}, {55, 0.05}, {99, 0.1 * (1 + math.Cos(math.Pi*89/90)) / 2}} {
		if lr, _ := cos.At(c.step, 100, 10, 0.1, 0.9); math.Abs(lr-c.want) > 1e-12 {
			t.Errorf("cosine at %d: %.12g, want %.12g", c.step, lr, c.want)
		}
	}
}

func TestRecipes(t *testing.T) {
	for _, name := range RecipeNames() {
		r, err := LookupRecipe(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		// Plain data: survives JSON unchanged.
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back Recipe
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		b2, _ := json.Marshal(back)
		if !bytes.Equal(b, b2) {
			t.Errorf("%s: JSON round trip changed it:\n%s\n%s", name, b, b2)
		}
	}
	fast, _ := LookupRecipe("fast")
	if fast.Epochs != 30 || fast.Batch != 128 || !fast.Optimizer.Nesterov || fast.Optimizer.WeightDecay != 5e-4 || fast.Schedule.Kind != Cosine || fast.Augment != "paper" {
		t.Errorf("fast recipe: %+v", fast)
	}
	quick, _ := LookupRecipe("quick")
	if quick.Schedule.Kind != OneCycle || quick.Optimizer.LR != 0.2 || !quick.Optimizer.Nesterov || quick.LabelSmoothing != 0.1 || quick.ValidationTTA != TTAFlip || quick.Batch != 128 || quick.Augment != "paper" {
		t.Errorf("quick recipe: %+v", quick)
	}
	if lr, _ := quick.Schedule.At(0, 100, 10, quick.Optimizer.LR, 0.9); math.Abs(lr-0.2/25) > 1e-12 {
		t.Errorf("quick recipe starts at lr %g, want 0.2/25", lr)
	}
	tut, _ := LookupRecipe("tutorial")
	if tut.Optimizer.Name != Adam || tut.Optimizer.Eps != 1e-7 || tut.Batch != 32 || tut.Epochs != 10 || tut.Augment != "keras" {
		t.Errorf("tutorial recipe: %+v", tut)
	}
	if _, err := LookupRecipe("nope"); err == nil {
		t.Error("unknown recipe: no error")
	}
	bad := fast
	bad.Batch = 1
	if bad.Validate() == nil {
		t.Error("batch 1 accepted")
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	tensors := map[string]stTensor{
		"a": {Shape: []int{2, 3}, F32: []float32{1, 2, 3, 4, 5, float32(math.Inf(-1))}},
		"b": {Shape: []int{2}, I64: []int64{-7, 1 << 40}},
		"c": {Shape: []int{}, F32: []float32{0.5}},
	}
	var buf bytes.Buffer
	if err := writeSafetensors(&buf, []string{"c", "a", "b"}, tensors, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	got, meta, err := readSafetensors(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if meta["k"] != "v" || len(got) != 3 {
		t.Fatalf("meta %v, %d tensors", meta, len(got))
	}
	for name, want := range tensors {
		g := got[name]
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(g)
		if want.F32 != nil && math.IsInf(float64(want.F32[5%len(want.F32)]), 0) {
			if g.F32[5] != want.F32[5] {
				t.Errorf("%s: inf lost", name)
			}
			continue
		}
		if !bytes.Equal(wj, gj) {
			t.Errorf("%s: %s, want %s", name, gj, wj)
		}
	}
	for _, b := range [][]byte{nil, {1, 0, 0, 0, 0, 0, 0, 0}, append([]byte{2, 0, 0, 0, 0, 0, 0, 0}, "{}"...)} {
		if _, _, err := readSafetensors(b); err == nil && len(b) < 10 {
			t.Errorf("%q: no error", b)
		}
	}
}

// trainableFor returns p as a Trainable whose gradient is g.
func trainableFor(p *build.Param, g *tensor.Dense) *Trainable {
	nd := G.NewTensor(G.NewGraph(), tensor.Float32, len(g.Shape()), G.WithShape(g.Shape()...), G.WithName("grad"), G.WithValue(g))
	return &Trainable{Param: p, grad: nd, prog: &program{vals: []G.Value{g}, index: map[*G.Node]int{nd: 0}}}
}

// TestCrossEntropyMatchesPyTorch compares the loss and its gradient with
// torch.nn.functional.cross_entropy(z, y, label_smoothing=ε) (1.13).
func TestCrossEntropyMatchesPyTorch(t *testing.T) {
	z := []float32{1, -2, 0.5, 3, 0, 0.1, -0.3, 2, 5, 1, 1, -1}
	labels := []float32{3, 1, 0}
	for _, c := range []struct {
		eps  float64
		loss float64
		grad []float64
	}{
		{0, 0.8221452832221985, []float64{0.036851246, 0.001834716, 0.02235141, -0.061037384, 0.032567844, -0.297340304, 0.024126854, 0.240645617, -0.012546023, 0.005875426, 0.005875426, 0.000795152}},
		{0.1, 1.0063118934631348, []float64{0.028517909, -0.006498618, 0.014018074, -0.036037371, 0.024234505, -0.272340298, 0.015793515, 0.232312232, 0.012453956, -0.002457909, -0.002457909, -0.007538181}},
		{0.3, 1.3746452331542969, []float64{0.011851242, -0.023165284, -0.002648593, 0.013962611, 0.007567844, -0.222340301, -0.000873147, 0.215645611, 0.062453996, -0.019124575, -0.019124575, -0.024204848}},
	} {
		e := &env{}
		lo := &lossOp{base: base{kind: "CrossEntropy", name: "ce", env: e}, n: 3, k: 4, smoothing: c.eps, probs: make([]float32, 12), loss: new(G.F32)}
		zt := tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(z))
		yt := tensor.New(tensor.WithShape(3), tensor.WithBacking(labels))
		if _, err := lo.Do(zt, yt); err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(lo.total/3 - c.loss); d > 1e-6 {
			t.Errorf("ε=%g: loss %.9g, PyTorch %.9g", c.eps, lo.total/3, c.loss)
		}
		gop := &lossGradOp{base: base{env: e}, loss: lo, out: newDense(tensor.Shape{3, 4})}
		one := G.F32(1)
		if _, err := gop.Do(&one, nil, yt); err != nil {
			t.Fatal(err)
		}
		for i, want := range c.grad {
			if d := math.Abs(float64(gop.out.Float32s()[i]) - want); d > 1e-7 {
				t.Errorf("ε=%g: grad[%d] = %.9g, PyTorch %.9g", c.eps, i, gop.out.Float32s()[i], want)
			}
		}
	}
}
