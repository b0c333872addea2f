package toposort

import (
	"slices"
	"testing"
)

func TestStable(t *testing.T) {
	cases := []struct {
		name         string
		edges        [][2]int // producer → user
		n            int
		order, cycle []int
	}{
		{"already ordered", [][2]int{{0, 1}, {1, 2}}, 3, []int{0, 1, 2}, nil},
		{"reversed", [][2]int{{2, 1}, {1, 0}}, 3, []int{2, 1, 0}, nil},
		{"free nodes keep their order", [][2]int{{3, 0}}, 4, []int{1, 2, 3, 0}, nil},
		{"diamond, two edges between a pair", [][2]int{{0, 1}, {0, 2}, {1, 3}, {2, 3}, {2, 3}}, 4, []int{0, 1, 2, 3}, nil},
		{"cycle and what hangs behind it", [][2]int{{1, 2}, {2, 1}, {2, 3}}, 4, []int{0}, []int{1, 2, 3}},
		{"empty", nil, 0, []int{}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			users := make([][]int, tc.n)
			indeg := make([]int, tc.n)
			for _, e := range tc.edges {
				users[e[0]] = append(users[e[0]], e[1])
				indeg[e[1]]++
			}
			order, cycle := Stable(users, indeg)
			if !slices.Equal(order, tc.order) || !slices.Equal(cycle, tc.cycle) {
				t.Errorf("order %v cycle %v, want %v %v", order, cycle, tc.order, tc.cycle)
			}
		})
	}
}
