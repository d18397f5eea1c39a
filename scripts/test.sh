#!/usr/bin/env bash
# The project's test command. On a fresh machine it installs everything first (bootstrap: .venv,
# helm 4 + helm 3 + kubectl, the smoke tier's pinned dask set; the local Kubernetes control plane
# built from the Go module proxy), then runs the static checks and the test tiers.
#
#   scripts/test.sh                 every tier: unit, chart, cluster, faults, smoke, browser, pilot, harvester
#   scripts/test.sh unit chart      only those tiers
#   scripts/test.sh bench           the benchmarks (results in tests/bench/results/)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

tiers=("$@")
[[ ${#tiers[@]} -gt 0 ]] || tiers=(unit chart cluster faults smoke browser pilot harvester)
wants() { local t; for t in "${tiers[@]}"; do [[ "$t" == "$1" ]] && return 0; done; return 1; }

step() { printf '\n== %s\n' "$*"; }

step "bootstrap"
flags=()
wants smoke && flags+=(--smoke)
wants pilot && flags+=(--pilot)
wants harvester && flags+=(--harvester)
wants browser && flags+=(--browser)
bash scripts/bootstrap.sh "${flags[@]}"

if wants cluster || wants faults || wants bench || wants harvester; then
  step "local Kubernetes control plane (built once from the Go module proxy, then cached)"
  bash scripts/test-cluster.sh build
  if ! bash scripts/test-cluster.sh status >/dev/null 2>&1; then
    bash scripts/test-cluster.sh up
    # Started here, so stopped here, whatever the tests do.
    trap 'step "stopping the local cluster"; bash scripts/test-cluster.sh down' EXIT
  fi
fi

step "static checks (ruff, mypy)"
.venv/bin/ruff check orchestrator tests
.venv/bin/mypy

marker="$(IFS=' '; set -- "${tiers[@]}"; printf '%s' "$1"; shift; for t in "$@"; do printf ' or %s' "$t"; done)"
step "pytest -m '$marker'"
extra=()
[[ -z "${PYTEST_ARGS:-}" ]] || read -ra extra <<< "$PYTEST_ARGS"
set +e
.venv/bin/python -m pytest -m "$marker" -p no:cacheprovider "${extra[@]}"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no test for '$marker': that is a failure, not a pass" >&2
  exit 1
fi
exit $rc
