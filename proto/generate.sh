#!/usr/bin/env bash
# Regenerates proto/src/gen from proto/paddock/**/*.proto with ts-proto. Never edit gen/ by hand.
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-src/gen}"
rm -rf "$out" && mkdir -p "$out"
protoc \
  --plugin=protoc-gen-ts_proto=../node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out="$out" \
  --ts_proto_opt=esModuleInterop=true,outputServices=grpc-js,importSuffix=.js,forceLong=number,env=node,useOptionals=none,stringEnums=false,outputJsonMethods=false,outputPartialMethods=true,useDate=false \
  -I . $(find paddock -name '*.proto' | sort)
