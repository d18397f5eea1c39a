#!/bin/sh
# prepare-job-dir: the pre-install hook. Lays out the job's own directory on the shared volume and
# places the job definition, checked against the release's checksum.
#
# The directory is <PandaID>-<attempt>, mounted at /job (a subPath: this hook sees nothing else):
#   data/   shared with the session (scheduler, workers, JupyterLab, the pilot's PILOT_WORKDIR)
#   pilot/  private to the pilot, holding its pandaJobData.out
# The definition comes read-only from the per-job Secret at
# /etc/dask-panda-session/job/pandaJobData.out; it never travels in values.
#
# Environment (set by templates/hooks.yaml):
#   JOB_DIR_NAME           <PandaID>-<attempt>, checked again here before any path is built from it
#   JOB_SECRET             the per-job Secret's name, for messages
#   JOB_DEFINITION_SHA256  job.definitionSha256, the definition's expected sha256
#
# Exit 2 on a refusal (each names what is wrong); the hook is not retried, since a second try
# would find its own half-made directory and refuse it.
#
# The chart passes this text in the container's args, where Kubernetes expands a dollar sign
# followed by a parenthesised name of a container variable: no command substitution here may
# consist of such a name alone.
set -eu
case "$JOB_DIR_NAME" in
  ''|-*|*-|*[!0-9-]*) echo "refusing: JOB_DIR_NAME '$JOB_DIR_NAME' is not <PandaID>-<attempt>" >&2; exit 2 ;;
esac
umask 077
job=/job
definition=/etc/dask-panda-session/job/pandaJobData.out
case "$JOB_DEFINITION_SHA256" in
  ''|*[!0-9a-f]*) echo "refusing: job.definitionSha256 '$JOB_DEFINITION_SHA256' is not a sha256" >&2; exit 2 ;;
esac
if [ ! -f "$definition" ]; then echo "refusing: the Secret $JOB_SECRET has no key pandaJobData.out" >&2; exit 2; fi
sum=$(sha256sum < "$definition")
sum=${sum%% *}
if [ "$sum" != "$JOB_DEFINITION_SHA256" ]; then
  echo "refusing: pandaJobData.out of the Secret $JOB_SECRET has sha256 $sum, the release expects $JOB_DEFINITION_SHA256 (job.definitionSha256)" >&2
  exit 2
fi
# The job's own directory (subPath), made empty by the kubelet: anything already in
# it was left by someone else (an earlier install, a payload) and is not trusted.
if [ -n "$(ls -A "$job")" ]; then
  echo "refusing: the job directory $JOB_DIR_NAME is not empty (left by an earlier install of this release?); sweep the release to remove it" >&2
  exit 2
fi
chmod 2770 "$job" 2>/dev/null || true
if [ ! -w "$job" ]; then echo "refusing: the job directory $JOB_DIR_NAME is not writable by uid $(id -u)" >&2; exit 2; fi
# Fresh sub-directories made here (mkdir never follows a link), then the definition
# written without clobbering (set -C): no path of ours resolves through a symlink.
mkdir -m 0700 "$job/pilot"
mkdir -m 2770 "$job/data"
set -C
cat "$definition" > "$job/pilot/pandaJobData.out"
set +C
echo "prepared $JOB_DIR_NAME: data/ for the session, pilot/ with pandaJobData.out (sha256 $sum)"
