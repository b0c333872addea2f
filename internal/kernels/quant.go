package kernels

// FakeQuant sets dst[i] = clamp(round(src[i]/s), lo, hi)·s, rounding half
// to even: QuantizeLinear then DequantizeLinear, with the zero point z
// folded into the bounds (lo = qmin-z, hi = qmax-z, integers within
// ±2^22). A NaN becomes lo. dst may be src.
func FakeQuant(dst, src []float32, s, lo, hi float32) { fakeQuant(dst[:len(src)], src, s, lo, hi) }

func fakeQuantGo(dst, src []float32, s, lo, hi float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		q := v / s
		switch {
		case !(q >= lo):
			q = lo
		case q > hi:
			q = hi
		default:
			q = roundEven32(q)
		}
		dst[i] = q * s
	}
}

// roundEven32 rounds q (|q| < 2^22) to the nearest integer, half to even:
// adding 1.5·2^23 leaves no fraction bits, and float32 addition rounds to
// nearest even.
func roundEven32(q float32) float32 {
	const magic = 12582912
	return (q + magic) - magic
}
