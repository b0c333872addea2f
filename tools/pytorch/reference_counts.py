#!/usr/bin/python3
"""Reference parameter names, shapes, counts and MACs from PyTorch.

Writes build/testdata/pytorch_reference.json, the golden file that
build/reference_test.go compares resnetctl's graphs against. ImageNet models
come from torchvision itself; CIFAR models from the PyTorch modules in
resnets.py.

MACs are counted with forward hooks on Conv2d and Linear: one multiply-add per
weight of a filter per output element, the convention of torchvision's
published GFLOPS.

Run from the repository root:  /usr/bin/python3 tools/pytorch/reference_counts.py
(Debian: python3-torch python3-torchvision; torch 1.13, torchvision 0.14.)
"""
import json
import sys

import torch
import torch.nn as nn
import torchvision

from resnets import Basic, Bottleneck, CifarResNet


def count_macs(model, size):
    macs = [0]

    def hook(mod, inp, out):
        w = mod.weight
        macs[0] += out[0].numel() * (w.numel() // w.shape[0])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return macs[0]


def describe(model, size, with_names=True):
    sd = model.state_dict()
    entries = [[k, list(v.shape)] for k, v in sd.items() if not k.endswith("num_batches_tracked")]
    trainable = sum(p.numel() for p in model.parameters())
    buffers = sum(v.numel() for k, v in sd.items() if k.endswith(("running_mean", "running_var")))
    d = {"params": trainable, "non_trainable": buffers, "macs": count_macs(model, size)}
    if with_names:  # the deepest models repeat the same blocks; their names add nothing but size
        d["state_dict"] = entries
    return d


def main():
    out = {}
    cifar = {
        "resnet20": lambda: CifarResNet(Basic, 3),
        "resnet20-B": lambda: CifarResNet(Basic, 3, option="B"),
        "resnet32": lambda: CifarResNet(Basic, 5),
        "resnet44": lambda: CifarResNet(Basic, 7),
        "resnet56": lambda: CifarResNet(Basic, 9),
        "resnet56-B": lambda: CifarResNet(Basic, 9, option="B"),
        "resnet110": lambda: CifarResNet(Basic, 18),
        "resnet1202": lambda: CifarResNet(Basic, 200),
        "resnet164": lambda: CifarResNet(Bottleneck, 18, option="B"),
        "preact_resnet164": lambda: CifarResNet(Bottleneck, 18, option="B", preact=True),
        "preact_resnet20-A": lambda: CifarResNet(Basic, 3, option="A", preact=True),
        "wide_resnet28_10": lambda: CifarResNet(Basic, 4, option="B", preact=True, widen=10),
        "resnet20-cifar100": lambda: CifarResNet(Basic, 3, classes=100),
    }
    for name, make in cifar.items():
        out[name] = describe(make(), 32, name != "resnet1202")
    for name in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                 "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"]:
        out[name] = describe(getattr(torchvision.models, name)(), 224, "101" not in name and "152" not in name)
    meta = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    path = sys.argv[1] if len(sys.argv) > 1 else "build/testdata/pytorch_reference.json"
    with open(path, "w") as f:
        json.dump({"generated_by": "tools/pytorch/reference_counts.py", "versions": meta, "models": out}, f, indent=0, sort_keys=True)
        f.write("\n")
    for k, v in out.items():
        print("%-20s params %11d  non-trainable %8d  MACs %14d" % (k, v["params"], v["non_trainable"], v["macs"]))


if __name__ == "__main__":
    main()
