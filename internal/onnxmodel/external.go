package onnxmodel

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/resnetctl/resnetctl/internal/onnxpb"
	"github.com/resnetctl/resnetctl/internal/regularfile"
)

// ExternalData reads TensorProto external_data inside one folder, the
// model's: a location must be relative, must not leave the folder (nor
// through a symlink), and must name a regular file holding the bytes the
// tensor needs. A nil *ExternalData refuses every external tensor. Close
// it when the model is read.
type ExternalData struct {
	dir  string
	root *os.Root
}

// NewExternalData reads external data in dir; "" refuses it.
func NewExternalData(dir string) *ExternalData {
	if dir == "" {
		return nil
	}
	return &ExternalData{dir: dir}
}

// Close releases the folder.
func (e *ExternalData) Close() {
	if e != nil && e.root != nil {
		e.root.Close()
		e.root = nil
	}
}

// read returns need bytes of the external tensor described by entries.
func (e *ExternalData) read(entries []*onnxpb.StringStringEntryProto, need int) ([]byte, error) {
	var location string
	offset, length := int64(0), int64(-1)
	for _, kv := range entries {
		switch kv.GetKey() {
		case "location":
			location = kv.GetValue()
		case "offset", "length":
			v, err := strconv.ParseInt(kv.GetValue(), 10, 64)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("%w: external data %s %q is not a non-negative integer", ErrInvalidModel, kv.GetKey(), kv.GetValue())
			}
			if kv.GetKey() == "offset" {
				offset = v
			} else {
				length = v
			}
		case "checksum": // optional; not verified
		default:
			return nil, fmt.Errorf("%w: unknown external data key %q", ErrUnsupported, kv.GetKey())
		}
	}
	if location == "" {
		return nil, fmt.Errorf("%w: external data without a location", ErrInvalidModel)
	}
	if e == nil {
		return nil, fmt.Errorf("%w: tensor data is in external file %q, but the model was loaded from bytes (load it from its file, whose folder holds the external data)", ErrUnsupported, location)
	}
	// Refuse anything that could leave the model's folder. os.Root also
	// refuses symlinks that point outside it.
	slashed := filepath.ToSlash(location)
	if filepath.IsAbs(location) || path.IsAbs(slashed) || filepath.VolumeName(location) != "" {
		return nil, fmt.Errorf("%w: external data location %q is an absolute path; it must be relative to the model's folder", ErrInvalidModel, location)
	}
	if clean := path.Clean(slashed); clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, fmt.Errorf("%w: external data location %q escapes the model's folder", ErrInvalidModel, location)
	}
	if e.root == nil {
		r, err := os.OpenRoot(e.dir)
		if err != nil {
			return nil, fmt.Errorf("external data folder: %w", err)
		}
		e.root = r
	}
	// Non-blocking, so that a FIFO is refused below instead of blocking.
	f, err := e.root.OpenFile(filepath.FromSlash(path.Clean(slashed)), regularfile.OpenFlag, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: external data file %q not found next to the model: %v", ErrInvalidModel, location, err)
		}
		return nil, fmt.Errorf("%w: external data file %q: %v (it must be a file inside the model's folder)", ErrInvalidModel, location, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("external data %q: %w", location, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: external data %q is not a regular file", ErrInvalidModel, location)
	}
	if length >= 0 && length != int64(need) {
		return nil, fmt.Errorf("%w: external data %q: length %d, the tensor needs %d bytes", ErrInvalidModel, location, length, need)
	}
	if offset > st.Size() || st.Size()-offset < int64(need) {
		return nil, fmt.Errorf("%w: external data %q has %d bytes, the tensor needs %d from offset %d", ErrInvalidModel, location, st.Size(), need, offset)
	}
	buf := make([]byte, need)
	if _, err := f.ReadAt(buf, offset); err != nil && !(errors.Is(err, io.EOF) && need == 0) {
		return nil, fmt.Errorf("external data %q: %w", location, err)
	}
	return buf, nil
}
