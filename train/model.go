package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/infer"
	"github.com/resnetctl/resnetctl/models"
)

// Model is a network to train, used the way a Keras model is:
//
//	m, _ := train.NewModel(spec, 1)
//	_ = m.Compile(train.CompileOptions{Optimizer: train.OptimizerConfig{Name: "adam", LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-7}})
//	hist, _ := m.Fit(ctx, trainData, train.FitOptions{Epochs: 10, Batch: 32, Validation: testData})
//	res, _ := m.Evaluate(ctx, testData, 0)
//	logits, _ := m.Predict(ctx, images, n)
//
// Training runs on a gorgonia graph of custom ops (Net); evaluation and
// prediction run the exported ONNX model through the inference runtime, so
// what is measured is what ships. The weights live in Graph: after Fit,
// export.WriteFile(path, m.Graph, …) writes the trained model.
type Model struct {
	Graph *build.Graph

	compiled bool
	copts    CompileOptions
	opt      *Optimizer

	net   *Net
	rng   *rand.PCG
	state TrainerState // epoch, step, history, best, bad epochs

	frozen    map[string]bool // parameters CompileOptions.Freeze holds fixed (freeze.go)
	ema       *ema            // the weights' moving average, CompileOptions.EMADecay (ema.go)
	bnBatches int             // batches of the last ReestimateBN, for the recipe
}

// NewModel builds a model from a spec with weights initialised from seed.
func NewModel(spec models.Spec, seed uint64) (*Model, error) {
	g, err := build.New(spec, build.Options{Seed: seed})
	if err != nil {
		return nil, err
	}
	return FromGraph(g), nil
}

// FromGraph trains an existing graph (an imported model, say). The graph's
// parameters are updated in place.
func FromGraph(g *build.Graph) *Model { return &Model{Graph: g} }

// CompileOptions configure how a model learns.
type CompileOptions struct {
	Optimizer OptimizerConfig
	Schedule  ScheduleConfig
	// Loss is SparseCategoricalCrossentropy (the default, and the only
	// loss), with label smoothing ε.
	Loss           string
	LabelSmoothing float64
	// Metrics may list "accuracy" (always computed); loss is always
	// reported.
	Metrics []string
	// Threads for training and evaluation kernels; 0 means all CPUs.
	Threads int
	// Freeze is FreezeNone ("" too) or FreezeBackbone: train only the
	// head, every other parameter and BatchNorm statistic held fixed (see
	// freeze.go).
	Freeze string
	// EMADecay, if positive, keeps an exponential moving average of the
	// weights (Recipe.EMADecay, ema.go).
	EMADecay float64
}

// CompileOptions returns the recipe's compile settings.
func (r Recipe) CompileOptions() CompileOptions {
	return CompileOptions{Optimizer: r.Optimizer, Schedule: r.Schedule, Loss: r.Loss, LabelSmoothing: r.LabelSmoothing, Metrics: []string{"accuracy"},
		Freeze: r.Freeze, EMADecay: r.EMADecay}
}

