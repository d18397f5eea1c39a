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

# The tiers that need the local cluster (and the faults tier kills its API server) run in one
# pytest; the others (pure Python, helm renders, local processes) need no cluster and run in a
# second pytest at the same time: most of the cluster tiers' time is spent waiting on the
# control plane, so the two overlap well on two cores. DPS_TEST_SERIAL=1 runs one after the other.
CLUSTER_TIERS=(cluster faults harvester bench)
needs_cluster() { local t; for t in "${CLUSTER_TIERS[@]}"; do [[ "$t" == "$1" ]] && return 0; done; return 1; }
cluster_group=() local_group=()
for t in "${tiers[@]}"; do
  if needs_cluster "$t"; then cluster_group+=("$t"); else local_group+=("$t"); fi
done

extra=()
[[ -z "${PYTEST_ARGS:-}" ]] || read -ra extra <<< "$PYTEST_ARGS"
mkdir -p .test-output

# One pytest over some tiers; its exit status, with "no test collected" counted as a failure.
run_tiers() {
  local marker rc
  marker="$(IFS=' '; set -- "$@"; printf '%s' "$1"; shift; for t in "$@"; do printf ' or %s' "$t"; done)"
  set +e
  .venv/bin/python -m pytest -m "$marker" -p no:cacheprovider --durations=15 "${extra[@]}"
  rc=$?
  set -e
  if [[ $rc -eq 5 ]]; then
    echo "pytest collected no test for '$marker': that is a failure, not a pass" >&2
    return 1
  fi
  return $rc
}

# The end of a pytest log: its short summary and final line, so that a failure of either group
# is at the bottom of the output.
summary_of() { awk '/short test summary info|slowest .*durations/{p=1} p' "$1" | grep -v '^[0-9.]*s \(call\|setup\|teardown\) ' || true; }

if [[ ${#cluster_group[@]} -gt 0 && ${#local_group[@]} -gt 0 && "${DPS_TEST_SERIAL:-0}" != 1 ]]; then
  cluster_log=.test-output/pytest-cluster-tiers.log
  local_log=.test-output/pytest-local-tiers.log
  step "pytest, two at once: [${local_group[*]}] here, [${cluster_group[*]}] into $cluster_log"
  run_tiers "${cluster_group[@]}" >"$cluster_log" 2>&1 &
  cluster_pid=$!
  set +e
  run_tiers "${local_group[@]}" 2>&1 | tee "$local_log"
  local_rc=${PIPESTATUS[0]}
  wait "$cluster_pid"
  cluster_rc=$?
  set -e
  step "pytest [${cluster_group[*]}] (from $cluster_log)"
  cat "$cluster_log"
  step "summary: [${local_group[*]}] exit $local_rc"
  summary_of "$local_log"
  step "summary: [${cluster_group[*]}] exit $cluster_rc"
  summary_of "$cluster_log"
  [[ $local_rc -eq 0 && $cluster_rc -eq 0 ]] || exit 1
  exit 0
fi

step "pytest [${tiers[*]}]"
run_tiers "${tiers[@]}"
