package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/resnetctl/resnetctl/cifar"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/models"
	"github.com/resnetctl/resnetctl/train"
	"github.com/spf13/cobra"
)

// TrainOptions are the inputs of `resnetctl train`.
type TrainOptions struct {
	Streams *Streams
	Spec    models.Spec
	Data    string
	Recipe  train.Recipe
	Out     string
	Resume  bool
	// Force starts afresh in an --out that holds a run, removing it.
	Force bool
	// ValSplit holds out this fraction of the training images for
	// validation (stratified, seeded); see selectRunData for the default.
	ValSplit float64
	Seed     uint64
	Threads  int
	Limit    int
	// KeepLast > 0 keeps only the newest KeepLast epoch checkpoints.
	KeepLast int
	// Init starts from this ONNX file (fine-tuning, transfer learning);
	// Classes > 0 gives it a new head of that many classes.
	Init    string
	Classes int
	// InitInput (--input with --init) is the size to fine-tune the --init
	// model at, zero for the file's own; Preprocess (--preprocess)
	// replaces the file's preprocessing (see flagPreprocess).
	InitInput  models.Shape
	Preprocess string
	// Transfer learning (train_transfer.go): Freeze and BN ("keep" or
	// "reestimate", over BNBatches batches, 0 for one pass) go into the
	// recipe's record; OnlyClasses filters and relabels the data.
	Freeze      string
	BN          string
	BNBatches   int
	OnlyClasses string

	// specFlags are the model flags as given, for checkResumeFlags.
	specFlags *specFlags
}

