#!/bin/sh
# cleanup-job-dir: the pre-delete hook. Removes the job's directory from the shared volume.
#
# Guarded so that it can only ever remove /shared/<PandaID>-<attempt>: the name is checked, a
# symbolic link or a non-directory is refused, and permissions are restored first so that nothing
# a payload did (a read-only sub-directory) blocks the removal. A failure is a non-zero exit, so
# the uninstall reports it instead of leaving the directory behind silently.
#
# Environment (set by templates/hooks.yaml):
#   JOB_DIR_NAME  <PandaID>-<attempt>
# The jobs directory is mounted at /shared (removing an entry needs its parent).
#
# The chart passes this text in the container's args, where Kubernetes expands a dollar sign
# followed by a parenthesised name of a container variable: no command substitution here may
# consist of such a name alone.
set -eu
case "$JOB_DIR_NAME" in
  ''|-*|*-|*[!0-9-]*) echo "refusing: JOB_DIR_NAME '$JOB_DIR_NAME' is not <PandaID>-<attempt>" >&2; exit 2 ;;
esac
job_dir="/shared/$JOB_DIR_NAME"
if [ -L "$job_dir" ]; then echo "refusing: $job_dir is a symbolic link" >&2; exit 2; fi
if [ ! -e "$job_dir" ]; then echo "nothing to remove: $job_dir does not exist"; exit 0; fi
if [ ! -d "$job_dir" ]; then echo "refusing: $job_dir is not a directory" >&2; exit 2; fi
# A payload may have made a sub-directory read-only (chmod 0500): give the owner its
# rights back first. chmod -R does not follow the symbolic links it meets.
chmod -R u+rwX -- "$job_dir" 2>/dev/null || true
if ! rm -rf -- "$job_dir" || [ -e "$job_dir" ]; then
  echo "FAILED to remove $job_dir (left: $(find "$job_dir" 2>/dev/null | head -n 5 | tr '\n' ' '))" >&2
  exit 1
fi
echo "removed $job_dir"
