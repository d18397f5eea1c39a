#!/bin/sh
# pilot-wrapper: run PanDA pilot 3 for one job and exit as the job ended.
#
# Usage: pilot-wrapper.sh COMMAND [ARG...]   e.g. pilot-wrapper.sh python3 /opt/pilot3/pilot.py --pod ...
#
# Why: the pinned pilot reports a failed payload to PanDA (state=failed, transExitCode=N) but exits
# 0 itself, so its pod would Succeed and the orchestrator and Harvester would call the job
# finished. This wrapper makes the container's exit code follow the job:
#   - the job finished                       -> 0
#   - the job failed (or is holding)         -> the payload's exit code (1..255), else the pilot's
#                                               own non-zero exit code, else 1
#   - no final update was made               -> the pilot's own exit code
#   - the stager workflow (-w stager, interactive sessions) -> the pilot's own exit code: there
#     the pilot only stages the inputs, the session is JupyterLab's, and the pinned stager pilot
#     reports a job without input files as failed while the session goes on
# The final state is what the pilot itself last sent to PanDA: it writes every updateJob to
# curl_updateJob_<PandaID>.config (lines data="key=value", URL-encoded) in its main work
# directory <--workdir>/PanDA_Pilot3_<pid>_<time>. When that update carries transExitCode=0 for a
# failed job (the pinned pilot can send its final update before it has read the payload's exit
# code), the payload's code comes from the pilot's log line "main payload execution returned
# non-zero exit code: N" in its pilotlog.txt (that directory's or its job directory's).
#
# The pilot runs with --cleanup False so that those files survive its end; this wrapper reads them
# and then removes the pilot's main work directory itself, so the private run directory is left
# as clean as the pilot would leave it. SIGTERM and SIGINT are forwarded to the pilot (its graceful
# end: final update, log stage-out), and the wrapper waits for it.
#
# Kept free of command substitution and of the double dollar sign: the chart passes this text in
# the container's command, where Kubernetes expands references to environment variables written
# as a dollar sign and a name in parentheses, and turns a doubled dollar sign into one.
# The pilot image carries the same file (images/pilot/pilot-wrapper.sh, kept identical).
set -u

if [ "$#" -eq 0 ]; then
  echo "pilot-wrapper: no pilot command given" >&2
  exit 2
fi

# the pilot's --workdir (where it makes its main work directory; its start directory otherwise)
# and its workflow (-w/--workflow)
workdir=.
workflow=generic
previous=
for arg in "$@"; do
  case "$previous" in
    --workdir) workdir=$arg ;;
    -w | --workflow) workflow=$arg ;;
  esac
  case "$arg" in
    --workdir=*) workdir=${arg#--workdir=} ;;
    --workflow=*) workflow=${arg#--workflow=} ;;
  esac
  previous=$arg
done

"$@" --cleanup False &
pilot=$!
trap 'kill -TERM "$pilot" 2>/dev/null' TERM
trap 'kill -INT "$pilot" 2>/dev/null' INT

# wait until the pilot has really ended: a trapped signal interrupts wait while it still runs
while :; do
  wait "$pilot"
  pilot_rc=$?
  kill -0 "$pilot" 2>/dev/null || break
done
trap - TERM INT

state=
trans_exit_code=
log_exit_code=
for home in "$workdir"/PanDA_Pilot3_"$pilot"_*; do
  [ -d "$home" ] || continue
  for update in "$home"/curl_updateJob_*.config; do
    [ -f "$update" ] || continue
    while IFS= read -r line || [ -n "$line" ]; do
      case "$line" in
        'data="state='*) state=${line#data=\"state=} && state=${state%\"} ;;
        'data="transExitCode='*) trans_exit_code=${line#data=\"transExitCode=} && trans_exit_code=${trans_exit_code%\"} ;;
      esac
    done <"$update"
  done
  for log in "$home"/pilotlog.txt "$home"/PanDA_Pilot-*/pilotlog.txt; do
    [ -f "$log" ] || continue
    while IFS= read -r line || [ -n "$line" ]; do
      case "$line" in
        *'main payload execution returned non-zero exit code: '*) log_exit_code=${line##*exit code: } ;;
      esac
    done <"$log"
  done
  rm -rf -- "$home"
done

if [ "$workflow" = stager ]; then
  echo "pilot-wrapper: stager workflow, job state ${state:-unknown}: the pilot's exit code $pilot_rc" >&2
  exit "$pilot_rc"
fi

case "$state" in
  finished)
    echo "pilot-wrapper: the job finished (pilot exit code $pilot_rc): exit 0" >&2
    exit 0
    ;;
  failed | holding)
    code=
    for candidate in "$trans_exit_code" "$log_exit_code" "$pilot_rc"; do
      case "$candidate" in
        '' | *[!0-9]*) continue ;;
      esac
      if [ "$candidate" -ge 1 ] && [ "$candidate" -le 255 ]; then
        code=$candidate
        break
      fi
    done
    [ -n "$code" ] || code=1
    echo "pilot-wrapper: the job ended $state (payload exit code ${trans_exit_code:-?}/${log_exit_code:-?}, pilot exit code $pilot_rc): exit $code" >&2
    exit "$code"
    ;;
  *)
    echo "pilot-wrapper: no final job state from the pilot: its exit code $pilot_rc" >&2
    exit "$pilot_rc"
    ;;
esac
