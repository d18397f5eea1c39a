#!/usr/bin/env bash
# The main job, end to end, on a fresh machine:
#   1. bootstrap (.venv, helm 4 / helm 3 / kubectl, and .venv-smoke for step 6);
#   2. a cluster: the one KUBECONFIG names if it answers and is not the built-in local cluster,
#      else the built-in local cluster (real kube-apiserver + kwok nodes, built from the Go module
#      proxy on first use; DPS_CLUSTER_STATE picks its state directory, as for
#      scripts/test-cluster.sh). A KUBECONFIG from `eval "$(scripts/test-cluster.sh env)"` is the
#      local cluster: its namespace is set up here like on a cluster the demo starts itself;
#   3. submit an example batch job and an example interactive job with the GOOGLE_DASK values;
#   4. follow them live until they end, then print their addresses and phase timings;
#   5. sweep both and show that nothing labelled for them is left;
#   6. one interactive session whose processes really run on this machine (the smoke tier's
#      runner: the chart rendered by helm, its pods run as local processes with the images' pinned
#      dask and JupyterLab): the JupyterLab URL, the password login, the Dask dashboard inside
#      JupyterLab, the seed's computation from JupyterLab on the session's scheduler; then every
#      process is ended and checked gone.
#
# On the local cluster (steps 3-5) the pods are SIMULATED: they are scheduled, get IPs and go
# through their phases (examples/local-cluster.yaml decides when the pilot and JupyterLab "end"),
# but no container runs. Step 6 is where the session's processes run for real; it needs root (or
# unprivileged user namespaces) for the runner's private mount namespaces.
#
#   scripts/demo.sh [--keep-cluster]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAMESPACE="${DPS_DEMO_NAMESPACE:-dask-panda-session-demo}"
QUEUE="${DPS_DEMO_QUEUE:-GOOGLE_DASK}"

step() { printf '\n== %s\n' "$*"; }

# The kubeconfig of the built-in local cluster: what `scripts/test-cluster.sh env` exports.
local_kubeconfig() {
  (
    eval "$(bash "$ROOT/scripts/test-cluster.sh" env)"
    printf '%s' "$KUBECONFIG"
  )
}

# True if KUBECONFIG (a path, or a list of paths) names the local cluster's kubeconfig: the same
# file however spelled (relative, through a link), or a copy of it.
is_local_kubeconfig() {
  local own entry entries=()
  own="$(local_kubeconfig)"
  IFS=: read -r -a entries <<<"${KUBECONFIG:-}"
  for entry in "${entries[@]}"; do
    [[ -n "$entry" ]] || continue
    if [[ "$(realpath -m -- "$entry")" == "$(realpath -m -- "$own")" ]]; then return 0; fi
    if [[ -s "$entry" && -s "$own" ]] && cmp -s -- "$entry" "$own"; then return 0; fi
  done
  return 1
}

# Which cluster the demo uses: "configured" (the one KUBECONFIG names, if it answers and is not
# the local cluster) or "local" (the built-in one, set up here).
choose_cluster() {
  if [[ -z "${KUBECONFIG:-}" ]] || is_local_kubeconfig; then
    echo local
  elif kubectl version --request-timeout=5s >/dev/null 2>&1; then
    echo configured
  else
    echo local
  fi
}

LOCAL=0
STARTED=0
KEEP_CLUSTER=0
INTERACTIVE_JOB=""

# The local cluster goes down once the demo is done with it, if the demo started it.
stop_cluster() {
  if [[ "$STARTED" == 1 && "$KEEP_CLUSTER" == 0 ]]; then
    step "stopping the local cluster (scripts/demo.sh --keep-cluster keeps it)"
    bash scripts/test-cluster.sh down
    STARTED=0
  fi
}

cleanup() {
  [[ -z "$INTERACTIVE_JOB" ]] || rm -f "$INTERACTIVE_JOB"
  stop_cluster
}

