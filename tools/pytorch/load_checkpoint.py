#!/usr/bin/python3
"""Load a resnetctl training checkpoint into PyTorch, and hand it back as ONNX.

The hand-off for training beyond one machine: a checkpoint directory written by
`resnetctl train` (model.onnx, state.safetensors, trainer.json) becomes a PyTorch
module with torchvision's parameter names, loaded with
load_state_dict(..., strict=True):

- ImageNet models into torchvision.models.<name>(num_classes=...) when the
  catalog name is a torchvision constructor with the same parameters (resnet18,
  resnet50, resnext50_32x4d, wide_resnet50_2 ...), else torchvision's ResNet class
  with the spec's blocks, groups and widths;
- CIFAR models into the modules of resnets.py next to this script.

state.safetensors is read by hand (8-byte little-endian header length, a JSON
header, raw little-endian data; no safetensors package needed): every
"param.<name>" tensor, the prefix stripped, is one state-dict entry (weights,
biases, BatchNorm affine parameters and running statistics). The optimiser's
"optim.*" buffers are not part of a state dict and are left out. PyTorch's
BatchNorm also keeps num_batches_tracked, which only matters for momentum=None
BatchNorm and which resnetctl does not store: it is set to the checkpoint's
optimiser step count (the value PyTorch would hold after as many training
steps). The file's SHA-256 is checked against trainer.json first.

Then, optionally:
  --input X.f32 --dims N,C,H,W   run this input (raw little-endian float32) in
                                 eval mode; without --input, --batch images of
                                 seeded N(0, 1) noise are used
  --output Y.f32                 write the logits (raw little-endian float32)
  --state-dict OUT.pt            torch.save the state dict, for a training script
                                 (torchrun / DDP) to load_state_dict it
  --train-steps K                K steps of SGD (lr --lr, momentum 0.9) on seeded
                                 random images and labels in training mode: a
                                 stand-in for the training a user runs elsewhere;
                                 --output then holds the trained model's logits
  --export-onnx OUT.onnx         torch.onnx.export of the (trained) model in eval
                                 mode, BatchNorm kept (TrainingMode.PRESERVE),
                                 input "input" and output "logits" with a dynamic
                                 batch axis: what `resnetctl import` reads back

A JSON summary goes to stdout. Usage:
  /usr/bin/python3 tools/pytorch/load_checkpoint.py runs/r20/best --output logits.f32
  /usr/bin/python3 tools/pytorch/load_checkpoint.py runs/r20/best --state-dict r20.pt
  /usr/bin/python3 tools/pytorch/load_checkpoint.py runs/r20/best --train-steps 3 --export-onnx r20_torch.onnx
Debian: python3-torch python3-torchvision python3-numpy (torch 1.13, torchvision 0.14).
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnets import from_spec  # noqa: E402

STATE_FILE = "state.safetensors"
TRAINER_FILE = "trainer.json"
PARAM_PREFIX = "param."
DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path):
    """The tensors of a safetensors file as {name: numpy array}, and its metadata."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: too short for a safetensors header" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError("%s: header length %d beyond the file's %d bytes" % (path, n, len(raw)))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = memoryview(raw)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, e in header.items():
        if e["dtype"] not in DTYPES:
            raise ValueError("%s: tensor %s has dtype %s" % (path, name, e["dtype"]))
        begin, end = e["data_offsets"]
        dt = np.dtype(DTYPES[e["dtype"]])
        count = int(np.prod(e["shape"], dtype=np.int64))
        if not (0 <= begin <= end <= len(data)) or end - begin != count * dt.itemsize:
            raise ValueError("%s: tensor %s: offsets %s do not fit shape %s" % (path, name, e["data_offsets"], e["shape"]))
        tensors[name] = np.frombuffer(data[begin:end], dtype=dt).reshape(e["shape"]).copy()
    return tensors, meta


def checkpoint_dir(path):
    """The checkpoint directory: path itself, or its best/ (a run folder)."""
    if os.path.isfile(os.path.join(path, TRAINER_FILE)):
        return path
    best = os.path.join(path, "best")
    if os.path.isfile(os.path.join(best, TRAINER_FILE)):
        return best
    if os.path.isfile(os.path.join(path, "checkpoint.json")):
        raise ValueError("%s was written by 'resnetctl import' and holds no %s: train it first "
                         "('resnetctl train --out %s --resume'), or read model.onnx's initializers "
                         "(tools/pytorch/run_onnx.py)" % (path, STATE_FILE, path))
    raise ValueError("%s is not a resnetctl training checkpoint (no %s)" % (path, TRAINER_FILE))


def shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def build(spec):
    """The PyTorch module of a models.Spec (as JSON) and how it was made."""
    ref = from_spec(spec)
    if spec["family"] == "imagenet":
        ctor = getattr(torchvision.models, spec["name"], None)
        if callable(ctor):
            try:
                tv = ctor(num_classes=spec["classes"])
            except TypeError:
                tv = None
            if tv is not None and shapes(tv) == shapes(ref):
                return tv, "torchvision.models.%s(num_classes=%d)" % (spec["name"], spec["classes"])
        return ref, "torchvision.models.resnet.ResNet (the spec's blocks, groups and widths)"
    return ref, "resnets.CifarResNet (tools/pytorch/resnets.py)"


def load(path):
    """Build the checkpoint's model in PyTorch and load its weights strictly."""
    d = checkpoint_dir(path)
    with open(os.path.join(d, TRAINER_FILE)) as f:
        trainer = json.load(f)
    spec = (trainer.get("graph") or {}).get("spec") or {}
    if not spec.get("family"):
        raise ValueError("%s: the model is not a catalog ResNet (a general imported graph); "
                         "PyTorch has no module for it here" % d)
    state_path = os.path.join(d, STATE_FILE)
    with open(state_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    want = (trainer.get("files") or {}).get(STATE_FILE)
    if want != digest:
        raise ValueError("%s has SHA-256 %s, %s records %s" % (state_path, digest, TRAINER_FILE, want))
    tensors, meta = read_safetensors(state_path)
    params = {k[len(PARAM_PREFIX):]: v for k, v in tensors.items() if k.startswith(PARAM_PREFIX)}
    model, how = build(spec)
    step = int(trainer.get("step", 0))
    state = {}
    for k, v in params.items():
        state[k] = torch.from_numpy(v)
    filled = []
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.tensor(step, dtype=v.dtype)
            filled.append(k)
    # strict: every key of the module must be in the checkpoint and the other
    # way round; shapes must agree (load_state_dict raises otherwise).
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, {
        "checkpoint": os.path.abspath(d), "name": spec["name"], "family": spec["family"], "module": how,
        "loaded": len(params), "num_batches_tracked": len(filled), "step": step,
        "params": sum(p.numel() for p in model.parameters()), "meta": meta, "spec": spec,
    }


def train_steps(model, spec, steps, lr, batch, seed):
    """A few SGD steps on seeded random data: the training done elsewhere."""
    gen = torch.Generator().manual_seed(seed)
    c, h, w = spec["input"]["c"], spec["input"]["h"], spec["input"]["w"]
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    losses = []
    for _ in range(steps):
        x = torch.randn(batch, c, h, w, generator=gen)
        y = torch.randint(0, spec["classes"], (batch,), generator=gen)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    model.eval()
    return losses


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", help="a checkpoint directory (or a run folder: its best/)")
    ap.add_argument("--input", help="raw little-endian float32 input, NCHW")
    ap.add_argument("--dims", help="N,C,H,W of --input")
    ap.add_argument("--batch", type=int, default=2, help="images of seeded noise when there is no --input")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", help="write the logits here (raw little-endian float32)")
    ap.add_argument("--state-dict", help="torch.save the loaded state dict here")
    ap.add_argument("--train-steps", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--export-onnx", help="torch.onnx.export the (trained) model here")
    ap.add_argument("--opset", type=int, default=13)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    model, info = load(args.checkpoint)
    spec = info.pop("spec")
    if args.state_dict:
        torch.save(model.state_dict(), args.state_dict)
        info["state_dict"] = args.state_dict
    if args.train_steps > 0:
        info["train_losses"] = train_steps(model, spec, args.train_steps, args.lr, args.train_batch, args.seed + 1)
    if args.input:
        if not args.dims:
            raise SystemExit("--input needs --dims N,C,H,W")
        dims = [int(v) for v in args.dims.split(",")]
        x = torch.from_numpy(np.fromfile(args.input, dtype="<f4").reshape(dims).copy())
    else:
        gen = torch.Generator().manual_seed(args.seed)
        x = torch.randn(args.batch, spec["input"]["c"], spec["input"]["h"], spec["input"]["w"], generator=gen)
    with torch.no_grad():
        y = model(x)
    info["dims"] = list(y.shape)
    info["max_abs_logit"] = float(y.abs().max())
    info["top1"] = [int(i) for i in y.argmax(1)]
    if args.output:
        y.numpy().astype("<f4").tofile(args.output)
        info["output"] = args.output
    if args.export_onnx:
        torch.onnx.export(model, x, args.export_onnx, opset_version=args.opset,
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        info["onnx"] = args.export_onnx
    info["torch"], info["torchvision"] = torch.__version__, torchvision.__version__
    json.dump(info, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
