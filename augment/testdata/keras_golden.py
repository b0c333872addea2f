#!/usr/bin/python3
"""Make keras_golden.json: Keras ImageDataGenerator warps of small images.

A re-implementation, in numpy, of what Keras does with one set of
transform parameters (theta, tx, ty, zx, zy, flip_horizontal) and
fill_mode='nearest', interpolation order 0:

  apply_affine_transform: the matrix rotation . shift . zoom (each factor
  only when it is not the identity), moved to the centre by
  transform_matrix_offset_center (o = h/2 + 0.5, w/2 + 0.5), then
  scipy.ndimage.affine_transform per channel, order=0, mode='nearest':
  output[i, j] = input[clamp(floor(c + 0.5))] with
  c = offset + i*A[:, 0] + j*A[:, 1] (ndimage's summation order);
  apply_transform: the horizontal flip after the warp.

Matrices are multiplied with np.dot as Keras does. For every case the script
records the margin: how far the nearest sampled coordinate is from a
rounding tie (x.5), so that a last-bit difference between this and the Go
code (sin, cos, dot products) cannot change a pixel unless margin is ~1e-15.

Run from this directory: /usr/bin/python3 keras_golden.py  (numpy only).
"""
import json

import numpy as np


def keras_matrix(theta, tx, ty, zx, zy, h, w):
    m = None
    if theta != 0:
        t = np.deg2rad(theta)
        m = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    if tx != 0 or ty != 0:
        s = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
        m = s if m is None else np.dot(m, s)
    if zx != 1 or zy != 1:
        z = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
        m = z if m is None else np.dot(m, z)
    if m is None:
        return None
    ox, oy = float(h) / 2 + 0.5, float(w) / 2 + 0.5
    off = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]])
    reset = np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
    return np.dot(np.dot(off, m), reset)


def warp(planes, p):
    """planes: uint8 (3, h, w). Returns the output planes and the margin."""
    _, h, w = planes.shape
    m = keras_matrix(p["theta"], p["tx"], p["ty"], p["zx"], p["zy"], h, w)
    out = planes.astype(np.float32)  # img_to_array gives float32
    margin = 0.5
    if m is not None:
        ii, jj = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
        coords = []
        for r in range(2):
            c = m[r, 2] + ii * m[r, 0]
            c = c + jj * m[r, 1]
            coords.append(c)
            frac = c - np.floor(c)
            margin = min(margin, float(np.min(np.abs(frac - 0.5))))
        si = np.clip(np.floor(coords[0] + 0.5), 0, h - 1).astype(np.int64)
        sj = np.clip(np.floor(coords[1] + 0.5), 0, w - 1).astype(np.int64)
        out = np.stack([ch[si, sj] for ch in out])
    if p["flip"]:
        out = out[:, :, ::-1]
    return out.astype(np.uint8), margin


CASES = [
    # name, h, w, theta, tx (rows), ty (columns), zx (rows), zy (columns), flip
    ("rotate15", 9, 13, 15.0, 0.0, 0.0, 1.0, 1.0, False),
    ("rotate-11.3", 32, 32, -11.3, 0.0, 0.0, 1.0, 1.0, False),
    ("shift", 9, 13, 0.0, 1.3, -2.7, 1.0, 1.0, False),
    ("zoom", 9, 13, 0.0, 0.0, 0.0, 0.91, 1.087, False),
    ("flip-only", 7, 5, 0.0, 0.0, 0.0, 1.0, 1.0, True),
    ("all", 9, 13, -12.5, 0.7, -1.3, 1.07, 0.93, True),
    ("all-cifar", 32, 32, 14.2, -3.1, 2.9, 0.92, 1.09, False),
    ("all-cifar-flip", 32, 32, -7.9, 2.2, -0.6, 1.04, 0.95, True),
]


def main():
    rng = np.random.default_rng(20240611)
    cases = []
    for name, h, w, theta, tx, ty, zx, zy, flip in CASES:
        planes = rng.integers(0, 256, size=(3, h, w), dtype=np.uint8)
        p = dict(theta=theta, tx=tx, ty=ty, zx=zx, zy=zy, flip=flip)
        out, margin = warp(planes, p)
        cases.append(dict(name=name, h=h, w=w, **p, margin=margin,
                          input=planes.tobytes().hex(), output=out.tobytes().hex()))
        print(f"{name:16s} {h}x{w} margin {margin:.3g}")
    with open("keras_golden.json", "w") as f:
        json.dump({"generator": "keras_golden.py", "numpy": np.__version__, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
