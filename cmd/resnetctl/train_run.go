package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/resnetctl/resnetctl/cifar"
	onnximport "github.com/resnetctl/resnetctl/import"
	"github.com/resnetctl/resnetctl/models"
	"github.com/resnetctl/resnetctl/train"
	"github.com/spf13/cobra"
)

// The rules around a training run (issue: runs that never lose work):
//
//   - a run folder belongs to one run: a new run into a folder holding
//     one is refused (--resume continues it, --force starts afresh after
//     removing it), a lock keeps a second process out, and the folder is
//     checked writable before any data is read;
//   - a checkpoint records the data it trained on (source, fingerprint,
//     --limit, --val-split), so that --resume alone continues exactly that
//     run, and a flag that contradicts the record is refused;
//   - subsets are seeded and class-balanced (--limit) or stratified
//     (--val-split), and a run is never silently validated on its own
//     training images.

// historyNames are the files newHistoryFiles keeps beside the checkpoints.
var historyNames = []string{"metrics.jsonl", "metrics.csv", "curve.png"}

// defaultValSplit is the fraction of the training images held out for
// validation when the data has no test split and --val-split is not given.
const defaultValSplit = 0.1

// runFolder is a locked run folder.
type runFolder struct {
	release func() error
	clear   bool // --force: remove the old run before the first checkpoint
}

// openRunFolder checks and locks opts.Out before anything is loaded: it
// must be writable, not in use by another process, and, unless the run
// resumes it or --force is given, hold no other run.
func openRunFolder(opts *TrainOptions) (*runFolder, error) {
	if opts.Resume {
		dir, err := train.LatestCheckpoint(opts.Out)
		if err != nil {
			return nil, fmt.Errorf("--resume: %w", err)
		}
		if dir == "" && !isImportFolder(opts.Out) {
			return nil, fmt.Errorf("--resume: no checkpoint in %s", opts.Out)
		}
	}
	if err := train.CheckWritable(opts.Out); err != nil {
		return nil, fmt.Errorf("--out %s is not writable: %w", opts.Out, err)
	}
	release, err := train.LockRun(opts.Out)
	if err != nil {
		return nil, err
	}
	rf := &runFolder{release: release}
	if !opts.Resume {
		// Looked at under the lock, so a run that another process
		// started a moment ago is seen.
		old, err := train.FindRun(opts.Out, historyNames)
		if err != nil {
			release()
			return nil, err
		}
		if old != nil {
			if !opts.Force {
				release()
				return nil, fmt.Errorf("%s: %w (%s): continue it with --resume, or start afresh with --force (which deletes it), or choose another --out",
					opts.Out, train.ErrRunExists, old.Describe())
			}
			rf.clear = true
		}
	}
	return rf, nil
}

// clearOld removes the old run of a --force start; trainRun calls it once
// everything has been checked and loaded, so that a refused command
// changes nothing.
func (rf *runFolder) clearOld(w io.Writer, dir string) error {
	if !rf.clear {
		return nil
	}
	if err := train.ClearRun(dir, historyNames); err != nil {
		return err
	}
	fmt.Fprintf(w, "--force: removed the previous run's checkpoints and metrics from %s\n", dir)
	rf.clear = false
	return nil
}

// resumeFlag is a flag that a resumed run takes from its checkpoint: given
// again, it must say what the checkpoint recorded.
type resumeFlag struct {
	name     string
	given    func() string // the flag's value, as the user wrote it
	recorded string        // the checkpoint's value
	same     func() bool   // nil: compare the strings
}

