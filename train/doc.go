// Package train trains build.Graph models natively, on gorgonia.
//
// # The API
//
// It reads like the Keras tutorial:
//
//	spec, _ := models.Lookup("resnet20")
//	m, _ := train.NewModel(spec, 1) // weights seeded
//	defer m.Close()
//	_ = m.Compile(train.CompileOptions{
//		Optimizer: train.OptimizerConfig{Name: train.Adam, LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-7},
//		Loss:      train.SparseCategoricalCrossentropy,
//		Metrics:   []string{"accuracy"},
//	})
//	hist, err := m.Fit(ctx, trainData, train.FitOptions{Epochs: 10, Batch: 32, Validation: testData,
//		CheckpointDir: "runs/r20", Callbacks: []train.Callback{progress}})
//	res, _ := m.Evaluate(ctx, testData, 0)   // loss, accuracy
//	logits, _ := m.Predict(ctx, images, n)
//	export.WriteFile("r20.onnx", m.Graph, export.Options{})
//
// A Recipe is a whole training configuration as plain data (JSON-friendly,
// for the CLI to print and override): LookupRecipe("paper" | "fast" |
// "tutorial"), then m.Compile(r.CompileOptions()) and m.Fit(ctx, data,
// r.FitOptions() + data, callbacks, checkpoints). Resume(dir) reloads a
// checkpoint as a compiled model that continues exactly where the run
// stopped.
//
// Data comes through the Source interface (one pass at a time, batches a
// function of the epoch's seed); DatasetSource serves a cifar.Dataset
// without augmentation, and the augmentation pipeline provides augmented
// ones. Recipe.Augment names the augmentation for that pipeline.
//
// # Fine-tuning and transfer learning
//
// FromGraph trains an imported model (package onnximport); ReplaceHead
// (package build) gives it a new classifier. CompileOptions.Freeze =
// FreezeBackbone then trains the head alone: the other parameters are
// not differentiated, not updated (no decay, no momentum) and not in the
// optimiser state, and BatchNorm layers of the frozen part run in
// inference mode, so their running statistics stay exactly as imported.
// Model.ReestimateBN first recomputes every BatchNorm's running
// statistics on the new data (the cumulative average over N batches in
// training-mode BatchNorm, as torch.optim.swa_utils.update_bn). Both are
// recorded in the checkpoint's Recipe (Freeze, BNReestimate); Resume
// continues frozen. See freeze.go.
//
// # How it trains
//
// NewNet turns a build.Graph into a gorgonia ExprGraph at a fixed batch
// size made only of this package's custom ops (gorgonia.Op + SDOp): conv
// (with or without bias), BatchNorm with batch statistics and PyTorch's
// running-statistics update, fused with a following ReLU and/or a residual
// add (optionally through the option-A channel pad) and its ReLU, a
// standalone ReLU, add and channel pad, max/avg/global-average pooling,
// flatten, dense, and softmax cross-entropy with label smoothing. Their
// forward and backward passes run on internal/kernels (ConvTrain,
// BatchNormTrain and the other train_* kernels), on preallocated buffers:
// each op owns its output and Do returns it, so a step allocates no
// tensors. gorgonia.Grad derives the backward graph from the ops' SymDiff.
// The graph then runs as a program (exec.go): every op node in the order
// gorgonia's TapeMachine would run it (gorgonia.Sort, reversed), each op's
// Do called on its inputs' values. gorgonia's TapeMachine ran these graphs
// equally well (train's gradient checks still run under it) but allocated
// about 750 small objects a step binding values to nodes; the program
// allocates nothing, so a steady-state training step, optimiser update
// included, makes no garbage at all (TestStepAllocatesNothing).
//
// Where an activation feeds several ops (a residual block's input feeds
// its first convolution and its shortcut), gorgonia would sum the
// gradients with its own Add, allocating a tensor per step. Instead the
// first consumer's gradient op adds the others' gradients (fused into the
// convolution's or BatchNorm's kernel where possible), and the later
// consumers declare that input non-differentiable to gorgonia and depend on
// the first consumer's output so that gorgonia differentiates them first
// (see role).
//
// Activation gradients live in buffers shared by liveness (Net.planMemory):
// a ResNet-20's 47 gradient tensors fit in 3 buffers, so a training step
// holds little more than the forward activations the backward pass needs
// (peak RSS about 280 MiB for ResNet-20 at batch 128 on random data). The
// convolutions also share one set of scratch buffers (kernels.TrainScratch),
// sized by the largest layer.
//
// Every reduction (weight and BatchNorm gradients, batch statistics) is
// summed in an order fixed by the batch size, never by thread scheduling,
// so runs are bit-reproducible: a resumed run matches an uninterrupted one
// bit for bit.
//
// Evaluation and prediction export the graph (export.Marshal) and run it
// with the inference runtime (infer.LoadBytes): what is measured is what
// ships.
//
// # Semantics
//
// The optimisers follow torch.optim 1.13 (see OptimizerConfig): SGD's
// weight decay is L2, added to the gradient, as PyTorch's is (or decoupled
// with DecoupledDecay); Adam's is L2 and AdamW's decoupled. BatchNorm
// follows torch.nn.BatchNorm2d in training mode. TestOneStepMatchesPyTorch
// checks a ResNet-20 SGD step (momentum, Nesterov, weight decay) against
// PyTorch 1.13.
//
// # Checkpoints
//
// See the constants ModelFile, StateFile and TrainerFile: a checkpoint is
// a directory with a deployable model.onnx, the exact parameters and
// optimiser buffers, and the trainer state (recipe, epoch, step, RNG state,
// history, best metric), written to a temporary directory and renamed into
// place.
package train
