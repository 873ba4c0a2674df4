#!/usr/bin/env bash
# Installs what resident needs on Debian 12 and fetches llama.cpp from the npm registry.
# Idempotent: each step checks first and does nothing when its result is already there.
#
#   scripts/setup.sh            system packages + llama.cpp cache
#   scripts/setup.sh --print-llama-dir
#
# llama.cpp lands in $RESIDENT_CACHE (default ~/.cache/resident)/llama-<release>-nlc<version>/:
#   lib/      prebuilt shared libraries (@node-llama-cpp/linux-x64)
#   src/      the llama.cpp source tree cloned from node-llama-cpp's git bundle (headers, vocab models)
set -euo pipefail

NLC_VERSION=3.21.1
LLAMA_RELEASE=v0.4.0
CACHE=${RESIDENT_CACHE:-$HOME/.cache/resident}
LLAMA_DIR=$CACHE/llama-$LLAMA_RELEASE-nlc$NLC_VERSION

if [[ ${1:-} == --print-llama-dir ]]; then echo "$LLAMA_DIR"; exit 0; fi

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
PACKAGES=(build-essential cmake ninja-build ccache git pkg-config curl ca-certificates
  nodejs npm
  # the dashboard's browser test (tests/clients/dashboard.test.mjs): headless Chromium
  chromium
  libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libtomlplusplus-dev libgtest-dev libgmock-dev libssl-dev
  # pull and push (libcurl), and the registry their tests run on loopback (docker-registry)
  libcurl4-openssl-dev docker-registry
  # the cluster test: three nodes behind HAProxy (`resident cluster haproxy`)
  haproxy
  # make fuzz, make check-sanitize: clang with libFuzzer and the sanitizer runtimes
  # (libclang-rt-14-dev), and llvm-symbolizer (llvm-14) for readable reports.
  clang-14 libclang-rt-14-dev llvm-14)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node and npm may come from elsewhere than Debian (e.g. nodesource); accept any working pair.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]}"
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- llama.cpp from the npm registry -----------------------------------------------------------
if [[ ! -f $LLAMA_DIR/.complete ]]; then
  log "fetching llama.cpp $LLAMA_RELEASE (node-llama-cpp@$NLC_VERSION) into $LLAMA_DIR"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-llama-cpp@$NLC_VERSION" "@node-llama-cpp/linux-x64@$NLC_VERSION" >/dev/null)
  mkdir -p "$work/src-pkg" "$work/bin-pkg"
  tar xzf "$work/node-llama-cpp-$NLC_VERSION.tgz" -C "$work/src-pkg"
  tar xzf "$work/node-llama-cpp-linux-x64-$NLC_VERSION.tgz" -C "$work/bin-pkg"
  tag=$(sed -n 's/.*"tag": *"\([^"]*\)".*/\1/p' "$work/src-pkg/package/llama/llama.cpp.info.json")
  [[ $tag == "$LLAMA_RELEASE" ]] || { log "expected llama.cpp $LLAMA_RELEASE, the package carries $tag"; exit 1; }
  rm -rf "$LLAMA_DIR.partial"
  mkdir -p "$LLAMA_DIR.partial/lib"
  git clone -q "$work/src-pkg/package/llama/gitRelease.bundle" "$LLAMA_DIR.partial/src" 2>/dev/null
  cp "$work/bin-pkg/package/bins/linux-x64/"*.so "$LLAMA_DIR.partial/lib/"
  # The runtime linker needs the plain names the libraries were linked against (SONAMEs);
  # the development symlinks let CMake link them.
  (cd "$LLAMA_DIR.partial/lib" && ln -sf libllama.v0.4.0.so libllama.so && ln -sf libggml.v0.4.0.so libggml.so)
  rm -rf "$LLAMA_DIR"
  mv "$LLAMA_DIR.partial" "$LLAMA_DIR"
  touch "$LLAMA_DIR/.complete"
fi
log "llama.cpp ready in $LLAMA_DIR"

# --- real-client tests: ollama-js, openai-node and puppeteer-core (which downloads no browser: the
# dashboard test drives Debian's chromium), pinned in tests/clients/package-lock.json ----------
clients="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/clients"
lock_sum=$(sha256sum "$clients/package-lock.json" | cut -d' ' -f1)
if [[ $(cat "$clients/node_modules/.resident-lock-sha256" 2>/dev/null) != "$lock_sum" ]]; then
  log "installing the real-client test packages (npm ci in tests/clients)"
  (cd "$clients" && npm ci --silent --no-audit --no-fund >/dev/null)
  echo "$lock_sum" >"$clients/node_modules/.resident-lock-sha256"
fi
