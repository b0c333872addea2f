package augment

import (
	"fmt"
	"math"
)

// Keras is the augmentation of Keras' ImageDataGenerator with
// rotation_range, width_shift_range, height_shift_range, zoom_range,
// horizontal_flip and fill_mode='nearest', reproduced from its source
// (get_random_transform, apply_transform, apply_affine_transform and
// transform_matrix_offset_center) rather than approximated:
//
//   - one draw gives θ uniform in ±Rotation degrees, a row shift tx uniform
//     in ±HeightShift·h pixels, a column shift ty uniform in ±WidthShift·w,
//     and two zoom factors zx (rows) and zy (columns), each uniform in
//     [1-Zoom, 1+Zoom] independently, and a flip with probability 1/2;
//   - the transforms compose as one matrix in (row, column) coordinates,
//     M = R(θ)·T(tx, ty)·Z(zx, zy), each factor left out when it is the
//     identity, moved to the centre as Keras does: C(o)·M·C(-o) with
//     o = (h/2 + 0.5, w/2 + 0.5), one pixel below and right of the true
//     centre ((h-1)/2, (w-1)/2), a Keras quirk kept here;
//   - the matrix maps output coordinates to input coordinates
//     (scipy.ndimage.affine_transform): output pixel (i, j) copies input
//     pixel (round(c_i), round(c_j)) with c = M·(i, j) + offset, rounding
//     halves up (floor(c + 0.5), scipy's order-0 rule) and clamping to the
//     image (fill_mode 'nearest': the nearest edge pixel);
//   - the horizontal flip comes last, after the warp.
//
// Interpolation is nearest-neighbour (scipy order 0), as Keras' original
// apply_transform sampled. ImageDataGenerator in keras_preprocessing and
// tf.keras takes interpolation_order, default 1 (bilinear); that is not a
// pixel copy and is not offered here.
type Keras struct {
	Rotation    float64 // rotation_range, degrees
	WidthShift  float64 // width_shift_range, a fraction of the width in [0, 1)
	HeightShift float64 // height_shift_range, a fraction of the height in [0, 1)
	Zoom        float64 // zoom_range z: factors in [1-z, 1+z], z in [0, 1)
	HFlip       bool    // horizontal_flip
}

// KerasDefaults returns the tutorial's ImageDataGenerator settings:
// rotation_range=15, width_shift_range=0.1, height_shift_range=0.1,
// zoom_range=0.1, horizontal_flip=True (fill_mode='nearest' is the only
// fill).
func KerasDefaults() Keras {
	return Keras{Rotation: 15, WidthShift: 0.1, HeightShift: 0.1, Zoom: 0.1, HFlip: true}
}

// KerasParams is one draw of Keras, in the terms of Keras'
// get_random_transform. Keras' names are kept, and they are easy to
// misread: Tx shifts rows (it is drawn from height_shift_range) and Ty
// columns; Zx scales rows and Zy columns. The zero value with Zx = Zy = 1
// is the identity.
type KerasParams struct {
	Theta  float64 // degrees
	Tx, Ty float64 // pixels: rows, columns
	Zx, Zy float64 // zoom of rows, columns (>1 shows less of the image)
	Flip   bool    // horizontal, after the warp
}

// Check reports invalid settings.
func (k Keras) Check() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case !finite(k.Rotation) || k.Rotation < 0:
		return fmt.Errorf("augment: keras: rotation range %v must be a finite number of degrees ≥ 0", k.Rotation)
	case !finite(k.WidthShift) || k.WidthShift < 0 || k.WidthShift >= 1:
		return fmt.Errorf("augment: keras: width shift range %v must be a fraction of the width in [0, 1)", k.WidthShift)
	case !finite(k.HeightShift) || k.HeightShift < 0 || k.HeightShift >= 1:
		return fmt.Errorf("augment: keras: height shift range %v must be a fraction of the height in [0, 1)", k.HeightShift)
	case !finite(k.Zoom) || k.Zoom < 0 || k.Zoom >= 1:
		return fmt.Errorf("augment: keras: zoom range %v must be in [0, 1)", k.Zoom)
	}
	return nil
}

// Draw samples a transform of a w×h image in Keras' order: θ, tx, ty, zx,
// zy, flip. (The numbers differ from Keras', whose generator is numpy's.)
func (k Keras) Draw(r *Rand, w, h int) KerasParams {
	p := KerasParams{Zx: 1, Zy: 1}
	if k.Rotation != 0 {
		p.Theta = r.Uniform(-k.Rotation, k.Rotation)
	}
	if k.HeightShift != 0 {
		p.Tx = r.Uniform(-k.HeightShift, k.HeightShift) * float64(h)
	}
	if k.WidthShift != 0 {
		p.Ty = r.Uniform(-k.WidthShift, k.WidthShift) * float64(w)
	}
	if k.Zoom != 0 {
		p.Zx = r.Uniform(1-k.Zoom, 1+k.Zoom)
		p.Zy = r.Uniform(1-k.Zoom, 1+k.Zoom)
	}
	flip := r.Bool() // drawn whether or not flips are on, as Keras does
	p.Flip = flip && k.HFlip
	return p
}