// Compile sets the optimiser, schedule and loss, resetting optimiser
// state, as Keras' compile does.
func (m *Model) Compile(c CompileOptions) error {
	if c.Loss == "" {
		c.Loss = SparseCategoricalCrossentropy
	}
	if c.Loss != SparseCategoricalCrossentropy {
		return fmt.Errorf("train: loss %q: only %s is supported", c.Loss, SparseCategoricalCrossentropy)
	}
	if !(c.LabelSmoothing >= 0 && c.LabelSmoothing < 1) {
		return fmt.Errorf("train: label smoothing %g must be in [0, 1)", c.LabelSmoothing)
	}
	for _, name := range c.Metrics {
		if name != "accuracy" && name != "loss" {
			return fmt.Errorf("train: unknown metric %q (want accuracy)", name)
		}
	}
	if !validEMADecay(c.EMADecay) {
		return fmt.Errorf("train: EMA decay %g must be 0 (off) or in (0, 1)", c.EMADecay)
	}
	if c.Schedule.Kind == "" {
		c.Schedule.Kind = Constant
	}
	if err := c.Schedule.Validate(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	opt, err := NewOptimizer(c.Optimizer)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	c.Freeze = normFreeze(c.Freeze)
	frozen, err := FrozenParams(m.Graph, c.Freeze)
	if err != nil {
		return err
	}
	if m.net != nil && (m.copts.Threads != c.Threads || m.copts.LabelSmoothing != c.LabelSmoothing || m.copts.Freeze != c.Freeze) {
		m.net.Close()
		m.net = nil
	}
	m.copts, m.opt, m.compiled, m.frozen = c, opt, true, frozen
	return nil
}

// FitOptions configure a Fit call.
type FitOptions struct {
	// Epochs is the epoch to train up to (counting the epochs a resumed
	// model already trained); MaxSteps, if positive, stops after that many
	// optimiser steps in total.
	Epochs, MaxSteps int
	Batch            int
	// Seed seeds the generator that draws each epoch's data seed, on a
	// model's first Fit; a resumed model continues its checkpointed
	// generator.
	Seed uint64
	// Validation, if set, is evaluated after every epoch (in order, at
	// EvalBatch samples a run, default 256) through the inference runtime.
	Validation Source
	EvalBatch  int
	// ValidationTTA is "" or TTAFlip (Recipe.ValidationTTA).
	ValidationTTA string
	Callbacks     []Callback
	// CheckpointDir, if set, receives "epoch-NNNN" after every epoch and
	// "best" when the monitored metric improves; KeepLast > 0 keeps only
	// the newest KeepLast epoch checkpoints.
	CheckpointDir string
	KeepLast      int
	// Monitor selects the metric of "best" and of early stopping:
	// val_accuracy (default with validation data), val_loss, accuracy
	// (default without) or loss.
	Monitor       string
	EarlyStopping EarlyStopping
	// RecipeName and Augment are recorded in checkpoints (with the
	// compile settings) so that a run can be resumed with the same data
	// pipeline; Fit does not interpret them.
	RecipeName, Augment string
	// OnlyClasses is recorded likewise (Recipe.OnlyClasses).
	OnlyClasses []int
	// Data, if set, is recorded in every checkpoint (TrainerState.Data)
	// for the caller's resume; Fit does not interpret it.
	Data *DataRecord

	// checkpointFault, if set, may fail checkpoint writes (tests).
	checkpointFault func(stage string) error
}

// FitOptions returns the recipe's fit settings (without data, callbacks
// or checkpointing).
func (r Recipe) FitOptions() FitOptions {
	return FitOptions{Epochs: r.Epochs, MaxSteps: r.MaxSteps, Batch: r.Batch, Seed: r.Seed,
		EarlyStopping: r.EarlyStopping, Monitor: r.EarlyStopping.Monitor, RecipeName: r.Name, Augment: r.Augment,
		OnlyClasses: r.OnlyClasses, ValidationTTA: r.ValidationTTA}
}

// ErrNonFinite is wrapped by the error Fit returns when the loss or a
// parameter becomes NaN or infinite (the model is left as it was before
// the failing step; the last checkpoint on disk is the last good one), and
// by Evaluate's when the model's output is not finite.
var ErrNonFinite = errors.New("not finite")

// History returns the metrics of every epoch trained so far.
func (m *Model) History() *History {
	return &History{Epochs: append([]EpochMetrics(nil), m.state.History...)}
}

// Epoch returns the number of completed epochs; Step the optimiser steps.
func (m *Model) Epoch() int { return m.state.Epoch }

// Data returns the data record of the checkpoint the model was resumed
// from (nil for a new model, or a checkpoint that has none).
func (m *Model) Data() *DataRecord { return m.state.Data }

// Step returns the number of optimiser steps taken.
func (m *Model) Step() int { return m.state.Step }

// Close releases the model's training threads.
func (m *Model) Close() error {
	if m.net != nil {
		m.net.Close()
		m.net = nil
	}
	return nil
}

func (m *Model) recipe(o FitOptions) Recipe {
	return Recipe{Name: o.RecipeName, Epochs: o.Epochs, MaxSteps: o.MaxSteps, Batch: o.Batch,
		Optimizer: m.copts.Optimizer, Schedule: m.copts.Schedule, Loss: m.copts.Loss, LabelSmoothing: m.copts.LabelSmoothing,
		Augment: o.Augment, EarlyStopping: o.EarlyStopping, Seed: o.Seed,
		Freeze: m.copts.Freeze, BNReestimate: m.bnBatches, OnlyClasses: o.OnlyClasses,
		ValidationTTA: o.ValidationTTA, EMADecay: m.copts.EMADecay}
}

// better reports whether v improves on the best value of monitor.
func better(monitor string, v float64, best *Best, minDelta float64) bool {
	if best == nil {
		return true
	}
	if monitor == "loss" || monitor == "val_loss" {
		return v < best.Value-minDelta
	}
	return v > best.Value+minDelta
}

// Fit trains on data until epoch o.Epochs (or o.MaxSteps steps), then
// returns the history of all epochs. It stops early with ctx's error when
// ctx is cancelled (checkpoints on disk are those of finished epochs),
// with an error wrapping ErrNonFinite when the loss diverges, or when a
// checkpoint cannot be written.
func (m *Model) Fit(ctx context.Context, data Source, o FitOptions) (*History, error) {
	if !m.compiled {
		return nil, errors.New("train: Fit before Compile")
	}
	if o.Epochs < 1 || o.Batch < 2 || o.MaxSteps < 0 {
		return nil, fmt.Errorf("train: fit needs epochs ≥ 1 (got %d), batch ≥ 2 (got %d), max steps ≥ 0 (got %d)", o.Epochs, o.Batch, o.MaxSteps)
	}
	if o.ValidationTTA != "" && o.ValidationTTA != TTAFlip {
		return nil, fmt.Errorf("train: validation TTA %q (want %q or none)", o.ValidationTTA, TTAFlip)
	}
	in := m.Graph.Spec.Input
	if data.Shape() != in {
		return nil, fmt.Errorf("train: the data's images are %s, the model takes %s", data.Shape(), in)
	}
	perEpoch := data.Len() / o.Batch
	if perEpoch == 0 {
		return nil, fmt.Errorf("train: %d training samples make no full batch of %d", data.Len(), o.Batch)
	}
	monitor := o.Monitor
	if monitor == "" {
		monitor = "accuracy"
		if o.Validation != nil {
			monitor = "val_accuracy"
		}
	}
	if (monitor == "val_loss" || monitor == "val_accuracy") && o.Validation == nil {
		return nil, fmt.Errorf("train: monitoring %s needs validation data", monitor)
	}
	stopMonitor := o.EarlyStopping.Monitor
	if stopMonitor == "" {
		stopMonitor = monitor
	}
	if stopMonitor != monitor && o.EarlyStopping.Patience > 0 {
		return nil, fmt.Errorf("train: early stopping monitors %s but the best checkpoint %s; use one metric", stopMonitor, monitor)
	}
	if m.state.Best != nil && m.state.Best.Monitor != monitor {
		return nil, fmt.Errorf("train: the resumed run monitored %s, not %s", m.state.Best.Monitor, monitor)
	}
	if m.net != nil && m.net.Batch() != o.Batch {
		m.net.Close()
		m.net = nil
	}
	if m.net == nil {
		net, err := NewNet(m.Graph, o.Batch, m.netOptions())
		if err != nil {
			return nil, err
		}
		m.net = net
	}
	m.setupEMA()
	if m.rng == nil {
		m.rng = rand.NewPCG(o.Seed, 0x747261696e) // "train"
	}
	var ck *checkpointer
	if o.CheckpointDir != "" {
		ck = &checkpointer{root: o.CheckpointDir, keepLast: o.KeepLast, fail: o.checkpointFault}
		ck.cleanTemp()
	}
	return m.fit(ctx, data, o, perEpoch, monitor, ck)
}

func (m *Model) fit(ctx context.Context, data Source, o FitOptions, perEpoch int, monitor string, ck *checkpointer) (*History, error) {
	net := m.net
	st := &m.state
	total := o.Epochs * perEpoch
	if o.MaxSteps > 0 && o.MaxSteps < total {
		total = o.MaxSteps
	}
	in := m.Graph.Spec.Input
	x := make([]float32, o.Batch*in.C*in.H*in.W)
	labels := make([]int, o.Batch)
	// Running statistics are restored if a step's loss is not finite.
	var stats [][]float32
	var backup [][]float32
	for _, p := range m.Graph.Params {
		if !p.Trainable {
			stats = append(stats, p.Data)
			backup = append(backup, make([]float32, len(p.Data)))
		}
	}
	hist := func(stopped string) *History {
		h := m.History()
		h.Stopped = stopped
		return h
	}
	start, startStep := time.Now(), st.Step
	lr, mom := m.copts.Optimizer.LR, m.copts.Optimizer.Momentum
	// The ETA counts the validations still to come: each takes as long as
	// the last one did, or, before the first, as long as a third of the
	// training time of as many images (a forward pass without the
	// backward one).
	var valTime time.Duration
	valLen := 0
	if o.Validation != nil {
		valLen = o.Validation.Len()
	}
	eta := func(epoch int, perStep time.Duration, validating bool) time.Duration {
		d := perStep * time.Duration(total-st.Step)
		if valLen == 0 {
			return d
		}
		per := valTime
		if per == 0 {
			per = perStep * time.Duration(valLen) / time.Duration(3*o.Batch)
		}
		left := o.Epochs - epoch // validations after this epoch's
		if !validating {
			left++
		}
		return d + time.Duration(left)*per
	}
	perStep := func() time.Duration {
		if done := st.Step - startStep; done > 0 {
			return time.Since(start) / time.Duration(done)
		}
		return 0
	}
	for st.Epoch < o.Epochs {
		if o.MaxSteps > 0 && st.Step >= o.MaxSteps {
			return hist("max steps"), nil
		}
		epoch := st.Epoch
		// An interrupted epoch continues with its own seed (already drawn
		// from the generator) after the batches it had done.
		var part Partial
		if st.Partial != nil {
			part, st.Partial = *st.Partial, nil
		} else {
			part.Seed = rand.New(m.rng).Uint64()
		}
		batches, err := data.Epoch(epoch, part.Seed, o.Batch)
		if err != nil {
			return hist(""), fmt.Errorf("train: epoch %d: %w", epoch+1, err)
		}
		for i := 0; i < part.Batches; i++ {
			if n, err := batches.Next(x, labels); err != nil || n < o.Batch {
				if err == nil {
					err = fmt.Errorf("the data gives %d samples where the interrupted run had a batch of %d: is it the data the run trained on?", n, o.Batch)
				}
				return hist(""), fmt.Errorf("train: epoch %d: replaying batch %d of %d of the interrupted epoch: %w", epoch+1, i+1, part.Batches, err)
			}
		}
		t0 := time.Now().Add(-time.Duration(part.Seconds * float64(time.Second)))
		sumLoss, correct, seen := part.SumLoss, part.Correct, part.Seen
		var b int
		for b = part.Batches; b < perEpoch; b++ {
			if o.MaxSteps > 0 && st.Step >= o.MaxSteps {
				break
			}
			if err := ctx.Err(); err != nil {
				if b == 0 {
					// Nothing done since the last checkpoint, which is
					// from before the seed was drawn; in memory, the
					// next Fit uses the seed drawn.
					st.Partial = &Partial{Seed: part.Seed}
					return hist(""), err
				}
				st.Partial = &Partial{Batches: b, Seed: part.Seed, SumLoss: sumLoss, Correct: correct, Seen: seen, Seconds: time.Since(t0).Seconds()}
				if ck == nil {
					return hist(fmt.Sprintf("interrupted in epoch %d after batch %d", epoch+1, b)), err
				}
				name := partialName(epoch, b)
				files, ferr := m.checkpointFiles(o)
				if ferr == nil {
					ferr = ck.write(name, files)
				}
				if ferr != nil {
					return hist(""), fmt.Errorf("train: interrupted in epoch %d after batch %d; saving its checkpoint failed (the last complete one is kept): %w", epoch+1, b, ferr)
				}
				return hist(fmt.Sprintf("interrupted in epoch %d after batch %d; saved %s", epoch+1, b, filepath.Join(ck.root, name))), err
			}
			n, err := batches.Next(x, labels)
			if err != nil {
				return hist(""), fmt.Errorf("train: epoch %d, batch %d: %w", epoch+1, b+1, err)
			}
			if n < o.Batch {
				break
			}
			lr, mom = m.copts.Schedule.At(st.Step, total, perEpoch, m.copts.Optimizer.LR, m.copts.Optimizer.Momentum)
			for i, s := range stats {
				copy(backup[i], s)
			}
			res, err := net.Step(x, labels)
			if err != nil {
				return hist(""), err
			}
			if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
				for i, s := range stats {
					copy(s, backup[i])
				}
				return hist(""), fmt.Errorf("train: epoch %d, batch %d (step %d, lr %.4g): the loss is %w (%v); the model is as it was before this step",
					epoch+1, b+1, st.Step+1, lr, ErrNonFinite, res.Loss)
			}
			if err := m.opt.Step(net.Params(), lr, mom); err != nil {
				return hist(""), err
			}
			if m.ema != nil {
				m.ema.update()
			}
			st.Step++
			sumLoss += res.Loss
			correct += res.Correct
			seen += o.Batch
			if len(o.Callbacks) > 0 {
				el := time.Since(start)
				done := st.Step - startStep
				info := BatchInfo{Epoch: epoch + 1, Epochs: o.Epochs, Batch: b + 1, Batches: perEpoch, Step: st.Step, Steps: total,
					Loss: res.Loss, Accuracy: float64(res.Correct) / float64(o.Batch),
					EpochLoss: sumLoss / float64(b+1), EpochAccuracy: float64(correct) / float64(seen), LR: lr,
					ImagesPerSecond: float64(done*o.Batch) / el.Seconds(), Elapsed: el}
				info.ETA = eta(epoch+1, el/time.Duration(done), false)
				for _, c := range o.Callbacks {
					c.OnBatchEnd(info)
				}
			}
		}
		if b == 0 {
			return hist(""), fmt.Errorf("train: epoch %d yielded no full batch of %d", epoch+1, o.Batch)
		}
		secs := time.Since(t0).Seconds()
		em := EpochMetrics{Epoch: epoch + 1, Step: st.Step, LR: lr, Loss: sumLoss / float64(b),
			Accuracy: float64(correct) / float64(seen), Seconds: secs, ImagesPerS: float64(seen) / secs}
		for _, p := range m.Graph.Params {
			for _, v := range p.Data {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return hist(""), fmt.Errorf("train: epoch %d: parameter %s is %w", epoch+1, p.Name, ErrNonFinite)
				}
			}
		}
		if o.Validation != nil {
			v0 := time.Now()
			var progress func(done int)
			if vcs := validationCallbacks(o.Callbacks); len(vcs) > 0 {
				ps := perStep()
				progress = func(done int) {
					el := time.Since(v0)
					left := eta(epoch+1, ps, true)
					if done > 0 {
						left += time.Duration(float64(el) / float64(done) * float64(valLen-done))
					}
					vi := ValidationInfo{Epoch: epoch + 1, Epochs: o.Epochs, Done: done, Total: valLen, Elapsed: el, ETA: left}
					for _, c := range vcs {
						c.OnValidationBatch(vi)
					}
				}
			}
			res, err := m.evaluate(ctx, o.Validation, o.EvalBatch, o.ValidationTTA, progress)
			if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				// A signal during validation must not lose the epoch's
				// training: save it as an interrupted epoch whose batches
				// are all done, so that a resume replays them (drawing
				// the same data, training nothing) and validates.
				st.Partial = &Partial{Batches: b, Seed: part.Seed, SumLoss: sumLoss, Correct: correct, Seen: seen, Seconds: secs}
				if ck == nil {
					return hist(fmt.Sprintf("interrupted while validating epoch %d", epoch+1)), err
				}
				name := partialName(epoch, b)
				files, ferr := m.checkpointFiles(o)
				if ferr == nil {
					ferr = ck.write(name, files)
				}
				if ferr != nil {
					return hist(""), fmt.Errorf("train: interrupted while validating epoch %d; saving its checkpoint failed (the last complete one is kept): %w", epoch+1, ferr)
				}
				return hist(fmt.Sprintf("interrupted while validating epoch %d; its training is saved in %s, which --resume validates", epoch+1, filepath.Join(ck.root, name))), err
			}
			if err != nil {
				return hist(""), fmt.Errorf("train: epoch %d: validation: %w", epoch+1, err)
			}
			valTime = time.Since(v0)
			em.Validated, em.ValLoss, em.ValAccuracy = true, res.Loss, res.Accuracy
		}
		st.Epoch++
		st.History = append(st.History, em)
		v, _ := em.Metric(monitor)
		improved := better(monitor, v, st.Best, o.EarlyStopping.MinDelta)
		if improved {
			st.Best = &Best{Monitor: monitor, Value: v, Epoch: epoch + 1}
			st.BadEpochs = 0
		} else {
			st.BadEpochs++
		}
		info := EpochInfo{Metrics: em, Best: improved}
		if ck != nil {
			name := epochName(epoch + 1)
			files, err := m.checkpointFiles(o)
			if err == nil {
				err = ck.write(name, files)
			}
			if err == nil && improved {
				err = ck.link(name, BestName)
			}
			if err != nil {
				return hist(""), fmt.Errorf("train: epoch %d: %w", epoch+1, err)
			}
			ck.removePartials()
			ck.prune()
			info.Checkpoint = filepath.Join(ck.root, name)
		}
		for _, c := range o.Callbacks {
			c.OnEpochEnd(info)
		}
		if p := o.EarlyStopping.Patience; p > 0 && st.BadEpochs >= p && st.Epoch < o.Epochs {
			return hist(fmt.Sprintf("early stopping: %s did not improve for %d epochs (best %.4g at epoch %d)",
				monitor, st.BadEpochs, st.Best.Value, st.Best.Epoch)), nil
		}
	}
	return hist(""), nil
}

