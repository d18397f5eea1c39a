#!/usr/bin/env bash
# A real Kubernetes API on this machine, for the `cluster` test tier.
#
# The control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) is built from the Go module proxy; nodes and the pod
# lifecycle are simulated by kwok; kwokctl (--runtime binary) runs it all on
# 127.0.0.1. See scripts/cluster/README.md for the background.
#
# Usage: scripts/test-cluster.sh build|up|down|status|env
#        scripts/test-cluster.sh kill|start|restart COMPONENT
#        scripts/test-cluster.sh heal
#
#   build   build the binaries into a version-keyed cache outside the repo
#           (skipped when they exist and report the pinned versions)
#   up      build if needed, then start the cluster (idempotent)
#   down    stop every process `up` started and remove the state directory
#   status  say whether the cluster is up, and the versions
#   env     print `export KUBECONFIG=... PATH=...` for eval
#   kill    SIGKILL one control-plane component (kube-apiserver, etcd,
#           kube-controller-manager, kube-scheduler, kwok-controller) of a
#           running cluster, keeping its command line for `start` (the
#           `faults` test tier uses this to take the API server away)
#   start   start a component killed by `kill` again, exactly as kwokctl
#           started it (same command line, environment, working directory
#           and log file); for kube-apiserver, wait until /readyz answers
#   restart kill, then start, then heal
#   heal    start every component recorded by `kill` that is not running
#           (a controller may exit while the API server is away)
#
# Environment:
#   DPS_CACHE_DIR      cache root (default ${XDG_CACHE_HOME:-~/.cache}/dask-panda-session)
#   DPS_CLUSTER_STATE  state directory (default /tmp/dask-panda-session-cluster)
#   DPS_TOOLS_BIN      where kubectl lives (default <repo>/.tools/bin)
#   DPS_NODES          number of kwok nodes (default 2)

# Functions run through run_logged/wait_for are invoked indirectly, and the
# single-quoted bash -c / printf bodies are expanded later on purpose.
# shellcheck disable=SC2329,SC2016
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
# and the elapsed seconds on the terminal every 15 s so a cold build (about
# 8 min on 2 cores, mostly kube-apiserver) is visibly alive.
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
  stages_ok && kube_ok kube-apiserver && kube_ok kube-controller-manager && kube_ok kube-scheduler &&
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
    awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | while read -r m; do
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
  if ! kwok_ok kwok || ! kwok_ok kwokctl; then die "kwok/kwokctl do not report v$KWOK_VERSION"; fi
}

# kwokctl drops all its default stages as soon as the config carries any
# Stage, so the defaults we rely on are taken from the kwok module itself and
# kept next to the binaries (same version key): node-initialize and
# node-heartbeat-with-lease for the nodes; pod-ready, pod-complete (pods
# owned by a Job succeed) and pod-delete (deleted pods go away, so namespaces
# can be deleted) for the pods.
readonly DEFAULT_STAGES=(
  node/fast/node-initialize.yaml
  node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/fast/pod-ready.yaml
  pod/fast/pod-complete.yaml
  pod/fast/pod-delete.yaml
)

