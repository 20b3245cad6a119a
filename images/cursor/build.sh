#!/usr/bin/env bash
# paddock/cursor:latest: Cursor's agent CLI (cursor-agent) on the base image, from Cursor's own installer
# (https://cursor.com/install), which downloads it from Cursor's servers. Usage: build.sh [--force]
set -euo pipefail
image_name=cursor
# shellcheck source=../lib/derive.sh
source "$(dirname "$0")/../lib/derive.sh"
installer="${CURSOR_INSTALL_URL:-https://cursor.com/install}"

begin_build "${1:-}" "$(cat "$0")" "$installer"
require_reachable "$installer" "cursor-agent (Cursor's installer)"
derive_image "$tag" "$hash" "$work" "
  set -e
  su agent -c 'curl -fsS $installer | bash'
  ln -sf /home/agent/.local/bin/cursor-agent /usr/local/bin/cursor-agent
  cursor-agent --version" bridge
