package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/internal/kernels"
	"github.com/resnetctl/resnetctl/models"
)

// Gradient checks: every custom op's backward pass against central finite
// differences of L = Σ r·y (r fixed random weights, summed in float64),
// with the op's forward in float32.
//
// Tolerance: |analytic - numeric| <= gcTol * max(|analytic|, |numeric|,
// gcFloor). A float32 forward limits the numeric derivative to about
// 1e-7·|L|/h; with h = 1e-2 that is far below 1%. Coordinates where the
// one-sided differences disagree by more than the tolerance straddle a kink
// (ReLU at 0, a max-pool tie); they are skipped and counted, and at most a
// third may be.
const (
	gcTol   = 1e-2
	gcFloor = 1e-2
	gcStep  = 1e-2
)

// dotLossOp is L = Σ r·y, for gradient checks.
type dotLossOp struct {
	base
	r    []float32
	last float64
	out  *G.F32
}

func (o *dotLossOp) Do(vs ...G.Value) (G.Value, error) {
	y := f32(vs[0])
	var s float64
	for i, v := range y {
		s += float64(v) * float64(o.r[i])
	}
	o.last = s
	*o.out = G.F32(s)
	return o.out, nil
}

func (o *dotLossOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	op := &constGradOp{base: base{kind: "DotGrad", name: o.name + ".grad", inDims: []int{0}, shape: inputs[0].Shape().Clone(), env: o.env}}
	op.t = tensor.New(tensor.WithShape(op.shape...), tensor.WithBacking(o.r))
	g, err := apply(op, op.name, grad)
	return G.Nodes{g}, err
}

type constGradOp struct {
	base
	t *tensor.Dense
}

func (o *constGradOp) Do(...G.Value) (G.Value, error) { return o.t, nil }

// gcInput is one input of an op under test.
type gcInput struct {
	name  string
	shape tensor.Shape
	role  role
	data  []float32
	step  float32 // finite-difference step; 0 means gcStep
	// smooth inputs have no kinks: no coordinate may be skipped.
	smooth bool
}

// gradCheck builds the op under test over the inputs (mk returns the output
// node), checks up to samples coordinates of every differentiable input,
// and returns the worst relative error.
func gradCheck(t *testing.T, seed uint64, ins []gcInput, samples int, mk func(e *env, nodes []*G.Node) (*G.Node, error)) float64 {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 99))
	e := &env{pool: kernels.NewPool(2), training: true, extras: map[*G.Node][]*G.Node{}}
	defer e.pool.Close()
	gg := G.NewGraph()
	nodes := make([]*G.Node, len(ins))
	for i := range ins {
		in := &ins[i]
		if in.data == nil {
			in.data = make([]float32, in.shape.TotalSize())
			for j := range in.data {
				in.data[j] = float32(r.NormFloat64())
			}
		}
		v := tensor.New(tensor.WithShape(in.shape.Clone()...), tensor.WithBacking(in.data))
		nodes[i] = G.NewTensor(gg, tensor.Float32, len(in.shape), G.WithShape(in.shape...), G.WithName(in.name), G.WithValue(v))
	}
	y, err := mk(e, nodes)
	if err != nil {
		t.Fatal(err)
	}
	rw := make([]float32, y.Shape().TotalSize())
	for j := range rw {
		rw[j] = float32(r.NormFloat64())
	}
	lo := &dotLossOp{base: base{kind: "Dot", name: "dot", inDims: []int{len(y.Shape())}, shape: tensor.ScalarShape(),
		roles: []role{primary}, env: e}, r: rw, out: new(G.F32)}
	loss, err := apply(lo, "dot", y)
	if err != nil {
		t.Fatal(err)
	}
	var wrt G.Nodes
	var idx []int
	for i, in := range ins {
		if in.role != noGrad {
			wrt = append(wrt, nodes[i])
			idx = append(idx, i)
		}
	}
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(gg)
	defer vm.Close()
	run := func() float64 {
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		vm.Reset()
		return lo.last
	}
	run()
	analytic := make([][]float32, len(grads))
	for i, gn := range grads {
		analytic[i] = append([]float32(nil), f32(gn.Value())...)
	}
	worst := 0.0
	for k, i := range idx {
		data := ins[i].data
		skipped, checked := 0, 0
		picks := r.Perm(len(data))
		if len(picks) > samples {
			picks = picks[:samples]
		}
		for _, j := range picks {
			x0 := data[j]
			h := float32(gcStep)
			if ins[i].step != 0 {
				h = ins[i].step
			}
			data[j] = x0 + h
			lp := run()
			data[j] = x0 - h
			lm := run()
			data[j] = x0
			l0 := run()
			hd := float64((x0 + h) - x0) // the step as represented
			num := (lp - lm) / (2 * hd)
			a := float64(analytic[k][j])
			scale := math.Max(math.Max(math.Abs(a), math.Abs(num)), gcFloor)
			right, left := (lp-l0)/hd, (l0-lm)/hd
			if !ins[i].smooth && math.Abs(right-left) > gcTol*scale {
				skipped++ // a kink between x-h and x+h
				continue
			}
			checked++
			rel := math.Abs(a-num) / scale
			worst = math.Max(worst, rel)
			if rel > gcTol {
				t.Errorf("%s[%d]: analytic %.6g, numeric %.6g (relative error %.3g)", ins[i].name, j, a, num, rel)
			}
		}
		if skipped > max(1, (skipped+checked)/3) {
			t.Errorf("%s: %d of %d coordinates straddle a kink", ins[i].name, skipped, skipped+checked)
		}
	}
	return worst
}

