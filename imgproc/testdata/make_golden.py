#!/usr/bin/python3
"""Test images and golden outputs for imgproc, made with Pillow and
torchvision (Debian's python3-pil, python3-torch, python3-torchvision).

    /usr/bin/python3 imgproc/testdata/make_golden.py [SHARED_DATA_DIR]

SHARED_DATA_DIR (default ../shared/data from the repository root) holds
cifar10-exact-sample/test_0000-0999.bin; the test images are small mosaics
of its first records, so they have natural-image content. Everything written
is deterministic: rerunning reproduces the committed files.

Writes into this directory:
  images/*           the inputs (PNG, JPEG 4:2:0/4:2:2/4:4:4, GIF, BMP, WebP,
                     gray, palette and RGBA PNGs)
  golden.json        the cases: input, operation, output shape, file
  golden/*.u8        resize outputs, planar RGB bytes (Pillow's resize)
  golden/*.f32       pipeline outputs, little-endian float32 NCHW (torchvision)
"""
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data")
records = np.fromfile(os.path.join(shared, "cifar10-exact-sample", "test_0000-0999.bin"), dtype=np.uint8).reshape(-1, 3073)
pics = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # N, H, W, RGB

os.makedirs(os.path.join(HERE, "images"), exist_ok=True)
os.makedirs(os.path.join(HERE, "golden"), exist_ok=True)


def mosaic(idx, cols):
    rows = [np.concatenate([pics[i] for i in idx[r * cols:(r + 1) * cols]], axis=1) for r in range(len(idx) // cols)]
    return np.concatenate(rows, axis=0)


# 93x61: odd sizes, six CIFAR test images (3x2 mosaic of 96x64, cropped).
natural = Image.fromarray(mosaic([0, 1, 2, 3, 4, 5], 3)[1:62, 2:95], "RGB")
# 20x13: smaller than the targets, for upscaling and padding crops.
small = Image.fromarray(pics[6][7:20, 5:25], "RGB")
# 150x103: bigger, for the ImageNet-style path (Resize(96), CenterCrop(80)).
big = Image.fromarray(np.asarray(Image.fromarray(mosaic(list(range(8, 20)), 4), "RGB").resize((150, 103), Image.BICUBIC)), "RGB")

inputs = {
    "natural.png": lambda p: natural.save(p),
    "small.png": lambda p: small.save(p),
    "big.png": lambda p: big.save(p),
    "natural420.jpg": lambda p: natural.save(p, quality=90, subsampling=2),
    "natural422.jpg": lambda p: natural.save(p, quality=90, subsampling=1),
    "natural444.jpg": lambda p: natural.save(p, quality=90, subsampling=0),
    "big420.jpg": lambda p: big.save(p, quality=85, subsampling=2),
    "natural.gif": lambda p: natural.quantize(64, dither=Image.Dither.NONE).save(p),
    "natural.bmp": lambda p: natural.save(p),
    "natural_lossless.webp": lambda p: natural.save(p, lossless=True),
    "natural_lossy.webp": lambda p: natural.save(p, quality=90),
    "gray.png": lambda p: natural.convert("L").save(p),
    "palette.png": lambda p: natural.quantize(32, dither=Image.Dither.NONE).save(p),
    "rgba.png": lambda p: Image.merge("RGBA", (*natural.split(), Image.linear_gradient("L").resize(natural.size))).save(p),
}
# Tiny images for the edges of chroma upsampling (libjpeg replicates when
# the chroma is at most 2 samples wide; odd sizes end on half a chroma pair).
for w, h in [(1, 1), (3, 2), (4, 4), (5, 3), (6, 7), (9, 8)]:
    tile = Image.fromarray(np.ascontiguousarray(pics[20][3:3 + h, 4:4 + w]), "RGB")
    inputs[f"tiny{w}x{h}_420.jpg"] = (lambda t: lambda p: t.save(p, quality=95, subsampling=2))(tile)
    inputs[f"tiny{w}x{h}_422.jpg"] = (lambda t: lambda p: t.save(p, quality=95, subsampling=1))(tile)
    inputs[f"tiny{w}x{h}_lossy.webp"] = (lambda t: lambda p: t.save(p, quality=95))(tile)
for name, save in inputs.items():
    save(os.path.join(HERE, "images", name))


def load(name):
    # torchvision's ImageFolder loader: open, convert("RGB").
    with open(os.path.join(HERE, "images", name), "rb") as f:
        return Image.open(f).convert("RGB")


cases = []


def planar_u8(img):
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))


