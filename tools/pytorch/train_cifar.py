#!/usr/bin/python3
"""PyTorch 1.13 reference for resnetctl's `fast` recipe on CIFAR-10, so that
`resnetctl train --recipe fast` can be compared with PyTorch on the same data:

  nice -n 19 /usr/bin/python3 tools/pytorch/train_cifar.py [--model resnet20]
      [--data cifar10-jpeg.tar.gz] [--epochs 30] [--seed 1] [--threads 2]
      [--limit N] [--exact test_0000-0999.bin] [--json OUT]
      [--tta flip] [--ema DECAY] [--lr LR] [--schedule cosine|onecycle]
      [--label-smoothing EPS]

Matched (train/recipe.go, schedule.go, optim.go, model.go, augment/, build/):
- model: resnets.CifarResNet, basic blocks, option-A shortcuts (resnetN, 6n+2).
- init as our builder (= torchvision's ResNet init): convolutions He-normal,
  fan_out, std sqrt(2/fan_out) (NOT PyTorch's Conv2d default, so it is set
  here); BatchNorm weight 1, bias 0, eps 1e-5, momentum 0.1, unbiased
  running variance, and Linear uniform +-1/sqrt(fan_in) for weight and bias
  (both PyTorch defaults, kept).
- optimiser: torch.optim.SGD(momentum 0.9, dampening 0, nesterov, weight
  decay 5e-4 as L2 added to the gradient), on EVERY parameter (BN weights,
  biases and the classifier bias are decayed: the recipe leaves
  no_decay_norm_bias off). Our optim.go is this exact formulation.
- LR set before every optimiser step s (0-based, per step, not per epoch):
  W = round(1 epoch) = steps/epoch; s < W: 0.1*(s+1)/W (warm-up starts at 0,
  reaches 0.1 at step W-1); then 0.1*(1+cos(pi*(s-W)/(total-W)))/2, total =
  epochs*steps/epoch (so the last step's LR is just above 0).
- batch 128, last partial batch DROPPED (steps/epoch = N//128 = 390), the
  training set reshuffled every epoch; loss = mean softmax cross-entropy.
- augmentation "paper": pad 4 with ZERO pixels (before normalisation, so a
  padded pixel becomes -mean/std), random 32x32 crop (row and column offsets
  uniform in 0..8), horizontal flip with p=1/2; done batched on uint8 tensors.
- preprocessing: x = (pixel/255 - mean)/std in float32, CIFAR-10 mean
  (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616).
- train loss/acc: mean over the epoch's steps of the batch loss and accuracy
  of the training-mode forward pass; validation: all 10,000 test images,
  eval mode, no augmentation, batches of 256; seconds: the training pass.

Differences that remain:
- JPEG decoding: Pillow (libjpeg-turbo) here, Go's image/jpeg with libjpeg's
  colour conversion and fancy upsampling in resnetctl: the IDCTs differ by
  +-1 level on some pixels.
- random streams: the shuffle, crops and flips come from torch's generator
  (seeded from --seed), not from resnetctl's SplitMix64 streams, so the
  batches differ (same distributions); --seed 1 here is not --seed 1 there.
- options off by default, as in every resnetctl recipe: --tta flip (resnetctl
  train --validation-tta flip / evaluate --tta flip) validates and evaluates
  each image and its left-right mirror image, averaging the two softmax
  probability vectors; --ema DECAY (resnetctl train --ema-decay) keeps a
  hand-written EMA of the weights updated after every optimiser step,
  ema.lerp_(w, 1-DECAY) for every parameter (train/ema.go's formula) and the
  BatchNorm buffers copied, and validates/evaluates the EMA model.
- float arithmetic: PyTorch's kernels (oneDNN/OpenMP reductions, foreach-free
  SGD) vs ours; results agree statistically, not bit for bit.
"""
import argparse
import copy
import io
import json
import math
import os
import random
import re
import sys
import tarfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import resnets  # noqa: E402

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MEAN = torch.tensor([0.4914, 0.4822, 0.4465], dtype=torch.float32).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616], dtype=torch.float32).view(1, 3, 1, 1)
RECIPE = {"name": "fast", "batch": 128,
          "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
          "schedule": {"kind": "cosine", "warmup_epochs": 1, "warmup_start": 0, "min_lr": 0, "per": "step"},
          "loss": "sparse_categorical_crossentropy", "augment": "paper (pad 4 zeros, crop 32, hflip)",
          "drop_last": True, "decay_norm_bias": True, "eval_batch": 256}
PAD = 4


