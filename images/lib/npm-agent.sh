#!/usr/bin/env bash
# npm-agent.sh NAME PACKAGE VERSION BIN [--force]: paddock/NAME:latest = paddock/base + PACKAGE@VERSION
# from the npm registry, installed on this machine (which reaches the registry) and copied in, with BIN
# on the PATH, and the files of images/NAME/rootfs (its setup scripts) if it has some. Rebuilt only when
# one of its inputs changes.
set -euo pipefail
image_name="$1" package="$2" version="$3" bin="$4" force="${5:-}"
# shellcheck source=derive.sh
source "$(dirname "${BASH_SOURCE[0]}")/derive.sh"
rootfs="$images_dir/$image_name/rootfs"

begin_build "$force" "$package@$version $bin" "$(cat "$images_dir/lib/npm-agent.sh")" "$(rootfs_inputs "$rootfs")"
prefix="$work/opt/agents/$image_name"
mkdir -p "$prefix" "$work/usr/local/bin"
if [ -d "$rootfs" ]; then cp -a "$rootfs/." "$work/"; fi
step "npm install $package@$version"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error --omit=dev "$package@$version" >&2
[ -e "$prefix/node_modules/.bin/$bin" ] || { step "$package@$version has no '$bin' command"; exit 1; }
ln -s "/opt/agents/$image_name/node_modules/.bin/$bin" "$work/usr/local/bin/$bin"
step "$bin --version: $("$prefix/node_modules/.bin/$bin" --version 2>&1 | head -1)"
derive_image "$tag" "$hash" "$work"
