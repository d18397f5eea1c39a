#!/bin/sh
# Start PanDA pilot 3 in pod mode from the pilot env contract (PILOT_* variables).
#
# Why a script: the pilot takes its settings as arguments, while Harvester and the chart speak
# env vars; this is the one place that maps one onto the other. Arguments given to the container
# (e.g. `-d` for debug logging) are appended to the pilot's command line.
#
# The pilot runs under pilot-wrapper.sh (the chart's files/pilot-wrapper.sh, the same file), so the
# container's exit code follows the job: the payload's exit code (or the pilot's own non-zero one)
# when the job failed, 0 when it finished; SIGTERM reaches the pilot for its graceful end.
set -eu

: "${PILOT_WORKFLOW:?PILOT_WORKFLOW is not set}"
: "${PILOT_JOB_LABEL:?PILOT_JOB_LABEL is not set}"
: "${PILOT_QUEUE:?PILOT_QUEUE is not set}"
: "${PILOT_WORKDIR:?PILOT_WORKDIR is not set}"
: "${PILOT_RUN_DIR:?PILOT_RUN_DIR is not set}"
: "${PILOT_USER:?PILOT_USER is not set}"
: "${PILOT_PANDA_SERVER:?PILOT_PANDA_SERVER is not set}"
: "${PILOT_LIFETIME:?PILOT_LIFETIME is not set}"
: "${PILOT_LEASETIME:?PILOT_LEASETIME is not set}"
: "${PANDA_PILOT_SCRIPT:=/opt/pilot3/pilot.py}"

# Two directories: PILOT_RUN_DIR is the pilot's own (its --workdir and start directory, where it
# looks for pandaJobData.out), private to the pilot so that no session component can rewrite the
# definition or plant files there; PILOT_WORKDIR is the data directory shared with the session,
# where the stager workflow moves the staged inputs.
mkdir -p "$PILOT_RUN_DIR"
cd "$PILOT_RUN_DIR"

printf 'pilot-entrypoint: workflow=%s queue=%s label=%s rundir=%s workdir=%s server=%s\n' \
  "$PILOT_WORKFLOW" "$PILOT_QUEUE" "$PILOT_JOB_LABEL" "$PILOT_RUN_DIR" "$PILOT_WORKDIR" "$PILOT_PANDA_SERVER"

exec pilot-wrapper.sh python3 "$PANDA_PILOT_SCRIPT" \
  --pod \
  --noproxyverification \
  -w "$PILOT_WORKFLOW" \
  -j "$PILOT_JOB_LABEL" \
  -q "$PILOT_QUEUE" \
  --workdir "$PILOT_RUN_DIR" \
  --pilot-user "$PILOT_USER" \
  --url "$PILOT_PANDA_SERVER" \
  --lifetime "$PILOT_LIFETIME" \
  --leasetime "$PILOT_LEASETIME" \
  --harvester-submit-mode PUSH \
  "$@"
