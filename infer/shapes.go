package infer

import (
	"fmt"
	"strings"

	"github.com/resnetctl/resnetctl/internal/onnxmodel"
)

// broadcastShapes returns the numpy broadcast of the shapes.
func broadcastShapes(shapes ...[]int) ([]int, error) {
	out, ok := onnxmodel.Broadcast(shapes...)
	if !ok {
		return nil, errShape("shapes %v cannot be broadcast together", shapes)
	}
	return out, nil
}

// stridesOf returns row-major strides of shape.
func stridesOf(shape []int) []int { return onnxmodel.Strides(shape) }

// broadcastStrides returns the strides of a tensor of shape s read as the
// (broadcast) shape out: 0 along broadcast dimensions.
func broadcastStrides(s, out []int) []int {
	st := make([]int, len(out))
	inner := stridesOf(s)
	off := len(out) - len(s)
	for i := range s {
		if s[i] != 1 || out[off+i] == 1 {
			st[off+i] = inner[i]
		}
	}
	return st
}

// normAxis maps a possibly negative axis into [0, rank).
func normAxis(axis, rank int) (int, error) {
	ax, ok := onnxmodel.NormAxis(int64(axis), rank)
	if !ok {
		return 0, errShape("axis %d is out of range for rank %d", axis, rank)
	}
	return ax, nil
}

// normAxes maps axes into [0, rank), refusing repeats. It is linear in
// len(axes) + rank (a file may list hundreds of thousands of axes: a
// search of the axes seen so far made planning quadratic).
func normAxes(axes []int64, rank int) ([]int, error) {
	out := make([]int, len(axes))
	seen := make([]bool, rank)
	for i, a := range axes {
		if a < int64(-rank) || a >= int64(rank) { // before int(a): no wrap on 32-bit
			return nil, errShape("axis %d is out of range for rank %d", a, rank)
		}
		ax, _ := normAxis(int(a), rank)
		if seen[ax] {
			return nil, errShape("axis %d is repeated in %s", a, listText(axes))
		}
		seen[ax], out[i] = true, ax
	}
	return out, nil
}

// axisSet returns a rank-long mask of the (normalised) axes.
func axisSet(axes []int, rank int) []bool {
	set := make([]bool, rank)
	for _, a := range axes {
		set[a] = true
	}
	return set
}

// listText renders a list of integers for an error message, eliding the
// middle of a long one (a message stays one readable line whatever the
// file holds).
func listText[T int | int64](v []T) string {
	const keep = 8
	if len(v) <= 2*keep {
		return fmt.Sprint(v)
	}
	head := strings.TrimSuffix(fmt.Sprint(v[:keep]), "]")
	tail := strings.TrimPrefix(fmt.Sprint(v[len(v)-keep:]), "[")
	return fmt.Sprintf("%s … %s (%d values)", head, tail, len(v))
}

func prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// coalesce merges adjacent dimensions that every operand walks
// contiguously (each operand's strides as in broadcastStrides), so that
// loops run over as few, as long, dimensions as possible.
func coalesce(shape []int, strides ...[]int) ([]int, [][]int) {
	if len(shape) == 0 {
		return []int{1}, func() [][]int {
			out := make([][]int, len(strides))
			for i := range out {
				out[i] = []int{0}
			}
			return out
		}()
	}
	outShape := []int{shape[0]}
	outStrides := make([][]int, len(strides))
	for k := range strides {
		outStrides[k] = []int{strides[k][0]}
	}
	for i := 1; i < len(shape); i++ {
		last := len(outShape) - 1
		merge := true
		for k := range strides {
			if outStrides[k][last] != strides[k][i]*shape[i] {
				merge = false
				break
			}
		}
		if shape[i] == 1 {
			continue // size-1 dimensions never matter
		}
		if outShape[last] == 1 {
			outShape[last] = shape[i]
			for k := range strides {
				outStrides[k][last] = strides[k][i]
			}
			continue
		}
		if merge {
			outShape[last] *= shape[i]
			for k := range strides {
				outStrides[k][last] = strides[k][i]
			}
			continue
		}
		outShape = append(outShape, shape[i])
		for k := range strides {
			outStrides[k] = append(outStrides[k], strides[k][i])
		}
	}
	return outShape, outStrides
}