def add_decode(name):
    a = planar_u8(load(name))
    out = "decode_" + name.replace(".", "_") + ".u8"
    a.tofile(os.path.join(HERE, "golden", out))
    cases.append({"kind": "decode", "input": name, "shape": list(a.shape), "file": out})


def add_resize(name, w, h):
    a = planar_u8(load(name).resize((w, h), Image.BILINEAR))
    out = f"resize_{name.replace('.', '_')}_{w}x{h}.u8"
    a.tofile(os.path.join(HERE, "golden", out))
    cases.append({"kind": "resize", "input": name, "w": w, "h": h, "shape": list(a.shape), "file": out})


def add_pipeline(label, name, resize, crop, mean, std):
    """resize: int (shorter side) or [h, w] (direct); crop: [h, w] or None."""
    steps = [T.Resize(resize)]
    if crop is not None:
        steps.append(T.CenterCrop(crop))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    x = T.Compose(steps)(load(name)).numpy().astype("<f4")
    out = f"pipeline_{label}.f32"
    x.tofile(os.path.join(HERE, "golden", out))
    cases.append({"kind": "pipeline", "label": label, "input": name, "resize": resize, "crop": crop,
                  "mean": mean, "std": std, "shape": list(x.shape), "file": out})


IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
CIFAR10 = ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])

for name in inputs:
    add_decode(name)
for w, h in [(32, 32), (24, 17), (93, 30), (40, 61), (150, 100), (5, 3), (1, 1), (47, 31)]:
    add_resize("natural.png", w, h)
for w, h in [(32, 32), (64, 41), (20, 7)]:
    add_resize("small.png", w, h)
add_resize("big.png", 64, 44)

for name in ["natural.png", "natural420.jpg", "natural444.jpg", "natural_lossy.webp", "gray.png", "rgba.png"]:
    add_pipeline("crop_" + name.replace(".", "_"), name, 32, [24, 24], *IMAGENET)
add_pipeline("direct32_natural_png", "natural.png", [32, 32], None, *CIFAR10)
add_pipeline("direct32_natural420_jpg", "natural420.jpg", [32, 32], None, *CIFAR10)
add_pipeline("upscale_small_png", "small.png", 30, [28, 26], *IMAGENET)
add_pipeline("padcrop_small_png", "small.png", 13, [16, 24], *IMAGENET)
add_pipeline("imagenet_big_png", "big.png", 96, [80, 80], *IMAGENET)
add_pipeline("imagenet_big420_jpg", "big420.jpg", 96, [80, 80], *IMAGENET)

# Keras preprocess_input modes on a resized image, by Keras' formulas in
# float32 numpy (Keras is not installed; these are its operations verbatim).
x = np.asarray(load("natural.png").resize((32, 32), Image.BILINEAR), dtype=np.float32)  # H, W, RGB
caffe = x[..., ::-1] - np.array([103.939, 116.779, 123.68], dtype=np.float32)
tf = x / np.float32(127.5) - np.float32(1.0)
for mode, arr in [("caffe", caffe), ("tf", tf), ("raw", x)]:
    a = np.ascontiguousarray(arr.transpose(2, 0, 1)).astype("<f4")
    out = f"keras_{mode}.f32"
    a.tofile(os.path.join(HERE, "golden", out))
    cases.append({"kind": "keras", "mode": mode, "input": "natural.png", "w": 32, "h": 32, "shape": list(a.shape), "file": out})

with open(os.path.join(HERE, "golden.json"), "w") as f:
    json.dump({"made_by": "imgproc/testdata/make_golden.py",
               "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                            "pillow": Image.__version__, "numpy": np.__version__},
               "cases": cases}, f, indent=1)
    f.write("\n")
print(f"{len(cases)} cases")
