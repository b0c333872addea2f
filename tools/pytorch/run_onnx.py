#!/usr/bin/python3
"""Run an exported resnetctl ONNX file's weights in PyTorch.

For each job, reads the model's "architecture" metadata (a models.Spec as
JSON), builds the same network in PyTorch (torchvision for ImageNet models,
resnets.py for CIFAR ones), loads every initializer into the state dict by
name (the names are torchvision's, so this is one to one; a missing or extra
tensor is an error), runs the input in eval mode and writes the logits.

This checks what ONNX engines cannot: that the exported graph computes the
architecture it claims, the way PyTorch computes it.

Request on stdin:  {"jobs": [{"model": "m.onnx", "input": "x.f32", "dims": [3,3,32,32], "output": "y.f32"}]}
Response on stdout: {"results": [{"dims": [3, 10]} or {"error": "..."}]}
Raw tensors are little-endian float32. Debian: python3-torch python3-torchvision python3-onnx.
"""
import json
import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnets import from_spec  # noqa: E402


def run(job):
    m = onnx.load(job["model"])
    meta = {p.key: p.value for p in m.metadata_props}
    if "architecture" not in meta:
        raise ValueError("no architecture metadata")
    if meta.get("folded_batchnorm") == "true":
        raise ValueError("BatchNorm is folded; PyTorch needs the unfolded weights")
    spec = json.loads(meta["architecture"])
    model = from_spec(spec)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    sd = model.state_dict()
    state = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            state[k] = v
            continue
        if k not in inits:
            raise ValueError("initializer %s missing from the ONNX file" % k)
        a = inits.pop(k)
        if list(a.shape) != list(v.shape):
            raise ValueError("%s: ONNX shape %s, PyTorch %s" % (k, list(a.shape), list(v.shape)))
        state[k] = torch.from_numpy(a.copy())
    extra = [k for k, a in inits.items() if a.dtype == np.float32]
    if extra:
        raise ValueError("float initializers PyTorch does not have: %s" % extra[:5])
    model.load_state_dict(state, strict=True)
    model.eval()
    x = np.fromfile(job["input"], dtype="<f4").reshape(job["dims"])
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy().astype("<f4")
    y.tofile(job["output"])
    return {"dims": list(y.shape)}


def main():
    torch.set_num_threads(os.cpu_count() or 1)
    req = json.load(sys.stdin)
    results = []
    for job in req["jobs"]:
        try:
            results.append(run(job))
        except Exception as e:  # one failing job must not stop the others
            results.append({"error": "%s: %s" % (type(e).__name__, e)})
    json.dump({"results": results, "torch": torch.__version__}, sys.stdout)


if __name__ == "__main__":
    main()
