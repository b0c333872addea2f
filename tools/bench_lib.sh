# Shared by the side-by-side benchmarks (tools/bench.sh, tools/bench_train.sh),
# which source it from the repository's root after `set -euo pipefail`. It sets
#   bin  the resnetctl binary ($BIN, default bin/resnetctl)
#   py   the system Python
#   dir  a temporary folder, removed on exit; each result is a line of
#        $dir/results.jsonl
#   load the load average at the start, with a warning on stderr when the
#        machine is busy enough to spoil the timings
# and bench_write_json, which writes the results with the machine's
# description.
bin=${BIN:-bin/resnetctl}
py=/usr/bin/python3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
	echo "warning: load average $load; timings on a busy machine are not representative" >&2
fi

# bench_write_json OUT BENCHMARK DESCRIPTION [KEY=STRING | KEY:=JSON]...
# writes to OUT (making its folder) a JSON document: the benchmark's name and
# description, the machine (CPU, core count, kernel, load average at the
# start), the date, the Go version and the resnetctl commit, then the KEYs in
# order (KEY=STRING a string, KEY:=JSON a JSON value such as a number), then
# the results of $dir/results.jsonl.
bench_write_json() {
	mkdir -p "$(dirname "$1")"
	"$py" - "$dir/results.jsonl" "$load" "$(go version 2>/dev/null || true)" "$(git describe --always --dirty 2>/dev/null || true)" "$@" <<'PY'
import datetime, json, os, platform, sys
results_path, load, gover, commit, out, benchmark, description = sys.argv[1:8]
extra = {}
for kv in sys.argv[8:]:
    k, v = kv.split("=", 1)
    if k.endswith(":"):
        extra[k[:-1]] = json.loads(v)
    else:
        extra[k] = v
cpu = ""
with open("/proc/cpuinfo") as f:
    for line in f:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
with open(results_path) as f:
    results = [json.loads(l) for l in f]
doc = {
    "benchmark": benchmark,
    "description": description,
    "machine": {"cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(), "load_average_at_start": float(load)},
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "go_version": gover, "resnetctl_commit": commit,
    **extra,
    "results": results,
}
with open(out, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
print("wrote", out)
PY
}