// checkpointFiles serialises the model's current state.
func (m *Model) checkpointFiles(o FitOptions) (map[string][]byte, error) {
	rng, err := m.rng.MarshalBinary()
	if err != nil {
		return nil, err
	}
	st := m.state
	st.Format = checkpointFormat
	st.Recipe = m.recipe(o)
	st.Graph = m.Graph
	st.RNG = rng
	st.Data = o.Data
	var optim, avg map[string][]float32
	if m.net != nil {
		optim = m.opt.state(m.net.Params())
	}
	if m.ema != nil {
		avg = m.ema.state()
	}
	return encodeCheckpoint(&st, m.Graph, optim, avg, m.EMAGraph())
}

// Resume loads a checkpoint as a compiled model ready to continue with
// Fit (the same data and FitOptions as the interrupted run give the
// numbers it would have produced), and returns the recipe the checkpoint
// recorded. threads sets the kernel threads (0: all CPUs).
func Resume(dir string, threads int) (*Model, Recipe, error) {
	c, err := LoadCheckpoint(dir)
	if err != nil {
		return nil, Recipe{}, err
	}
	m := FromGraph(c.Graph)
	r := c.State.Recipe
	co := r.CompileOptions()
	co.Threads = threads
	if err := m.Compile(co); err != nil {
		return nil, Recipe{}, err
	}
	m.state = c.State
	m.rng = &rand.PCG{}
	if err := m.rng.UnmarshalBinary(c.State.RNG); err != nil {
		return nil, Recipe{}, fmt.Errorf("%s: %w: RNG state: %v", dir, ErrCheckpoint, err)
	}
	m.bnBatches = r.BNReestimate
	net, err := NewNet(m.Graph, r.Batch, m.netOptions())
	if err != nil {
		return nil, Recipe{}, err
	}
	m.net = net
	if err := m.opt.setState(net.Params(), c.optim); err != nil {
		net.Close()
		return nil, Recipe{}, fmt.Errorf("%s: %w: %v", dir, ErrCheckpoint, err)
	}
	m.opt.Steps = int64(c.State.Step)
	m.setupEMA()
	switch {
	case m.ema != nil:
		if err := m.ema.setState(c.ema); err != nil {
			net.Close()
			return nil, Recipe{}, fmt.Errorf("%s: %w: recipe.ema_decay %g: %v", dir, ErrCheckpoint, r.EMADecay, err)
		}
	case len(c.ema) > 0:
		net.Close()
		return nil, Recipe{}, fmt.Errorf("%s: %w: %s holds EMA tensors but recipe.ema_decay is 0", dir, ErrCheckpoint, StateFile)
	}
	return m, r, nil
}

