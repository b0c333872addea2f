#!/usr/bin/python3
"""Validate ONNX model files with the reference ONNX checker.

Usage: /usr/bin/python3 tools/onnxcheck/check.py MODEL.onnx [MODEL.onnx ...]

Needs Debian's python3-onnx (onnx 1.12: IR version <= 8, default-domain
opsets <= 17). For each path, in order, prints one JSON object on its own line:

  {"path": P, "ok": true,  "ir_version": 8, "opsets": {"": 13}, "producer": "..."}
  {"path": P, "ok": false, "error": "...", ...}

Each model is loaded with onnx.load and checked with
onnx.checker.check_model(model, full_check=True), which adds strict shape and
type inference to the structural checks. A model that imports a default-domain
opset newer than this onnx knows is reported as a failure without running the
checker: onnx 1.12 would silently validate it against older operator schemas
and give wrong verdicts both ways (e.g. it rejects opset-18 ReduceMean with
axes as an input and accepts the removed axes attribute).

Exit status: 0 if every model passed, 1 if any failed, 2 on a usage error or
when the onnx module cannot be imported (a JSON object with "error" and no
"path" is printed in that last case).
"""

import json
import sys


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        sys.stderr.write(__doc__)
        return 2
    try:
        import onnx
        import onnx.checker
        import onnx.defs
    except Exception as e:  # ImportError, or a broken protobuf underneath
        print(json.dumps({"ok": False, "error": "cannot import onnx (install python3-onnx): %s" % e}),
              flush=True)
        return 2

    max_opset = onnx.defs.onnx_opset_version()
    all_ok = True
    for path in argv[1:]:
        result = {"path": path, "ok": False}
        try:
            model = onnx.load(path)
            result["ir_version"] = model.ir_version
            result["opsets"] = {op.domain: op.version for op in model.opset_import}
            result["producer"] = (model.producer_name + " " + model.producer_version).strip()
            for op in model.opset_import:
                if op.domain in ("", "ai.onnx") and op.version > max_opset:
                    raise ValueError(
                        "model imports default-domain opset %d but onnx %s checks opsets <= %d; "
                        "its verdict would be wrong, so the model was not checked"
                        % (op.version, onnx.__version__, max_opset))
            onnx.checker.check_model(model, full_check=True)
            result["ok"] = True
        except Exception as e:
            msg = str(e).strip() or type(e).__name__
            result["error"] = "%s: %s" % (type(e).__name__, msg)
        all_ok = all_ok and result["ok"]
        print(json.dumps(result), flush=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
