#!/usr/bin/python3
"""Times training steps of a CIFAR ResNet in PyTorch, the way
`resnetctl bench --train` times ours, for tools/bench_train.sh:

  /usr/bin/python3 tools/pytorch/bench_train.py --model resnet20 [--spec SPEC.json]
      [--batch 128] [--threads T] [--steps 20] [--warmup 3] [--json]

The model comes from resnets.py: from the resnetctl spec in SPEC.json (the
output of `resnetctl summary --model NAME --json`, or its "model" object)
when given, else resnetN (depth 6n+2) with basic blocks and shortcut A, as
in resnetctl's catalog. A step is what resnetctl's fast recipe does per
batch: forward, cross-entropy, backward and SGD with Nesterov momentum 0.9
and weight decay 5e-4 (on every parameter, as PyTorch and the recipe do);
lr 0.01 as in resnetctl's bench (it does not change the cost). Seeded random
normal images and random labels; --warmup untimed steps, then --steps timed
ones. Prints the same fields as resnetctl's --json: images_per_s (from the
median step), overall_images_per_s, median_ms …, cpu_ms_per_step (user +
system time of the whole process, from getrusage) and peak_rss_mib
(ru_maxrss: the peak resident memory of the whole process, the Python
interpreter and the torch libraries included). The Go-heap fields
(allocs_per_step, bytes_per_step, gcs_per_step) are null.
"""
import argparse
import json
import os
import re
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import resnets  # noqa: E402

LR = 0.01


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def build(name, spec_path):
    if spec_path:
        with open(spec_path) as f:
            spec = json.load(f)
        spec = spec.get("model", spec)
        if spec["family"] != "cifar":
            raise SystemExit("bench_train.py: %s is not a CIFAR ResNet" % spec["name"])
        return resnets.from_spec(spec), [spec["input"]["c"], spec["input"]["h"], spec["input"]["w"]], spec["classes"]
    m = re.fullmatch(r"resnet(\d+)", name)
    if not m or (int(m.group(1)) - 2) % 6 or int(m.group(1)) < 8:
        raise SystemExit("bench_train.py: without --spec the model must be resnetN with N = 6n+2, got %r" % name)
    n = (int(m.group(1)) - 2) // 6
    return resnets.CifarResNet(resnets.Basic, n, option="A"), [3, 32, 32], 10


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--spec", help="resnetctl spec JSON (resnetctl summary --json)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.batch < 2 or a.steps < 1 or a.warmup < 0 or a.threads < 1:
        ap.error("--batch must be at least 2, --steps and --threads at least 1, --warmup not negative")

    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model, chw, classes = build(a.model, a.spec)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(a.batch, *chw)
    y = torch.randint(0, classes, (a.batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    times = []
    t0, c0 = time.perf_counter(), cpu_seconds()
    for _ in range(a.steps):
        ts = time.perf_counter()
        step()
        times.append((time.perf_counter() - ts) * 1e3)
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    median = statistics.median(times)
    res = {
        "mode": "train", "framework": "pytorch", "model": a.model, "batch": a.batch, "threads": a.threads,
        "torch_threads": torch.get_num_threads(), "steps": a.steps, "warmup": a.warmup,
        "input": [a.batch] + chw, "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "optimizer": "SGD lr %g momentum 0.9 nesterov true weight_decay 0.0005" % LR,
        "median_ms": median, "min_ms": min(times), "max_ms": max(times), "mean_ms": statistics.fmean(times),
        "images_per_s": a.batch / (median / 1e3),
        "overall_images_per_s": a.steps * a.batch / elapsed,
        "cpu_ms_per_step": cpu * 1e3 / a.steps,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "allocs_per_step": None, "bytes_per_step": None, "gcs_per_step": None,
        "torch_version": torch.__version__,
    }
    if a.json:
        print(json.dumps(res))
        return
    print("training %s (%d params) in PyTorch %s, input %s, %d threads, %d steps after %d warm-up"
          % (a.model, res["params"], torch.__version__, res["input"], a.threads, a.steps, a.warmup))
    print("time per step: median %.1f ms, min %.1f ms, max %.1f ms, mean %.1f ms"
          % (median, res["min_ms"], res["max_ms"], res["mean_ms"]))
    print("throughput: %.1f images/s (median step), %.1f images/s overall"
          % (res["images_per_s"], res["overall_images_per_s"]))
    print("CPU time: %.1f ms per step (whole process, all threads)" % res["cpu_ms_per_step"])
    print("peak RSS: %.1f MiB (whole process)" % res["peak_rss_mib"])


if __name__ == "__main__":
    main()
