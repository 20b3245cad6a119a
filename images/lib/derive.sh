#!/usr/bin/env bash
# Shared by the images' build.sh: builds paddock/NAME:latest on top of paddock/base:latest without a
# registry or a Dockerfile builder: a container from the base image gets the files of a folder (and,
# optionally, runs a setup command), then is committed. Source it, then call derive_image.
set -euo pipefail

images_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

step() { printf '\033[1m[image %s]\033[0m %s\n' "$image_name" "$*" >&2; }

# Exit status of a build.sh whose image cannot be built on this machine (a download it cannot reach).
CANNOT_BUILD_HERE=3

# require_reachable URL WHAT: stops the build with CANNOT_BUILD_HERE, saying what is missing and how to
# build the image elsewhere, when URL (where WHAT comes from) cannot be reached from this machine.
require_reachable() {
  local url="$1" what="$2"
  curl -fsS -m 10 -o /dev/null "$url" && return 0
  step "cannot build here: $what comes from $url, which this machine cannot reach."
  step "On a machine with internet access, run:"
  step "  npx paddock images build $image_name"
  step "then move the image here: docker save paddock/$image_name:latest | ssh THIS_HOST docker load"
  exit "$CANNOT_BUILD_HERE"
}

# ensure_base: builds paddock/base when it is missing or out of date (quick otherwise).
ensure_base() {
  bash "$images_dir/base/build.sh" >&2
}

# up_to_date TAG HASH: true when TAG exists with label io.paddock.inputs=HASH.
up_to_date() {
  [ "$(docker image inspect -f '{{ index .Config.Labels "io.paddock.inputs" }}' "$1" 2>/dev/null || true)" = "$2" ]
}

# derive_image TAG HASH CONTEXT_DIR [SETUP_COMMAND [NETWORK]]: CONTEXT_DIR's files are copied to / (owned by
# root), SETUP_COMMAND (bash, as root: only while building) runs after that, with NETWORK (default none).
# The image runs as the agent user, like the base.
derive_image() {
  local tag="$1" hash="$2" context="$3" setup="${4:-}" network="${5:-none}"
  local cid
  cid=$(docker create --network "$network" --user 0:0 paddock/base:latest /bin/bash -c "${setup:-true}")
  # shellcheck disable=SC2064
  trap "docker rm -f $cid >/dev/null 2>&1 || true" RETURN
  step "copying $(du -sh "$context" | cut -f1) into the image"
  tar -C "$context" --owner=0 --group=0 -c . | docker cp - "$cid:/"
  if [ -n "$setup" ]; then
    step "running the setup inside the image"
    docker start -a "$cid" 2>&1 | sed "s/^/  /" >&2
    [ "$(docker inspect -f '{{.State.ExitCode}}' "$cid")" = 0 ] || { step "the setup failed"; return 1; }
  fi
  docker commit \
    -c 'USER 1000:1000' -c 'CMD ["sleep", "infinity"]' -c 'WORKDIR /workspace' \
    -c "LABEL io.paddock.inputs=$hash io.paddock.image=$image_name" \
    "$cid" "$tag" >/dev/null
  step "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

# begin_build FORCE INPUT...: starts the build of paddock/$image_name:latest. Builds the base first; sets
# $tag, and $hash from this library, the INPUTs (texts) and the base image; stops here when the image is
# up to date unless FORCE is --force; and makes $work, an empty folder removed at exit.
begin_build() {
  local force="$1"
  shift
  tag="paddock/$image_name:latest"
  ensure_base
  hash=$( { cat "$images_dir/lib/derive.sh"; printf '%s\n' "$@"; base_id; } | sha256sum | cut -c1-16)
  if [ "$force" != --force ] && up_to_date "$tag" "$hash"; then step "$tag is up to date ($hash)"; exit 0; fi
  work=$(mktemp -d --tmpdir=/var/tmp)
  trap 'rm -rf "$work"' EXIT
}

# rootfs_inputs DIR: the names, modes and contents of DIR's files (nothing when there is no DIR), as an
# input of a build.
rootfs_inputs() {
  [ -d "$1" ] || return 0
  (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sh -c 'for f; do stat -c "%n %a" "$f"; cat "$f"; done' sh)
}

# base_id: the base image's id, part of every derived image's inputs.
base_id() {
  docker image inspect -f '{{.Id}}' paddock/base:latest
}