stages_ok() {
  local f
  for f in "${DEFAULT_STAGES[@]}"; do [[ -s $CACHE/kwok-stages/${f##*/} ]] || return 1; done
}

copy_default_stages() {
  stages_ok && return
  local dir f
  dir=$(GOFLAGS=-buildvcs=false go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  [[ -d $dir/kustomize/stage ]] || die "kwok v$KWOK_VERSION module has no kustomize/stage"
  mkdir -p "$CACHE/kwok-stages"
  for f in "${DEFAULT_STAGES[@]}"; do install -m 0644 "$dir/kustomize/stage/$f" "$CACHE/kwok-stages/"; done
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
  copy_default_stages
  log "build complete in $((SECONDS - start))s"
  (cd "$BIN" && for b in kube-apiserver kube-controller-manager kube-scheduler etcd kwok kwokctl; do
    printf '%s: %s\n' "$b" "$("./$b" --version 2>&1 | head -n 1)"; done) >"$BIN/VERSIONS"
  (cd "$BIN" && sha256sum kube-apiserver kube-controller-manager kube-scheduler etcd kwok kwokctl >SHA256SUMS)
}

# --- cluster lifecycle -----------------------------------------------------

readonly KWOK_CLUSTER_DIR=$KWOK_WORKDIR/clusters/$CLUSTER_NAME
# Our own copy of the pids kwokctl recorded: `down` still has it when
# kwokctl's directory is gone or kwokctl itself fails.
readonly PID_RECORD=$STATE/pids

kubectl_bin() {
  [[ -x $TOOLS_BIN/kubectl ]] ||
    die "no kubectl in $TOOLS_BIN (run scripts/bootstrap.sh, or set DPS_TOOLS_BIN)"
  printf '%s' "$TOOLS_BIN/kubectl"
}

kc() { "$(kubectl_bin)" --kubeconfig "$KUBECONFIG_PATH" --request-timeout=10s "$@"; }

# Healthy = the apiserver answers /readyz, reports the pinned version, and
# enough nodes are Ready. Cheap enough to make `up` idempotent.
cluster_healthy() {
  [[ -s $KUBECONFIG_PATH ]] || return 1
  [[ $(kc get --raw /readyz 2>/dev/null) == ok ]] || return 1
  kc get --raw /version 2>/dev/null | grep -q "\"gitVersion\": *\"v$KUBE_VERSION\"" || return 1
  local ready
  ready=$(kc get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c '^True$' || true)
  (( ready >= NODES ))
}

render_config() {
  local out=$STATE/kwokctl.yaml f
  sed -e "s|@BIN@|$BIN|g" -e "s|@KUBECTL@|$(kubectl_bin)|g" \
    -e "s|@KUBE_VERSION@|$KUBE_VERSION|g" -e "s|@ETCD_VERSION@|$ETCD_VERSION|g" \
    -e "s|@KWOK_VERSION@|$KWOK_VERSION|g" "$CLUSTER_SRC/kwokctl.yaml.in" >"$out"
  for f in "$CACHE"/kwok-stages/*.yaml "$CLUSTER_SRC"/stages/*.yaml; do
    printf -- '---\n# from %s\n' "${f##*/}" >>"$out"
    cat "$f" >>"$out"
  done
}

record_pids() {
  mkdir -p "$PID_RECORD"
  cp "$KWOK_CLUSTER_DIR"/pids/*.pid "$PID_RECORD"/ 2>/dev/null || true
}

wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || die "timed out after ${timeout}s waiting for $what"
    sleep 1
  done
}

wait_healthy() {
  local deadline=$((SECONDS + $1))
  until cluster_healthy; do
    (( SECONDS < deadline )) || return 1
    sleep 2
  done
}

sa_exists() { kc -n default get serviceaccount default; }
readyz_ok() { [[ $(kc get --raw /readyz) == ok ]]; }

etcd_url() {
  grep -o 'listen-client-urls=http://127\.0\.0\.1:[0-9]*' "$KWOK_CLUSTER_DIR/kwok.yaml" 2>/dev/null |
    head -n 1 | cut -d= -f2
}

# Serialise up/down of one state dir (parallel test runs, a developer and CI).
# The lock file sits next to the state dir so `down` can remove the latter.
lock_state() {
  [[ -n ${LOCKED:-} ]] && return
  mkdir -p "$(dirname "$STATE")"
  exec 9>"$STATE.lock"
  flock -w 600 9 || die "could not lock $STATE.lock within 600s"
  LOCKED=1
}

# The cluster processes kwokctl starts outlive it and inherit its open file
# descriptors: close the lock's fd 9, or they would hold the lock forever.
kwokctl_run() { timeout 300 kwokctl --name "$CLUSTER_NAME" "$@" 9>&-; }

cmd_up() {
  local start=$SECONDS
  lock_state
  if cluster_healthy; then
    log "cluster $CLUSTER_NAME already up ($KUBECONFIG_PATH)"; cmd_env; return
  fi
  kubectl_bin >/dev/null
  if [[ -e $STATE ]]; then
    # Processes alive: maybe just slow under load (other test runs use the
    # same cluster); give it a minute before treating it as broken.
    if [[ -n $(cluster_pids) ]]; then
      log "cluster processes running but not healthy yet; waiting up to 60s"
      if wait_healthy 60; then
        log "cluster $CLUSTER_NAME up ($KUBECONFIG_PATH)"; cmd_env; return
      fi
    fi
    log "stale or broken state in $STATE: cleaning up first"
    cmd_down
  fi
  cmd_build
  mkdir -p "$STATE"
  render_config
  log "starting cluster $CLUSTER_NAME (state: $STATE, log: $STATE/up.log)"
  if ! kwokctl_run --config "$STATE/kwokctl.yaml" create cluster \
      --kubeconfig "$KUBECONFIG_PATH" --wait 180s >>"$STATE/up.log" 2>&1; then
    record_pids
    tail -n 30 "$STATE/up.log" >&2
    die "kwokctl create cluster failed; logs in $KWOK_CLUSTER_DIR/logs (run '$0 down' to clean up)"
  fi
  record_pids
  kwokctl_run scale node --replicas "$NODES" >>"$STATE/up.log" 2>&1 ||
    die "kwokctl scale node failed (see $STATE/up.log)"
  wait_for "/readyz" 60 readyz_ok
  kc get --raw /version | grep -q "\"gitVersion\": *\"v$KUBE_VERSION\"" ||
    die "/version does not report v$KUBE_VERSION"
  # The ServiceAccount is made by kube-controller-manager: proves it runs.
  wait_for "ServiceAccount default/default" 90 sa_exists
  kc wait --for=condition=Ready node --all --timeout=90s >>"$STATE/up.log" 2>&1 ||
    die "nodes not Ready (see $STATE/up.log)"
  # kwok's node template has no ephemeral storage, and every container of the chart requests
  # some: give each simulated node what a real one reports, or every session pod stays Pending.
  local node
  for node in $(kc get nodes -o name); do
    kc patch "$node" --subresource=status --type=merge \
      -p '{"status":{"capacity":{"ephemeral-storage":"1Ti"},"allocatable":{"ephemeral-storage":"1Ti"}}}' \
      >>"$STATE/up.log" 2>&1 || die "cannot give $node ephemeral storage (see $STATE/up.log)"
  done
  cluster_healthy || die "cluster not healthy after start"
  log "cluster $CLUSTER_NAME up in $((SECONDS - start))s"
  cmd_env
}

# Kill one recorded pid, but only if it is still one of our binaries (a pid
# may have been reused by an unrelated process since it was recorded).
kill_recorded_pid() {
  local pid=$1 exe
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 0
  [[ $exe == "$BIN"/* ]] || return 0
  log "killing leftover pid $pid ($exe)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
}

ours_alive() { [[ $(readlink "/proc/$1/exe" 2>/dev/null) == "$BIN"/* ]]; }

# Live pids of this cluster: those kwokctl recorded (and our copy of them), plus
# any process running one of our binaries out of this state dir, which
# covers a crash between starting a component and recording its pid.
cluster_pids() {
  local p exe
  {
    # pid files carry no trailing newline; awk 1 adds one per file
    awk 1 "$PID_RECORD"/*.pid "$KWOK_CLUSTER_DIR"/pids/*.pid 2>/dev/null || true
    for p in /proc/[0-9]*; do
      exe=$(readlink "$p/exe" 2>/dev/null) || continue
      [[ $exe == "$BIN"/* ]] || continue
      if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$STATE/"; then echo "${p#/proc/}"; fi
    done
  } | { grep -E '^[0-9]+$' || true; } | sort -un | while read -r p; do
    if ours_alive "$p"; then echo "$p"; fi
  done
}

cmd_down() {
  local start=$SECONDS pids pid out alive=()
  lock_state
  pids=$(cluster_pids)
  if [[ -x $BIN/kwokctl && -d $KWOK_CLUSTER_DIR ]]; then
    if ! out=$(kwokctl_run delete cluster 2>&1); then
      printf '%s\n' "$out" | tail -n 20 >&2
      log "kwokctl delete cluster failed; falling back to the recorded pids"
    fi
  fi
  # etcd last: an apiserver whose etcd is gone hangs in its shutdown.
  for pid in $pids; do [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */etcd ]] || kill_recorded_pid "$pid"; done
  for pid in $pids; do kill_recorded_pid "$pid"; done
  for pid in $pids $(cluster_pids); do
    if ours_alive "$pid"; then alive+=("$pid"); fi
  done
  (( ${#alive[@]} == 0 )) || die "processes still running: ${alive[*]}"
  rm -rf "$STATE"
  log "cluster $CLUSTER_NAME down in $((SECONDS - start))s (no process of ours left)"
}

# --- one component: kill and start again (fault injection) -------------------

# kwokctl (--runtime binary) starts every component once, detached; it has no
# command to start a single one again. `kill` records what the kernel knows of
# the running process (argv, environment, working directory) before the
# SIGKILL, and `start` execs exactly that again, detached the same way.
readonly COMPONENT_RECORD=$STATE/components
readonly COMPONENTS=(kube-apiserver etcd kube-controller-manager kube-scheduler kwok-controller)

# kwokctl names the kwok controller kwok-controller; its binary is kwok.
component_binary() { if [[ $1 == kwok-controller ]]; then echo kwok; else echo "$1"; fi; }

check_component() {
  local c
  for c in "${COMPONENTS[@]}"; do [[ $c == "$1" ]] && return 0; done
  die "unknown component '${1:-}' (one of: ${COMPONENTS[*]})"
}

# True if pid runs the binary exe out of this state dir (not another cluster's same binary).
is_component() {
  [[ $(readlink "/proc/$1/exe" 2>/dev/null) == "$2" ]] &&
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$STATE/"
}

# The live pid of one component of this cluster, if any: from the pid files (kwokctl's, ours;
# `start` rewrites both), else one pass over /proc by executable (cheap: a single find).
component_pid() {
  local exe p
  exe=$BIN/$(component_binary "$1")
  for p in $(awk 1 "$KWOK_CLUSTER_DIR/pids/$1.pid" "$PID_RECORD/$1.pid" 2>/dev/null) \
      $(find /proc -mindepth 2 -maxdepth 2 -path '/proc/[0-9]*/exe' -lname "$exe" 2>/dev/null | cut -d/ -f3); do
    [[ $p =~ ^[0-9]+$ ]] || continue
    if is_component "$p" "$exe"; then echo "$p"; return 0; fi
  done
  return 1
}

# What the kernel knows of a running component: enough to exec it again.
record_component() {
  local name=$1 pid=$2 dir=$COMPONENT_RECORD/$1
  mkdir -p "$dir"
  cp "/proc/$pid/cmdline" "$dir/cmdline.tmp" && mv "$dir/cmdline.tmp" "$dir/cmdline"
  cp "/proc/$pid/environ" "$dir/environ"
  readlink "/proc/$pid/cwd" >"$dir/cwd"
}

cmd_kill() {
  local name=${1:-} pid c p
  check_component "$name"
  lock_state
  pid=$(component_pid "$name") || die "$name of $STATE is not running"
  # Every component is recorded, not only the victim: a controller that gives up while the
  # API server is away (lost leader election) can then be brought back by `heal`.
  for c in "${COMPONENTS[@]}"; do
    if p=$(component_pid "$c"); then record_component "$c" "$p"; fi
  done
  kill -9 "$pid"
  for _ in $(seq 1 50); do
    ours_alive "$pid" || { log "killed $name (pid $pid) with SIGKILL"; return 0; }
    sleep 0.1
  done
  die "$name (pid $pid) still alive 5 s after SIGKILL"
}

# Start every recorded component that is not running (what a supervisor would do).
cmd_heal() {
  local c
  lock_state
  for c in "${COMPONENTS[@]}"; do
    [[ -s $COMPONENT_RECORD/$c/cmdline ]] || continue
    if ! component_pid "$c" >/dev/null; then cmd_start "$c"; fi
  done
  wait_healthy 90 || die "cluster not healthy after heal"
}

cmd_start() {
  local name=${1:-} pid dir logfile cwd argv=() envv=()
  check_component "$name"
  lock_state
  dir=$COMPONENT_RECORD/$name
  if pid=$(component_pid "$name"); then
    log "$name already running (pid $pid)"
  else
    [[ -s $dir/cmdline ]] || die "no recorded command line for $name: only a component stopped by '$0 kill' can be started"
    mapfile -d '' argv <"$dir/cmdline"
    mapfile -d '' envv <"$dir/environ"
    cwd=$(cat "$dir/cwd")
    logfile=$KWOK_CLUSTER_DIR/logs/$name.log
    mkdir -p "${logfile%/*}"
    printf '\n# restarted by %s start at %s\n' "${0##*/}" "$(date -u +%FT%TZ)" >>"$logfile"
    # New session, no terminal, no inherited pipe or lock fd: like kwokctl, the component
    # outlives this script and never keeps the caller's output open.
    (cd "$cwd" && exec env -i "${envv[@]}" setsid "${argv[@]}" <>/dev/null >>"$logfile" 2>&1 9>&-) &
    # The subshell execs env, setsid (no fork: not a group leader) and the binary: same pid.
    pid=$!
    for _ in $(seq 1 50); do
      is_component "$pid" "$BIN/$(component_binary "$name")" && break
      sleep 0.1
    done
    is_component "$pid" "$BIN/$(component_binary "$name")" || die "$name did not start (see $logfile)"
    mkdir -p "$KWOK_CLUSTER_DIR/pids" "$PID_RECORD"
    printf '%s' "$pid" >"$KWOK_CLUSTER_DIR/pids/$name.pid"
    printf '%s' "$pid" >"$PID_RECORD/$name.pid"
    log "started $name (pid $pid)"
  fi
  if [[ $name == kube-apiserver || $name == etcd ]]; then
    wait_for "/readyz after starting $name" 90 readyz_ok
  fi
}

cmd_status() {
  if cluster_healthy; then
    local server
    server=$(kc get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
    echo "status: up"
    echo "kubeconfig: $KUBECONFIG_PATH"
    echo "kubectl: $(kubectl_bin)"
    echo "kube-apiserver: $server"
    echo "etcd: $("$BIN/etcd" --version | sed -n 's/^etcd Version: //p') ($(etcd_url))"
    echo "kwok: v$KWOK_VERSION"
    echo "nodes: $(kc get nodes -o name | tr '\n' ' ')"
    echo "pids: $(cluster_pids | tr '\n' ' ')"
  else
    echo "status: down"
    [[ -e $STATE ]] && echo "state dir present but cluster not healthy: $STATE"
    if binaries_ok; then echo "binaries: cached in $BIN"; else echo "binaries: not built ($0 build)"; fi
    return 1
  fi
}

cmd_env() {
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_PATH"
  printf 'export PATH=%q:%q:"$PATH"\n' "$TOOLS_BIN" "$BIN"
}

# The header comment of this file is the usage text.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2; }

main() {
  local cmd=${1:-}
  case $cmd in
    build) cmd_build ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    kill) cmd_kill "${2:-}" ;;
    start) cmd_start "${2:-}" ;;
    restart) cmd_kill "${2:-}"; cmd_start "${2:-}"; cmd_heal ;;
    heal) cmd_heal ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"; exit $?  # one line: a build may run while this file is edited
