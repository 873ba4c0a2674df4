#!/usr/bin/env bash
# Installs what resident needs on Debian 12 and fetches llama.cpp from the npm registry.
# Idempotent: each step checks first and does nothing when its result is already there.
#
#   scripts/setup.sh            system packages + llama.cpp cache
#   scripts/setup.sh --print-llama-dir
#   scripts/setup.sh --print-cuda-dir
#
# llama.cpp lands in $RESIDENT_CACHE (default ~/.cache/resident)/llama-<release>-nlc<version>/:
#   lib/      prebuilt shared libraries (@node-llama-cpp/linux-x64)
#   src/      the llama.cpp source tree cloned from node-llama-cpp's git bundle (headers, vocab models)
#   cuda/     only on a machine with an NVIDIA GPU: the same release built with CUDA
#             (@node-llama-cpp/linux-x64-cuda), for runners started with LD_LIBRARY_PATH there
#             (docs/gpu.md). RESIDENT_FETCH_CUDA=1 fetches it without a GPU, =0 never.
set -euo pipefail

NLC_VERSION=3.21.1
LLAMA_RELEASE=v0.4.0
CACHE=${RESIDENT_CACHE:-$HOME/.cache/resident}
LLAMA_DIR=$CACHE/llama-$LLAMA_RELEASE-nlc$NLC_VERSION

if [[ ${1:-} == --print-llama-dir ]]; then echo "$LLAMA_DIR"; exit 0; fi
if [[ ${1:-} == --print-cuda-dir ]]; then echo "$LLAMA_DIR/cuda"; exit 0; fi

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

# --- llama.cpp's CUDA build, only where there is an NVIDIA GPU ---------------------------------
# The same release as lib/, its libraries under other file names (libllama.cuda.<release>.so):
# the plain names the resident binary was linked against point at them, so that a runner started
# with LD_LIBRARY_PATH=$LLAMA_DIR/cuda loads these instead of lib/'s, and the backends beside them
# (libggml-cuda.so, libggml-cpu-*.so).
has_nvidia_gpu() {
  [[ -e /proc/driver/nvidia/version || -e /dev/nvidia0 ]] && return 0
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1
}
case ${RESIDENT_FETCH_CUDA:-auto} in
  1) fetch_cuda=1 ;;
  0) fetch_cuda=0 ;;
  *) fetch_cuda=0; has_nvidia_gpu && fetch_cuda=1 ;;
esac
CUDA_DIR=$LLAMA_DIR/cuda
if ((fetch_cuda)); then
  if [[ ! -f $CUDA_DIR/.complete ]]; then
    log "fetching llama.cpp $LLAMA_RELEASE for CUDA (@node-llama-cpp/linux-x64-cuda@$NLC_VERSION, 143 MB) into $CUDA_DIR"
    cuda_work=$(mktemp -d)
    trap 'rm -rf "${work:-}" "$cuda_work"' EXIT
    (cd "$cuda_work" && npm pack --silent "@node-llama-cpp/linux-x64-cuda@$NLC_VERSION" >/dev/null)
    mkdir -p "$cuda_work/pkg"
    tar xzf "$cuda_work/node-llama-cpp-linux-x64-cuda-$NLC_VERSION.tgz" -C "$cuda_work/pkg"
    bins=$cuda_work/pkg/package/bins/linux-x64-cuda
    grep -q "\"release\": *\"$LLAMA_RELEASE\"" "$bins/_nlcBuildMetadata.json" ||
      { log "expected llama.cpp $LLAMA_RELEASE in the CUDA package: $(cat "$bins/_nlcBuildMetadata.json")"; exit 1; }
    # The binary calls into these in place of lib/'s: the same exported functions, or nothing.
    for pair in "libllama.$LLAMA_RELEASE.so libllama.cuda.$LLAMA_RELEASE.so" "libggml.$LLAMA_RELEASE.so libggml.cuda.$LLAMA_RELEASE.so"; do
      read -r cpu gpu <<<"$pair"
      if ! cmp -s <(nm -D --defined-only "$LLAMA_DIR/lib/$cpu" | awk '{print $2, $3}' | sort) \
                  <(nm -D --defined-only "$bins/$gpu" | awk '{print $2, $3}' | sort); then
        log "the CUDA package's $gpu does not export what lib/$cpu does; not installing it"; exit 1
      fi
    done
    rm -rf "$CUDA_DIR.partial"
    mkdir -p "$CUDA_DIR.partial"
    cp "$bins/"*.so "$CUDA_DIR.partial/"
    (cd "$CUDA_DIR.partial" &&
      ln -sf "libllama.cuda.$LLAMA_RELEASE.so" "libllama.$LLAMA_RELEASE.so" &&
      ln -sf "libggml.cuda.$LLAMA_RELEASE.so" "libggml.$LLAMA_RELEASE.so" &&
      ln -sf "libllama.cuda.$LLAMA_RELEASE.so" libllama.so && ln -sf "libggml.cuda.$LLAMA_RELEASE.so" libggml.so)
    rm -rf "$CUDA_DIR"
    mv "$CUDA_DIR.partial" "$CUDA_DIR"
    touch "$CUDA_DIR/.complete"
  fi
  log "llama.cpp for CUDA ready in $CUDA_DIR"
  # The package carries no CUDA runtime: libggml-cuda.so needs it from the system.
  cuda_major=$(readelf -d "$CUDA_DIR/libggml-cuda.so" | sed -n 's/.*\[libcudart\.so\.\([0-9]*\)\].*/\1/p')
  cuda_missing=$(ldd "$CUDA_DIR/libggml-cuda.so" | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
  if [[ -n $cuda_missing ]]; then
    log "not found here: ${cuda_missing% }. The runners need libcudart.so.$cuda_major," \
      "libcublas.so.$cuda_major and libcublasLt.so.$cuda_major from NVIDIA's CUDA $cuda_major runtime," \
      "and libcuda.so.1 from an NVIDIA driver that supports CUDA $cuda_major; setup.sh installs none of them"
  fi
fi

# --- real-client tests: ollama-js, openai-node and puppeteer-core (which downloads no browser: the
# dashboard test drives Debian's chromium), pinned in tests/clients/package-lock.json ----------
clients="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/clients"
lock_sum=$(sha256sum "$clients/package-lock.json" | cut -d' ' -f1)
if [[ $(cat "$clients/node_modules/.resident-lock-sha256" 2>/dev/null) != "$lock_sum" ]]; then
  log "installing the real-client test packages (npm ci in tests/clients)"
  (cd "$clients" && npm ci --silent --no-audit --no-fund >/dev/null)
  echo "$lock_sum" >"$clients/node_modules/.resident-lock-sha256"
fi
