#!/usr/bin/python3
"""Export ResNets with PyTorch's own ONNX exporter, as other people's files.

Writes into OUT_DIR (argument 1) one .onnx file per (model, opset, BN form)
and manifest.json describing them. The models:

- torchvision resnet18 and resnet50 (3x224x224, 1000 classes);
- a CIFAR ResNet-20 with option-A shortcuts written the usual way,
  F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)), as in the
  widely copied akamaster/pytorch_resnet_cifar10 (our own code, same idea);
- the same ResNet-20 with option-B (1x1 conv + BN) shortcuts.

Weights are random (seeded) and every BatchNorm gets random running
statistics and affine parameters, so folding and BN semantics matter.
Opsets 9, 11, 13 and 17 (option A from 11: PyTorch cannot export its strided
slice at opset 9); "kept" files keep BatchNormalization nodes
(TrainingMode.PRESERVE on an eval-mode model), "folded" ones let the
exporter fold BN into Conv (TrainingMode.EVAL). The batch axis is dynamic.

Usage: /usr/bin/python3 tools/pytorch/export_torch_models.py OUT_DIR [--small]
  --small: only the CIFAR models (for quick runs).
Debian: python3-torch python3-torchvision (torch 1.13, torchvision 0.14).
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class OptionA(nn.Module):
    def __init__(self, planes):
        super().__init__()
        self.planes = planes

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.planes // 4, self.planes // 4), "constant", 0)


class Block(nn.Module):
    def __init__(self, cin, planes, stride, option):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            if option == "A":
                self.shortcut = OptionA(planes)
            else:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, option, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, planes in enumerate([16, 32, 64]):
            blocks = []
            for j in range(3):
                blocks.append(Block(cin, planes, 2 if i > 0 and j == 0 else 1, option))
                cin = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.avg_pool2d(x, 8)  # the 8x8 final map of a 32x32 input: an AveragePool node
        return self.linear(x.view(x.size(0), -1))


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            m.weight.data.copy_(0.5 + torch.rand(c, generator=gen))
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)


def main():
    out = sys.argv[1]
    small = "--small" in sys.argv
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    makers = {"resnet20A": (lambda: ResNet20("A"), 32), "resnet20B": (lambda: ResNet20("B"), 32)}
    if not small:
        makers["resnet18"] = (lambda: torchvision.models.resnet18(), 224)
        makers["resnet50"] = (lambda: torchvision.models.resnet50(), 224)
    manifest = []
    for name, (make, size) in makers.items():
        model = make()
        randomise_bn(model, gen)
        model.eval()
        x = torch.randn(1, 3, size, size)
        for opset in [9, 11, 13, 17]:
            for form, mode in [("kept", torch.onnx.TrainingMode.PRESERVE), ("folded", torch.onnx.TrainingMode.EVAL)]:
                path = os.path.join(out, "%s_op%d_%s.onnx" % (name, opset, form))
                if name == "resnet20A" and opset < 10:
                    # x[:, :, ::2, ::2] needs Slice steps (opset 10); PyTorch refuses
                    # ("step!=1 is currently not supported"), so no such file exists.
                    continue
                torch.onnx.export(model, x, path, opset_version=opset, training=mode,
                                  do_constant_folding=True, input_names=["input"], output_names=["logits"],
                                  dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
                manifest.append({"name": name, "opset": opset, "bn": form, "path": os.path.basename(path),
                                 "input": [3, size, size]})
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"torch": torch.__version__, "models": manifest}, f, indent=1)


if __name__ == "__main__":
    main()