// NewCmdTrain makes `resnetctl train`; runF replaces the run function in tests.
func NewCmdTrain(s *Streams, runF func(*TrainOptions) error) *cobra.Command {
	opts := &TrainOptions{Streams: s}
	var flags specFlags
	opts.specFlags = &flags
	var recipe, augmentation, optimizer string
	var epochs, batch, patience int
	var lr, minDelta, emaDecay, labelSmoothing float64
	var monitor, validationTTA, schedule string
	c := &cobra.Command{
		Use:   "train [flags]",
		Short: "Train a ResNet natively in Go",
		Long: `Train a model of the catalog on CIFAR-10/100 or an image folder, natively in Go
(gorgonia graphs over resnetctl's own kernels), validating every epoch through the
inference runtime on the exported graph, with a checkpoint per epoch and the best one
under --out (each a directory holding a deployable model.onnx and the trainer state,
written atomically). --resume continues the latest checkpoint exactly.

--data takes a CIFAR binary folder/archive/.bin file, an image folder or archive,
"cifar10"/"cifar100" (the archive 'resnetctl data fetch' put in the cache), or
"sample" (1,000 training and 200 test images embedded in resnetctl). Without --data:
CIFAR-10 from the cache if present, else the embedded sample for a short run.

Recipes: fast (30 epochs, SGD Nesterov, cosine), quick (25 epochs, one-cycle lr
peak 0.2, label smoothing 0.1, flip-TTA validation: 87% on CIFAR-10 with ResNet-20 in
about 24 minutes on two cores), paper (He et al.: 64k iterations, steps at 32k and
48k), tutorial (the Keras chapter: Adam, batch 32, 10 epochs, Keras augmentation).
Flags override a recipe's epochs, batch, learning rate, schedule,
optimizer, label smoothing and augmentation. --ema-decay and --validation-tta add a
moving average of the weights and flip test-time augmentation of the validation to
any recipe (EMA is off in every named recipe; quick validates with flip TTA).

--init starts from any importable ONNX file. --input CxHxW fine-tunes it at another
size when its graph pools globally before the head (torchvision's ResNets do); data
of another size without --input is refused. Its preprocessing is the file's metadata,
else the catalog preset 'resnetctl import' assumes (ImageNet's for resnet18), else
computed from --data; --preprocess chooses one.`,
		Example: `  resnetctl train
  resnetctl train --model resnet20 --data ../shared/data/cifar10-jpeg.tar.gz --recipe fast --out runs/r20
  resnetctl train --recipe tutorial --epochs 3 --out runs/tut
  resnetctl train --out runs/r20 --resume
  resnetctl train --init pretrained.onnx --classes 10 --epochs 5 --out runs/transfer
  resnetctl train --init torchvision_resnet18.onnx --input 3x32x32 --classes 10 --out runs/r18`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf(c, "train takes no arguments, got %q", args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			r, err := train.LookupRecipe(recipe)
			if err != nil {
				return usageErrorf(c, "--recipe: %v", err)
			}
			changed := c.Flags().Changed
			if changed("epochs") {
				r.Epochs, r.MaxSteps = epochs, 0
			}
			if changed("batch") {
				r.Batch = batch
			}
			if changed("lr") {
				r.Optimizer.LR = lr
			}
			if changed("optimizer") {
				r.Optimizer.Name = optimizer
			}
			if changed("augment") {
				r.Augment = augmentation
			}
			if changed("seed") {
				r.Seed = opts.Seed
			}
			if changed("patience") {
				r.EarlyStopping.Patience = patience
			}
			if changed("min-delta") {
				r.EarlyStopping.MinDelta = minDelta
			}
			if changed("monitor") {
				r.EarlyStopping.Monitor = monitor
			}
			if changed("ema-decay") {
				r.EMADecay = emaDecay
			}
			if changed("label-smoothing") {
				r.LabelSmoothing = labelSmoothing
			}
			if changed("schedule") && schedule != r.Schedule.Kind {
				switch schedule {
				case train.Cosine:
					r.Schedule = train.ScheduleConfig{Kind: train.Cosine, WarmupEpochs: 1}
				case train.OneCycle:
					r.Schedule = train.OneCycleDefaults(0) // the peak is --lr
				case train.Constant:
					r.Schedule = train.ScheduleConfig{Kind: train.Constant}
				default:
					return usageErrorf(c, "--schedule %q: want cosine, onecycle or constant", schedule)
				}
			}
			if changed("validation-tta") {
				r.ValidationTTA = validationTTA
				if validationTTA == "none" {
					r.ValidationTTA = ""
				}
			}
			if err := r.Validate(); err != nil {
				return usageErrorf(c, "%v", err)
			}
			if opts.Resume && opts.Force {
				return usageErrorf(c, "--resume and --force do not go together (--force deletes the run --resume would continue)")
			}
			if opts.Resume && opts.Out == "" {
				return usageErrorf(c, "--resume needs --out, the run folder to continue")
			}
			if opts.Limit < 0 {
				return usageErrorf(c, "--limit %d: must be positive (0: all images)", opts.Limit)
			}
			if !(opts.ValSplit >= 0 && opts.ValSplit < 1) {
				return usageErrorf(c, "--val-split %g: must be in [0, 1)", opts.ValSplit)
			}
			if opts.Data == "" && !changed("epochs") && !opts.Resume {
				r.Epochs, r.MaxSteps = 3, 0 // the short default run
			}
			if r.Epochs < 1 || r.Batch < 2 {
				return usageErrorf(c, "--epochs must be at least 1 and --batch at least 2")
			}
			if err := transferFlags(c, opts, &r); err != nil {
				return err
			}
			opts.Recipe = r
			if changed("preprocess") {
				// A catalog model has its preset and a checkpoint records its own.
				if opts.Init == "" {
					return usageErrorf(c, "--preprocess goes with --init")
				}
				if _, err := flagPreprocess(opts.Preprocess); err != nil {
					return usageErrorf(c, "--preprocess %v", err)
				}
			}
			if opts.Init != "" {
				if opts.Resume {
					return usageErrorf(c, "--init and --resume do not go together")
				}
				for _, f := range []string{"model", "labels", "shortcut", "preact", "widen", "groups", "width-per-group", "zero-init-residual"} {
					if changed(f) {
						return usageErrorf(c, "--%s does not go with --init (the ONNX file fixes the architecture)", f)
					}
				}
				if changed("input") { // a size to fine-tune at: trainRun checks the graph allows it
					if opts.InitInput, err = models.ParseShape(flags.Input); err != nil {
						return usageErrorf(c, "--input: %v", err)
					}
				}
				if changed("classes") {
					opts.Classes = flags.Classes
				}
			} else if !opts.Resume {
				if opts.Spec, err = flags.resolve(c); err != nil {
					return err
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return trainRun(c, opts)
		},
	}
	flags.register(c, "resnet20")
	fs := c.Flags()
	fs.Lookup("input").Usage = "input shape CxHxW (default: the model's, e.g. 3x32x32); with --init, the size to fine-tune at, " +
		"allowed when the graph pools globally before its head (an --init model whose size is not the data's is refused, not adapted silently)"
	fs.StringVar(&opts.Data, "data", "", "training data: a path, cifar10, cifar100 or sample (default: cached cifar10, else sample)")
	fs.StringVar(&recipe, "recipe", "fast", "fast, quick, paper or tutorial")
	fs.IntVar(&epochs, "epochs", 0, "epochs (default: the recipe's; 3 for the no-flag sample run)")
	fs.IntVar(&batch, "batch", 0, "batch size (default: the recipe's)")
	fs.Float64Var(&lr, "lr", 0, "peak learning rate (default: the recipe's)")
	fs.StringVar(&optimizer, "optimizer", "", "sgd, adam or adamw (default: the recipe's)")
	fs.StringVar(&augmentation, "augment", "", "paper, keras or none (default: the recipe's)")
	fs.StringVar(&opts.Out, "out", "", "run folder for checkpoints and metrics; it must not hold another run (default: runs/MODEL, or runs/MODEL-2, -3, … when that holds one)")
	fs.BoolVar(&opts.Resume, "resume", false, "continue the run in --out exactly: its model, data, subsets and recipe come from its checkpoint (or, in a directory 'resnetctl import' wrote, train its model)")
	fs.BoolVar(&opts.Force, "force", false, "start afresh in an --out that holds a run, deleting its checkpoints and metrics")
	fs.Float64Var(&opts.ValSplit, "val-split", 0, "hold out this fraction of each class of the training images for validation (seeded; default 0.1 when the data has no test split, else the test split validates)")
	fs.Uint64Var(&opts.Seed, "seed", 1, "seed of the initial weights and the data order")
	fs.IntVar(&opts.Threads, "threads", 0, "worker threads (default: all cores)")
	fs.IntVar(&opts.Limit, "limit", 0, "train on N images only: a class-balanced random subset drawn from --seed (quick runs)")
	fs.IntVar(&patience, "patience", 0, "early stopping: stop when --monitor has not improved for this many epochs (0: never)")
	fs.Float64Var(&minDelta, "min-delta", 0, "early stopping: the smallest change that counts as an improvement")
	fs.StringVar(&monitor, "monitor", "", "metric of the best checkpoint and of early stopping: val_accuracy (default), val_loss, accuracy or loss")
	fs.Float64Var(&emaDecay, "ema-decay", 0, "keep an exponential moving average of the weights with this decay (e.g. 0.999), updated after every step: "+
		"validation and every checkpoint's model.onnx use the average, the raw weights keep training; BatchNorm statistics are copied (0: off, the recipes' default)")
	fs.Float64Var(&labelSmoothing, "label-smoothing", 0, "label smoothing ε of the cross-entropy, as PyTorch's (default: the recipe's)")
	fs.StringVar(&schedule, "schedule", "", "learning-rate schedule: cosine (1-epoch linear warm-up, then cosine to 0), onecycle (PyTorch's OneCycleLR defaults, peak --lr, momentum cycled) or constant (default: the recipe's)")
	fs.StringVar(&validationTTA, "validation-tta", "none", "test-time augmentation of the per-epoch validation: flip (each image and its mirror image, "+
		"softmax probabilities averaged) or none")
	fs.IntVar(&opts.KeepLast, "keep-last", 0, "keep only the newest N epoch checkpoints (0: all; best is always kept)")
	fs.StringVar(&opts.Init, "init", "", "start from this ONNX model (fine-tuning); with --classes, a new head (transfer learning)")
	fs.StringVar(&opts.Preprocess, "preprocess", "", "with --init: torch, tf, raw, cifar10 or cifar100 (caffe's BGR is refused) "+
		"(default: the file's metadata, else the catalog preset 'resnetctl import' assumes, else from --data)")
	fs.StringVar(&opts.Freeze, "freeze", "none", "backbone: train only the final dense layer (BatchNorm of the frozen part in inference mode), or none")
	fs.StringVar(&opts.BN, "bn", "keep", "reestimate: recompute every BatchNorm's running statistics on the training data before training, or keep")
	fs.IntVar(&opts.BNBatches, "bn-batches", 0, "batches for --bn reestimate (default: one pass over the training data)")
	fs.StringVar(&opts.OnlyClasses, "only-classes", "", "train and validate on these classes only, relabelled 0, 1, … (e.g. 0-4 or 0,2,5); recorded for --resume")
	return c
}

// loadTrainData reads the training split and, when the data has one, the
// test split (testDS nil otherwise: a single .bin file, an image folder
// without split folders). source is the data as the record names it: an
// absolute path, or "sample".
func loadTrainData(c *cobra.Command, data string) (trainDS, testDS *cifar.Dataset, what, source string, err error) {
	ctx := c.Context()
	if data == "" {
		if dir, err := cifar.DefaultCacheDir(); err == nil {
			if rel, err := cifar.LookupRelease("cifar10"); err == nil {
				if p := filepath.Join(dir, filepath.Base(rel.URL)); fileExists(p) {
					data = p
				}
			}
		}
		if data == "" {
			data = "sample"
		}
	}
	switch data {
	case "sample":
		if trainDS, err = cifar.EmbeddedSample("train"); err == nil {
			testDS, err = cifar.EmbeddedSample("test")
		}
		return trainDS, testDS, "the embedded CIFAR-10 sample (1,000 training, 200 test images; run 'resnetctl data fetch cifar10' for the full set)", "sample", err
	case "cifar10", "cifar100":
		dir, err := cifar.DefaultCacheDir()
		if err != nil {
			return nil, nil, "", "", err
		}
		rel, err := cifar.LookupRelease(data)
		if err != nil {
			return nil, nil, "", "", err
		}
		p := filepath.Join(dir, filepath.Base(rel.URL))
		if !fileExists(p) {
			return nil, nil, "", "", fmt.Errorf("%s is not in the cache (%s): run 'resnetctl data fetch %s'", data, dir, data)
		}
		data = p
	}
	if source, err = filepath.Abs(data); err != nil {
		return nil, nil, "", "", err
	}
	trainDS, err = cifar.Load(ctx, data, cifar.Options{Split: "train"})
	if errors.Is(err, cifar.ErrNoSplit) {
		// Class folders (or .bin files) without split folders: all of it
		// is training data.
		if trainDS, err = cifar.Load(ctx, data, cifar.Options{}); err != nil {
			return nil, nil, "", "", err
		}
		return trainDS, nil, data, source, nil
	}
	if err != nil {
		return nil, nil, "", "", err
	}
	testDS, err = cifar.Load(ctx, data, cifar.Options{Split: "test"})
	if errors.Is(err, cifar.ErrNoSplit) {
		return trainDS, nil, data, source, nil
	}
	if err != nil {
		return nil, nil, "", "", err
	}
	if testDS.Fingerprint() == trainDS.Fingerprint() {
		// A single .bin file answers every split with itself.
		testDS = nil
	}
	return trainDS, testDS, data, source, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func trainRun(c *cobra.Command, opts *TrainOptions) error {
	ctx := c.Context()
	errw := opts.Streams.ErrOut
	var m *train.Model
	r := opts.Recipe
	initPreFromFile := true // an --init file's own preprocessing
	if opts.Out == "" {
		opts.Out = defaultRunDir(opts)
	}
	// The run folder is checked and locked before anything is loaded.
	rf, err := openRunFolder(opts)
	if err != nil {
		return err
	}
	defer rf.release()
	var rec *train.DataRecord
	if opts.Resume {
		dir, err := train.LatestCheckpoint(opts.Out)
		if err != nil {
			return err
		}
		if dir == "" {
			// A directory `resnetctl import` wrote: train from its model.
			man, merr := onnximport.ReadManifest(opts.Out)
			if merr != nil {
				return fmt.Errorf("--resume: no checkpoint in %s", opts.Out)
			}
			opts.Init, opts.Resume = filepath.Join(opts.Out, man.Model), false
			fmt.Fprintf(errw, "%s holds an imported model: training starts from its weights (%s)\n", opts.Out, opts.Init)
		} else {
			var saved train.Recipe
			if m, saved, err = train.Resume(dir, opts.Threads); err != nil {
				return err
			}
			defer m.Close()
			rec = m.Data()
			if err := checkResumeFlags(c, opts, dir, saved, m.Graph.Spec, rec); err != nil {
				return err
			}
			if r, err = resumedRecipe(c, saved, r, m); err != nil {
				return err
			}
			opts.Spec = m.Graph.Spec
			if m.Epoch() >= r.Epochs {
				fmt.Fprintf(opts.Streams.Out, "%s has finished its %d epochs; give --epochs N (more than %d) to train further\n", opts.Out, m.Epoch(), m.Epoch())
				return nil
			}
			fmt.Fprintf(errw, "resuming %s\n", dir)
		}
	}
	if opts.Init != "" {
		g, rep, err := onnximport.Load(opts.Init)
		if err != nil {
			return err
		}
		// The rule `resnetctl import` applies (file, else catalog preset);
		// --preprocess overrides it, and transferData falls back to the data.
		pre, preWhat, preKnown := onnximport.Preprocessing(g, rep)
		if opts.Preprocess != "" {
			pre, _ = flagPreprocess(opts.Preprocess) // checked with the flags
			if g.Spec.Input.C != len(pre.Mean) {
				return fmt.Errorf("--preprocess %s: the model takes %d channels, not 3", opts.Preprocess, g.Spec.Input.C)
			}
			preWhat, preKnown = fmt.Sprintf("%s (--preprocess %s)", onnximport.DescribePreprocess(pre), opts.Preprocess), true
		}
		if preKnown {
			g.Spec.Preprocess = pre
			if rep.PreprocessFromFile || opts.Preprocess != "" {
				fmt.Fprintf(errw, "preprocessing: %s\n", preWhat)
			} else {
				fmt.Fprintf(errw, "%s does not say how its inputs were preprocessed; training with %s, as 'resnetctl import' does (the checkpoints record it)\n", opts.Init, preWhat)
			}
		}
		// --input: another size, when nothing in the graph depends on it.
		if in := opts.InitInput; in != (models.Shape{}) && in != g.Spec.Input {
			from := g.Spec.Input
			if err := g.WithInput(in); err != nil {
				return fmt.Errorf("--init %s: %w", opts.Init, err)
			}
			fmt.Fprintf(errw, "training at %s (the file's input is %s; its graph pools globally)\n", in, from)
		}
		if opts.Classes > 0 && opts.Classes != g.Spec.Classes {
			if err := g.ReplaceHead(opts.Classes, opts.Seed); err != nil {
				return fmt.Errorf("--init %s: %w", opts.Init, err)
			}
			fmt.Fprintf(errw, "new %d-class head on %s\n", opts.Classes, rep.Summary())
		} else {
			fmt.Fprintf(errw, "fine-tuning %s\n", rep.Summary())
		}
		m = train.FromGraph(g)
		co := r.CompileOptions()
		co.Threads = opts.Threads
		if err := m.Compile(co); err != nil {
			return err
		}
		opts.Spec = g.Spec
		initPreFromFile = preKnown
	}
	d, err := selectRunData(c, opts, rec)
	if err != nil {
		return err
	}
	if d.train, d.test, err = transferData(opts, m, r, initPreFromFile, d.train, d.test); err != nil {
		return err
	}
	if err := d.split(errw, r.Seed); err != nil {
		return err
	}
	trainDS, what := d.train, d.what
	if len(trainDS.Classes) != opts.Spec.Classes {
		return fmt.Errorf("the data has %d classes, the model %d (set --classes)", len(trainDS.Classes), opts.Spec.Classes)
	}
	if m == nil {
		if m, err = train.NewModel(opts.Spec, opts.Seed); err != nil {
			return err
		}
		co := r.CompileOptions()
		co.Threads = opts.Threads
		if err := m.Compile(co); err != nil {
			return err
		}
	}
	src, err := train.NewAugmentedSource(trainDS, r.Augment, opts.Spec.Preprocess, 0)
	if err != nil {
		return err
	}
	val, err := train.NewDatasetSource(d.val, opts.Spec.Preprocess, false)
	if err != nil {
		return err
	}
	fmt.Fprintf(errw, "training %s on %s: recipe %s, %d epochs, batch %d, %s lr %g, augment %s, checkpoints in %s\n",
		opts.Spec.Name, what, r.Name, r.Epochs, r.Batch, r.Optimizer.Name, r.Optimizer.LR, r.Augment, opts.Out)
	if r.EMADecay > 0 || r.ValidationTTA != "" {
		fmt.Fprintf(errw, "ema decay %g (0: off), validation tta %s\n", r.EMADecay, orNone(r.ValidationTTA))
	}
	if err := rf.clearOld(errw, opts.Out); err != nil {
		return err
	}
	hist, err := newHistoryFiles(opts.Out, opts.Resume)
	if err != nil {
		return err
	}
	defer hist.Close()
	prog := newTrainProgress(errw)
	fo := r.FitOptions()
	fo.Validation, fo.CheckpointDir, fo.KeepLast = val, opts.Out, opts.KeepLast
	fo.Data = &d.record
	fo.Callbacks = []train.Callback{prog, train.CallbackFuncs{
		EpochEnd: func(e train.EpochInfo) {
			mm := e.Metrics
			if err := hist.add(mm); err != nil {
				fmt.Fprintf(errw, "warning: metrics: %v\n", err)
			}
			best := ""
			if e.Best {
				best = "  (best)"
			}
			fmt.Fprintf(opts.Streams.Out, "epoch %d: loss %.4f, accuracy %.2f%%, val_loss %.4f, val_accuracy %.2f%%%s\n",
				mm.Epoch, mm.Loss, 100*mm.Accuracy, mm.ValLoss, 100*mm.ValAccuracy, best)
		},
	}}
	if opts.BN == "reestimate" {
		if err := reestimateBN(ctx, errw, m, src, r.Batch, opts.BNBatches); err != nil {
			return err
		}
	}
	h, err := m.Fit(ctx, src, fo)
	prog.EndLine() // after an error or Ctrl-C, which leave the progress line drawn
	if errors.Is(err, ctx.Err()) && ctx.Err() != nil {
		if h != nil && h.Stopped != "" {
			fmt.Fprintf(errw, "%s (continue with --resume)\n", h.Stopped)
		} else {
			fmt.Fprintf(errw, "stopped; the last complete checkpoint is in %s (continue with --resume)\n", opts.Out)
		}
	}
	if err != nil {
		return err
	}
	if h.Stopped != "" {
		fmt.Fprintf(opts.Streams.Out, "%s\n", h.Stopped)
	}
	fmt.Fprintf(opts.Streams.Out, "done: best model %s\n", filepath.Join(opts.Out, "best", "model.onnx"))
	return nil
}