// checkResumeFlags refuses flags that contradict a resumed run's record:
// the data pipeline (--limit, --val-split), the model and its spec flags,
// and the recipe (--recipe, --batch, --lr, --optimizer, --augment,
// --seed, --ema-decay, --validation-tta). --epochs (to train further), --threads, --keep-last,
// --patience and --min-delta may change; --data may name the same data
// elsewhere (checked by fingerprint once it is read).
func checkResumeFlags(c *cobra.Command, opts *TrainOptions, ckpt string, saved train.Recipe, spec models.Spec, rec *train.DataRecord) error {
	f := opts.specFlags
	fl := c.Flags()
	str := func(name string) func() string {
		return func() string { return fl.Lookup(name).Value.String() }
	}
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	var limit, valSplit string = "0", "0"
	if rec != nil {
		limit, valSplit = strconv.Itoa(rec.Limit), g(rec.ValSplit)
	}
	checks := []resumeFlag{
		{name: "model", given: str("model"), recorded: spec.Name},
		{name: "classes", given: str("classes"), recorded: strconv.Itoa(spec.Classes)},
		{name: "input", given: str("input"), recorded: spec.Input.String(), same: func() bool {
			in, err := models.ParseShape(f.Input)
			return err == nil && in == spec.Input
		}},
		{name: "labels", given: str("labels"), recorded: spec.Labels},
		{name: "shortcut", given: str("shortcut"), recorded: string(spec.Shortcut), same: func() bool {
			return strings.EqualFold(f.Shortcut, string(spec.Shortcut))
		}},
		{name: "preact", given: str("preact"), recorded: strconv.FormatBool(spec.PreAct)},
		{name: "widen", given: str("widen"), recorded: strconv.Itoa(spec.Widen)},
		{name: "groups", given: str("groups"), recorded: strconv.Itoa(spec.Groups)},
		{name: "width-per-group", given: str("width-per-group"), recorded: strconv.Itoa(spec.WidthPerGroup)},
		{name: "zero-init-residual", given: str("zero-init-residual"), recorded: strconv.FormatBool(spec.ZeroInitResidual)},
		{name: "recipe", given: str("recipe"), recorded: saved.Name},
		{name: "batch", given: str("batch"), recorded: strconv.Itoa(saved.Batch)},
		{name: "lr", given: str("lr"), recorded: g(saved.Optimizer.LR), same: func() bool {
			v, err := strconv.ParseFloat(fl.Lookup("lr").Value.String(), 64)
			return err == nil && v == saved.Optimizer.LR
		}},
		{name: "optimizer", given: str("optimizer"), recorded: saved.Optimizer.Name, same: func() bool {
			return strings.EqualFold(fl.Lookup("optimizer").Value.String(), saved.Optimizer.Name)
		}},
		{name: "augment", given: str("augment"), recorded: saved.Augment},
		{name: "seed", given: str("seed"), recorded: strconv.FormatUint(saved.Seed, 10)},
		{name: "only-classes", given: str("only-classes"), recorded: intList(saved.OnlyClasses), same: func() bool {
			classes, err := parseClassList(opts.OnlyClasses)
			return err == nil && slices.Equal(classes, saved.OnlyClasses)
		}},
		{name: "freeze", given: str("freeze"), recorded: orNone(saved.Freeze), same: func() bool {
			return opts.Freeze == orNone(saved.Freeze)
		}},
		{name: "ema-decay", given: str("ema-decay"), recorded: g(saved.EMADecay), same: func() bool {
			v, err := strconv.ParseFloat(fl.Lookup("ema-decay").Value.String(), 64)
			return err == nil && v == saved.EMADecay
		}},
		{name: "validation-tta", given: str("validation-tta"), recorded: orNone(saved.ValidationTTA), same: func() bool {
			return fl.Lookup("validation-tta").Value.String() == orNone(saved.ValidationTTA)
		}},
		{name: "limit", given: str("limit"), recorded: limit},
		{name: "val-split", given: str("val-split"), recorded: valSplit, same: func() bool {
			v, err := strconv.ParseFloat(fl.Lookup("val-split").Value.String(), 64)
			return err == nil && rec != nil && v == rec.ValSplit
		}},
	}
	for _, k := range checks {
		if !fl.Changed(k.name) {
			continue
		}
		same := k.given() == k.recorded
		if k.same != nil {
			same = k.same()
		}
		if !same {
			return usageErrorf(c, "--%s %s contradicts the run being resumed, which has %s %s (%s); drop the flag, or start a new run in another --out",
				k.name, k.given(), k.name, orNone(k.recorded), filepath.Join(ckpt, train.TrainerFile))
		}
	}
	return nil
}

