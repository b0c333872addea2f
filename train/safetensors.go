package train

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
)

// Tensor files use the safetensors format (huggingface/safetensors): an
// 8-byte little-endian header length, a JSON header mapping each tensor name
// to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data
// that follows the header) plus string metadata under "__metadata__", then
// the raw little-endian data. It is simple, exact, and readable from Python
// without resnetctl (safetensors.numpy.load_file, or a few lines of struct).
// Only F32 and I64 tensors are used.

// stTensor is one tensor of a safetensors file.
type stTensor struct {
	Shape []int
	F32   []float32 // dtype F32
	I64   []int64   // dtype I64
}

type stEntry struct {
	DType   string `json:"dtype"`
	Shape   []int  `json:"shape"`
	Offsets [2]int `json:"data_offsets"`
}

// writeSafetensors writes the tensors in the order of names.
func writeSafetensors(w io.Writer, names []string, tensors map[string]stTensor, meta map[string]string) error {
	header := map[string]any{}
	off := 0
	for _, name := range names {
		t := tensors[name]
		e := stEntry{Shape: t.Shape}
		if e.Shape == nil {
			e.Shape = []int{}
		}
		switch {
		case t.I64 != nil:
			e.DType, e.Offsets = "I64", [2]int{off, off + 8*len(t.I64)}
		default:
			e.DType, e.Offsets = "F32", [2]int{off, off + 4*len(t.F32)}
		}
		off = e.Offsets[1]
		header[name] = e
	}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	buf := make([]byte, 8, 8+len(h)+off)
	binary.LittleEndian.PutUint64(buf, uint64(len(h)))
	buf = append(buf, h...)
	for _, name := range names {
		t := tensors[name]
		for _, v := range t.F32 {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		for _, v := range t.I64 {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(v))
		}
	}
	_, err = w.Write(buf)
	return err
}

var errSafetensors = errors.New("malformed safetensors file")

// readSafetensors decodes a safetensors file held in memory.
func readSafetensors(b []byte) (map[string]stTensor, map[string]string, error) {
	if len(b) < 8 {
		return nil, nil, fmt.Errorf("%w: %d bytes", errSafetensors, len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		return nil, nil, fmt.Errorf("%w: header of %d bytes in a file of %d", errSafetensors, n, len(b))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		return nil, nil, fmt.Errorf("%w: header: %v", errSafetensors, err)
	}
	data := b[8+n:]
	meta := map[string]string{}
	out := map[string]stTensor{}
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	type entry struct {
		name string
		stEntry
		count int
	}
	entries := make([]entry, 0, len(names))
	for _, name := range names {
		if name == "__metadata__" {
			if err := json.Unmarshal(raw[name], &meta); err != nil {
				return nil, nil, fmt.Errorf("%w: metadata: %v", errSafetensors, err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(raw[name], &e); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", errSafetensors, name, err)
		}
		size := map[string]int{"F32": 4, "I64": 8}[e.DType]
		if size == 0 {
			return nil, nil, fmt.Errorf("%w: %s: dtype %s (want F32 or I64)", errSafetensors, name, e.DType)
		}
		count, err := shapeCount(e.Shape, len(data)/size)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", errSafetensors, name, err)
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || lo > hi || hi > len(data) || hi-lo != count*size {
			return nil, nil, fmt.Errorf("%w: %s: offsets %v for %d values of %s in %d data bytes", errSafetensors, name, e.Offsets, count, e.DType, len(data))
		}
		entries = append(entries, entry{name, e, count})
	}
	// No two tensors may share data bytes, checked before anything is
	// decoded: the format does not allow it (each tensor owns its range),
	// and a few header bytes per tensor naming one large range again would
	// decode to far more values than the file holds. Empty tensors own no
	// bytes.
	byOffset := slices.Clone(entries)
	slices.SortFunc(byOffset, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.Offsets[0], b.Offsets[0]), cmp.Compare(a.Offsets[1], b.Offsets[1]), cmp.Compare(a.name, b.name))
	})
	var prev *entry // the last non-empty tensor, which ends after every other so far
	for i := range byOffset {
		e := &byOffset[i]
		if e.Offsets[0] == e.Offsets[1] {
			continue
		}
		if prev != nil && e.Offsets[0] < prev.Offsets[1] {
			return nil, nil, fmt.Errorf("%w: tensors %q (data_offsets %v) and %q (data_offsets %v) overlap",
				errSafetensors, prev.name, prev.Offsets, e.name, e.Offsets)
		}
		prev = e
	}
	for _, e := range entries {
		name, count := e.name, e.count
		t := stTensor{Shape: e.Shape}
		p := data[e.Offsets[0]:e.Offsets[1]]
		if e.DType == "F32" {
			t.F32 = make([]float32, count)
			for i := range t.F32 {
				t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
			}
		} else {
			t.I64 = make([]int64, count)
			for i := range t.I64 {
				t.I64[i] = int64(binary.LittleEndian.Uint64(p[8*i:]))
			}
		}
		out[name] = t
	}
	return out, meta, nil
}

// shapeCount is the number of values of a tensor of the given shape,
// refusing negative dimensions and counts over limit (the values the data
// can hold) before they are multiplied out, so that a hostile shape cannot
// overflow or ask for a huge allocation.
func shapeCount(shape []int, limit int) (int, error) {
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d == 0 {
			return 0, nil
		}
	}
	count := 1
	for _, d := range shape {
		if count > limit/d {
			return 0, fmt.Errorf("shape %v has more values than the file holds", shape)
		}
		count *= d
	}
	return count, nil
}
