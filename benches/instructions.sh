#!/usr/bin/env bash
# Instructions the gateway executes per request, counted by valgrind's callgrind: the same for
# the same binary and requests however busy the machine is, so an A/B shows changes of a per
# cent or two that the wall-clock bench (wire.sh) cannot on a noisy machine. Builds release,
# installs valgrind with apt-get if it is missing, then runs benches/instructions.py (the demo
# legacy app in its own process, `scimgate serve` under callgrind; GET, filter, POST, PATCH).
#
#   benches/instructions.sh                                           this build
#   INSTR_BASELINE_BIN=/path/to/older/scimgate benches/instructions.sh   A/B, with ratios
#   INSTR_REQUESTS=300 benches/instructions.sh                         counted requests per case
#   INSTR_ROUNDS=3 benches/instructions.sh                             runs of each build, in turn
#   INSTR_KEEP=/tmp/dumps benches/instructions.sh       keeps the dumps for callgrind_annotate
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null 2>&1 || ! command -v callgrind_control >/dev/null 2>&1; then
  echo "installing valgrind" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq valgrind >/dev/null
fi
# The wire bench binary serves as the demo legacy app (its `legacy` role); building it builds
# target/release/scimgate too.
WIRE=$(cargo bench --bench wire --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -n 1)
if [ -z "$WIRE" ]; then
  echo "could not build the wire bench" >&2
  exit 1
fi
BUILDS=("this=target/release/scimgate")
if [ -n "${INSTR_BASELINE_BIN:-}" ]; then
  BUILDS+=("baseline=$INSTR_BASELINE_BIN")
fi
exec python3 benches/instructions.py "$WIRE" "${INSTR_REQUESTS:-300}" "${INSTR_ROUNDS:-3}" "${BUILDS[@]}"
