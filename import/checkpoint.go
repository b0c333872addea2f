package onnximport

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/export"
	"github.com/resnetctl/resnetctl/internal/atomicfile"
	"github.com/resnetctl/resnetctl/internal/regularfile"
	"github.com/resnetctl/resnetctl/models"
)

// A checkpoint is a directory:
//
//	model.onnx        the model: complete, deployable, re-importable exactly
//	                  (export.WriteFile of the graph, with its metadata)
//	checkpoint.json   a Manifest: format and version, the architecture, how
//	                  model.onnx was written, where the weights came from
//
// The trainer adds its state (optimizer buffers, step, RNG state, config,
// metrics) as further files and manifest fields; readers ignore what they
// do not know. The directory is written under a temporary name next to the
// destination and renamed into place, so a crash never leaves a
// half-written checkpoint.
const (
	CheckpointModel    = "model.onnx"
	CheckpointManifest = "checkpoint.json"
	CheckpointFormat   = "resnetctl-checkpoint"
	CheckpointVersion  = 1
)

// Manifest is checkpoint.json.
type Manifest struct {
	Format  string `json:"format"`  // CheckpointFormat
	Version int    `json:"version"` // CheckpointVersion
	// Model is the file holding the model, relative to the directory.
	Model string `json:"model"`
	// Architecture is the catalog name, empty outside the catalog.
	Architecture string `json:"architecture,omitempty"`
	// Spec is the architecture; nil for a general (non-ResNet) graph.
	Spec *models.Spec `json:"spec,omitempty"`
	// How model.onnx was written.
	Opset    int   `json:"opset"`
	FoldedBN bool  `json:"folded_batchnorm"`
	Softmax  bool  `json:"softmax"`
	Params   int64 `json:"params"`
	MACs     int64 `json:"macs"`
	// Source says where the weights came from (an import); nil for a
	// checkpoint written by training from scratch.
	Source    *Source `json:"source,omitempty"`
	CreatedBy string  `json:"created_by,omitempty"`
}

// Source describes an imported file.
type Source struct {
	Path     string   `json:"path"`
	SHA256   string   `json:"sha256,omitempty"`
	Bytes    int64    `json:"bytes,omitempty"`
	Producer string   `json:"producer,omitempty"`
	Opset    int      `json:"opset"`
	Method   Method   `json:"method"`
	Summary  string   `json:"summary"`
	Notes    []string `json:"notes,omitempty"`
}

// SourceOf makes the Source of an import from its report.
func SourceOf(r *Report) *Source {
	return &Source{
		Path: r.Source, Producer: r.Producer, Opset: r.Opset, Method: r.Method,
		Summary: r.Summary(), Notes: r.Notes,
	}
}

// CheckpointOptions control WriteCheckpoint.
type CheckpointOptions struct {
	// Export says how model.onnx is written.
	Export export.Options
	// Force replaces a directory that is not empty.
	Force bool
	// Architecture is the catalog name to record, if any.
	Architecture string
	Source       *Source
	CreatedBy    string
}

// ErrNotEmpty is returned when the checkpoint directory exists, is not
// empty and Force is not set.
var ErrNotEmpty = errors.New("directory is not empty")

// WriteCheckpoint writes g as a checkpoint directory at dir, atomically:
// everything goes to a temporary directory next to dir, which is renamed
// into place at the end. An existing empty directory is replaced; a
// non-empty one only with opts.Force (the old one is removed after the new
// one is in place).
func WriteCheckpoint(dir string, g *build.Graph, opts CheckpointOptions) (*Manifest, error) {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("checkpoint %s: the parent directory %s does not exist", dir, parent)
	}
	exists, emptyDir := false, false
	switch st, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	case !st.IsDir():
		return nil, fmt.Errorf("checkpoint %s: exists and is not a directory", dir)
	default:
		empty, err := isEmpty(dir)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		if !empty && !opts.Force {
			return nil, fmt.Errorf("checkpoint %s: %w (use --force to replace it)", dir, ErrNotEmpty)
		}
		exists, emptyDir = !empty, empty
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	info, err := export.WriteFile(filepath.Join(tmp, CheckpointModel), g, opts.Export)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	c := g.Counts()
	m := &Manifest{
		Format: CheckpointFormat, Version: CheckpointVersion, Model: CheckpointModel,
		Architecture: opts.Architecture, Opset: info.Opset, FoldedBN: opts.Export.FoldBN, Softmax: opts.Export.Softmax,
		Params: c.Total(), MACs: c.MACs, Source: opts.Source, CreatedBy: opts.CreatedBy,
	}
	if g.Spec.Family != "" {
		s := g.Spec.Clone()
		m.Spec = &s
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, CheckpointManifest), append(body, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := syncDir(tmp); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var old string
	switch {
	case emptyDir:
		if err := os.Remove(dir); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
	case exists:
		// Move the old checkpoint aside, put the new one in place, then
		// delete the old one. (os.Rename refuses an existing directory as
		// the target, so the aside name is reserved and freed first.)
		o, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".old-")
		if err == nil {
			err = os.Remove(o)
		}
		if err == nil {
			err = os.Rename(dir, o)
		}
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		old = o
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	done = true
	if old != "" {
		os.RemoveAll(old)
	}
	syncDir(parent)
	return m, nil
}

// ReadManifest reads dir/checkpoint.json and checks its format.
func ReadManifest(dir string) (*Manifest, error) {
	// A regular file (a FIFO would block forever) of a manifest's size.
	b, err := regularfile.ReadFile(filepath.Join(dir, CheckpointManifest), 64<<20)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", dir, CheckpointManifest, err)
	}
	if m.Format != CheckpointFormat || m.Version < 1 || m.Model == "" {
		return nil, fmt.Errorf("checkpoint %s: %s is not a resnetctl checkpoint manifest (format %q, version %d)", dir, CheckpointManifest, m.Format, m.Version)
	}
	if m.Version > CheckpointVersion {
		return nil, fmt.Errorf("checkpoint %s: manifest version %d is newer than this resnetctl reads (%d)", dir, m.Version, CheckpointVersion)
	}
	return &m, nil
}

func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
