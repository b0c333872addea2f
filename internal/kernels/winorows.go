package kernels

// Winograd transforms of whole tile rows. When an image is 16 or 32
// pixels wide with one pixel of padding on every side (the CIFAR ResNets'
// 3x3 convolutions), its 4x4 output tiles form rows of 4 or 8 tiles, so a
// group of 16 consecutive tiles (a multiple of 16 from the batch's first
// tile) is 4 or 2 whole tile rows of one image. The transforms of such a
// group (winoInputRows16AVX512 and friends) read and write image rows with
// plain vector loads and stores and pick the tile elements with permutes,
// instead of the 16-lane gathers and scatters the general transforms need
// for arbitrary tile positions. Their arithmetic is the general one, in
// the same order: the results are bit-identical.

// winoRows describes the row layout of a convolution's tiles, or is nil
// when the convolution does not have it.
type winoRows struct {
	t      int // tiles per tile row: 4 or 8
	h, w   int // image size (input and output)
	perImg int // tiles per image, a multiple of 16
	tab    *winoRowsTab
}

// winoRowsTab holds the permute tables of the row transforms for tile rows
// of t tiles. They are computed once per width and never changed.
type winoRowsTab struct {
	in    [6 * 16]int32 // phases q = 0..3 (element 4x+q), shift right, shift left
	masks uintptr       // lanes kept by the shifts: right in bits 0-15, left in 16-31
	out   [4 * 16]int32 // interleaves: pairs of lanes 0-7, pairs of lanes 8-15, quads low, quads high
}

func makeWinoRowsTab(t int) *winoRowsTab {
	var tb winoRowsTab
	var keepR, keepL uintptr
	for l := 0; l < 16; l++ {
		for q := 0; q < 4; q++ {
			// Lanes 0-7 read the concatenation of slots 0 and 1, lanes
			// 8-15 that of slots 2 and 3: either way tile x of its tile
			// row is lane x (mod t) and element 4x+q of a 32-float span.
			tb.in[q*16+l] = int32(4*(l%8) + q)
		}
		tb.in[4*16+l] = int32((l + 15) % 16)
		tb.in[5*16+l] = int32((l + 1) % 16)
		if l%t != 0 {
			keepR |= 1 << l
		}
		if l%t != t-1 {
			keepL |= 1 << l
		}
	}
	tb.masks = keepR | keepL<<16
	for a := 0; a < 8; a++ {
		tb.out[2*a], tb.out[2*a+1] = int32(a), int32(16+a)
		tb.out[16+2*a], tb.out[16+2*a+1] = int32(8+a), int32(24+a)
	}
	for a := 0; a < 4; a++ {
		for k, v := range []int32{int32(2 * a), int32(2*a + 1), int32(16 + 2*a), int32(16 + 2*a + 1)} {
			tb.out[32+4*a+k] = v
			tb.out[48+4*a+k] = v + 8
		}
	}
	return &tb
}

var winoRowsTabs = [2]*winoRowsTab{makeWinoRowsTab(4), makeWinoRowsTab(8)}

// newWinoRows returns the row layout of p's tiles, or nil.
func newWinoRows(p ConvParams) *winoRows {
	if p.KH != 3 || p.KW != 3 || p.StrideH != 1 || p.StrideW != 1 || p.DilationH != 1 || p.DilationW != 1 ||
		p.Group != 1 || p.PadTop != 1 || p.PadBottom != 1 || p.PadLeft != 1 || p.PadRight != 1 {
		return nil
	}
	if p.InW != 16 && p.InW != 32 {
		return nil
	}
	t := p.InW / 4
	rows := 16 / t // tile rows per group
	if p.InH%(4*rows) != 0 {
		return nil
	}
	r := &winoRows{t: t, h: p.InH, w: p.InW, perImg: p.InH / 4 * t, tab: winoRowsTabs[0]}
	if t == 8 {
		r.tab = winoRowsTabs[1]
	}
	return r
}

// group returns the image and first tile row of the 16-tile group that
// starts at global tile g (a multiple of 16).
func (r *winoRows) group(g int) (img, ty0 int) {
	return g / r.perImg, g % r.perImg / r.t
}

// slotRow returns the tile row and the column offset of slot m of the
// group whose first tile row is ty0: slots 0-1 (lanes 0-7) and 2-3 (lanes
// 8-15) are one 32-float row each (t = 8), or one 16-float row each of
// four tile rows (t = 4).
func (r *winoRows) slotRow(ty0, m int) (tileRow, col int) {
	if r.t == 8 {
		return ty0 + m/2, 16 * (m % 2)
	}
	return ty0 + m, 0
}

// inSlots fills the 24 input slots of the group at tile row ty0: the
// offset in a channel plane of the 16 floats slot m of patch row r loads,
// or -1 above or below the image.
func (r *winoRows) inSlots(ty0 int, slots []int32) {
	slots = slots[:24]
	for pr := 0; pr < 6; pr++ {
		for m := 0; m < 4; m++ {
			tr, col := r.slotRow(ty0, m)
			y := 4*tr - 1 + pr
			if y < 0 || y >= r.h {
				slots[4*pr+m] = -1
			} else {
				slots[4*pr+m] = int32(y*r.w + col)
			}
		}
	}
}

// outSlots fills the 16 output slots of the group at tile row ty0: the
// offset in a channel plane of the 16 floats of output row i, slot m.
// (Slots live in the caller's scratch: a stack array passed to the
// assembly through a func value would escape to the heap.)
func (r *winoRows) outSlots(ty0 int, slots []int32) {
	slots = slots[:16]
	for i := 0; i < 4; i++ {
		for m := 0; m < 4; m++ {
			tr, col := r.slotRow(ty0, m)
			slots[4*i+m] = int32((4*tr+i)*r.w + col)
		}
	}
}
