#!/usr/bin/env bash
# Side-by-side inference speed: resnetctl's native runtime against ONNX Runtime
# (npm onnxruntime-node 1.30.0) on the same exported files, the same machine
# and the same thread count. Run through `make bench` (which builds resnetctl
# and installs ONNX Runtime first). Prints one line per configuration and the
# ratio ours/ORT of median latency (lower is better for us).
#   THREADS (default: nproc), ITERS (default 20) override.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-$(nproc)}
iters=${ITERS:-20}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bin=bin/resnetctl
printf '%-10s %6s %12s %12s %10s %10s %8s\n' model batch ours_ms ort_ms ours_img/s ort_img/s ratio
for cfg in "resnet18 1 224" "resnet18 16 224" "resnet50 1 224" "resnet50 16 224" "resnet20 128 32"; do
	set -- $cfg
	model=$1 batch=$2 size=$3
	f="$dir/$model.onnx"
	[ -f "$f" ] || "$bin" export --model "$model" "$f" >/dev/null
	it=$iters
	[ "$batch" -ge 16 ] && it=$(( iters / 2 > 3 ? iters / 2 : 3 ))
	ours=$("$bin" bench "$f" --batch "$batch" --threads "$threads" --iters "$it" --warmup 3 --json)
	ort=$(node tools/ort/bench.js "$f" "$batch" "$threads" "$it" 3 3 "$size" "$size")
	/usr/bin/python3 - "$model" "$batch" "$ours" "$ort" <<'PY'
import json, sys
m, b, o, r = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
print("%-10s %6s %12.2f %12.2f %10.1f %10.1f %8.2f" % (m, b, o["median_ms"], r["median_ms"], o["images_per_s"], r["images_per_s"], o["median_ms"] / r["median_ms"]))
PY
done
