#!/usr/bin/env bash
# paddock/task:latest: Paddock's built-in task agent (images/task/src, compiled by `npx tsc -b`) on the
# base image, as the command paddock-task. Usage: build.sh [--force]
set -euo pipefail
image_name=task
# shellcheck source=../lib/derive.sh
source "$(dirname "$0")/../lib/derive.sh"
dist="$images_dir/task/dist/src"
[ -f "$dist/main.js" ] || { step "$dist/main.js is missing: build the TypeScript first (npx tsc -b)"; exit 1; }

begin_build "${1:-}" "$(cat "$0")" "$(find "$dist" -name '*.js' -print0 | sort -z | xargs -0 cat)"
mkdir -p "$work/opt/paddock/task" "$work/usr/local/bin"
cp "$dist"/*.js "$work/opt/paddock/task/"
echo '{"type": "module"}' > "$work/opt/paddock/task/package.json"
printf '#!/bin/sh\nexec node /opt/paddock/task/main.js "$@"\n' > "$work/usr/local/bin/paddock-task"
chmod 0755 "$work/usr/local/bin/paddock-task"
derive_image "$tag" "$hash" "$work"
