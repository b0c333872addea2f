"""PyTorch definitions of the CIFAR ResNets of resnetctl's catalog.

Written the way the common PyTorch CIFAR ResNets are: option A pads the
subsampled input with zero channels, half before and half after; option B
projects with a 1x1 convolution + BatchNorm; pre-activation blocks project
with a bare 1x1 convolution, as in the identity-mappings paper and WRN.
Parameter names are resnetctl's (torchvision's where torchvision has the
layer), so a state dict maps one to one onto an exported ONNX file.
ImageNet models come from torchvision itself (see from_spec).
"""
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
    """A CIFAR ResNet: 3x3 stem, stages of n blocks (or the given depths)."""

    def __init__(self, block, n, option="A", preact=False, widen=1, classes=10, in_ch=3,
                 widths=(16, 32, 64), stem=16, depths=None):
        super().__init__()
        self.preact = preact
        depths = depths or [n] * len(widths)
        self.conv1 = nn.Conv2d(in_ch, stem, 3, 1, 1, bias=False)
        if not preact:
            self.bn1 = nn.BatchNorm2d(stem)
        cin = stem
        self.stages = len(widths)
        for i, (planes, d) in enumerate(zip(widths, depths)):
            if block is Basic:
                planes *= widen
            blocks = []
            for j in range(d):
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
        for i in range(self.stages):
            x = getattr(self, "layer%d" % (i + 1))(x)
        if self.preact:
            x = F.relu(self.bn_final(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def from_spec(spec):
    """The PyTorch model of a resnetctl models.Spec (as its JSON dict)."""
    block = Bottleneck if spec["block"] == "bottleneck" else Basic
    if spec["family"] == "imagenet":
        if spec.get("preact") or spec["stem_width"] != 64 or spec["widths"] != [64, 128, 256, 512] or spec["input"]["c"] != 3:
            raise ValueError("torchvision has no ImageNet ResNet with this stem, widths or pre-activation")
        tv = torchvision.models.resnet
        wpg = spec["width_per_group"]
        if block is Bottleneck:
            wpg *= spec["widen"]
        elif spec["widen"] != 1:
            raise ValueError("torchvision has no widened basic-block ImageNet ResNet")
        return tv.ResNet(tv.Bottleneck if block is Bottleneck else tv.BasicBlock, spec["depths"],
                         num_classes=spec["classes"], groups=spec["groups"], width_per_group=wpg)
    if spec["groups"] != 1 or spec["width_per_group"] != 64:
        raise ValueError("the CIFAR reference modules have no grouped convolutions")
    return CifarResNet(block, 0, option=spec["shortcut"], preact=spec.get("preact", False), widen=spec["widen"],
                       classes=spec["classes"], in_ch=spec["input"]["c"], widths=spec["widths"],
                       stem=spec["stem_width"], depths=spec["depths"])
