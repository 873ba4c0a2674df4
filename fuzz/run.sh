#!/usr/bin/env bash
# Runs the libFuzzer targets built in BUILD_DIR (RESIDENT_FUZZ=ON), each for FUZZ_SECONDS
# (default 60), and fails if any of them finds a crash, a leak, undefined behaviour, a timeout or a
# broken invariant (FUZZ_CHECK).
#
#   fuzz/run.sh BUILD_DIR [NAME...]        NAME: keep_alive model_name modelfile manifest
#                                           requests http_framing protocol gguf (default: all)
#
# Each fuzzer first replays fuzz/regressions/NAME/ (inputs that once crashed it), then fuzzes from
# the seeds of fuzz/corpus/NAME/ plus what earlier runs found (BUILD_DIR/fuzz/corpus-NAME/, kept
# between runs). A crashing input is saved under BUILD_DIR/fuzz/artifacts/NAME/; fix the bug, then
# add the input to fuzz/regressions/NAME/ and a unit test under tests/unit/.
set -uo pipefail
cd "$(dirname "$0")/.."

build=${1:?usage: fuzz/run.sh BUILD_DIR [NAME...]}
shift
seconds=${FUZZ_SECONDS:-60}
all=(keep_alive model_name modelfile manifest requests http_framing protocol gguf)
names=("$@")
((${#names[@]})) || names=("${all[@]}")

# Longest input per target: a little above what the parser accepts or needs to reach every
# branch (a model name is at most 350 bytes; request bodies and Modelfiles are short texts; the
# GGUF seed is about 2 KB).
declare -A max_len=([keep_alive]=128 [model_name]=512 [modelfile]=4096 [manifest]=4096
  [requests]=4096 [http_framing]=4096 [protocol]=4096 [gguf]=8192)
declare -A dict=([keep_alive]=keep_alive [modelfile]=modelfile [manifest]=json [requests]=json)

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for n in "${names[@]}"; do
  fuzzer=$build/fuzz/${n}_fuzzer
  if [[ ! -x $fuzzer || -z ${max_len[$n]:-} ]]; then
    echo "[fuzz] no fuzzer $n in $build/fuzz" >&2
    failed+=("$n")
    continue
  fi
  work=$build/fuzz/corpus-$n
  artifacts=$build/fuzz/artifacts/$n/
  log=$build/fuzz/$n.log
  mkdir -p "$work" "$artifacts"

  # Replay the regressions whole (a corpus directory would cut them at -max_len).
  shopt -s nullglob
  regressions=(fuzz/regressions/$n/*)
  shopt -u nullglob
  if ((${#regressions[@]})) && ! "$fuzzer" "${regressions[@]}" >"$log.regressions" 2>&1; then
    echo "[fuzz] $n: a regression input fails again:" >&2
    tail -40 "$log.regressions" >&2
    failed+=("$n")
    continue
  fi

  args=(-max_total_time="$seconds" -max_len="${max_len[$n]}" -timeout=10 -rss_limit_mb=2048
    -artifact_prefix="$artifacts" -print_final_stats=1)
  [[ -n ${dict[$n]:-} ]] && args+=(-dict="fuzz/dict/${dict[$n]}.dict")
  start=$SECONDS
  if "$fuzzer" "${args[@]}" "$work" "fuzz/corpus/$n" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "[fuzz] $n: ok, $((SECONDS - start)) s, ${execs:-?} runs, $cov, corpus $(ls "$work" | wc -l) files"
  else
    echo "[fuzz] $n: FAILED after $((SECONDS - start)) s (log: $log, input: $artifacts)" >&2
    grep -E -A30 '^==[0-9]+==ERROR|runtime error|FUZZ_CHECK|ERROR: libFuzzer' "$log" | head -60 >&2
    failed+=("$n")
  fi
done

if ((${#failed[@]})); then
  echo "[fuzz] failed: ${failed[*]}" >&2
  exit 1
fi
