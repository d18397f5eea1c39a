#!/usr/bin/env bash
# The main job, end to end, on a fresh machine:
#   1. bootstrap (.venv, helm 4 / helm 3 / kubectl);
#   2. a cluster: the one KUBECONFIG names if it answers, else the built-in local cluster
#      (real kube-apiserver + kwok nodes, built from the Go module proxy on first use);
#   3. submit an example batch job and an example interactive job with the GOOGLE_DASK values;
#   4. follow them live until they end, then print their addresses and phase timings;
#   5. sweep both and show that nothing labelled for them is left.
#
# On the local cluster the pods are SIMULATED: they are scheduled, get IPs and go through their
# phases (examples/local-cluster.yaml decides when the pilot and JupyterLab "end"), but no
# container runs. The smoke tier (scripts/test.sh smoke) runs the chart's commands for real.
#
#   scripts/demo.sh [--keep-cluster]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KEEP_CLUSTER=0
[[ "${1:-}" == "--keep-cluster" ]] && KEEP_CLUSTER=1
NAMESPACE="${DPS_DEMO_NAMESPACE:-dask-panda-session-demo}"
QUEUE="${DPS_DEMO_QUEUE:-GOOGLE_DASK}"

step() { printf '\n== %s\n' "$*"; }

step "bootstrap"
bash scripts/bootstrap.sh
export PATH="$ROOT/.tools/bin:$PATH"
DPS=("$ROOT/.venv/bin/dask-panda-session" --helm "$ROOT/.tools/bin/helm" --namespace "$NAMESPACE" --queue "$QUEUE")

LOCAL=0
STARTED=0
if [[ -n "${KUBECONFIG:-}" ]] && kubectl version --request-timeout=5s >/dev/null 2>&1; then
  step "using the configured cluster ($(kubectl config current-context))"
else
  step "no configured cluster answers: using the local cluster (pods are simulated)"
  LOCAL=1
  if ! bash scripts/test-cluster.sh status >/dev/null 2>&1; then
    STARTED=1
  fi
  bash scripts/test-cluster.sh up
  eval "$(bash scripts/test-cluster.sh env)"
fi
export KUBECONFIG

cleanup_cluster() {
  if [[ "$STARTED" == 1 && "$KEEP_CLUSTER" == 0 ]]; then
    step "stopping the local cluster (scripts/demo.sh --keep-cluster keeps it)"
    bash scripts/test-cluster.sh down
  fi
}
trap cleanup_cluster EXIT

EXTRA=()
if [[ "$LOCAL" == 1 ]]; then
  step "namespace $NAMESPACE: shared claim and proxy Secret (what a site admin sets up once)"
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  sed "s/NAMESPACE/$NAMESPACE/g" examples/local-namespace.yaml | kubectl apply -f -
  kubectl -n "$NAMESPACE" wait --for=jsonpath='{.status.phase}'=Bound pvc/filestore-dask --timeout=60s
  EXTRA=(-f examples/local-cluster.yaml)
fi
"${DPS[@]}" doctor || true

step "submit a batch job and an interactive job"
"${DPS[@]}" submit examples/batch-job.json "${EXTRA[@]}"
# The interactive job needs the user's JupyterLab password in its secrets; make a random one
# here (it goes into the per-job Kubernetes Secret only, and is never printed).
INTERACTIVE_JOB="$(mktemp)"
trap 'rm -f "$INTERACTIVE_JOB"; cleanup_cluster' EXIT
"$ROOT/.venv/bin/python" - examples/interactive-job.json "$INTERACTIVE_JOB" <<'PY'
import json, secrets, sys
data = json.load(open(sys.argv[1]))
params = next(iter(data.values()))
params["secrets"]["jupyter"] = json.dumps({"username": "demo", "password": secrets.token_urlsafe(18)})
with open(sys.argv[2], "w") as out:
    json.dump(data, out)
PY
"${DPS[@]}" submit "$INTERACTIVE_JOB" "${EXTRA[@]}"

step "following both sessions until they end"
"${DPS[@]}" status --watch --timeout 600 dask-5000000001 dask-5000000002

step "final state, addresses and phase timings"
"${DPS[@]}" status dask-5000000001 dask-5000000002
"${DPS[@]}" status dask-5000000001 dask-5000000002 -o json

step "sweep: uninstall, clean up, verify"
"${DPS[@]}" delete dask-5000000001 dask-5000000002

step "what is left in $NAMESPACE with the session label (nothing expected)"
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
