#!/usr/bin/env bash
# Builds paddock/base:latest from Debian without a registry: debootstrap a bookworm rootfs, add the agent
# user, the workspace and Node.js (the host's own binary: Debian's nodejs is 18, the agents need >= 20),
# then `docker import` it. Its containers run as the agent user (uid 1000) with no capabilities and a
# read-only root filesystem: nothing in it needs root at run time. The image is labelled with a hash of its
# inputs, so a rebuild happens only when they change (or with --force).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tag="${PADDOCK_BASE_TAG:-paddock/base:latest}"
mirror="${PADDOCK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${PADDOCK_HOME:-$HOME/.paddock}/cache/images"
force=0; [ "${1:-}" = "--force" ] && force=1

packages=bash,git,openssh-server,libnss-wrapper,tmux,python3,curl,ca-certificates,procps,iproute2,zip,unzip,less,locales
node_bin="$(readlink -f "$(command -v node)")"
npm_dir="$(dirname "$(readlink -f "$(command -v npm)")")/.."
inputs_hash=$( { echo "$packages $mirror"; cat "$here/build.sh"; find "$here/rootfs" -type f -print0 2>/dev/null | sort -z | xargs -0 cat 2>/dev/null; "$node_bin" --version; } | sha256sum | cut -c1-16)

step() { printf '\033[1m[image base]\033[0m %s\n' "$*" >&2; }

current=$(docker image inspect -f '{{ index .Config.Labels "io.paddock.inputs" }}' "$tag" 2>/dev/null || true)
if [ "$force" = 0 ] && [ "$current" = "$inputs_hash" ]; then
  step "$tag is up to date ($inputs_hash)"; exit 0
fi

mkdir -p "$cache"
rootfs_tar="$cache/bookworm-minbase-$(echo "$packages $mirror" | sha256sum | cut -c1-12).tar"
work="$(mktemp -d --tmpdir=/var/tmp)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

if [ -f "$rootfs_tar" ]; then
  step "reusing the cached Debian rootfs"
  mkdir -p "$root" && tar -C "$root" -xf "$rootfs_tar"
else
  step "debootstrap bookworm (minbase + $packages), about a minute"
  debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
    | while IFS= read -r line; do case "$line" in I:\ Retrieving*|I:\ Validating*|I:\ Extracting\ *|I:\ Unpacking\ *|I:\ Configuring\ *) ;; *) step "  $line";; esac; done
  tar -C "$root" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"
fi

step "adding the agent user, /workspace and Node.js $("$node_bin" --version)"
chroot "$root" /bin/sh -c '
  set -e
  id agent >/dev/null 2>&1 || useradd --create-home --uid 1000 --user-group --shell /bin/bash agent
  mkdir -p /workspace && chown agent:agent /workspace
  # Where the broker puts what a run is given (a volume of each container): root-owned, so the agent reads
  # it but cannot fill it.
  mkdir -p /opt/paddock/run && chmod 0755 /opt/paddock/run
  sed -i "s/^# *en_US.UTF-8/en_US.UTF-8/" /etc/locale.gen && locale-gen >/dev/null 2>&1 || true
  rm -f /etc/ssh/ssh_host_*_key*
  apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/*
'
install -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
if [ -d "$here/rootfs" ]; then cp -a "$here/rootfs/." "$root/"; fi

step "importing into the engine as $tag"
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'WORKDIR /workspace' \
  -c 'USER 1000:1000' \
  -c 'CMD ["sleep", "infinity"]' \
  -c "LABEL io.paddock.inputs=$inputs_hash io.paddock.image=base" \
  - "$tag" >/dev/null
step "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