// Metrics are evaluation results.
type Metrics struct {
	Loss     float64 `json:"loss"` // mean loss per sample (with the compiled label smoothing)
	Accuracy float64 `json:"accuracy"`
	Samples  int     `json:"samples"`
}

// session exports the model (EMAGraph: the moving average of the
// weights when there is one) and loads it into the inference runtime.
func (m *Model) session() (*infer.Session, error) {
	b, err := export.Marshal(m.EMAGraph(), export.Options{})
	if err != nil {
		return nil, err
	}
	return infer.LoadBytes(b, infer.Options{Threads: m.copts.Threads})
}

// Evaluate computes the loss and accuracy on every sample of data (one
// pass in order, batch samples per run, default 256) with the exported
// model in the inference runtime (EMAGraph's weights).
func (m *Model) Evaluate(ctx context.Context, data Source, batch int) (Metrics, error) {
	return m.evaluate(ctx, data, batch, "", nil)
}

// EvaluateTTA is Evaluate with test-time augmentation tta: "" (none) or
// TTAFlip, which runs every image and its left-right mirror image and
// averages the two softmax probability vectors; the loss is the
// cross-entropy of the averaged probabilities (with the compiled label
// smoothing) and the accuracy its top-1.
func (m *Model) EvaluateTTA(ctx context.Context, data Source, batch int, tta string) (Metrics, error) {
	if tta != "" && tta != TTAFlip {
		return Metrics{}, fmt.Errorf("train: TTA %q (want %q or none)", tta, TTAFlip)
	}
	return m.evaluate(ctx, data, batch, tta, nil)
}

