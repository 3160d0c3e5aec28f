#!/usr/bin/env bash
# Regenerates the ConfigMaps of deploy/kubernetes/{sidecar,standalone}/configmap.yaml from the
# repository's config/scimgate.toml, config/profiles/default.toml and scripts/default/*.rhai,
# and the `items` that place them in each deployment.yaml. Run it after editing those files.
#   deploy/kubernetes/sync.sh           write the files
#   deploy/kubernetes/sync.sh --check   write nothing; exit 1 with a diff when they differ
#                                       (validate.sh runs this)
# Needs python3 (standard library only).
set -euo pipefail
exec python3 "$(dirname "$0")/manifests.py" sync "$@"