// Sample implements Augmentation.
func (k Keras) Sample(m []int32, w, h int, r *Rand) { k.Draw(r, w, h).Map(m, w, h) }

func (k Keras) String() string {
	return fmt.Sprintf("keras(rotation=%v width_shift=%v height_shift=%v zoom=%v horizontal_flip=%v fill=nearest interpolation=nearest)",
		k.Rotation, k.WidthShift, k.HeightShift, k.Zoom, k.HFlip)
}

// mat3 is a 3×3 matrix of homogeneous 2-D (row, column) coordinates.
type mat3 [3][3]float64

// mul is the matrix product a·b, each element summed left to right and
// every product rounded on its own (the float64() conversions forbid fused
// multiply-adds), as a plain dot product computes it.
func (a *mat3) mul(b *mat3) mat3 {
	var c mat3
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			c[i][j] = float64(float64(a[i][0]*b[0][j])+float64(a[i][1]*b[1][j])) + float64(a[i][2]*b[2][j])
		}
	}
	return c
}

// pi is π rounded to float64 as a variable, so that pi/180 is computed in
// float64 arithmetic like numpy's deg2rad (NPY_PI/180.0), not exactly as
// the constant expression math.Pi/180 would be.
var pi = math.Pi

// matrix returns the final affine transform of p for an image of h rows and
// w columns, output (row, column) to input (row, column), and false when p
// has no warp (only a flip, or nothing), in which case Keras leaves the
// pixels alone.
func (p KerasParams) matrix(w, h int) (m mat3, warp bool) {
	var t mat3
	set := func(f mat3) {
		if warp {
			t = t.mul(&f)
		} else {
			t, warp = f, true
		}
	}
	if p.Theta != 0 {
		th := p.Theta * (pi / 180)
		c, s := math.Cos(th), math.Sin(th)
		set(mat3{{c, -s, 0}, {s, c, 0}, {0, 0, 1}})
	}
	if p.Tx != 0 || p.Ty != 0 {
		set(mat3{{1, 0, p.Tx}, {0, 1, p.Ty}, {0, 0, 1}})
	}
	if p.Zx != 1 || p.Zy != 1 {
		set(mat3{{p.Zx, 0, 0}, {0, p.Zy, 0}, {0, 0, 1}})
	}
	if !warp {
		return mat3{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, false
	}
	ox, oy := float64(h)/2+0.5, float64(w)/2+0.5
	off := mat3{{1, 0, ox}, {0, 1, oy}, {0, 0, 1}}
	reset := mat3{{1, 0, -ox}, {0, 1, -oy}, {0, 0, 1}}
	ot := off.mul(&t)
	return ot.mul(&reset), true
}

// Map writes the pixel map of p for a w×h image (see Augmentation.Sample).
// Every output pixel copies an input pixel; none is zero.
func (p KerasParams) Map(m []int32, w, h int) {
	t, warp := p.matrix(w, h)
	if !warp {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				sx := x
				if p.Flip {
					sx = w - 1 - x
				}
				m[y*w+x] = int32(y*w + sx)
			}
		}
		return
	}
	a00, a01, b0 := t[0][0], t[0][1], t[0][2]
	a10, a11, b1 := t[1][0], t[1][1], t[1][2]
	for i := 0; i < h; i++ {
		// scipy's order: c = shift; c += i*m[0]; c += j*m[1].
		r0 := b0 + float64(float64(i)*a00)
		r1 := b1 + float64(float64(i)*a10)
		row := m[i*w : (i+1)*w]
		for jo := range row {
			j := jo
			if p.Flip {
				j = w - 1 - jo // the flip comes after the warp
			}
			si := nearest(r0+float64(float64(j)*a01), h)
			sj := nearest(r1+float64(float64(j)*a11), w)
			row[jo] = int32(si*w + sj)
		}
	}
}

// nearest is scipy's order-0 sample index with mode 'nearest':
// floor(c + 0.5) clamped to [0, n-1].
func nearest(c float64, n int) int {
	v := c + 0.5
	switch {
	case !(v >= 0): // below the image (floor < 0), or NaN
		return 0
	case v >= float64(n-1):
		return n - 1
	}
	return int(v) // truncation is floor for v ≥ 0
}