// validationCallbacks returns the callbacks that want validation progress.
func validationCallbacks(cbs []Callback) []ValidationCallback {
	var out []ValidationCallback
	for _, c := range cbs {
		if vc, ok := c.(ValidationCallback); ok {
			out = append(out, vc)
		}
	}
	return out
}

// evaluate is Evaluate, calling progress (if set) with the samples done
// before the first batch and after each.
func (m *Model) evaluate(ctx context.Context, data Source, batch int, tta string, progress func(done int)) (Metrics, error) {
	if batch <= 0 {
		batch = 256
	}
	in := m.Graph.Spec.Input
	if data.Shape() != in {
		return Metrics{}, fmt.Errorf("train: the data's images are %s, the model takes %s", data.Shape(), in)
	}
	s, err := m.session()
	if err != nil {
		return Metrics{}, err
	}
	defer s.Close()
	batches, err := data.Epoch(0, 0, batch)
	if err != nil {
		return Metrics{}, err
	}
	per := in.C * in.H * in.W
	x := make([]float32, batch*per)
	labels := make([]int, batch)
	classes := m.Graph.Spec.Classes
	eps := m.copts.LabelSmoothing
	var res Metrics
	var sum float64
	out := map[string]*infer.Tensor{}
	var logAvg, scratch []float64 // flip TTA: the averaged log-probabilities, and the mirror view's
	var flipped, kept []float32
	if tta == TTAFlip {
		flipped, kept = make([]float32, len(x)), make([]float32, batch*classes)
		logAvg, scratch = make([]float64, classes), make([]float64, classes)
	}
	if progress != nil {
		progress(0)
	}
	for {
		if err := ctx.Err(); err != nil {
			return Metrics{}, err
		}
		n, err := batches.Next(x, labels)
		if err != nil {
			return Metrics{}, err
		}
		if n == 0 {
			break
		}
		input := infer.NewFloat32([]int{n, in.C, in.H, in.W}, x[:n*per])
		if err := s.RunInto(ctx, map[string]*infer.Tensor{export.InputName: input}, out); err != nil {
			return Metrics{}, err
		}
		logits := out[export.LogitsName].Float32
		var flogits []float32
		if flipped != nil {
			flogits = kept[:n*classes]
			copy(flogits, logits) // out's buffer is reused by the next run
			flipW(flipped[:n*per], x[:n*per], n, in.C, in.H, in.W)
			finput := infer.NewFloat32([]int{n, in.C, in.H, in.W}, flipped[:n*per])
			if err := s.RunInto(ctx, map[string]*infer.Tensor{export.InputName: finput}, out); err != nil {
				return Metrics{}, err
			}
			logits, flogits = flogits, out[export.LogitsName].Float32
		}
		for i := 0; i < n; i++ {
			row := logits[i*classes : (i+1)*classes]
			var frow []float32
			if flogits != nil {
				frow = flogits[i*classes : (i+1)*classes]
			}
			for _, r := range [][]float32{row, frow} {
				for _, v := range r {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						return Metrics{}, fmt.Errorf("train: evaluate: the model's output for sample %d is %v: %w (the weights or the input are not finite)", res.Samples+i+1, v, ErrNonFinite)
					}
				}
			}
			var l float64
			var ok bool
			if frow != nil {
				flipAverage(logAvg, scratch, row, frow)
				l, ok = crossEntropyLogProbs(logAvg, labels[i], eps)
			} else {
				l, ok = crossEntropy(row, labels[i], eps)
			}
			sum += l
			if ok {
				res.Accuracy++
			}
		}
		res.Samples += n
		if progress != nil {
			progress(res.Samples)
		}
	}
	if res.Samples == 0 {
		return Metrics{}, errors.New("train: no samples to evaluate")
	}
	res.Loss = sum / float64(res.Samples)
	res.Accuracy /= float64(res.Samples)
	return res, nil
}

