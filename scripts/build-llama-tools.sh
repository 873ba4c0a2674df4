#!/usr/bin/env bash
# Builds llama.cpp's llama-server and llama-bench from the source tree that scripts/setup.sh
# fetched, for the peer comparisons in bench/cold_start. Only those two targets are built.
#
#   scripts/build-llama-tools.sh          build if needed, then print the two binary paths
#
# Output: $LLAMA_DIR/tools-build/bin/{llama-server,llama-bench}.
# Idempotent: nothing is done when both binaries exist and are newer than the stamp
# ($LLAMA_DIR/tools-build/.resident-stamp, rewritten whenever the source tree or the CMake
# options change). Environment: LLAMA_DIR (default: scripts/setup.sh --print-llama-dir),
# JOBS (default 2), NICE (default 10).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LLAMA_DIR=${LLAMA_DIR:-$("$here/setup.sh" --print-llama-dir)}
SRC=$LLAMA_DIR/src
OUT=$LLAMA_DIR/tools-build
JOBS=${JOBS:-2}
NICE=${NICE:-10}
SERVER=$OUT/bin/llama-server
BENCH=$OUT/bin/llama-bench
STAMP=$OUT/.resident-stamp

log() { printf '[build-llama-tools] %s\n' "$*" >&2; }

[[ -f $SRC/CMakeLists.txt ]] || { log "no llama.cpp source tree in $SRC (run scripts/setup.sh)"; exit 1; }
command -v cmake >/dev/null || { log "cmake not found"; exit 1; }
command -v ninja >/dev/null || { log "ninja not found"; exit 1; }

# LLAMA_BUILD_APP/UI and the prebuilt UI are off: the bench needs no web UI and the build machine
# may have no network (the prebuilt UI is downloaded from Hugging Face).
opts=(-G Ninja -DCMAKE_BUILD_TYPE=Release
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_OPENSSL=OFF)
# LLAMA_CURL is gone from newer trees (v0.4.0 keeps it only as a deprecated name): pass it only
# where the tree still reads it.
if grep -q 'LLAMA_CURL' "$SRC/CMakeLists.txt"; then opts+=(-DLLAMA_CURL=OFF); fi
if command -v ccache >/dev/null; then
  opts+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

# What the stamp certifies: these options and this source tree.
src_rev=$(git -C "$SRC" rev-parse HEAD 2>/dev/null || stat -c %Y "$SRC/CMakeLists.txt")
want="${opts[*]} src=$src_rev"

if [[ -x $SERVER && -x $BENCH && -f $STAMP && $SERVER -nt $STAMP && $BENCH -nt $STAMP ]] &&
   [[ $(cat "$STAMP") == "$want" ]]; then
  log "up to date"
  printf '%s\n%s\n' "$SERVER" "$BENCH"
  exit 0
fi

mkdir -p "$OUT"
if [[ ! -f $STAMP || $(cat "$STAMP" 2>/dev/null) != "$want" ]]; then
  log "configuring $OUT"
  nice -n "$NICE" cmake -S "$SRC" -B "$OUT" "${opts[@]}" -Wno-dev >&2
  # The stamp predates the build: binaries newer than it were built from this configuration.
  printf '%s\n' "$want" >"$STAMP"
fi
log "building llama-server and llama-bench (-j$JOBS, nice $NICE; 5-9 minutes on 2 cores)"
start=$SECONDS
nice -n "$NICE" cmake --build "$OUT" --target llama-server llama-bench -j "$JOBS" >&2
# ninja leaves an up-to-date binary untouched; make sure both count as newer than the stamp.
touch "$SERVER" "$BENCH"
log "built in $((SECONDS - start)) s"
printf '%s\n%s\n' "$SERVER" "$BENCH"
