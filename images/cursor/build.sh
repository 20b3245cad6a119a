#!/usr/bin/env bash
# paddock/cursor:latest: Cursor's agent CLI (cursor-agent) on the base image, from Cursor's own installer
# (https://cursor.com/install), which downloads it from Cursor's servers. Usage: build.sh [--force]
set -euo pipefail
image_name=cursor
# shellcheck source=../lib/derive.sh
source "$(dirname "$0")/../lib/derive.sh"
tag=paddock/cursor:latest
installer="${CURSOR_INSTALL_URL:-https://cursor.com/install}"

ensure_base
hash=$( { cat "$images_dir/lib/derive.sh" "$0"; echo "$installer"; base_id; } | sha256sum | cut -c1-16)
if [ "${1:-}" != --force ] && up_to_date "$tag" "$hash"; then step "$tag is up to date ($hash)"; exit 0; fi

require_reachable "$installer" "cursor-agent (Cursor's installer)"
work=$(mktemp -d /var/tmp/paddock-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
derive_image "$tag" "$hash" "$work" "
  set -e
  su agent -c 'curl -fsS $installer | bash'
  ln -sf /home/agent/.local/bin/cursor-agent /usr/local/bin/cursor-agent
  cursor-agent --version" bridge
