#!/usr/bin/env bash
# Sets up everything Paddock needs on a Debian machine, as root; idempotent and quick the second time.
#   - Debian packages (docker.io, nats-server, debootstrap, protoc, chromium, runsc, socat, ...) when missing
#   - gVisor (runsc) registered as a dockerd runtime; a small TCP table per network namespace (sysctl)
#   - dockerd running (a stale pid file left by a killed daemon is removed first)
#   - npm dependencies (npm ci when package-lock.json changed) and the TypeScript build
#   - the images (paddock/base from Debian, then the task agent and the agent CLIs), each built once
# nats-server and PostgreSQL are started by `paddock up` (and by the tests) themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------------
need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have dockerd       || need_pkgs+=(docker.io)
have nats-server   || need_pkgs+=(nats-server)
have debootstrap   || need_pkgs+=(debootstrap)
have protoc        || need_pkgs+=(protobuf-compiler)
have ssh           || need_pkgs+=(openssh-client)
have chromium      || need_pkgs+=(chromium)
have zip           || need_pkgs+=(zip)
have unzip         || need_pkgs+=(unzip)
have curl          || need_pkgs+=(curl)
have ip            || need_pkgs+=(iproute2)
have runsc         || need_pkgs+=(runsc)
# the relay: a connection into, or a listener inside, an instance's network namespace (nsenter -n socat)
have socat         || need_pkgs+=(socat)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${need_pkgs[*]} (run as root, or install them first)"; exit 1
  fi
  log "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# --- gVisor ----------------------------------------------------------------------------------------
# runsc is registered with dockerd as the runtime `runsc`. --network=host makes the sandbox use the
# container's own network namespace (not the host's): Paddock's relay enters that namespace to reach an
# instance's ports, which gVisor's internal network stack would hide.
daemon_json=/etc/docker/daemon.json
runsc_changed=$(node - "$daemon_json" <<'JS'
const fs = require('node:fs');
const file = process.argv[2];
let config = {};
try { config = JSON.parse(fs.readFileSync(file, 'utf8')); } catch (err) { if (err.code !== 'ENOENT') throw err; }
const want = { path: '/usr/bin/runsc', runtimeArgs: ['--network=host'] };
if (JSON.stringify(config.runtimes?.runsc) === JSON.stringify(want)) { console.log('no'); process.exit(0); }
config.runtimes = { ...config.runtimes, runsc: want };
fs.mkdirSync(require('node:path').dirname(file), { recursive: true });
fs.writeFileSync(file, JSON.stringify(config, null, 2) + '\n');
console.log('yes');
JS
)

# --- dockerd ---------------------------------------------------------------------------------------
if [ "$runsc_changed" = yes ] && docker info >/dev/null 2>&1; then
  log "registering the gVisor runtime (runsc) with the running dockerd"
  kill -HUP "$(cat /var/run/docker.pid)"
  for _ in $(seq 1 20); do docker info 2>/dev/null | grep -q runsc && break; sleep 0.25; done
fi
# Each new network namespace (each instance) gets a TCP connection table of its own, of 1024 buckets,
# instead of one as large as the host's: portdetect reads an instance's socket table in ~20 µs instead of
# ~1.7 ms (see services/portdetect/README.md). Linux 6.1+; applies to namespaces made afterwards.
if [ -e /proc/sys/net/ipv4/tcp_child_ehash_entries ]; then
  if [ "$(cat /proc/sys/net/ipv4/tcp_child_ehash_entries)" = 0 ]; then
    log "giving each instance's network namespace its own TCP table (net.ipv4.tcp_child_ehash_entries=1024)"
    sysctl -qw net.ipv4.tcp_child_ehash_entries=1024 || log "could not set net.ipv4.tcp_child_ehash_entries (portdetect works, reading sockets costs more)"
  fi
  if [ -d /etc/sysctl.d ] && [ ! -f /etc/sysctl.d/90-paddock.conf ]; then
    printf "net.ipv4.tcp_child_ehash_entries = 1024\nkernel.pid_max = 4194304\n" > /etc/sysctl.d/90-paddock.conf
  fi
fi
# A gVisor sandbox uses host threads for its processes (about 50, plus ~5 per process): at the kernel's
# default of 32768 pids a few busy sandboxes could exhaust the host's pid space.
if [ "$(cat /proc/sys/kernel/pid_max)" -lt 4194304 ]; then
  log "raising kernel.pid_max to 4194304 (gVisor sandboxes use a host thread per guest task)"
  sysctl -qw kernel.pid_max=4194304 || log "could not raise kernel.pid_max"
fi
if ! docker info >/dev/null 2>&1; then
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    log "removing stale /var/run/docker.pid"
    rm -f /var/run/docker.pid
  fi
  # containerd leaves its own pid/socket behind the same way
  if [ -f /run/docker/containerd/containerd.pid ] && ! kill -0 "$(cat /run/docker/containerd/containerd.pid)" 2>/dev/null; then
    rm -f /run/docker/containerd/containerd.pid
  fi
  log "starting dockerd (log: /var/log/paddock-dockerd.log)"
  nohup dockerd >/var/log/paddock-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/paddock-dockerd.log"; tail -20 /var/log/paddock-dockerd.log >&2; exit 1; }
fi

# --- npm dependencies and build --------------------------------------------------------------------
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f node_modules/.paddock-lock-hash ] || [ "$(cat node_modules/.paddock-lock-hash)" != "$lock_hash" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.paddock-lock-hash
fi
log "building TypeScript"
npx tsc -b
# npm links a workspace's bin only when its target exists, which the build makes: `npx paddock` needs it.
chmod +x cli/dist/src/main.js
[ -e node_modules/.bin/paddock ] || ln -sf ../@paddock/cli/dist/src/main.js node_modules/.bin/paddock

# --- images ----------------------------------------------------------------------------------------
node cli/dist/src/main.js images build
