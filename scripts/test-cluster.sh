#!/usr/bin/env bash
# A real Kubernetes API on this machine, for the `cluster` test tier.
#
# The control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) is built from the Go module proxy; nodes and the pod
# lifecycle are simulated by kwok; kwokctl (--runtime binary) runs it all on
# 127.0.0.1. See shared/reference/test-cluster.md for the background.
#
# Usage: scripts/test-cluster.sh build|up|down|status|env
#
#   build   build the binaries into a version-keyed cache outside the repo
#           (skipped when they exist and report the pinned versions)
#   up      build if needed, then start the cluster (idempotent)
#   down    stop every process `up` started and remove the state directory
#   status  say whether the cluster is up, and the versions
#   env     print `export KUBECONFIG=... PATH=...` for eval
#
# Environment:
#   DPS_CACHE_DIR      cache root (default ${XDG_CACHE_HOME:-~/.cache}/dask-panda-session)
#   DPS_CLUSTER_STATE  state directory (default /tmp/dask-panda-session-cluster)
#   DPS_TOOLS_BIN      where kubectl lives (default <repo>/.tools/bin)
#   DPS_NODES          number of kwok nodes (default 2)
set -euo pipefail

# --- pinned versions -------------------------------------------------------
readonly KUBE_VERSION=1.35.4
readonly ETCD_VERSION=3.6.16
readonly KWOK_VERSION=0.8.0
readonly CLUSTER_NAME=dask-panda-session

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_DIR
readonly CLUSTER_SRC=$SCRIPT_DIR/cluster

CACHE_ROOT=${DPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dask-panda-session}
readonly CACHE=$CACHE_ROOT/cluster/k8s-$KUBE_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION
readonly BIN=$CACHE/bin
readonly BUILD_LOG=$CACHE/build.log
readonly STATE=${DPS_CLUSTER_STATE:-/tmp/dask-panda-session-cluster}
readonly KUBECONFIG_PATH=$STATE/kubeconfig
readonly TOOLS_BIN=${DPS_TOOLS_BIN:-$REPO_DIR/.tools/bin}
readonly NODES=${DPS_NODES:-2}

# The kwokctl work dir lives inside the state dir, so `down` removing the
# state dir removes everything kwokctl wrote (pids, PKI, etcd data, logs).
export KWOK_WORKDIR=$STATE/kwok
# Our kubectl (and the cluster binaries) first: /usr/bin/kubectl is an old
# version dispatcher and must never be picked up by kwokctl or by us.
export PATH=$TOOLS_BIN:$BIN:$PATH

log() { printf '[test-cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- build -------------------------------------------------------------------

# Run a long command with its output in the build log, printing the component
# and the elapsed seconds on the terminal every 15 s so a cold build (15-30
# min) is visibly alive.
run_logged() {
  local what=$1; shift
  local start=$SECONDS pid rc
  printf '\n=== %s: %s\n' "$what" "$*" >>"$BUILD_LOG"
  "$@" >>"$BUILD_LOG" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( (SECONDS - start) % 15 == 0 )); then
      log "building $what ... $((SECONDS - start))s"
    fi
  done
  rc=0; wait "$pid" || rc=$?
  if (( rc != 0 )); then
    tail -n 40 "$BUILD_LOG" >&2
    die "$what failed (exit $rc) after $((SECONDS - start))s; full log: $BUILD_LOG"
  fi
  log "built $what in $((SECONDS - start))s"
  printf '=== %s: done in %ss\n' "$what" "$((SECONDS - start))" >>"$BUILD_LOG"
}

# Each binary is checked by what it says about itself, so a half-finished or
# stale cache is rebuilt component by component.
kube_ok() { [[ -x $BIN/$1 ]] && "$BIN/$1" --version 2>/dev/null | grep -qx "Kubernetes v$KUBE_VERSION"; }
etcd_ok() { [[ -x $BIN/etcd ]] && "$BIN/etcd" --version 2>/dev/null | grep -qx "etcd Version: $ETCD_VERSION"; }
kwok_ok() { [[ -x $BIN/$1 ]] && "$BIN/$1" --version 2>/dev/null | grep -q "v$KWOK_VERSION"; }

binaries_ok() {
  kube_ok kube-apiserver && kube_ok kube-controller-manager && kube_ok kube-scheduler &&
    etcd_ok && kwok_ok kwok && kwok_ok kwokctl
}

go_env() {
  export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local
}