// gcReport collects the worst errors for the test log.
func gcReport(t *testing.T, name string, worst float64) {
	t.Helper()
	t.Logf("%-34s worst relative error %.2e", name, worst)
}

func convRoles(bias bool) []role {
	if bias {
		return []role{primary, param, param}
	}
	return []role{primary, param}
}

func TestGradCheckConv(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		n, c, h, oc, k, s, pd int
		groups                int
		bias                  bool
	}{
		{"conv3x3", 2, 3, 6, 4, 3, 1, 1, 1, false},
		{"conv3x3-bias", 2, 3, 6, 4, 3, 1, 1, 1, true},
		{"conv3x3-stride2", 2, 4, 7, 6, 3, 2, 1, 1, false},
		{"conv1x1-stride2", 3, 4, 6, 8, 1, 2, 0, 1, true},
		{"conv7x7-stride2", 2, 3, 9, 4, 7, 2, 3, 1, false},
		{"conv3x3-grouped", 2, 4, 5, 6, 3, 1, 1, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oh := (tc.h+2*tc.pd-tc.k)/tc.s + 1
			in := tensor.Shape{tc.n, tc.c, tc.h, tc.h}
			out := tensor.Shape{tc.n, tc.oc, oh, oh}
			ins := []gcInput{{name: "x", shape: in, role: primary}, {name: "weight", shape: tensor.Shape{tc.oc, tc.c / tc.groups, tc.k, tc.k}, role: param}}
			if tc.bias {
				ins = append(ins, gcInput{name: "bias", shape: tensor.Shape{tc.oc}, role: param})
			}
			w := gradCheck(t, 1, ins, 40, func(e *env, nodes []*G.Node) (*G.Node, error) {
				prm := kernels.ConvParams{InC: tc.c, InH: tc.h, InW: tc.h, OutC: tc.oc, KH: tc.k, KW: tc.k,
					StrideH: tc.s, StrideW: tc.s, PadTop: tc.pd, PadLeft: tc.pd, PadBottom: tc.pd, PadRight: tc.pd, Group: tc.groups}
				op, err := newConvOp(e, "conv", tc.n, in, out, prm, tc.bias, convRoles(tc.bias))
				if err != nil {
					return nil, err
				}
				return apply(op, "conv", nodes...)
			})
			gcReport(t, tc.name, w)
		})
	}
}

