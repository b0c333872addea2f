#!/usr/bin/env bash
# Int8 inference side by side: each catalog model exported in float32 and
# quantized by `resnetctl quantize` (calibrated on 100 images of the
# embedded sample; the weights are the export's seeded ones, so only speed
# means anything here: tools/quantcheck measures accuracy), then four
# engines on the same machine at the same thread count, alternating ROUNDS
# times: our runtime on the float32 and the int8 file, ONNX Runtime on the
# float32 and the int8 file. Prints median latencies and the ratios the int8
# work is judged by: ours int8 speed-up over ours float32, ours int8 over ORT
# float32 and over ORT int8 (latency; lower is better for us). Run through
# `make bench-quant`.
#   THREADS (default nproc), ITERS (default 20), WARMUP (default 3), ROUNDS
#   (default 3), CONFIGS (default "resnet50 1 224,resnet20 128 32"), OUT
#   (default bench-results/quant.json) override.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-$(nproc)}
iters=${ITERS:-20}
warmup=${WARMUP:-3}
rounds=${ROUNDS:-3}
configs=${CONFIGS:-resnet50 1 224,resnet20 128 32}
out=${OUT:-bench-results/quant.json}
. tools/bench_lib.sh # bin, py, dir, load, bench_write_json

printf '%-10s %6s %7s %10s %10s %10s %10s %9s %9s %9s %s\n' model batch threads ours_f32 ours_int8 ort_f32 ort_int8 speedup vs_ortf32 vs_ortint8 kernels
IFS=, read -r -a cfgs <<<"$configs"
for cfg in "${cfgs[@]}"; do
	set -- $cfg
	model=$1 batch=$2 size=$3
	f="$dir/$model.onnx" q="$dir/$model.int8.onnx"
	"$bin" export --model "$model" "$f" >/dev/null
	"$bin" quantize "$f" --calibrate sample --images 100 --out "$q" >/dev/null
	it=$iters
	[ "$batch" -ge 16 ] && it=$(( iters / 2 > 3 ? iters / 2 : 3 ))
	of="" oq="" rf="" rq=""
	for _ in $(seq "$rounds"); do
		of+=$("$bin" bench "$f" --batch "$batch" --threads "$threads" --iters "$it" --warmup "$warmup" --json)$'\n'
		oq+=$("$bin" bench "$q" --batch "$batch" --threads "$threads" --iters "$it" --warmup "$warmup" --json)$'\n'
		rf+=$(node tools/ort/bench.js "$f" "$batch" "$threads" "$it" "$warmup" 3 "$size" "$size")$'\n'
		rq+=$(node tools/ort/bench.js "$q" "$batch" "$threads" "$it" "$warmup" 3 "$size" "$size")$'\n'
	done
	"$py" - "$model" "$batch" "$threads" "$of" "$oq" "$rf" "$rq" "$dir/results.jsonl" <<'PY'
import json, statistics, sys
m, b, th = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = [[json.loads(l) for l in a.splitlines() if l.strip()] for a in sys.argv[4:8]]
of, oq, rf, rq = (statistics.median(r["median_ms"] for r in rs) for rs in runs)
k = runs[1][0].get("int8") or {}
kern = "%d convs on %s" % (k.get("convolutions", 0), k.get("kernel") or "no int8 kernel")
print("%-10s %6d %7d %10.2f %10.2f %10.2f %10.2f %9.2f %9.2f %9.2f %s" % (m, b, th, of, oq, rf, rq, of / oq, oq / rf, oq / rq, kern), flush=True)
for r in runs[0] + runs[1]:
    r["model"] = m
with open(sys.argv[8], "a") as f:
    f.write(json.dumps({"model": m, "batch": b, "threads": th, "ours_f32_ms": of, "ours_int8_ms": oq, "ort_f32_ms": rf, "ort_int8_ms": rq,
                        "speedup_ours_int8_over_f32": of / oq, "ratio_ours_int8_to_ort_f32": oq / rf, "ratio_ours_int8_to_ort_int8": oq / rq,
                        "int8": k, "rounds": {"ours_f32": runs[0], "ours_int8": runs[1], "ort_f32": runs[2], "ort_int8": runs[3]}}) + "\n")
PY
done

ortver=$(node -p "require('./tools/ort/node_modules/onnxruntime-node/package.json').version" 2>/dev/null || true)
bench_write_json "$out" quant \
	"int8 inference: float32 exports and their 'resnetctl quantize' QDQ files (seeded weights, calibrated on 100 images of the embedded sample), ours and ONNX Runtime's median_ms per batch in each of ROUNDS alternating rounds; *_ms are the medians of those; speedup = ours float32 / ours int8 (higher is better), ratios = ours int8 / ORT (lower is better)" \
	onnxruntime_node_version="$ortver" iters:="$iters" warmup:="$warmup" rounds:="$rounds"