main() {
  cd "$ROOT"
  [[ "${1:-}" == "--keep-cluster" ]] && KEEP_CLUSTER=1
  step "bootstrap"
  bash scripts/bootstrap.sh --smoke
  export PATH="$ROOT/.tools/bin:$PATH"
  trap cleanup EXIT
  # The CLI of this checkout: `python -m` from the repository root imports its own orchestrator/,
  # whichever checkout the venv's editable install points to (a venv shared between worktrees).
  local dps=("$ROOT/.venv/bin/python" -m orchestrator.cli --helm "$ROOT/.tools/bin/helm" --namespace "$NAMESPACE" --queue "$QUEUE")

  if [[ "$(choose_cluster)" == configured ]]; then
    step "using the configured cluster ($(kubectl config current-context))"
  else
    if [[ -n "${KUBECONFIG:-}" ]] && is_local_kubeconfig; then
      step "KUBECONFIG names the local cluster: using it (pods are simulated)"
    else
      step "no configured cluster answers: using the local cluster (pods are simulated)"
    fi
    LOCAL=1
    if ! bash scripts/test-cluster.sh status >/dev/null 2>&1; then
      STARTED=1
    fi
    bash scripts/test-cluster.sh up
    eval "$(bash scripts/test-cluster.sh env)"
  fi
  export KUBECONFIG

  local extra=()
  if [[ "$LOCAL" == 1 ]]; then
    step "namespace $NAMESPACE: shared claim and proxy Secret (what a site admin sets up once)"
    kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    sed "s/NAMESPACE/$NAMESPACE/g" examples/local-namespace.yaml | kubectl apply -f -
    kubectl -n "$NAMESPACE" wait --for=jsonpath='{.status.phase}'=Bound pvc/filestore-dask --timeout=60s
    extra=(-f examples/local-cluster.yaml)
  fi
  "${dps[@]}" doctor || true

  step "submit a batch job and an interactive job"
  "${dps[@]}" submit examples/batch-job.json "${extra[@]}"
  # The interactive job needs the user's JupyterLab password in its secrets; make a random one
  # here (it goes into the per-job Kubernetes Secret only, and is never printed).
  INTERACTIVE_JOB="$(mktemp)"
  "$ROOT/.venv/bin/python" - examples/interactive-job.json "$INTERACTIVE_JOB" <<'PY'
import json, secrets, sys
data = json.load(open(sys.argv[1]))
params = next(iter(data.values()))
params["secrets"]["jupyter"] = json.dumps({"username": "demo", "password": secrets.token_urlsafe(18)})
with open(sys.argv[2], "w") as out:
    json.dump(data, out)
PY
  "${dps[@]}" submit "$INTERACTIVE_JOB" "${extra[@]}"

  step "following both sessions until they end"
  "${dps[@]}" status --watch --timeout 600 dask-5000000001 dask-5000000002

  step "final state, addresses and phase timings"
  "${dps[@]}" status dask-5000000001 dask-5000000002
  "${dps[@]}" status dask-5000000001 dask-5000000002 -o json

  step "sweep: uninstall, clean up, verify"
  "${dps[@]}" delete dask-5000000001 dask-5000000002

  step "what is left in $NAMESPACE with the session label (nothing expected)"
  local left
  left="$(kubectl -n "$NAMESPACE" get all,jobs,secrets,configmaps,networkpolicies,ingresses,pvc \
    -l app.kubernetes.io/name=dask-panda-session -o name)"
  if [[ -n "$left" ]]; then
    echo "$left"
    echo "something was left behind" >&2
    exit 1
  fi
  echo "nothing: both sessions are gone"
  if [[ "$LOCAL" == 1 ]]; then
    kubectl delete namespace "$NAMESPACE" --wait=false >/dev/null
    kubectl delete pv "$NAMESPACE-filestore" --wait=false >/dev/null
  fi
  stop_cluster

  step "one interactive session for real: its processes run on this machine (the smoke tier's runner)"
  echo "Steps 3-5 ran on simulated pods. Here the chart's JupyterLab, scheduler and workers run as"
  echo "local processes with the images' pinned versions (.venv-smoke); the password is random and"
  echo "is never printed."
  "$ROOT/.venv/bin/python" -m tests.smoke --workers 2
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