def load_jpeg_tar(path):
    """{"train"/"test": (uint8 N×3×32×32, int64 labels)}, ordered by class then number."""
    found = {"train": [], "test": []}
    pat = re.compile(r"(?:^|/)cifar10/(train|test)/([a-z]+)/(\d+)\.jpg$")
    with tarfile.open(path, "r:*") as tf:
        for m in tf:
            g = pat.search(m.name) if m.isfile() else None
            if not g:
                continue
            img = Image.open(io.BytesIO(tf.extractfile(m).read())).convert("RGB")
            a = np.asarray(img, dtype=np.uint8)
            if a.shape != (32, 32, 3):
                raise SystemExit("%s: %s is %s, not 32x32 RGB" % (path, m.name, a.shape))
            found[g.group(1)].append((CLASSES.index(g.group(2)), int(g.group(3)), a))
    out = {}
    for split, items in found.items():
        if not items:
            raise SystemExit("%s: no cifar10/%s/<class>/NNNN.jpg images" % (path, split))
        items.sort(key=lambda t: (t[0], t[1]))
        x = np.stack([t[2] for t in items]).transpose(0, 3, 1, 2)
        out[split] = (torch.from_numpy(np.ascontiguousarray(x)), torch.tensor([t[0] for t in items]))
    return out


