package train

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/resnetctl/resnetctl/internal/memcap"
)

// safetensorsFile is a safetensors file with the given JSON header and
// dataBytes zero bytes of data.
func safetensorsFile(header string, dataBytes int) []byte {
	for len(header)%8 != 0 {
		header += " "
	}
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), make([]byte, dataBytes)...)
}

// TestSafetensorsOverlap: tensors whose data ranges overlap (they were
// accepted, each decoding the shared bytes again) are refused naming both,
// before anything is decoded, so that many tensors naming one large range
// allocate nothing like their sum; disjoint ranges in any header order,
// gaps, and empty tensors at any offset are accepted.
func TestSafetensorsOverlap(t *testing.T) {
	many := func(n, size int) string { // n tensors of size bytes, all at offset 0
		var parts []string
		for i := range n {
			parts = append(parts, fmt.Sprintf(`"t%03d":{"dtype":"F32","shape":[%d],"data_offsets":[0,%d]}`, i, size/4, size))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	tests := []struct {
		name, header string
		data         int
		want         string // "" accepts
	}{
		{"same range", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8,
			`malformed safetensors file: tensors "a" (data_offsets [0 8]) and "b" (data_offsets [0 8]) overlap`},
		{"partial overlap", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, 16,
			`malformed safetensors file: tensors "b" (data_offsets [0 8]) and "a" (data_offsets [4 12]) overlap`},
		{"inside another", `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[],"data_offsets":[8,12]}}`, 16,
			`malformed safetensors file: tensors "a" (data_offsets [0 16]) and "b" (data_offsets [8 12]) overlap`},
		{"third overlaps the first", `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},"c":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}`, 20,
			`malformed safetensors file: tensors "a" (data_offsets [0 16]) and "c" (data_offsets [12 16]) overlap`},
		{"200 tensors naming 1 MiB", many(200, 1<<20), 1 << 20,
			`malformed safetensors file: tensors "t000" (data_offsets [0 1048576]) and "t001" (data_offsets [0 1048576]) overlap`},
		{"disjoint, header out of data order", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 16, ""},
		{"gap between tensors", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}`, 16, ""},
		{"empty tensors inside a range", `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},"f":{"dtype":"I64","shape":[2,0],"data_offsets":[8,8]}}`, 16, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := safetensorsFile(tt.header, tt.data)
			var err error
			alloc := memcap.Allocated(func() { _, _, err = readSafetensors(b) })
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || !errors.Is(err, errSafetensors) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			memcap.Check(t, alloc, memcap.Limit(64<<20, len(b)), "refusing %s", tt.name)
		})
	}
}
