package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refGemm computes alpha*op(A)*op(B) + beta*C0 in float64 and the error
// scale sum|alpha*a*b| + |beta*c0| of every element.
func refGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c0 []float32, ldc int) (ref, abs []float64) {
	ref = make([]float64, m*n)
	abs = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for l := 0; l < k; l++ {
				var av, bv float64
				if transA {
					av = float64(a[l*lda+i])
				} else {
					av = float64(a[i*lda+l])
				}
				if transB {
					bv = float64(b[j*ldb+l])
				} else {
					bv = float64(b[l*ldb+j])
				}
				s += av * bv
				sa += math.Abs(av * bv)
			}
			s *= float64(alpha)
			sa *= math.Abs(float64(alpha))
			if beta != 0 {
				s += float64(beta) * float64(c0[i*ldc+j])
				sa += math.Abs(float64(beta) * float64(c0[i*ldc+j]))
			}
			ref[i*n+j] = s
			abs[i*n+j] = sa
		}
	}
	return ref, abs
}

func TestGemm(t *testing.T) {
	sizes := []struct{ m, n, k int }{
		{1, 1, 1}, {1, 17, 5}, {7, 1, 3}, {3, 5, 1}, {8, 32, 16}, {9, 33, 17},
		{15, 31, 64}, {6, 16, 300}, {13, 70, 257}, {64, 49, 576}, {33, 100, 513},
		{100, 600, 20}, {2, 1100, 3}, {1, 40, 100}, {45, 1, 70}, {1, 1, 64},
	}
	type variant struct {
		transA, transB bool
		alpha, beta    float32
		pad            int // extra leading-dimension elements
	}
	var variants []variant
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			variants = append(variants,
				variant{ta, tb, 1, 0, 0},
				variant{ta, tb, 0.5, 1, 3},
				variant{ta, tb, -1.5, 0.25, 1},
			)
		}
	}
	pool := NewPool(2)
	defer pool.Close()
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, s := range sizes {
			for _, v := range variants {
				for _, p := range []*Pool{nil, pool} {
					name := fmt.Sprintf("m%d_n%d_k%d_tA%v_tB%v_a%g_b%g_pad%d_threads%d", s.m, s.n, s.k, v.transA, v.transB, v.alpha, v.beta, v.pad, p.Threads())
					ar, ac := s.m, s.k
					if v.transA {
						ar, ac = ac, ar
					}
					br, bc := s.k, s.n
					if v.transB {
						br, bc = bc, br
					}
					lda, ldb, ldc := ac+v.pad, bc+v.pad, s.n+v.pad
					a := randSlice(r, (ar-1)*lda+ac)
					b := randSlice(r, (br-1)*ldb+bc)
					c := randSlice(r, (s.m-1)*ldc+s.n)
					if v.beta == 0 {
						for i := range c {
							c[i] = float32(math.NaN()) // beta == 0 must not read C
						}
					}
					ref, abs := refGemm(v.transA, v.transB, s.m, s.n, s.k, v.alpha, a, lda, b, ldb, v.beta, c, ldc)
					guard := append([]float32(nil), c...)
					Gemm(p, v.transA, v.transB, s.m, s.n, s.k, v.alpha, a, lda, b, ldb, v.beta, c, ldc)
					got := make([]float32, s.m*s.n)
					tol := make([]float64, s.m*s.n)
					for i := 0; i < s.m; i++ {
						for j := 0; j < s.n; j++ {
							got[i*s.n+j] = c[i*ldc+j]
							tol[i*s.n+j] = tolerance(s.k, abs[i*s.n+j])
						}
						for j := s.n; j < ldc && i*ldc+j < len(c); j++ {
							if !(c[i*ldc+j] == guard[i*ldc+j] || (c[i*ldc+j] != c[i*ldc+j] && guard[i*ldc+j] != guard[i*ldc+j])) {
								t.Fatalf("%s: wrote outside C at (%d,%d)", name, i, j)
							}
						}
					}
					checkClose(t, name, got, ref, tol)
					if t.Failed() {
						return
					}
				}
			}
		}
	})
}

func TestGemmDegenerate(t *testing.T) {
	c := []float32{1, 2, 3, 4}
	Gemm(nil, false, false, 2, 2, 0, 1, nil, 0, nil, 2, 3, c, 2)
	for i, want := range []float32{3, 6, 9, 12} {
		if c[i] != want {
			t.Fatalf("k=0: c[%d] = %g, want %g", i, c[i], want)
		}
	}
	Gemm(nil, false, false, 0, 5, 3, 1, nil, 3, make([]float32, 15), 5, 0, nil, 5)
	defer func() {
		if recover() == nil {
			t.Fatal("short C did not panic")
		}
	}()
	Gemm(nil, false, false, 2, 2, 2, 1, make([]float32, 4), 2, make([]float32, 4), 2, 0, make([]float32, 3), 2)
}

// TestChooseSplit checks how one GEMM is cut for two threads: by the
// busiest part's real columns or rows, not by whole panels.
func TestChooseSplit(t *testing.T) {
	k := &kernelImpl{name: "test", mr: 8, nr: 32}
	for _, tc := range []struct {
		m, n, threads  int
		mParts, nParts int
	}{
		{512, 49, 2, 2, 1},  // ResNet-18 layer4 at batch 1: 32 + 17 columns would idle a thread a third of the time
		{256, 196, 2, 1, 2}, // layer3: 96 + 100 columns
		{64, 3136, 2, 1, 8}, // layer1: many panels, cut finer for dynamic claiming
		{16, 49, 2, 1, 2},   // 16 rows: packing B twice costs more than the ragged split
		{512, 49, 1, 1, 1},  // one thread
		{2048, 1, 2, 2, 1},  // a matrix-vector product
		{8, 1024, 2, 1, 8},  // one row panel
	} {
		mp, np := chooseSplit(k, tc.m, tc.n, tc.threads)
		if mp != tc.mParts || np != tc.nParts {
			t.Errorf("chooseSplit(m %d, n %d, %d threads) = %d x %d parts, want %d x %d", tc.m, tc.n, tc.threads, mp, np, tc.mParts, tc.nParts)
		}
	}
}