def load_bin(path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise SystemExit("%s: %d bytes is not a whole number of 3073-byte CIFAR-10 records" % (path, raw.size))
    rec = raw.reshape(-1, 3073)
    return torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(rec[:, 0].astype(np.int64))


def normalize(x):
    return (x.float() / 255 - MEAN) / STD


def augment(x):
    """Paper augmentation of a uint8 batch: zero-pad 4, random crop, flip."""
    n, s = x.shape[0], x.shape[-1]
    p = F.pad(x, (PAD, PAD, PAD, PAD))  # zeros, uint8
    oy = torch.randint(0, 2 * PAD + 1, (n,))
    ox = torch.randint(0, 2 * PAD + 1, (n,))
    flip = torch.rand(n) < 0.5
    ar = torch.arange(s)
    rows = oy[:, None] + ar                                              # n×s
    cols = ox[:, None] + torch.where(flip[:, None], s - 1 - ar, ar)      # mirrored crop
    idx = torch.arange(n)[:, None, None, None]
    ch = torch.arange(3)[None, :, None, None]
    return p[idx, ch, rows[:, None, :, None], cols[:, None, None, :]]


def lr_at(step, total, per_epoch, base=0.1, warmup_epochs=1.0, start=0.0, min_lr=0.0):
    """train.ScheduleConfig.At for kind cosine."""
    w = int(math.floor(warmup_epochs * per_epoch + 0.5))
    if step < w:
        return base * (start + (1 - start) * (step + 1) / w)
    span = total - w
    if span <= 0:
        return base
    t = min((step - w) / span, 1.0)
    return min_lr + (base - min_lr) * (1 + math.cos(math.pi * t)) / 2


def build(name):
    m = re.fullmatch(r"resnet(\d+)", name)
    if not m or int(m.group(1)) < 8 or (int(m.group(1)) - 2) % 6:
        raise SystemExit("--model must be resnetN with N = 6n+2 (basic blocks, shortcut A), got %r" % name)
    model = resnets.CifarResNet(resnets.Basic, (int(m.group(1)) - 2) // 6, option="A")
    for mod in model.modules():  # our builder's He init; BN and Linear keep PyTorch's (= ours)
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
    return model


@torch.no_grad()
def evaluate(model, x, y, batch=256, tta="none"):
    """Mean cross-entropy and accuracy; with tta "flip", of the average of the
    softmax probabilities of each image and its mirror image (the W axis of
    the normalised NCHW input reversed)."""
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(y), batch):
        xn = normalize(x[i:i + batch])
        out = model(xn).double()
        if tta == "flip":
            p = (F.softmax(out, 1) + F.softmax(model(xn.flip(3)).double(), 1)) / 2
            loss += F.nll_loss(p.log(), y[i:i + batch], reduction="sum").item()
            correct += (p.argmax(1) == y[i:i + batch]).sum().item()
            continue
        loss += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
        correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    return loss / len(y), correct / len(y)


class EMA:
    """Exponential moving average of a model's weights, as train/ema.go:
    after every optimiser step ema += (1-decay)*(w - ema) for every
    parameter; buffers (BatchNorm running statistics) copied."""

    def __init__(self, model, decay):
        self.decay = decay
        self.model = copy.deepcopy(model)
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        for e, w in zip(self.model.parameters(), model.parameters()):
            e.lerp_(w, 1 - self.decay)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/work/shared/data/cifar10-jpeg.tar.gz")
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images of a seeded shuffle")
    ap.add_argument("--exact", help="CIFAR-10 binary .bin file to evaluate at the end")
    ap.add_argument("--json", help="write the run's results here")
    ap.add_argument("--tta", choices=["none", "flip"], default="none",
                    help="test-time augmentation of validation and --exact: flip averages the softmax "
                         "probabilities of each image and its mirror image")
    ap.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                    help="validate and evaluate an exponential moving average of the weights, updated "
                         "after every step (0: off; e.g. 0.999)")
    ap.add_argument("--lr", type=float, default=RECIPE["optimizer"]["lr"],
                    help="peak learning rate (resnetctl train --lr)")
    ap.add_argument("--schedule", choices=["cosine", "onecycle"], default="cosine",
                    help="cosine: the fast recipe's (1-epoch linear warm-up, cosine to 0); onecycle: "
                         "torch.optim.lr_scheduler.OneCycleLR with its defaults, stepped every step, "
                         "which train/schedule.go's onecycle is (resnetctl train --schedule onecycle)")
    ap.add_argument("--label-smoothing", type=float, default=0.0,
                    help="F.cross_entropy's label_smoothing (resnetctl train --label-smoothing)")
    ap.add_argument("--onnx", metavar="FILE",
                    help="export the trained (evaluated) model to this ONNX file at the end: opset 13, "
                         "input [batch,3,32,32] normalised as in training, logits out")
    a = ap.parse_args()
    if not (a.ema == 0 or 0 < a.ema < 1):
        ap.error("--ema %g: must be 0 (off) or in (0, 1)" % a.ema)
    wall = time.time()
    torch.set_num_threads(a.threads)
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)

    t = time.time()
    data = load_jpeg_tar(a.data)
    xtr, ytr = data["train"]
    xte, yte = data["test"]
    if a.limit:
        keep = torch.from_numpy(np.random.RandomState(a.seed).permutation(len(ytr))[:a.limit])
        xtr, ytr = xtr[keep], ytr[keep]
    batch = RECIPE["batch"]
    per_epoch = len(ytr) // batch
    if per_epoch == 0:
        raise SystemExit("%d training images make no full batch of %d" % (len(ytr), batch))
    total = a.epochs * per_epoch
    print("loaded %d train, %d test images in %.1fs; %s, %d steps/epoch, %d epochs, torch %s, %d threads"
          % (len(ytr), len(yte), time.time() - t, a.model, per_epoch, a.epochs, torch.__version__,
             torch.get_num_threads()), flush=True)

    model = build(a.model)
    o = RECIPE["optimizer"]
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=o["momentum"], dampening=0,
                          nesterov=o["nesterov"], weight_decay=o["weight_decay"], foreach=False)
    sched = None
    if a.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=total)
    ema = EMA(model, a.ema) if a.ema else None
    evaluated = ema.model if ema else model
    history, step = [], 0
    for epoch in range(1, a.epochs + 1):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(ytr))
        sum_loss, correct = 0.0, 0
        for b in range(per_epoch):  # the last partial batch is dropped
            idx = perm[b * batch:(b + 1) * batch]
            x, y = normalize(augment(xtr[idx])), ytr[idx]
            if sched is None:
                for g in opt.param_groups:
                    g["lr"] = lr_at(step, total, per_epoch, base=a.lr)
            out = model(x)
            loss = F.cross_entropy(out, y, label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None and step + 1 < total:
                sched.step()
            if ema:
                ema.update(model)
            step += 1
            sum_loss += loss.item()
            correct += (out.argmax(1) == y).sum().item()
        secs = time.time() - t0
        tl, ta = sum_loss / per_epoch, correct / (per_epoch * batch)
        vl, va = evaluate(evaluated, xte, yte, tta=a.tta)
        history.append([epoch, tl, ta, vl, va, secs])
        print("epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  %.1fs  (%.0f img/s)"
              % (epoch, a.epochs, tl, ta, vl, va, secs, per_epoch * batch / secs), flush=True)

    exact = None
    if a.exact:
        xe, ye = load_bin(a.exact)
        el, exact = evaluate(evaluated, xe, ye, tta=a.tta)
        print("exact %s: %d images  loss %.4f  acc %.4f" % (a.exact, len(ye), el, exact), flush=True)
    if a.onnx:
        evaluated.eval()
        torch.onnx.export(evaluated, torch.zeros(1, 3, 32, 32), a.onnx, opset_version=13,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        print("exported %s" % a.onnx, flush=True)
    wall = time.time() - wall
    print("wall %.1fs" % wall, flush=True)
    if a.json:
        rec = dict(RECIPE, epochs=a.epochs, lr=a.lr, schedule_kind=a.schedule, label_smoothing=a.label_smoothing, validation_tta=a.tta, ema_decay=a.ema or None, model=a.model, limit=a.limit or None, train_images=len(ytr),
                   steps_per_epoch=per_epoch)
        with open(a.json, "w") as f:
            json.dump({"recipe": rec, "seed": a.seed, "torch": torch.__version__, "threads": a.threads,
                       "columns": ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"],
                       "epochs": history, "exact_acc": exact, "wall_seconds": wall}, f, indent=1)


if __name__ == "__main__":
    main()
