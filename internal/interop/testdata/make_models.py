#!/usr/bin/python3
"""Regenerate the tiny ONNX models and numpy reference outputs used by
internal/interop's tests.

Run from anywhere with Debian's python3-onnx (onnx 1.12) and python3-numpy:

    /usr/bin/python3 internal/interop/testdata/make_models.py

Output is deterministic (fixed seed, no timestamps), so re-running it on an
unchanged script leaves `git status` clean. Files written next to this script:

  conv_relu_gap.onnx   Conv(3->4, 3x3, pad 1) + Relu + GlobalAveragePool with a
                       dynamic batch dimension "N"; input "input" [N,3,7,9],
                       outputs "relu" [N,4,7,9] and "pooled" [N,4,1,1].
                       Non-square spatial size so that an H/W mix-up shows.
  invalid_undefined_input.onnx
                       A Relu whose input "missing" is produced by nothing:
                       onnx.checker must reject it, ONNX Runtime must refuse it.
  cases.json           For batch 1 and 3: input file and dims, and for each
                       output the expected file and dims.
  *.f32                Raw little-endian float32 tensors (row-major, NCHW).

The reference outputs are computed here in float64 with plain numpy and only
then rounded to float32, so they are an independent check of whatever runtime
executes the model (and, if torch is importable, they are cross-checked
against torch.nn.functional.conv2d as well).
"""

import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 13  # well inside both onnx 1.12's (<= 17) and ONNX Runtime's range
C_IN, C_OUT, H, W, K = 3, 4, 7, 9, 3


def conv_relu_gap_model(weight, bias):
    """Conv + Relu + GlobalAveragePool with a symbolic batch dimension."""
    graph = helper.make_graph(
        nodes=[
            helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv_out"],
                             name="conv", kernel_shape=[K, K], pads=[1, 1, 1, 1],
                             strides=[1, 1]),
            helper.make_node("Relu", ["conv_out"], ["relu"], name="relu"),
            helper.make_node("GlobalAveragePool", ["relu"], ["pooled"], name="gap"),
        ],
        name="conv_relu_gap",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", C_IN, H, W])],
        outputs=[
            helper.make_tensor_value_info("relu", TensorProto.FLOAT, ["N", C_OUT, H, W]),
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", C_OUT, 1, 1]),
        ],
        initializer=[
            numpy_helper.from_array(weight, "conv.weight"),
            numpy_helper.from_array(bias, "conv.bias"),
        ],
    )
    model = helper.make_model(graph, producer_name="resnetctl-interop-testdata",
                              producer_version="1",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.doc_string = "tiny test model for internal/interop"
    helper.set_model_props(model, {"purpose": "interop-test"})
    onnx.checker.check_model(model, full_check=True)
    return model


def invalid_model():
    """A graph whose only node reads a value that nothing defines."""
    graph = helper.make_graph(
        nodes=[helper.make_node("Relu", ["missing"], ["y"], name="relu_of_nothing")],
        name="invalid_undefined_input",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    model = helper.make_model(graph, producer_name="resnetctl-interop-testdata",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError:
        return model
    sys.exit("make_models.py: the invalid model unexpectedly passed onnx.checker")


def reference(x, weight, bias):
    """Conv(pad 1) + Relu + GlobalAveragePool in float64 numpy."""
    x64, w64, b64 = x.astype(np.float64), weight.astype(np.float64), bias.astype(np.float64)
    n = x.shape[0]
    xp = np.pad(x64, ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.zeros((n, C_OUT, H, W), dtype=np.float64)
    for kh in range(K):
        for kw in range(K):
            patch = xp[:, :, kh:kh + H, kw:kw + W]  # [n, C_IN, H, W]
            conv += np.einsum("nchw,oc->nohw", patch, w64[:, :, kh, kw])
    conv += b64[None, :, None, None]
    relu = np.maximum(conv, 0.0)
    pooled = relu.mean(axis=(2, 3), keepdims=True)
    return relu, pooled


def cross_check_with_torch(x, weight, bias, relu):
    try:
        import torch
    except ImportError:
        return
    got = torch.relu(torch.nn.functional.conv2d(
        torch.from_numpy(x).double(), torch.from_numpy(weight).double(),
        torch.from_numpy(bias).double(), padding=1)).numpy()
    err = np.abs(got - relu).max()
    if err > 1e-12:
        sys.exit(f"make_models.py: numpy reference disagrees with torch by {err}")


def write_f32(name, array):
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    return name


def main():
    rng = np.random.default_rng(20240607)
    weight = (rng.standard_normal((C_OUT, C_IN, K, K)) / np.sqrt(C_IN * K * K)).astype(np.float32)
    bias = (0.1 * rng.standard_normal(C_OUT)).astype(np.float32)

    onnx.save(conv_relu_gap_model(weight, bias), os.path.join(HERE, "conv_relu_gap.onnx"))
    onnx.save(invalid_model(), os.path.join(HERE, "invalid_undefined_input.onnx"))

    cases = []
    for batch in (1, 3):
        x = rng.standard_normal((batch, C_IN, H, W)).astype(np.float32)
        relu, pooled = reference(x, weight, bias)
        cross_check_with_torch(x, weight, bias, relu)
        if not (relu == 0).any() or not (relu > 0).any():
            sys.exit("make_models.py: Relu should see both signs; change the seed")
        cases.append({
            "model": "conv_relu_gap.onnx",
            "batch": batch,
            "inputs": {"input": {"dims": list(x.shape), "file": write_f32(f"conv_b{batch}_input.f32", x)}},
            "outputs": {
                "relu": {"dims": list(relu.shape), "file": write_f32(f"conv_b{batch}_relu.f32", relu)},
                "pooled": {"dims": list(pooled.shape), "file": write_f32(f"conv_b{batch}_pooled.f32", pooled)},
            },
        })
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
