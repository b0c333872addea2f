#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time, one after the
# other, and fails if any of them fails (a crash is written to the
# package's testdata/fuzz/FuzzX/ by `go test`; commit it as a regression
# seed together with the fix).
#   FUZZTIME (default 20s) is each target's -fuzztime (a duration, or Nx
#   for N executions); FUZZMINIMIZETIME (default 3s) bounds the
#   minimisation of each new input (short, so that a loaded machine
#   spends its time fuzzing).
# The list below must name every Fuzz function of the module: the script
# fails when a test file has one it does not list, so a new target is
# not forgotten.
set -u
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-20s}
minimize=${FUZZMINIMIZETIME:-3s}

targets=(
	"./infer FuzzLoadBytes"            # ONNX loader and validator, then a run
	"./infer FuzzPlanAndRun"           # mutated ResNet-shaped graphs planned and run under a memory budget
	"./import FuzzFromBytes"           # ONNX import to build.Graph
	"./import FuzzMutatedModels"       # import of structurally mutated exports
	"./cifar FuzzBinary"               # CIFAR binary records
	"./cifar FuzzArchive"              # tar.gz releases and image-folder archives
	"./imgproc FuzzDecode"             # image decoding and preprocessing
	"./train FuzzSafetensors"          # checkpoint tensor files
	"./train FuzzLoadCheckpoint"       # checkpoint directories (trainer.json, state)
	"./quantize FuzzPrepare"           # ONNX models to quantize: BatchNorm folding, QDQ rewriting
)

status=0
listed=" "
for t in "${targets[@]}"; do
	listed+="${t#* } "
done
for f in $(grep -rhoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' . | sed 's/^func //' | sort -u); do
	if [[ "$listed" != *" $f "* ]]; then
		echo "fuzz-ci: $f is not listed in tools/fuzz-ci.sh" >&2
		status=1
	fi
done

start=$SECONDS
failed=()
for t in "${targets[@]}"; do
	pkg=${t% *} name=${t#* }
	t0=$SECONDS
	echo "=== $name ($pkg, $fuzztime)"
	# Go 1.26's fuzz coordinator can fail a target with a bare "context
	# deadline exceeded" when a duration -fuzztime runs out (golang/go#75804,
	# fixed in Go 1.27): no input failed and none is written. Such a run is
	# repeated once; a failure that writes a crasher, or any other failure,
	# or the same signature twice, fails the script.
	for attempt in 1 2; do
		before=$(ls "$pkg/testdata/fuzz/$name" 2>/dev/null | wc -l)
		out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$pkg" 2>&1)
		rc=$?
		echo "$out"
		after=$(ls "$pkg/testdata/fuzz/$name" 2>/dev/null | wc -l)
		if [ $rc -eq 0 ]; then
			break
		fi
		if [ $attempt -eq 1 ] && [ "$before" = "$after" ] &&
			grep -qx '    context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
			echo "fuzz-ci: $name stopped with the Go coordinator's deadline race (golang/go#75804), no input failed; running it again"
			continue
		fi
		failed+=("$name")
		status=1
		break
	done
	echo "--- $name: $((SECONDS - t0))s"
done
echo "fuzz-ci: ${#targets[@]} targets in $((SECONDS - start))s"
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz-ci: FAILED: ${failed[*]}" >&2
fi
exit $status