func TestGradCheckBatchNorm(t *testing.T) {
	for _, tc := range []struct {
		name string
		relu bool
		sc   string // "", "id", "padA"
	}{
		{"batchnorm", false, ""},
		{"batchnorm+relu", true, ""},
		{"batchnorm+add+relu", true, "id"},
		{"batchnorm+add(padA)+relu", true, "padA"},
		{"batchnorm+add", false, "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n, c, h = 4, 8, 4
			in := tensor.Shape{n, c, h, h}
			// gamma and beta move every pre-activation of a channel: a
			// smaller step crosses fewer ReLU kinks.
			ins := []gcInput{{name: "x", shape: in, role: primary}, {name: "gamma", shape: tensor.Shape{c}, role: param, step: 1e-3},
				{name: "beta", shape: tensor.Shape{c}, role: param, step: 1e-3}}
			var scShape tensor.Shape
			var pad *build.PadAttrs
			switch tc.sc {
			case "id":
				scShape = in
			case "padA":
				scShape = tensor.Shape{n, c / 2, 2 * h, 2 * h}
				pad = &build.PadAttrs{Stride: 2, Before: 1, After: 1}
			}
			if scShape != nil {
				ins = append(ins, gcInput{name: "shortcut", shape: scShape, role: primary})
			}
			w := gradCheck(t, 2, ins, 40, func(e *env, nodes []*G.Node) (*G.Node, error) {
				k, err := kernels.NewBatchNormTrain(n, c, h, h, 1e-5)
				if err != nil {
					return nil, err
				}
				o := &bnOp{base: base{kind: "BatchNorm", name: "bn", inDims: dimsOf(len(nodes), 4), shape: in, roles: []role{primary, param, param, primary}, env: e},
					k: k, relu: tc.relu, runMean: make([]float32, c), runVar: make([]float32, c), momentum: 0.1,
					scale: make([]float32, c), shift: make([]float32, c), out: newDense(in)}
				o.inDims[1], o.inDims[2] = 1, 1
				if scShape != nil {
					o.hasSC, o.scShape = true, scShape
					o.sc = kernels.Shortcut{C: scShape[1], H: scShape[2], W: scShape[3], Stride: 1}
					if pad != nil {
						o.sc.Stride, o.sc.Before = pad.Stride, pad.Before
					}
				}
				return apply(o, "bn", nodes...)
			})
			gcReport(t, tc.name, w)
		})
	}
}

