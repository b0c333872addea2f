# resnetctl — the two commands of the README are `make run` and `make test`.
GO ?= go
PKGS := ./...

.PHONY: run test fmt-check vet unit build reference-check

## run: the main job (today: summarise the default model; `train` once it lands)
run: build
	./bin/resnetctl summary --model resnet20

build:
	$(GO) build -o bin/resnetctl ./cmd/resnetctl

## test: everything CI runs — formatting, vet, all tests
test: fmt-check vet unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -count=1 $(PKGS)

## reference-check: regenerate the PyTorch golden file and fail if it changed
## (needs Debian's python3-torch python3-torchvision)
reference-check:
	/usr/bin/python3 tools/pytorch/reference_counts.py /tmp/pytorch_reference.json >/dev/null
	cmp /tmp/pytorch_reference.json build/testdata/pytorch_reference.json
