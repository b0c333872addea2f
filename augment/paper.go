package augment

import "fmt"

// Paper is the augmentation of He et al., "Deep Residual Learning for Image
// Recognition" (2016), section 4.2, as torchvision writes it:
// RandomCrop(size, padding=Pad) then RandomHorizontalFlip(0.5). The image
// is padded with Pad zero (black) pixels on each side and a window of its
// own size is cut at a uniformly random offset, then mirrored left-right
// with probability 1/2 when HFlip is set.
//
// The padding is zero in pixel values, before normalisation (torchvision
// pads the PIL image), so a padded pixel becomes -mean/std of its channel,
// not 0.
type Paper struct {
	Pad   int  // pixels of zeros on each side (4 in the paper)
	HFlip bool // mirror left-right with probability 1/2
}

// PaperDefaults returns the paper's settings: Pad 4, HFlip.
func PaperDefaults() Paper { return Paper{Pad: 4, HFlip: true} }

// PaperParams is one draw of Paper: the window's top-left corner in the
// padded image, each in [0, 2*Pad], and the flip. X = Y = Pad (no flip) is
// the identity.
type PaperParams struct {
	X, Y int
	Flip bool
}

// Check reports invalid settings.
func (p Paper) Check() error {
	if p.Pad < 0 {
		return fmt.Errorf("augment: paper: negative padding %d", p.Pad)
	}
	return nil
}

// Draw samples a transform: the row offset, then the column offset (the
// order torchvision's RandomCrop.get_params draws them), then the flip.
func (p Paper) Draw(r *Rand) PaperParams {
	var q PaperParams
	q.Y = r.IntN(2*p.Pad + 1)
	q.X = r.IntN(2*p.Pad + 1)
	q.Flip = p.HFlip && r.Bool()
	return q
}

// Sample implements Augmentation.
func (p Paper) Sample(m []int32, w, h int, r *Rand) { p.Draw(r).Map(m, w, h, p.Pad) }

func (p Paper) String() string {
	return fmt.Sprintf("paper(pad=%d crop flip=%v)", p.Pad, p.HFlip)
}

// Map writes the pixel map of q for a w×h image padded by pad (see
// Augmentation.Sample): output (x, y) is padded pixel (X+x', Y+y) where x'
// is x, or w-1-x when flipped (the crop is mirrored after cutting).
func (q PaperParams) Map(m []int32, w, h, pad int) {
	for y := 0; y < h; y++ {
		sy := y + q.Y - pad
		row := m[y*w : (y+1)*w]
		if sy < 0 || sy >= h {
			for x := range row {
				row[x] = -1
			}
			continue
		}
		for x := range row {
			xx := x
			if q.Flip {
				xx = w - 1 - x
			}
			sx := xx + q.X - pad
			if sx < 0 || sx >= w {
				row[x] = -1
			} else {
				row[x] = int32(sy*w + sx)
			}
		}
	}
}
