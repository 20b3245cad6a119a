#!/usr/bin/env bash
# paddock/aider:latest: Aider (aider-chat, from PyPI) in a virtualenv on the base image. PyPI must be
# reachable from this machine and from a container with a network. Usage: build.sh [--force]
set -euo pipefail
image_name=aider
# shellcheck source=../lib/derive.sh
source "$(dirname "$0")/../lib/derive.sh"
tag=paddock/aider:latest
index="${PIP_INDEX_URL:-https://pypi.org/simple}"

ensure_base
hash=$( { cat "$images_dir/lib/derive.sh" "$0"; echo "$index"; base_id; } | sha256sum | cut -c1-16)
if [ "${1:-}" != --force ] && up_to_date "$tag" "$hash"; then step "$tag is up to date ($hash)"; exit 0; fi

require_reachable "$index/aider-chat/" "aider (aider-chat on PyPI; set PIP_INDEX_URL for a mirror)"
work=$(mktemp -d /var/tmp/paddock-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
derive_image "$tag" "$hash" "$work" "
  set -e
  apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  python3 -m venv /opt/agents/aider
  /opt/agents/aider/bin/pip install --quiet --index-url '$index' aider-chat
  ln -sf /opt/agents/aider/bin/aider /usr/local/bin/aider
  apt-get clean && rm -rf /var/lib/apt/lists/*
  aider --version" bridge