# -X stamps for both version packages, as upstream hack/lib/version.sh does;
# without them /version says v0.0.0-master and Helm's kubeVersion checks fail.
# The module proxy carries no git commit, so gitCommit stays empty; buildDate
# is the release's time from the proxy, which keeps the build reproducible.
kube_ldflags() {
  local build_date=$1 minor=${KUBE_VERSION#*.}
  minor=${minor%%.*}
  local flags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=${KUBE_VERSION%%.*}"
    flags+=" -X $pkg.gitMinor=$minor -X $pkg.gitCommit= -X $pkg.gitTreeState=clean"
    flags+=" -X $pkg.buildDate=$build_date"
  done
  printf '%s' "$flags"
}

# The wrapper module is generated in the cache: k8s.io/kubernetes requires its
# staging modules at v0.0.0 (resolved by replace lines to ./staging in its own
# repo, which do not apply to dependants), so every `k8s.io/<m> v0.0.0`
# require of k/k's go.mod gets a replace to the published v0.<minor>.<patch>.
prepare_kube_module() {
  local dir=$CACHE/src/kube gomod m
  rm -rf "$dir"; mkdir -p "$dir"
  cp -R "$CLUSTER_SRC/kube/cmd" "$dir/"
  (
    cd "$dir"
    go mod init dask-panda-session/cluster/kube
    go mod edit -go=1.25.0 -require="k8s.io/kubernetes@v$KUBE_VERSION"
    gomod=$(go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
    [[ -f $gomod ]] || { echo "no GoMod for k8s.io/kubernetes@v$KUBE_VERSION" >&2; exit 1; }
    for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod"); do
      go mod edit -replace="$m=$m@v0.${KUBE_VERSION#*.}"
    done
    go mod tidy
  )
}

build_kube() {
  local c build_date
  if kube_ok kube-apiserver && kube_ok kube-controller-manager && kube_ok kube-scheduler; then
    log "kube binaries v$KUBE_VERSION: cached"; return
  fi
  run_logged "kube wrapper module (go mod download + tidy)" prepare_kube_module
  build_date=$(cd "$CACHE/src/kube" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "k8s.io/kubernetes")
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    kube_ok "$c" && continue
    run_logged "$c" bash -c 'cd "$1" && go build -p 2 -trimpath -ldflags "$2" -o "$3" "./cmd/$4"' \
      _ "$CACHE/src/kube" "$(kube_ldflags "$build_date")" "$BIN/$c" "$c"
    kube_ok "$c" || die "$c does not report v$KUBE_VERSION"
  done
}

prepare_etcd_module() {
  local dir=$CACHE/src/etcd
  rm -rf "$dir"; mkdir -p "$dir"
  cp "$CLUSTER_SRC/etcd/main.go" "$dir/"
  (
    cd "$dir"
    go mod init dask-panda-session/cluster/etcd
    go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    go mod tidy
  )
}

build_etcd() {
  if etcd_ok; then log "etcd v$ETCD_VERSION: cached"; return; fi
  run_logged "etcd wrapper module" prepare_etcd_module
  # The etcd version is compiled into go.etcd.io/etcd/api/v3/version.
  run_logged etcd bash -c 'cd "$1" && go build -p 2 -trimpath -ldflags "-s -w" -o "$2" .' \
    _ "$CACHE/src/etcd" "$BIN/etcd"
  etcd_ok || die "etcd does not report $ETCD_VERSION"
}

build_kwok() {
  if kwok_ok kwok && kwok_ok kwokctl; then log "kwok v$KWOK_VERSION: cached"; return; fi
  # `go install pkg@version` builds outside any main module; -mod=mod does not
  # apply there, so GOFLAGS is cleared for this step only.
  run_logged "kwok + kwokctl" env GOFLAGS=-buildvcs=false GOBIN="$BIN" \
    go install -p 2 -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@v$KWOK_VERSION"
  kwok_ok kwok && kwok_ok kwokctl || die "kwok/kwokctl do not report v$KWOK_VERSION"
}

cmd_build() {
  if binaries_ok; then
    log "binaries cached in $BIN"; return
  fi
  command -v go >/dev/null || die "go is not installed and $BIN is incomplete"
  mkdir -p "$BIN"
  go_env
  local start=$SECONDS
  log "building into $BIN (log: $BUILD_LOG)"
  printf '\n##### build started %s (go: %s)\n' "$(date -u +%FT%TZ)" "$(go version)" >>"$BUILD_LOG"
  build_kube
  build_etcd
  build_kwok
  log "build complete in $((SECONDS - start))s"
  (cd "$BIN" && for b in kube-apiserver kube-controller-manager kube-scheduler etcd kwok kwokctl; do
    printf '%s: %s\n' "$b" "$("./$b" --version 2>&1 | head -n 1)"; done) >"$BIN/VERSIONS"
  (cd "$BIN" && sha256sum kube-apiserver kube-controller-manager kube-scheduler etcd kwok kwokctl >SHA256SUMS)
}

main() {
  local cmd=${1:-}
  case $cmd in
    build) cmd_build ;;
    *) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
