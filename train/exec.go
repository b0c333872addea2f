package train

import (
	"fmt"
	"slices"

	G "gorgonia.org/gorgonia"
)

// program runs a Net's gorgonia graph: every op node in the order
// gorgonia's TapeMachine would run it (gorgonia.Sort, reversed), each op's
// Do called on its children's values. It does what the TapeMachine did for
// these graphs without its per-step bookkeeping (the machine allocated
// about 750 small objects a step to bind values to nodes and record the
// tape): a step through a program allocates nothing. Every op of a Net is
// this package's (they own their outputs), except the constants
// gorgonia.Grad adds, which are evaluated once when the program is made.
type program struct {
	steps []execStep
	// vals holds every node's value by its position in the order.
	vals []G.Value
	// index finds a node's position.
	index map[*G.Node]int
}

// execStep is one op node: its op, where its inputs are and where its
// value goes. args is reused every step.
type execStep struct {
	node *G.Node
	op   G.Op
	kids []int
	args []G.Value
	out  int
}

// newProgram orders g's nodes. children gives each op node's inputs, in
// order; an op node without an entry must take no input (a constant).
// Input nodes (no op) must already hold their values, which are updated in
// place between runs.
func newProgram(g *G.ExprGraph, children map[*G.Node][]*G.Node) (*program, error) {
	order, err := G.Sort(g)
	if err != nil {
		return nil, fmt.Errorf("ordering the graph: %w", err)
	}
	slices.Reverse(order)
	p := &program{vals: make([]G.Value, len(order)), index: make(map[*G.Node]int, len(order))}
	for i, nd := range order {
		p.index[nd] = i
	}
	for i, nd := range order {
		op := nd.Op()
		if op == nil {
			v := nd.Value()
			if v == nil {
				return nil, fmt.Errorf("input %s has no value", nd.Name())
			}
			p.vals[i] = v
			continue
		}
		kids, ok := children[nd]
		if !ok {
			if op.Arity() > 0 {
				return nil, fmt.Errorf("node %s (%v) takes %d inputs the program does not know", nd.Name(), op, op.Arity())
			}
			v, err := op.Do()
			if err != nil {
				return nil, fmt.Errorf("constant %s: %w", nd.Name(), err)
			}
			p.vals[i] = v
			continue
		}
		st := execStep{node: nd, op: op, kids: make([]int, len(kids)), args: make([]G.Value, len(kids)), out: i}
		for j, c := range kids {
			k, ok := p.index[c]
			if !ok || k >= i {
				return nil, fmt.Errorf("node %s: input %s is not ordered before it", nd.Name(), c.Name())
			}
			st.kids[j] = k
		}
		p.steps = append(p.steps, st)
	}
	return p, nil
}

// run runs every op once.
func (p *program) run() error {
	for s := range p.steps {
		st := &p.steps[s]
		for j, k := range st.kids {
			st.args[j] = p.vals[k]
		}
		v, err := st.op.Do(st.args...)
		if err != nil {
			return fmt.Errorf("%s: %w", st.node.Name(), err)
		}
		p.vals[st.out] = v
	}
	return nil
}

// value is nd's value from the last run (nil before the first, or if nd
// is not in the program).
func (p *program) value(nd *G.Node) G.Value {
	if i, ok := p.index[nd]; ok {
		return p.vals[i]
	}
	return nil
}
