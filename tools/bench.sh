#!/usr/bin/env bash
# Side-by-side inference speed: resnetctl's native runtime against ONNX Runtime
# (npm onnxruntime-node 1.30.0) on the same exported files, the same machine
# and the same thread count. Run through `make bench` (which builds resnetctl
# and installs ONNX Runtime first). Prints one line per configuration and the
# ratio ours/ORT of median latency (lower is better for us), then the peak
# resident memory of each engine's whole process (VmHWM: loading the model
# included; `resnetctl bench --json`'s peak_rss_mib against the node process
# running ONNX Runtime) and its ratio ours/ORT, and writes every measurement
# with the machine's description to $OUT as JSON.
#   THREADS_LIST (default: "nproc 1", i.e. all cores then one thread; THREADS=T
#   alone means just T), ITERS (default 20), WARMUP (default 3), CONFIGS
#   (default: the list below, "model batch size" separated by commas), ROUNDS
#   (default 3: the engines alternate this many times per configuration and
#   each side's figure is the median of its rounds' medians), OUT (default
#   bench-results/infer.json) override.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${THREADS_LIST:-}" ]; then
	threads_list=$THREADS_LIST
elif [ -n "${THREADS:-}" ]; then
	threads_list=$THREADS
else
	threads_list=$(nproc)
	[ "$threads_list" -gt 1 ] && threads_list="$threads_list 1"
fi
iters=${ITERS:-20}
warmup=${WARMUP:-3}
rounds=${ROUNDS:-3}
configs=${CONFIGS:-resnet18 1 224,resnet18 16 224,resnet50 1 224,resnet50 16 224,resnet20 128 32}
out=${OUT:-bench-results/infer.json}
. tools/bench_lib.sh # bin, py, dir, load, bench_write_json

printf '%-10s %6s %7s %12s %12s %10s %10s %8s %10s %10s %9s\n' model batch threads ours_ms ort_ms ours_img/s ort_img/s ratio ours_MiB ort_MiB rss_ratio
IFS=, read -r -a cfgs <<<"$configs"
for threads in $threads_list; do
	for cfg in "${cfgs[@]}"; do
		set -- $cfg
		model=$1 batch=$2 size=$3
		f="$dir/$model.onnx"
		[ -f "$f" ] || "$bin" export --model "$model" "$f" >/dev/null
		it=$iters
		[ "$batch" -ge 16 ] && it=$(( iters / 2 > 3 ? iters / 2 : 3 ))
		# Alternate the two engines $rounds times, so that a slow spell of a
		# shared machine does not fall on one side only.
		ours="" ort=""
		for _ in $(seq "$rounds"); do
			ours+=$("$bin" bench "$f" --batch "$batch" --threads "$threads" --iters "$it" --warmup "$warmup" --json)$'\n'
			ort+=$(node tools/ort/bench.js "$f" "$batch" "$threads" "$it" "$warmup" 3 "$size" "$size")$'\n'
		done
		"$py" - "$model" "$batch" "$threads" "$ours" "$ort" "$dir/results.jsonl" <<'PY'
import json, statistics, sys
m, b, th = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os_ = [json.loads(l) for l in sys.argv[4].splitlines() if l.strip()]
rs = [json.loads(l) for l in sys.argv[5].splitlines() if l.strip()]
om = statistics.median(o["median_ms"] for o in os_)
rm = statistics.median(r["median_ms"] for r in rs)
ratio = om / rm
# Peak resident memory, MiB: the median over the rounds (each a new process).
ormss = statistics.median(o.get("peak_rss_mib", 0) for o in os_)
rrss = statistics.median(r.get("peak_rss_mib", 0) for r in rs)
rss_ratio = ormss / rrss if rrss > 0 else None
print("%-10s %6d %7d %12.2f %12.2f %10.1f %10.1f %8.2f %10.1f %10.1f %9s" % (m, b, th, om, rm, b * 1000 / om, b * 1000 / rm, ratio,
      ormss, rrss, "%.2f" % rss_ratio if rss_ratio is not None else "-"), flush=True)
for o in os_:
    o["model"] = m  # the catalog name, not the temporary file
with open(sys.argv[6], "a") as f:
    f.write(json.dumps({"model": m, "batch": b, "threads": th, "ours_median_ms": om, "ort_median_ms": rm,
                        "ratio_median_ms": ratio, "ours_peak_rss_mib": ormss, "ort_peak_rss_mib": rrss,
                        "ratio_peak_rss": rss_ratio, "ours_rounds": os_, "ort_rounds": rs}) + "\n")
PY
	done
done

ortver=$(node -p "require('./tools/ort/node_modules/onnxruntime-node/package.json').version" 2>/dev/null || true)
bench_write_json "$out" infer \
	"inference of exported ONNX files on random input; each engine's median_ms per batch in each of ROUNDS alternating rounds; ours_median_ms and ort_median_ms are the medians of those; ratio_median_ms = ours / onnxruntime (lower is better for resnetctl); ours_peak_rss_mib and ort_peak_rss_mib are the medians over the rounds of each process's peak resident memory (VmHWM of resnetctl bench, of the node process running onnxruntime; loading included), ratio_peak_rss = ours / onnxruntime" \
	onnxruntime_node_version="$ortver" iters:="$iters" warmup:="$warmup" rounds:="$rounds"
