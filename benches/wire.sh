#!/usr/bin/env bash
# What the gateway costs on the wire, measured as a user runs it: builds release, installs wrk
# if it is missing, then runs benches/wire.rs (scimgate serve, the demo legacy app and a bare
# hyper pass-through as separate processes; see that file for the cases and settings).
#
#   benches/wire.sh                          throughput, latency at 1,000 req/s, initial sync
#   WIRE_PARTS=throughput benches/wire.sh    one part
#   WIRE_BASELINE_BIN=/path/to/older/scimgate benches/wire.sh   A/B against an older build
#   WIRE_BASELINE_ENV=SCIMGATE_SERVER__COMPILE_SCRIPTS=false benches/wire.sh   this build, scripts
#                                            compiled vs in rhai's interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq wrk >/dev/null
fi
if ! command -v taskset >/dev/null 2>&1; then
  echo "note: taskset (util-linux) not found; processes will not be pinned" >&2
fi
cargo bench --bench wire --no-run
# The harness itself (its open-loop latency client) runs on CPU 1 with the legacy app and wrk;
# it starts the gateway and the pass-through pinned to CPU 0.
if command -v taskset >/dev/null 2>&1; then
  exec taskset -c 1 cargo bench --bench wire "$@"
fi
exec cargo bench --bench wire "$@"
