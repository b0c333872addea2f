#!/usr/bin/python3
"""Export small ResNet-ish models that use what ordinary ResNet exports do not.

Writes into OUT_DIR (argument 1) one .onnx file per (model, opset) and
manifest.json describing them, for infer/special_export_test.go, which runs
each in our runtime and in ONNX Runtime. Every model is a few convolutions
with a residual add, global average pooling and a linear head on a 3x32x32
input, 10 classes, random (seeded) weights and BN statistics; what differs:

- fixed_softmax_b1, fixed_softmax_b2: no dynamic_axes (the batch is fixed at
  1 or 2, torch.onnx.export's default) and a Softmax head (output
  "probabilities");
- prelu: nn.PReLU(16) (per channel) and nn.PReLU() (one shared slope), as
  insightface's iresnet uses them;
- expand: x.expand(...) of [1, C, 1, 1] parameters to the activation's
  shape, the batch taken from x.shape[0] (Shape -> Gather -> Concat ->
  Expand in the export), as torch 2.x exports write broadcasts;
- instnorm: nn.InstanceNorm2d(affine=True) instead of BatchNorm;
- bn_train: BatchNorm in training mode (the model in train() mode, exported
  with training=TrainingMode.TRAINING): BatchNormalization normalises with
  the batch's statistics (training_mode=1 from opset 14; five outputs
  before it);
- resize_*: preprocessing in the graph: an NHWC 40x40 image of pixel values
  cast to uint8 (x.to(torch.uint8)), transposed, cast back, scaled,
  normalised and resized to 32x32 by F.interpolate (bilinear with and
  without align_corners, by size and by scale_factor; nearest; bicubic),
  then the network;
- u8_input: the resize_bilinear model taking its image as a uint8 tensor
  (the graph input is UINT8). ONNX Runtime's harness feeds float32 inputs
  only, so its reference ("ref" in the manifest) is resize_bilinear at the
  same opset, the same weights and the same pixel values;
- fp16: the network in float16 (weights, activations, output) with float32
  graph input and output, as float16 deployment files are made: torch 1.13
  cannot trace half-precision convolutions on the CPU, so the float32
  export is converted the way onnxconverter-common's
  convert_float_to_float16(keep_io_types=True) does it (every float
  initializer and Constant to FLOAT16, a Cast to FLOAT16 after the input and
  a Cast back to FLOAT before the output). "fp16_softmax" ends in Softmax.

All but the fixed ones have a dynamic batch (dynamic_axes on input and
output). Usage: /usr/bin/python3 tools/pytorch/export_special_models.py OUT_DIR
Debian: python3-torch (torch 1.13).
"""
import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper


class Net(nn.Module):
    """conv-norm-act, a strided conv-norm-act, a residual conv, GAP, linear."""

    def __init__(self, act="relu", norm="bn", softmax=False, expand=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.norm1 = self._norm(norm, 16)
        self.conv2 = nn.Conv2d(16, 16, 3, 2, 1, bias=False)
        self.norm2 = self._norm(norm, 16)
        self.conv3 = nn.Conv2d(16, 16, 3, 1, 1, bias=False)
        self.norm3 = self._norm(norm, 16)
        if act == "prelu":
            self.act1, self.act2, self.act3 = nn.PReLU(16), nn.PReLU(), nn.PReLU(16)
        else:
            self.act1, self.act2, self.act3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.expand = expand
        if expand:
            self.shift = nn.Parameter(torch.randn(1, 16, 1, 1) * 0.1)
            self.gate = nn.Parameter(1 + torch.randn(1, 16, 1, 1) * 0.1)
        self.fc = nn.Linear(16, 10)
        self.softmax = softmax

    @staticmethod
    def _norm(kind, c):
        if kind == "in":
            return nn.InstanceNorm2d(c, affine=True)
        return nn.BatchNorm2d(c)

    def forward(self, x):
        x = self.act1(self.norm1(self.conv1(x)))
        y = self.act2(self.norm2(self.conv2(x)))
        if self.expand:
            n, _, h, w = y.shape
            y = y * self.gate.expand(n, -1, h, w) + self.shift.expand(n, 16, h, w)
        y = self.act3(self.norm3(self.conv3(y)) + y)
        y = torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1)
        y = self.fc(y)
        if self.softmax:
            y = torch.softmax(y, dim=1)
        return y


class Preprocess(nn.Module):
    """uint8 NHWC pixels -> normalised NCHW float, resized to 32x32."""

    def __init__(self, net, mode, align_corners=None, by_scale=False, uint8_input=False):
        super().__init__()
        self.net, self.mode, self.align_corners, self.by_scale = net, mode, align_corners, by_scale
        self.uint8_input = uint8_input
        self.register_buffer("mean", torch.tensor([0.49, 0.48, 0.45]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.24, 0.26]).reshape(1, 3, 1, 1))

    def forward(self, x):
        if not self.uint8_input:
            x = x.to(torch.uint8)
        x = x.permute(0, 3, 1, 2).float() / 255
        x = (x - self.mean) / self.std
        if self.by_scale:
            x = nn.functional.interpolate(x, scale_factor=0.8, mode=self.mode, align_corners=self.align_corners,
                                          recompute_scale_factor=False)
        else:
            x = nn.functional.interpolate(x, size=(32, 32), mode=self.mode, align_corners=self.align_corners)
        return self.net(x)


