#!/usr/bin/env bash
# paddock/task:latest: Paddock's built-in task agent (images/task/src, compiled by `npx tsc -b`) on the
# base image, as the command paddock-task. Usage: build.sh [--force]
set -euo pipefail
image_name=task
# shellcheck source=../lib/derive.sh
source "$(dirname "$0")/../lib/derive.sh"
tag=paddock/task:latest
dist="$images_dir/task/dist/src"
[ -f "$dist/main.js" ] || { step "$dist/main.js is missing: build the TypeScript first (npx tsc -b)"; exit 1; }

ensure_base
hash=$( { cat "$images_dir/lib/derive.sh" "$0"; find "$dist" -name '*.js' -print0 | sort -z | xargs -0 cat; base_id; } | sha256sum | cut -c1-16)
if [ "${1:-}" != --force ] && up_to_date "$tag" "$hash"; then step "$tag is up to date ($hash)"; exit 0; fi

work=$(mktemp -d /var/tmp/paddock-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/opt/paddock/task" "$work/usr/local/bin"
cp "$dist"/*.js "$work/opt/paddock/task/"
echo '{"type": "module"}' > "$work/opt/paddock/task/package.json"
printf '#!/bin/sh\nexec node /opt/paddock/task/main.js "$@"\n' > "$work/usr/local/bin/paddock-task"
chmod 0755 "$work/usr/local/bin/paddock-task"
derive_image "$tag" "$hash" "$work"
