#!/usr/bin/python3
"""Reference parameter names, shapes, counts and MACs from PyTorch.

Writes build/testdata/pytorch_reference.json, the golden file that
build/reference_test.go compares resnetctl's graphs against. ImageNet models
come from torchvision itself; CIFAR models from the small PyTorch modules
below, written the way the common PyTorch CIFAR ResNets are (option A pads
the subsampled input with zero channels, half before and half after;
pre-activation projections are a bare 1x1 convolution, as in the
identity-mappings paper and WRN).

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
import torch.nn.functional as F
import torchvision


class PadShortcut(nn.Module):
    def __init__(self, stride, before, after):
        super().__init__()
        self.stride, self.before, self.after = stride, before, after

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after))


class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, option, preact):
        super().__init__()
        self.preact = preact
        # Registration order is state-dict order: norm before conv when pre-activated.
        if preact:
            self.bn1 = nn.BatchNorm2d(cin)
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = None
        self.downsample = None
        if stride != 1 or cin != planes:
            if option == "A":
                extra = planes - cin
                self.shortcut = PadShortcut(stride, extra // 2, extra - extra // 2)
            elif preact:
                self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False))
            else:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )

    def forward(self, x):
        if self.preact:
            pre = F.relu(self.bn1(x))
            out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
            sc = x
            if self.downsample is not None:
                sc = self.downsample(pre)
            elif self.shortcut is not None:
                sc = self.shortcut(x)
            return out + sc
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x
        if self.downsample is not None:
            sc = self.downsample(x)
        elif self.shortcut is not None:
            sc = self.shortcut(x)
        return F.relu(out + sc)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, option, preact):
        super().__init__()
        out = planes * 4
        self.preact = preact
        if preact:
            self.bn1 = nn.BatchNorm2d(cin)
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or cin != out:
            if preact:
                self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False))
            else:
                self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        if self.preact:
            pre = F.relu(self.bn1(x))
            out = self.conv1(pre)
            out = self.conv2(F.relu(self.bn2(out)))
            out = self.conv3(F.relu(self.bn3(out)))
            return out + (self.downsample(pre) if self.downsample is not None else x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class CifarResNet(nn.Module):
    def __init__(self, block, n, option="A", preact=False, widen=1, classes=10):
        super().__init__()
        self.preact = preact
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        if not preact:
            self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for i, planes in enumerate([16 * widen if block is Basic else 16, 32 * widen if block is Basic else 32, 64 * widen if block is Basic else 64]):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(cin, planes, stride, option, preact))
                cin = planes * block.expansion
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        if preact:
            self.bn_final = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.conv1(x)
        if not self.preact:
            x = F.relu(self.bn1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.preact:
            x = F.relu(self.bn_final(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


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