// intList writes 0,2,5.
func intList(v []int) string {
	parts := make([]string, len(v))
	for i, k := range v {
		parts[i] = strconv.Itoa(k)
	}
	return strings.Join(parts, ",")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// runData is what a run trains and validates on, with its record.
type runData struct {
	train, test *cifar.Dataset // as loaded (test nil: the data has no test split)
	val         *cifar.Dataset // after split
	what        string         // for the log line
	record      train.DataRecord
	limit       int
	valSplit    float64
}

// selectRunData loads the training data (and its test split, if it has
// one). A resumed run reads its recorded source unless --data is given,
// and its data must have the recorded fingerprint; it keeps its recorded
// --limit and --val-split. The caller applies --only-classes, then split.
func selectRunData(c *cobra.Command, opts *TrainOptions, rec *train.DataRecord) (*runData, error) {
	errw := opts.Streams.ErrOut
	source := opts.Data
	if opts.Resume && source == "" {
		if rec == nil || rec.Source == "" {
			return nil, fmt.Errorf("%s does not record the data the run trained on (an older resnetctl wrote it): give --data", opts.Out)
		}
		source = rec.Source
	}
	trainDS, testDS, what, resolved, err := loadTrainData(c, source)
	if err != nil {
		if opts.Resume && opts.Data == "" {
			return nil, fmt.Errorf("reading the run's recorded data %s: %w (give --data if it moved)", source, err)
		}
		return nil, err
	}
	fp := trainDS.Fingerprint()
	if opts.Resume && rec != nil && rec.Fingerprint != "" && fp != rec.Fingerprint {
		return nil, fmt.Errorf("--data %s is not the data the run being resumed trained on (%s): fingerprints %.12s… and %.12s… differ",
			resolved, rec.Source, fp, rec.Fingerprint)
	}
	if opts.Resume && rec != nil && opts.Data != "" && resolved != rec.Source {
		fmt.Fprintf(errw, "the run's data was %s; reading the same images from %s\n", rec.Source, resolved)
	}
	d := &runData{train: trainDS, test: testDS, what: what, limit: opts.Limit, valSplit: opts.ValSplit}
	d.record = train.DataRecord{Source: resolved, Fingerprint: fp}
	valGiven := c.Flags().Changed("val-split")
	if opts.Resume && rec != nil {
		d.limit, d.valSplit, valGiven = rec.Limit, rec.ValSplit, true
	}
	if !valGiven && testDS == nil {
		d.valSplit = defaultValSplit
	}
	return d, nil
}

// split makes the validation set and the training subset: the data's test
// split; or valSplit of the training images, held out stratified from the
// recipe's seed (by default 10% when the data has no test split); or,
// with --val-split 0 and no test split, the training images themselves,
// said loudly. A positive limit then takes a seeded, class-balanced subset
// of what is left for training.
func (d *runData) split(errw io.Writer, seed uint64) error {
	trainDS, testDS, limit, valSplit := d.train, d.test, d.limit, d.valSplit
	var err error
	switch {
	case valSplit > 0:
		kept, held, err := trainDS.StratifiedSplit(valSplit, seed)
		if err != nil {
			return fmt.Errorf("--val-split: %w", err)
		}
		if d.val, err = trainDS.Subset(held); err != nil {
			return err
		}
		if trainDS, err = trainDS.Subset(kept); err != nil {
			return err
		}
		d.record.Validation, d.record.ValSplit = "held-out", valSplit
		why := ""
		if testDS == nil {
			why = "the data has no test split: "
		}
		fmt.Fprintf(errw, "%svalidating on %d training images held out (%g of each class, seed %d; --val-split)\n", why, d.val.Len(), valSplit, seed)
	case testDS != nil:
		d.val, d.record.Validation = testDS, "test"
	default:
		d.val, d.record.Validation = trainDS, "training"
		fmt.Fprintln(errw, "warning: the data has no test split and --val-split is 0: validating on the training images themselves (validation accuracy will not show overfitting)")
	}
	if limit > 0 && limit < trainDS.Len() {
		idx := trainDS.BalancedIndices(limit, seed)
		if trainDS, err = trainDS.Subset(idx); err != nil {
			return err
		}
		d.record.Limit = limit
		fmt.Fprintf(errw, "--limit %d: a class-balanced random subset (seed %d): %s\n", limit, seed, classCounts(trainDS))
	}
	d.train = trainDS
	d.record.TrainImages, d.record.ValImages = d.train.Len(), d.val.Len()
	return nil
}

// classCounts says how many images of each class a set has, briefly.
func classCounts(ds *cifar.Dataset) string {
	counts := ds.ClassCounts()
	lo, hi := slices.Min(counts), slices.Max(counts)
	if lo == hi {
		return fmt.Sprintf("%d images of each of %d classes", lo, len(counts))
	}
	return fmt.Sprintf("%d images, %d to %d a class", ds.Len(), lo, hi)
}

// isImportFolder says whether dir is a folder 'resnetctl import' wrote.
func isImportFolder(dir string) bool {
	_, err := onnximport.ReadManifest(dir)
	return err == nil
}

// defaultRunDir is the run folder of a run without --out: runs/NAME (the
// model's, or the --init file's), or the first of runs/NAME-2, -3, … that
// holds no run, so that running the same command twice never refuses nor
// overwrites.
func defaultRunDir(opts *TrainOptions) string {
	name := opts.Spec.Name
	if opts.Init != "" {
		name = strings.TrimSuffix(filepath.Base(opts.Init), filepath.Ext(opts.Init))
	}
	if name == "" {
		name = "resnet"
	}
	base := filepath.Join("runs", name)
	dir := base
	for k := 2; k < 10000; k++ {
		if old, err := train.FindRun(dir, historyNames); err == nil && old == nil {
			return dir
		}
		dir = fmt.Sprintf("%s-%d", base, k)
	}
	return dir
}

// resumedRecipe is the recipe a resumed run continues with: the one its
// checkpoint recorded, with the settings a user may change: more --epochs
// (the schedule then spans the new total from where the run is), and
// early stopping's --patience, --min-delta and --monitor.
func resumedRecipe(c *cobra.Command, saved, flags train.Recipe, m *train.Model) (train.Recipe, error) {
	r := saved
	changed := c.Flags().Changed
	if changed("epochs") {
		if flags.Epochs < m.Epoch() {
			return r, usageErrorf(c, "--epochs %d: the run has trained %d epochs already", flags.Epochs, m.Epoch())
		}
		r.Epochs, r.MaxSteps = flags.Epochs, 0
	}
	if changed("patience") {
		r.EarlyStopping.Patience = flags.EarlyStopping.Patience
	}
	if changed("min-delta") {
		r.EarlyStopping.MinDelta = flags.EarlyStopping.MinDelta
	}
	if changed("monitor") {
		r.EarlyStopping.Monitor = flags.EarlyStopping.Monitor
	}
	return r, nil
}
