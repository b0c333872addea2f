#!/usr/bin/python3
"""Regenerates the golden files used by internal/gorgonnx/gorgonnx_test.go.

Run from this directory with the Debian interpreter:

    cd internal/gorgonnx/testdata && /usr/bin/python3 make_golden.py

It needs python3-torch (tested with 1.13) and, only for the structural
summary printed at the end, python3-onnx. Everything is seeded, so a re-run
gives the same weights and inputs (the .onnx bytes can still differ between
torch versions).

Files written:
  tiny_op9_bn.onnx      opset 9,  BatchNormalization kept, initializers also
                        listed as graph inputs (IR<4 style)
  tiny_op9_fused.onnx   opset 9,  BN folded into Conv (Conv with bias)
  tiny_op13_bn.onnx     opset 13, BatchNormalization kept
  tiny_op13_fused.onnx  opset 13, BN folded into Conv (Conv with bias)
  shared_bn_op13.onnx   y = conv(x); out = bn(y) + y  (BN input has two consumers)
  grouped_op13.onnx     a Conv with group=2 (must be refused)
  pad_op13.onnx         option-A style zero-pad (Pad op; must be refused)
  input_b3.f32          input, float32 little-endian, shape in golden.json
  golden.json           input shape and PyTorch outputs (batch 3) for the
                        models that must run
All models have a dynamic batch axis ("batch") on input and outputs.
"""

import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
INPUT_SHAPE = (3, 3, 20, 20)  # batch 3, NCHW


def randomize_bn(bn, gen):
    """Non-trivial affine parameters and running statistics."""
    c = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c, generator=gen) * 1.5 + 0.25)
        bn.bias.copy_(torch.randn(c, generator=gen) * 0.5)
        bn.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
        bn.running_var.copy_(torch.rand(c, generator=gen) * 2.0 + 0.1)


class Tiny(nn.Module):
    """conv3x3(3->8)+BN -> maxpool(3,2,1) -> ReLU -> residual block with a
    1x1 stride-2 projection (conv+BN) -> global average pool -> flatten ->
    linear(16->5); returns (logits, softmax(logits)).

    MaxPool is applied before the ReLU (mathematically identical to the
    torchvision order, since ReLU is monotone) so that the pool sees negative
    values next to its padding.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.b_conv1 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.b_bn1 = nn.BatchNorm2d(16)
        self.b_conv2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.b_bn2 = nn.BatchNorm2d(16)
        self.down_conv = nn.Conv2d(8, 16, 1, stride=2, bias=False)
        self.down_bn = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = F.relu(self.maxpool(self.bn1(self.conv1(x))))
        y = F.relu(self.b_bn1(self.b_conv1(x)))
        y = self.b_bn2(self.b_conv2(y))
        y = F.relu(y + self.down_bn(self.down_conv(x)))
        y = torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)
        logits = self.fc(y)
        return logits, F.softmax(logits, dim=1)


class SharedBN(nn.Module):
    """out = bn(y) + y with y = conv(x): the BN input has two consumers."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)
        self.gconv = nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False)

    def forward(self, x):
        return self.gconv(self.conv(x))


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample and zero-pad channels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)[:, :, ::2, ::2]
        return F.pad(y, (0, 0, 0, 0, 2, 2))


def export(model, name, opset, x, output_names, fold_bn=True, init_as_inputs=False):
    path = os.path.join(HERE, name)
    axes = {"input": {0: "batch"}}
    for o in output_names:
        axes[o] = {0: "batch"}
    # TrainingMode.EVAL folds BatchNormalization into the preceding Conv;
    # PRESERVE (with the model in eval mode) keeps BatchNormalization nodes.
    mode = torch.onnx.TrainingMode.EVAL if fold_bn else torch.onnx.TrainingMode.PRESERVE
    torch.onnx.export(
        model, x, path,
        opset_version=opset,
        input_names=["input"],
        output_names=output_names,
        dynamic_axes=axes,
        training=mode,
        do_constant_folding=True,
        keep_initializers_as_inputs=init_as_inputs,
    )
    size = os.path.getsize(path)
    assert size < 200_000, (name, size)
    return name


def outputs_json(outs, names):
    res = {}
    for n, t in zip(names, outs):
        a = t.detach().numpy().astype(np.float32)
        res[n] = {"shape": list(a.shape), "data": [float(v) for v in a.ravel()]}
    return res


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)

    tiny = Tiny()
    for m in tiny.modules():
        if isinstance(m, nn.BatchNorm2d):
            randomize_bn(m, gen)
    tiny.eval()

    shared = SharedBN()
    randomize_bn(shared.bn, gen)
    shared.eval()

    grouped = Grouped().eval()
    pad = PadShortcut().eval()

    x = torch.randn(*INPUT_SHAPE, generator=gen)
    x.numpy().astype("<f4").tofile(os.path.join(HERE, "input_b3.f32"))

    golden = {"input": "input_b3.f32", "input_shape": list(INPUT_SHAPE), "models": {}}
    with torch.no_grad():
        tiny_out = tiny(x)
        shared_out = (shared(x),)

    names2 = ["logits", "probs"]
    for name, opset, fold, as_inputs in [
        ("tiny_op9_bn.onnx", 9, False, True),
        ("tiny_op9_fused.onnx", 9, True, False),
        ("tiny_op13_bn.onnx", 13, False, False),
        ("tiny_op13_fused.onnx", 13, True, False),
    ]:
        export(tiny, name, opset, x, names2, fold_bn=fold, init_as_inputs=as_inputs)
        golden["models"][name] = {"opset": opset, "outputs": outputs_json(tiny_out, names2)}

    export(shared, "shared_bn_op13.onnx", 13, x, ["output"], fold_bn=False)
    golden["models"]["shared_bn_op13.onnx"] = {"opset": 13, "outputs": outputs_json(shared_out, ["output"])}
    export(grouped, "grouped_op13.onnx", 13, x, ["output"])
    export(pad, "pad_op13.onnx", 13, x, ["output"])

    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")

    try:
        import onnx
    except ImportError:
        return
    for name in sorted(f for f in os.listdir(HERE) if f.endswith(".onnx")):
        m = onnx.load(os.path.join(HERE, name))
        ops = sorted({n.op_type for n in m.graph.node})
        print(f"{name}: ir={m.ir_version} opset={[o.version for o in m.opset_import]} "
              f"inputs={len(m.graph.input)} outputs={[o.name for o in m.graph.output]} "
              f"bytes={os.path.getsize(os.path.join(HERE, name))} ops={ops}")


if __name__ == "__main__":
    main()
