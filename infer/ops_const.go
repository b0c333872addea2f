package infer

import (
	"slices"
)

// constOp is Constant: its value is known at load.
type constOp struct{ t *Tensor }

func (o *constOp) value() *Tensor { return o.t }

func (o *constOp) plan(pc *planCtx, n *pnode) error { return n.setConst(pc, 0, o.t) }

// newConstant implements Constant, versions 1, 9, 11, 12 (value_float(s),
// value_int(s)), 13, 19 and 21; sparse and string values are not
// supported:
// https://onnx.ai/onnx/operators/onnx__Constant.html
func newConstant(b *nodeBuilder) op {
	b.arity(0, 0, 1, 1)
	o := &constOp{}
	set := 0
	if b.isSet("value") {
		set++
		o.t = b.tensor("value")
	}
	if b.since >= 12 {
		if b.isSet("value_float") {
			set++
			o.t = NewFloat32([]int{}, []float32{b.float("value_float", 0)})
		}
		if b.isSet("value_floats") {
			set++
			f, _ := b.floats("value_floats")
			o.t = NewFloat32([]int{len(f)}, slices.Clone(f))
		}
		if b.isSet("value_int") {
			set++
			o.t = NewInt64([]int{}, []int64{b.int("value_int", 0)})
		}
		if b.isSet("value_ints") {
			set++
			v, _ := b.ints("value_ints")
			o.t = NewInt64([]int{len(v)}, slices.Clone(v))
		}
	}
	for _, name := range []string{"sparse_value", "value_string", "value_strings"} {
		if b.isSet(name) {
			set++
			b.used[name] = true
			b.fail("attribute %q is not supported (sparse and string tensors)", name)
		}
	}
	if set != 1 {
		b.invalid("exactly one value attribute must be set, found %d", set)
	}
	if o.t == nil {
		o.t = NewFloat32([]int{}, []float32{0}) // problem already reported
	}
	b.out(0, o.t.Type())
	o.t = widen(o.t) // held as its storage type
	return o
}

// constantOfShapeOp is ConstantOfShape, computed when planning (or by
// every run when over the fold budget: see budget.go).
type constantOfShapeOp struct{ fill *Tensor }

// newConstantOfShape implements ConstantOfShape, versions 9, 20 and 21;
// the shape input must be computable when planning:
// https://onnx.ai/onnx/operators/onnx__ConstantOfShape.html
func newConstantOfShape(b *nodeBuilder) op {
	b.arity(1, 1, 1, 1)
	b.want(0, "input", Int64)
	b.needValue(0)
	o := &constantOfShapeOp{fill: NewFloat32([]int{1}, []float32{0})}
	if b.isSet("value") {
		if t := b.tensor("value"); t != nil {
			if t.Len() != 1 {
				b.invalid("value has %d elements, want 1", t.Len())
			} else {
				o.fill = t
			}
		}
	}
	b.out(0, o.fill.Type())
	o.fill = widen(o.fill) // held as its storage type
	return o
}

func (o *constantOfShapeOp) plan(pc *planCtx, n *pnode) error {
	dims, err := valueInts(n.in[0], "shape")
	if err != nil {
		return err
	}
	shape := make([]int, len(dims))
	for i, d := range dims {
		if d < 0 || d > int64(pc.maxElems) {
			return errShape("shape %v has an invalid dimension", dims)
		}
		shape[i] = int(d)
	}
	if err := n.setShape(pc, 0, shape); err != nil {
		return err
	}
	t, err := pc.tryConst(o.fill.Type(), shape)
	if err != nil {
		return err
	}
	if t == nil { // too large to compute now: filled by every run
		n.kernel = fillKernel(o.fill, n.out[0].id)
		return nil
	}
	f := o.fill
	switch t.Type() {
	case Float32:
		fill(t.Float32, f.Float32[0])
	case Float64:
		fill(t.Float64, f.Float64[0])
	case Int64:
		fill(t.Int64, f.Int64[0])
	case Int32:
		fill(t.Int32, f.Int32[0])
	case Bool:
		fill(t.Bool, f.Bool[0])
	}
	return n.setConst(pc, 0, t)
}

func fill[T any](s []T, v T) {
	for i := range s {
		s[i] = v
	}
}

// fillKernel sets every element of value id to element 0 of v (of the
// value's type).
func fillKernel(v *Tensor, id int) kfactory {
	p := fillParams{v, id}
	return byType(v.Type(), p, fillK[float32], fillK[float64], fillK[int64], fillK[int32], fillK[bool])
}

type fillParams struct {
	v  *Tensor
	id int
}

func fillK[T elem](p fillParams) kfactory {
	return func(rc *runCtx) func() error {
		views, x := viewsOf[T](rc), dataOf[T](p.v)[0]
		return func() error {
			fill(views[p.id], x)
			return nil
		}
	}
}

// castOp is Cast.
type castOp struct{ from, to DType }

// newCast implements Cast, versions 6, 9, 13, 19 (saturate, which only
// concerns float8 types) and 21, between float32, float64, int64, int32,
// bool, uint8, int8 and float16 (to float16: rounded to nearest even; to
// uint8 and int8: truncated toward zero and wrapped, as a C cast on x86,
// which is what ONNX Runtime does, numpy too):
// https://onnx.ai/onnx/operators/onnx__Cast.html
func newCast(b *nodeBuilder) op {
	b.arity(1, 1, 1, 1)
	o := &castOp{from: b.in(0), to: DType(b.int("to", 0))}
	if !b.isSet("to") {
		b.invalid("attribute to is required")
	} else if !o.to.supported() {
		b.fail("cast to %s (supported: float32, float64, int64, int32, bool, uint8, int8, float16)", o.to)
	}
	if b.since >= 19 {
		b.int("saturate", 1)
	}
	b.out(0, o.to)
	return o
}

