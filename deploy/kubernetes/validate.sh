#!/usr/bin/env bash
# Validates the Kubernetes manifests of deploy/kubernetes/ offline (no cluster, no network
# beyond PyPI for the first install); exits non-zero on any failure:
#   1. every manifest against the Kubernetes JSON schemas of the pinned versions, strictly
#      (unknown fields are errors; an unknown kind or apiVersion too), with the pinned
#      kubernetes-validate in a venv under ${TMPDIR:-/tmp} (reused while requirements.txt is
#      unchanged);
#   2. the ConfigMaps and their items against config/ and scripts/ (sync.sh --check);
#   3. what a schema cannot see, and `scimgate check` on the files and environment each pod
#      gets, laid out as the kubelet mounts them (manifests.py check).
# Environment: SCIMGATE_BIN (default target/debug/scimgate), KUBE_VERSIONS (default below).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

# The oldest and newest Kubernetes minor versions the manifests are checked against.
KUBE_VERSIONS=${KUBE_VERSIONS:-"1.30.0 1.37.0"}
SCIMGATE_BIN=${SCIMGATE_BIN:-target/debug/scimgate}
REQS="$HERE/requirements.txt"
VENV="${TMPDIR:-/tmp}/scimgate-kubernetes-validate-$(sha256sum "$REQS" | cut -c1-12)"

if ! [ -x "$VENV/bin/kubernetes-validate" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$REQS" \
    || { rm -rf "$VENV"; echo "validate.sh: pip install failed" >&2; exit 1; }
fi
echo "kubernetes-validate $("$VENV/bin/kubernetes-validate" --version) (schemas: Kubernetes ${KUBE_VERSIONS// /, })"

mapfile -t FILES < <(find deploy/kubernetes -name '*.yaml' | sort)
[ "${#FILES[@]}" -gt 0 ] || { echo "no manifests found" >&2; exit 1; }
KARGS=(--strict)
for v in $KUBE_VERSIONS; do KARGS+=(-k "$v"); done
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
rc=0
"$VENV/bin/kubernetes-validate" "${KARGS[@]}" "${FILES[@]}" >"$OUT" 2>&1 || rc=$?
# A schema it cannot find is only a WARN to kubernetes-validate (exit 0): count it as a failure.
if [ "$rc" -ne 0 ] || grep -qvE '^INFO ' "$OUT"; then
  grep -vE '^INFO ' "$OUT" || true
  echo "schema validation FAILED"
  exit 1
fi
echo "schemas: $(grep -c '^INFO ' "$OUT") resource validations passed ($(printf '%s\n' "${FILES[@]}" | wc -l) files, strict)"

bash "$HERE/sync.sh" --check

if ! [ -x "$SCIMGATE_BIN" ]; then
  echo "validate.sh: no scimgate binary at $SCIMGATE_BIN (build it, or set SCIMGATE_BIN)" >&2
  exit 1
fi
"$VENV/bin/python" "$HERE/manifests.py" check "$(cd "$(dirname "$SCIMGATE_BIN")" && pwd)/$(basename "$SCIMGATE_BIN")"
