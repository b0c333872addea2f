package infer

// byType instantiates a generic kernel maker for the element type dt.
func byType[P any](dt DType, p P, f32, f64, i64, i32, b func(P) kfactory) kfactory {
	switch dt {
	case Float64:
		return f64(p)
	case Int64:
		return i64(p)
	case Int32:
		return i32(p)
	case Bool:
		return b(p)
	}
	return f32(p)
}

// byNumType is byType for the numeric types.
func byNumType[P any](dt DType, p P, f32, f64, i64, i32 func(P) kfactory) kfactory {
	switch dt {
	case Float64:
		return f64(p)
	case Int64:
		return i64(p)
	case Int32:
		return i32(p)
	}
	return f32(p)
}
