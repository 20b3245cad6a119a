#!/usr/bin/env bash
# paddock/aider:latest: Aider (aider-chat, from PyPI) in a virtualenv on the base image. PyPI must be
# reachable from this machine and from a container with a network. Usage: build.sh [--force]
set -euo pipefail
image_name=aider
# shellcheck source=../lib/derive.sh
source "$(dirname "$0")/../lib/derive.sh"
index="${PIP_INDEX_URL:-https://pypi.org/simple}"

begin_build "${1:-}" "$(cat "$0")" "$index"
require_reachable "$index/aider-chat/" "aider (aider-chat on PyPI; set PIP_INDEX_URL for a mirror)"
derive_image "$tag" "$hash" "$work" "
  set -e
  apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  python3 -m venv /opt/agents/aider
  /opt/agents/aider/bin/pip install --quiet --index-url '$index' aider-chat
  ln -sf /opt/agents/aider/bin/aider /usr/local/bin/aider
  apt-get clean && rm -rf /var/lib/apt/lists/*
  aider --version" bridge