// crossEntropy is the loss of one sample and whether its top-1 class is
// right.
func crossEntropy(z []float32, y int, eps float64) (float64, bool) {
	best, arg := math.Inf(-1), 0
	var sumZ float64
	for j, v := range z {
		if float64(v) > best {
			best, arg = float64(v), j
		}
		sumZ += float64(v)
	}
	lse := logSumExp(z)
	l := (1 - eps) * (lse - float64(z[y]))
	if eps != 0 {
		l += eps * (lse - sumZ/float64(len(z)))
	}
	return l, arg == y
}

// Predict returns the logits ([n, classes]) of n preprocessed images x
// ([n, C, H, W]), computed by the inference runtime on the exported
// model (EMAGraph's weights). Probabilities gives class probabilities.
func (m *Model) Predict(ctx context.Context, x []float32, n int) ([]float32, error) {
	in := m.Graph.Spec.Input
	if n < 1 || len(x) != n*in.C*in.H*in.W {
		return nil, fmt.Errorf("train: predict: %d values for %d images of %s", len(x), n, in)
	}
	s, err := m.session()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	out, err := s.Run(ctx, map[string]*infer.Tensor{export.InputName: infer.NewFloat32([]int{n, in.C, in.H, in.W}, x)})
	if err != nil {
		return nil, err
	}
	return out[export.LogitsName].Float32, nil
}

// Probabilities turns rows of logits into softmax probabilities.
func Probabilities(logits []float32, classes int) []float32 {
	p := make([]float32, len(logits))
	for i := 0; i+classes <= len(logits); i += classes {
		row := logits[i : i+classes]
		best := math.Inf(-1)
		for _, v := range row {
			best = math.Max(best, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - best)
		}
		for j, v := range row {
			p[i+j] = float32(math.Exp(float64(v)-best) / s)
		}
	}
	return p
}