type castParams struct{ x, y, size int }

func (o *castOp) plan(pc *planCtx, n *pnode) error {
	x := n.in[0]
	if err := n.setShape(pc, 0, x.shape); err != nil {
		return err
	}
	to := o.to.storage()
	if x.dtype == to && (!o.to.narrow() || o.from == o.to) && o.from != Float16 {
		n.aliasOf = 0
		return nil
	}
	p := castParams{x: x.id, y: n.out[0].id, size: x.size}
	if o.from == Float16 && o.to != Float16 {
		// float16 data is computed in float32 without rounding every op:
		// it becomes float16 values where it leaves for another type.
		n.kernel = castFromHalf(o.to, p)
		return nil
	}
	switch x.dtype {
	case Float32:
		n.kernel = castFrom[float32](to, p)
	case Float64:
		n.kernel = castFrom[float64](to, p)
		if o.to == Float16 { // rounded once, from float64
			n.kernel = func(rc *runCtx) func() error {
				return func() error {
					y := rc.f32[p.y]
					for i, v := range rc.f64[p.x] {
						y[i] = halfToFloat32(halfFromFloat64(v))
					}
					return nil
				}
			}
			return nil
		}
	case Int64:
		n.kernel = castFrom[int64](to, p)
	case Int32:
		n.kernel = castFrom[int32](to, p)
	case Bool:
		n.kernel = castFromBool(to, p)
	}
	if o.to.narrow() {
		n.kernel = narrowAfter(n.kernel, o.to, p.y)
	}
	return nil
}

// castFromHalf casts float16 values held as float32 to type to, rounding
// them to float16 first.
func castFromHalf(to DType, p castParams) kfactory {
	return func(rc *runCtx) func() error {
		return func() error {
			x := rc.f32[p.x]
			switch to {
			case Float64:
				for i, v := range x {
					rc.f64[p.y][i] = float64(roundHalf(v))
				}
			case Int64:
				for i, v := range x {
					rc.i64[p.y][i] = int64(roundHalf(v))
				}
			case Bool:
				for i, v := range x {
					rc.b[p.y][i] = roundHalf(v) != 0
				}
			case Int32, Uint8, Int8:
				for i, v := range x {
					w := int32(roundHalf(v))
					switch to {
					case Uint8:
						w = int32(uint8(w))
					case Int8:
						w = int32(int8(w))
					}
					rc.i32[p.y][i] = w
				}
			default:
				for i, v := range x {
					rc.f32[p.y][i] = roundHalf(v)
				}
			}
			return nil
		}
	}
}

// narrowAfter runs k, then brings its output (held as o's storage type)
// to the values of type to: float16 rounding, uint8/int8 wrapping.
func narrowAfter(k kfactory, to DType, y int) kfactory {
	return func(rc *runCtx) func() error {
		f := k(rc)
		return func() error {
			if err := f(); err != nil {
				return err
			}
			switch to {
			case Uint8:
				for i, v := range rc.i32[y] {
					rc.i32[y][i] = int32(uint8(v))
				}
			case Int8:
				for i, v := range rc.i32[y] {
					rc.i32[y][i] = int32(int8(v))
				}
			case Float16:
				for i, v := range rc.f32[y] {
					rc.f32[y][i] = roundHalf(v)
				}
			}
			return nil
		}
	}
}

func castFrom[S num](to DType, p castParams) kfactory {
	switch to {
	case Float64:
		return castK[S, float64](p)
	case Int64:
		return castK[S, int64](p)
	case Int32:
		return castK[S, int32](p)
	case Bool:
		return func(rc *runCtx) func() error {
			src := viewsOf[S](rc)
			return func() error {
				y, x := rc.b[p.y], src[p.x]
				for i, s := range x {
					y[i] = s != 0
				}
				return nil
			}
		}
	}
	return castK[S, float32](p)
}

func castK[S, D num](p castParams) kfactory {
	return func(rc *runCtx) func() error {
		src, dst := viewsOf[S](rc), viewsOf[D](rc)
		return func() error {
			y, x := dst[p.y], src[p.x]
			for i, s := range x {
				y[i] = D(s)
			}
			return nil
		}
	}
}

func castFromBool(to DType, p castParams) kfactory {
	conv := func(set func(rc *runCtx, i int, one bool)) kfactory {
		return func(rc *runCtx) func() error {
			return func() error {
				for i, b := range rc.b[p.x] {
					set(rc, i, b)
				}
				return nil
			}
		}
	}
	b2 := func(b bool) int64 {
		if b {
			return 1
		}
		return 0
	}
	switch to {
	case Float64:
		return conv(func(rc *runCtx, i int, b bool) { rc.f64[p.y][i] = float64(b2(b)) })
	case Int64:
		return conv(func(rc *runCtx, i int, b bool) { rc.i64[p.y][i] = b2(b) })
	case Int32:
		return conv(func(rc *runCtx, i int, b bool) { rc.i32[p.y][i] = int32(b2(b)) })
	}
	return conv(func(rc *runCtx, i int, b bool) { rc.f32[p.y][i] = float32(b2(b)) })
}