func TestGradCheckElementwiseAndPooling(t *testing.T) {
	const n, c, h = 3, 4, 6
	in := tensor.Shape{n, c, h, h}
	cases := []struct {
		name string
		ins  []gcInput
		mk   func(e *env, nodes []*G.Node) (*G.Node, error)
	}{
		{"relu", []gcInput{{name: "x", shape: in, role: primary}}, func(e *env, nodes []*G.Node) (*G.Node, error) {
			return apply(&reluOp{base: base{kind: "Relu", name: "relu", inDims: []int{4}, shape: in, roles: []role{primary}, env: e}, out: newDense(in)}, "relu", nodes...)
		}},
		{"add+relu", []gcInput{{name: "a", shape: in, role: primary}, {name: "b", shape: in, role: primary}}, func(e *env, nodes []*G.Node) (*G.Node, error) {
			o := &addOp{base: base{kind: "Add", name: "add", inDims: []int{4, 4}, shape: in, roles: []role{primary, primary}, env: e}, relu: true, n: n, bShape: in, out: newDense(in)}
			return apply(o, "add", nodes...)
		}},
		{"add(padA)", []gcInput{{name: "a", shape: tensor.Shape{n, 2 * c, h / 2, h / 2}, role: primary}, {name: "b", shape: in, role: primary}}, func(e *env, nodes []*G.Node) (*G.Node, error) {
			out := tensor.Shape{n, 2 * c, h / 2, h / 2}
			o := &addOp{base: base{kind: "Add", name: "add", inDims: []int{4, 4}, shape: out, roles: []role{primary, primary}, env: e},
				pad: &build.PadAttrs{Stride: 2, Before: 1, After: c - 1}, n: n, bShape: in, out: newDense(out)}
			return apply(o, "add", nodes...)
		}},
		{"channelpad", []gcInput{{name: "x", shape: in, role: primary}}, func(e *env, nodes []*G.Node) (*G.Node, error) {
			out := tensor.Shape{n, 2 * c, h / 2, h / 2}
			o := &padOp{base: base{kind: "ChannelPad", name: "pad", inDims: []int{4}, shape: out, roles: []role{primary}, env: e},
				n: n, pad: &build.PadAttrs{Stride: 2, Before: c / 2, After: c - c/2}, xShape: in, out: newDense(out)}
			return apply(o, "pad", nodes...)
		}},
		{"maxpool3x3s2", []gcInput{{name: "x", shape: in, role: primary}}, func(e *env, nodes []*G.Node) (*G.Node, error) {
			return poolNode(e, nodes, in, false, true, kernels.Pool2DParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1})
		}},
		{"avgpool3x3s2", []gcInput{{name: "x", shape: in, role: primary}}, func(e *env, nodes []*G.Node) (*G.Node, error) {
			return poolNode(e, nodes, in, false, false, kernels.Pool2DParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1})
		}},
		{"globalavgpool+flatten", []gcInput{{name: "x", shape: in, role: primary}}, func(e *env, nodes []*G.Node) (*G.Node, error) {
			p, err := poolNode(e, nodes, in, true, false, kernels.Pool2DParams{})
			if err != nil {
				return nil, err
			}
			o := &reshapeOp{base: base{kind: "Flatten", name: "flatten", inDims: []int{4}, shape: tensor.Shape{n, c}, roles: []role{primary}, env: e}, inShape: p.Shape().Clone()}
			return apply(o, "flatten", p)
		}},
		{"dense", []gcInput{{name: "x", shape: tensor.Shape{n, 5}, role: primary}, {name: "weight", shape: tensor.Shape{3, 5}, role: param}, {name: "bias", shape: tensor.Shape{3}, role: param}},
			func(e *env, nodes []*G.Node) (*G.Node, error) {
				o := &denseOp{base: base{kind: "Dense", name: "fc", inDims: []int{2, 2, 1}, shape: tensor.Shape{n, 3}, roles: []role{primary, param, param}, env: e}, n: n, in: 5, outF: 3, out: newDense(tensor.Shape{n, 3})}
				return apply(o, "fc", nodes...)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gcReport(t, tc.name, gradCheck(t, 3, tc.ins, 60, tc.mk))
		})
	}
}

func poolNode(e *env, nodes []*G.Node, in tensor.Shape, global, max bool, prm kernels.Pool2DParams) (*G.Node, error) {
	oh, ow := prm.OutSize(in[2], in[3])
	out := tensor.Shape{in[0], in[1], oh, ow}
	if global {
		out = tensor.Shape{in[0], in[1], 1, 1}
	}
	o := &poolOp{base: base{kind: "Pool", name: "pool", inDims: []int{4}, shape: out, roles: []role{primary}, env: e},
		global: global, max: max, prm: prm, inShape: in, out: newDense(out)}
	if max {
		o.idx = make([]int32, out.TotalSize())
	}
	return apply(o, "pool", nodes...)
}

func TestGradCheckCrossEntropy(t *testing.T) {
	for _, eps := range []float64{0, 0.1} {
		t.Run(fmt.Sprintf("smoothing=%g", eps), func(t *testing.T) {
			const n, k = 5, 7
			labels := []float32{0, 6, 3, 3, 1}
			w := gradCheck(t, 4, []gcInput{{name: "logits", shape: tensor.Shape{n, k}, role: primary, smooth: true}, {name: "labels", shape: tensor.Shape{n}, role: noGrad, data: labels}}, 35,
				func(e *env, nodes []*G.Node) (*G.Node, error) {
					o := &lossOp{base: base{kind: "CrossEntropy", name: "ce", inDims: []int{2, 1}, shape: tensor.ScalarShape(), roles: []role{primary, noGrad}, env: e},
						n: n, k: k, smoothing: eps, probs: make([]float32, n*k), loss: new(G.F32)}
					l, err := apply(o, "ce", nodes...)
					if err != nil {
						return nil, err
					}
					// Make the scalar loss a 1-element tensor for the dot loss.
					r := &reshapeOp{base: base{kind: "Reshape", name: "as_vector", inDims: []int{0}, shape: tensor.Shape{1}, roles: []role{primary}, env: e}, inShape: tensor.ScalarShape()}
					return apply(r, "as_vector", l)
				})
			gcReport(t, fmt.Sprintf("cross-entropy (smoothing %g)", eps), w)
		})
	}
}

