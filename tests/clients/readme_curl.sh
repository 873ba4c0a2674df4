#!/usr/bin/env bash
# Runs every `curl http://127.0.0.1:11434/...` line of the README against a server on $PORT
# (the models "demo" must exist there) and fails on any HTTP error.
set -euo pipefail
readme="$(dirname "$0")/../../README.md"
port="${PORT:?set PORT}"
curl() { command curl -sS --fail-with-body -o /dev/null -w '%{http_code}\n' "$@"; }
n=0
while IFS= read -r line; do
  cmd="${line%%#*}"                                   # drop trailing comments
  cmd="${cmd//127.0.0.1:11434/127.0.0.1:$port}"
  echo "+ $cmd" >&2
  eval "$cmd"
  n=$((n + 1))
done < <(grep -E '^\s*curl http://127\.0\.0\.1:11434/' "$readme" | sed -E 's/^\s+//')
[ "$n" -gt 0 ] || { echo "no curl examples found in README.md" >&2; exit 1; }
echo "$n README curl examples passed" >&2
