#!/bin/sh
# Regenerates onnx.pb.go from the ONNX project's onnx.proto3.
#
# The .proto3 is produced by ONNX's own gen_proto.py from the onnx.in.proto
# that Debian's python3-onnx ships (ONNX 1.12.0, IR version 8, opsets <= 17
# named in its enums; later IR versions only add fields and enum values this
# project does not read, and protobuf keeps unknown fields). protoc comes from
# Debian's protobuf-compiler (3.21), protoc-gen-go from the version of
# google.golang.org/protobuf pinned in go.mod. The protobuf package is renamed
# from "onnx" to "resnetctl_onnx" (gen_proto.py -p): names on the wire are
# unchanged, and the global protobuf registry then never clashes with another
# ONNX binding linked into the same binary (onnx-go in our tests).
#
#   apt-get install python3-onnx protobuf-compiler && go generate ./internal/onnxpb
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 /usr/lib/python3/dist-packages/onnx/gen_proto.py -p resnetctl_onnx -o "$tmp" onnx >/dev/null
GOBIN="$tmp" go install google.golang.org/protobuf/cmd/protoc-gen-go
"${PROTOC:-protoc}" --plugin=protoc-gen-go="$tmp/protoc-gen-go" -I "$tmp" \
	--go_out="$tmp" --go_opt=paths=source_relative \
	--go_opt=Monnx_resnetctl_onnx.proto3=github.com/resnetctl/resnetctl/internal/onnxpb \
	onnx_resnetctl_onnx.proto3
mv "$tmp"/onnx*.pb.go ./onnx.pb.go