// TestGradCheckNetwork checks whole training graphs (all fusions, the
// gradient accumulation of multi-consumer activations, option A and B
// shortcuts, pre-activation, max-pool stems) against finite differences of
// the mean loss on a few coordinates of every parameter.
func TestGradCheckNetwork(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(s *models.Spec)
	}{
		{"resnet8-optionA", func(s *models.Spec) {}},
		{"resnet8-optionB", func(s *models.Spec) { s.Shortcut = models.ShortcutB }},
		{"preact-optionA", func(s *models.Spec) { s.PreAct = true }},
		{"preact-optionB", func(s *models.Spec) { s.PreAct = true; s.Shortcut = models.ShortcutB }},
		{"bottleneck-imagenet-stem", func(s *models.Spec) {
			s.Family, s.Block, s.Shortcut = models.ImageNet, models.Bottleneck, models.ShortcutB
			s.Depths, s.Widths, s.StemWidth = []int{1, 1}, []int{4, 8}, 8
			s.Input = models.Shape{C: 3, H: 16, W: 16}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := models.CIFARDepth(8, models.Basic)
			if err != nil {
				t.Fatal(err)
			}
			spec.Widths, spec.StemWidth = []int{4, 8, 8}, 4
			spec.Input = models.Shape{C: 3, H: 8, W: 8}
			spec.Classes, spec.Labels = 5, ""
			tc.mod(&spec)
			g, err := build.New(spec, build.Options{Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			const batch = 4
			net, err := NewNet(g, batch, NetOptions{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			r := rand.New(rand.NewPCG(8, 9))
			x := make([]float32, batch*spec.Input.C*spec.Input.H*spec.Input.W)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			labels := []int{0, 4, 2, 1}
			loss := func() float64 {
				if _, err := net.Step(x, labels); err != nil {
					t.Fatal(err)
				}
				return net.lossOp.total / batch
			}
			loss()
			worst := 0.0
			checked, skipped := 0, 0
			for _, p := range net.Params() {
				grad := append([]float32(nil), p.Grad()...)
				for _, j := range r.Perm(len(p.Param.Data))[:min(3, len(p.Param.Data))] {
					x0 := p.Param.Data[j]
					h := float32(1e-3)
					p.Param.Data[j] = x0 + h
					lp := loss()
					p.Param.Data[j] = x0 - h
					lm := loss()
					p.Param.Data[j] = x0
					l0 := loss()
					hd := float64((x0 + h) - x0)
					num := (lp - lm) / (2 * hd)
					a := float64(grad[j])
					scale := math.Max(math.Max(math.Abs(a), math.Abs(num)), 5e-3)
					if math.Abs((lp-l0)/hd-(l0-lm)/hd) > 2e-2*scale {
						skipped++
						continue
					}
					checked++
					rel := math.Abs(a-num) / scale
					worst = math.Max(worst, rel)
					if rel > 2e-2 {
						t.Errorf("%s[%d]: analytic %.6g, numeric %.6g (relative error %.3g)", p.Param.Name, j, a, num, rel)
					}
				}
			}
			if skipped > (skipped+checked)/3 {
				t.Errorf("%d of %d coordinates straddle a kink", skipped, skipped+checked)
			}
			t.Logf("%-34s %d coordinates (%d skipped at kinks), worst relative error %.2e", tc.name, checked, skipped, worst)
		})
	}
}
