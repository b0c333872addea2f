package train

import (
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lossOp is the mean softmax cross-entropy of logits [N, K] against class
// indices (a float32 vector), with optional label smoothing ε in PyTorch's
// sense: the target of a sample of class y is (1-ε)·onehot(y) + ε/K. It
// keeps the probabilities for its gradient and counts correct top-1
// predictions for metrics. The value is the loss as a gorgonia scalar.
type lossOp struct {
	base
	n, k      int
	smoothing float64
	probs     []float32
	loss      *G.F32
	total     float64 // the summed loss of the last Do, in float64
	correct   int
}

func (o *lossOp) Do(vs ...G.Value) (G.Value, error) {
	z, labels := f32(vs[0]), f32(vs[1])
	eps := o.smoothing
	var total float64
	o.correct = 0
	for i := 0; i < o.n; i++ {
		row := z[i*o.k : (i+1)*o.k]
		y := int(labels[i])
		best, arg := math.Inf(-1), 0
		for j, v := range row {
			if float64(v) > best {
				best, arg = float64(v), j
			}
		}
		if arg == y {
			o.correct++
		}
		var s, sumZ float64
		for _, v := range row {
			s += math.Exp(float64(v) - best)
			sumZ += float64(v)
		}
		lse := best + math.Log(s)
		p := o.probs[i*o.k : (i+1)*o.k]
		for j, v := range row {
			p[j] = float32(math.Exp(float64(v) - lse))
		}
		// -Σ t_j log p_j with t = (1-ε)·onehot(y) + ε/K.
		l := (1 - eps) * (lse - float64(row[y]))
		if eps != 0 {
			l += eps * (lse - sumZ/float64(o.k))
		}
		total += l
	}
	o.total = total
	*o.loss = G.F32(total / float64(o.n))
	return o.loss, nil
}

func (o *lossOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	shape := tensor.Shape{o.n, o.k}
	op := &lossGradOp{base: base{kind: "CrossEntropyGrad", name: o.name + ".grad_logits", inDims: []int{0, 0, 1},
		shape: shape, env: o.env}, loss: o, out: newDense(shape)}
	g, err := apply(op, op.name, grad, output, inputs[1])
	if err != nil {
		return nil, err
	}
	return G.Nodes{g, nil}, nil
}

// lossGradOp is dL/dlogits = (p - t)·g/N, inputs (g, loss [ordering],
// labels).
type lossGradOp struct {
	base
	loss *lossOp
	out  *tensor.Dense
}

func (o *lossGradOp) Do(vs ...G.Value) (G.Value, error) {
	l := o.loss
	g := float64(scalar(vs[0])) / float64(l.n)
	labels := f32(vs[2])
	out := o.out.Float32s()
	eps := l.smoothing
	for i := 0; i < l.n; i++ {
		y := int(labels[i])
		for j := 0; j < l.k; j++ {
			t := eps / float64(l.k)
			if j == y {
				t += 1 - eps
			}
			out[i*l.k+j] = float32((float64(l.probs[i*l.k+j]) - t) * g)
		}
	}
	return o.out, nil
}