def to_float16(path):
    """Convert a float32 ONNX file to float16 inside, float32 at its edges."""
    m = onnx.load(path)
    g = m.graph
    for init in g.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == onnx.TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == onnx.TensorProto.FLOAT:
                    a.i = onnx.TensorProto.FLOAT16
    inp, out = g.input[0].name, g.output[0].name
    for n in g.node:
        n.input[:] = [inp + "_fp16" if x == inp else x for x in n.input]
        n.output[:] = [out + "_fp16" if x == out else x for x in n.output]
    nodes = [onnx.helper.make_node("Cast", [inp], [inp + "_fp16"], to=onnx.TensorProto.FLOAT16)] + list(g.node) + \
        [onnx.helper.make_node("Cast", [out + "_fp16"], [out], to=onnx.TensorProto.FLOAT)]
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    onnx.checker.check_model(m)
    onnx.save(m, path)


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)):
                if m.affine:
                    m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                    m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                if m.track_running_stats:
                    m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                    m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            if isinstance(m, nn.PReLU):
                m.weight.copy_(0.25 + 0.1 * torch.randn(m.weight.shape, generator=g))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    T = torch.onnx.TrainingMode
    # name, Net kwargs, opsets, batches, fixed batch, output name, training
    specs = [
        ("fixed_softmax_b1", dict(softmax=True), [13], [1], True, "probabilities", False),
        ("fixed_softmax_b2", dict(softmax=True), [13], [2], True, "probabilities", False),
        ("prelu", dict(act="prelu"), [9, 13, 17], [1, 2], False, "logits", False),
        ("expand", dict(expand=True), [11, 13, 17], [1, 2], False, "logits", False),
        ("instnorm", dict(norm="in"), [11, 13, 17], [1, 2], False, "logits", False),
        ("bn_train", dict(), [13, 15], [1, 2], False, "logits", True),
    ]
    # name, Preprocess kwargs, opsets
    resizes = [
        ("resize_bilinear", dict(mode="bilinear", align_corners=False), [11, 13, 17]),
        ("resize_bilinear_ac", dict(mode="bilinear", align_corners=True), [11, 13]),
        ("resize_bilinear_scale", dict(mode="bilinear", align_corners=False, by_scale=True), [13]),
        ("resize_nearest", dict(mode="nearest"), [11, 13]),
        ("resize_bicubic", dict(mode="bicubic", align_corners=False), [11, 13]),
    ]
    manifest = []
    for i, (name, kw, opsets) in enumerate(resizes):
        torch.manual_seed(300 + i)
        net = Net()
        randomise(net, 400 + i)
        variants = [(name, Preprocess(net, **kw).eval(), torch.randint(0, 256, (1, 40, 40, 3)).float(), "float32")]
        if name == "resize_bilinear":
            variants.append(("u8_input", Preprocess(net, uint8_input=True, **kw).eval(),
                             torch.randint(0, 256, (1, 40, 40, 3), dtype=torch.uint8), "uint8"))
        for vname, model, x, itype in variants:
            for opset in opsets:
                path = os.path.join(out, f"{vname}_op{opset}.onnx")
                torch.onnx.export(model, x, path, opset_version=opset, training=T.EVAL, do_constant_folding=True,
                                  input_names=["input"], output_names=["logits"],
                                  dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
                entry = {"name": vname, "opset": opset, "path": os.path.basename(path), "input": [40, 40, 3],
                         "batches": [1, 2], "output": "logits", "pixels": True, "input_type": itype}
                if itype == "uint8":
                    entry["ref"] = f"{name}_op{opset}.onnx"
                manifest.append(entry)
    for i, (name, kw) in enumerate([("fp16", dict()), ("fp16_softmax", dict(softmax=True))]):
        torch.manual_seed(500 + i)
        model = Net(**kw)
        randomise(model, 600 + i)
        model.eval()
        output = "probabilities" if kw.get("softmax") else "logits"
        for opset in [13, 17]:
            path = os.path.join(out, f"{name}_op{opset}.onnx")
            torch.onnx.export(model, torch.randn(1, 3, 32, 32), path, opset_version=opset, training=T.EVAL,
                              do_constant_folding=True, input_names=["input"], output_names=[output],
                              dynamic_axes={"input": {0: "N"}, output: {0: "N"}})
            to_float16(path)
            manifest.append({"name": name, "opset": opset, "path": os.path.basename(path), "input": [3, 32, 32],
                             "batches": [1, 2], "output": output, "float16": True})
    for i, (name, kw, opsets, batches, fixed, output, training) in enumerate(specs):
        torch.manual_seed(100 + i)
        model = Net(**kw)
        randomise(model, 200 + i)
        model.train(training)
        x = torch.randn(batches[0], 3, 32, 32)
        for opset in opsets:
            path = os.path.join(out, f"{name}_op{opset}.onnx")
            kwargs = dict(opset_version=opset, input_names=["input"], output_names=[output])
            if training:
                kwargs.update(training=T.TRAINING, do_constant_folding=False)
            else:
                kwargs.update(training=T.EVAL, do_constant_folding=True)
            if not fixed:
                kwargs["dynamic_axes"] = {"input": {0: "N"}, output: {0: "N"}}
            torch.onnx.export(model, x, path, **kwargs)
            manifest.append({"name": name, "opset": opset, "path": os.path.basename(path),
                             "input": [3, 32, 32], "batches": batches, "output": output})
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"torch": torch.__version__, "models": manifest}, f, indent=1)


if __name__ == "__main__":
    main()
