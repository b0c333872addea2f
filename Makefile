# resnetctl — the two commands of the README are `make run` and `make test`.
GO ?= go
PKGS := ./...

.PHONY: run test setup fmt-check vet unit race fuzz build reference-check bench bench-quant bench-train bench-serve

# The other people's software our tests compare against: the ONNX checker
# (onnx 1.12), PyTorch 1.13 + torchvision 0.14 from Debian, and ONNX Runtime
# 1.30 from npm (its CPU runtime ships in the package; the env var skips a
# GPU download that cannot succeed here). wrk (C) is the load generator of
# bench-serve.
APT_PACKAGES := python3-onnx python3-numpy python3-torch python3-torchvision libonnx-testdata wrk
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

## run: the main job: train ResNet-20 with no flags — CIFAR-10 from the cache if
## fetched, else a short run on the embedded sample; checkpoints in a new
## runs/resnet20[-N] each time
run: build
	./bin/resnetctl train

build:
	$(GO) build -o bin/resnetctl ./cmd/resnetctl

## test: everything CI runs — set-up, formatting, vet, all tests, a bounded
## run of every fuzz target, the race detector over the concurrent parts
test: setup fmt-check vet unit race fuzz

## setup: install the interop tools (idempotent; apt only for what is missing)
setup: tools/ort/node_modules/.package-lock.json
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

tools/ort/node_modules/.package-lock.json: tools/ort/package.json tools/ort/package-lock.json
	cd tools/ort && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -count=1 -timeout 45m $(PKGS)

## race: the race detector over what runs concurrently — Session.Run from many
## goroutines, the kernels' worker pool, Fit (with validation through the
## runtime, Ctrl-C, failing checkpoint writes, NaN stops). The whole of infer,
## kernels and train under -race takes ~13 minutes here, hence the selection.
race:
	$(GO) test -race -count=1 -short -run 'Concurrent|Pool|ThreadCount|Interrupt|CheckpointWriteFailure|NonFiniteMidRun' ./infer/ ./internal/kernels/ ./train/
	$(GO) test -race -count=1 ./serve/

## fuzz: each fuzz target for FUZZTIME (default 15s; longer runs: FUZZTIME=5m)
fuzz:
	FUZZTIME=$${FUZZTIME:-15s} tools/fuzz-ci.sh

## reference-check: regenerate the PyTorch golden file and fail if it changed
## (needs Debian's python3-torch python3-torchvision)
reference-check:
	/usr/bin/python3 tools/pytorch/reference_counts.py /tmp/pytorch_reference.json >/dev/null
	cmp /tmp/pytorch_reference.json build/testdata/pytorch_reference.json

## bench: our runtime against ONNX Runtime, side by side (not part of test):
## median latency and peak resident memory (VmHWM) of each, and the ratios
bench: build tools/ort/node_modules/.package-lock.json
	tools/bench.sh

## bench-quant: int8 files (resnetctl quantize) against float32, ours and
## ONNX Runtime's side by side (not part of test; THREADS, ROUNDS, OUT override)
bench-quant: build tools/ort/node_modules/.package-lock.json
	tools/bench_quant.sh

## bench-train: our training steps against PyTorch 1.13's, side by side (not
## part of test; needs Debian's python3-torch; THREADS, STEPS, OUT override)
bench-train: build
	tools/bench_train.sh

## bench-serve: load test of `resnetctl serve` on loopback (not part of test):
## 1, 8 and 64 clients on ResNet-20 and ResNet-50, batching off and on, one
## and two instances, wrk and Go clients, with `resnetctl bench` alongside;
## SERVE_BENCH_FLAGS override (e.g.
## "-duration 3s -models resnet20"), JSON in bench-results/serve.json
bench-serve: build
	$(GO) run ./tools/servebench -resnetctl bin/resnetctl $(SERVE_BENCH_FLAGS)
