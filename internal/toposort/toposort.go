// Package toposort orders the nodes of a graph so that every node follows
// the nodes it depends on, keeping the original order wherever the
// dependencies leave it free: the order ONNX graphs are imported and run
// in (package onnximport and the inference runtime share it).
package toposort

import "container/heap"

// Stable orders nodes 0...len(users)-1, given for each node the nodes that
// use its outputs (users[p] lists u once per edge p→u) and each node's
// number of incoming edges (indeg, consumed). Among the nodes that are
// ready it always takes the lowest index, so an already ordered graph
// keeps its order. If the graph has a cycle, order holds the nodes that
// could be placed and cycle the others (on or behind a cycle), ascending.
func Stable(users [][]int, indeg []int) (order, cycle []int) {
	n := len(users)
	ready := &intHeap{}
	for i := range n {
		if indeg[i] == 0 {
			heap.Push(ready, i)
		}
	}
	order = make([]int, 0, n)
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		order = append(order, i)
		for _, u := range users[i] {
			if indeg[u]--; indeg[u] == 0 {
				heap.Push(ready, u)
			}
		}
	}
	if len(order) < n {
		for i := range n {
			if indeg[i] > 0 {
				cycle = append(cycle, i)
			}
		}
	}
	return order, cycle
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
