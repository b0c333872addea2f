#!/usr/bin/env bash
# Side-by-side training speed: resnetctl (`resnetctl bench --train`) against
# PyTorch 1.13 from Debian (tools/pytorch/bench_train.py) on the same model,
# batch, thread count and machine: forward, cross-entropy, backward and an SGD
# Nesterov step with weight decay on seeded random data, warm-up steps first.
# Run through `make bench-train` (which builds resnetctl first). Prints one
# line per model with images/s (from the median step) and the ratio
# ours/PyTorch (higher is better for us), peak RSS of each process (the whole
# process: PyTorch's includes the interpreter and the torch libraries), and
# writes every measurement with the machine's description to $OUT.
#   THREADS (default: nproc; THREADS_LIST="2 1" for several), STEPS (default
#   20), WARMUP (default 3), BATCH (default 128), MODELS (default "resnet20
#   resnet56"), ROUNDS (default 3: the frameworks alternate this many times
#   per model; each side's img/s is the median of its rounds', its peak RSS
#   the largest), OUT (default bench-results/train.json) override.
# Timings mean something only on an otherwise idle machine: the script warns
# when the load average says otherwise (and records it in $OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
threads_list=${THREADS_LIST:-${THREADS:-$(nproc)}}
steps=${STEPS:-20}
warmup=${WARMUP:-3}
rounds=${ROUNDS:-3}
batch=${BATCH:-128}
models=${MODELS:-resnet20 resnet56}
out=${OUT:-bench-results/train.json}
. tools/bench_lib.sh # bin, py, dir, load, bench_write_json

printf '%-10s %6s %7s %12s %12s %8s %12s %12s\n' model batch threads ours_img/s torch_img/s ratio ours_rss_MiB torch_rss_MiB
for threads in $threads_list; do
	for model in $models; do
		spec="$dir/$model.json"
		[ -f "$spec" ] || "$bin" summary --model "$model" --json >"$spec"
		# Alternate the two frameworks $rounds times (see bench.sh).
		ours="" torch=""
		for _ in $(seq "$rounds"); do
			ours+=$("$bin" bench --train --model "$model" --batch "$batch" --threads "$threads" --steps "$steps" --warmup "$warmup" --json)$'\n'
			torch+=$("$py" tools/pytorch/bench_train.py --model "$model" --spec "$spec" --batch "$batch" --threads "$threads" --steps "$steps" --warmup "$warmup" --json)$'\n'
		done
		"$py" - "$ours" "$torch" "$dir/results.jsonl" <<'PY'
import json, statistics, sys
os_ = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
ts = [json.loads(l) for l in sys.argv[2].splitlines() if l.strip()]
o, t = os_[0], ts[0]
oi = statistics.median(x["images_per_s"] for x in os_)
ti = statistics.median(x["images_per_s"] for x in ts)
orss = max(x["peak_rss_mib"] for x in os_)
trss = max(x["peak_rss_mib"] for x in ts)
ratio = oi / ti
print("%-10s %6d %7d %12.1f %12.1f %8.2f %12.1f %12.1f" % (o["model"], o["batch"], o["threads"], oi, ti, ratio, orss, trss), flush=True)
with open(sys.argv[3], "a") as f:
    f.write(json.dumps({"model": o["model"], "batch": o["batch"], "threads": o["threads"],
                        "ours_images_per_s": oi, "pytorch_images_per_s": ti, "ratio_images_per_s": ratio,
                        "ours_peak_rss_mib": orss, "pytorch_peak_rss_mib": trss,
                        "ours_rounds": os_, "pytorch_rounds": ts}) + "\n")
PY
	done
done

torchver=$("$py" -c 'import torch; print(torch.__version__)')
bench_write_json "$out" train \
	"training steps (forward, cross-entropy, backward, SGD Nesterov momentum 0.9, weight decay 5e-4) on random data; images_per_s from the median step of each of ROUNDS alternating rounds, ours_images_per_s and pytorch_images_per_s the medians over rounds; ratio_images_per_s = ours / pytorch (higher is better for resnetctl); peak RSS is each whole process's peak, the largest over rounds" \
	torch_version="$torchver" steps:="$steps" warmup:="$warmup" rounds:="$rounds"
