#!/bin/sh
# jupyterlab-start: JupyterLab's entry point. Writes the server's private configuration (the
# hashed password, no token, the dashboard's proxy entry), presets dask-labextension to the
# session's proxied dashboard, then execs `jupyter lab` with the container's args.
#
# Positional arguments (templates/jupyterlab.yaml): $1 the source of files/jupyterlab-config.py,
# $2 the source of files/dashboard-forwarder.py, then jupyter lab's own arguments. Neither source
# holds a secret: the password is read from its file by the config script, and only its hash is
# written, into a 0600 file in a 0700 directory of the lab's home (an emptyDir), rewritten at
# every start so that a container restart picks up nothing stale.
#
# The dask-labextension setting is the user's own (written once into the empty home, never over
# a file the user changed): it opens the dashboard of this session's scheduler through
# jupyter-server-proxy, behind the same login as the lab.
#
# Environment (set by templates/jupyterlab.yaml):
#   HOME                            the lab's home (an emptyDir)
#   DPS_JUPYTER_PASSWORD_FILE       the password file from the per-job Secret (read by the config script)
#   DPS_DASHBOARD_TARGET            <scheduler-host>:<dashboard-port>, for the forwarder
#   DPS_DASHBOARD_PROXY_NAME        the dashboard's path under the lab's base URL
#   DPS_DASK_LABEXTENSION_SETTINGS  the settings JSON (defaultURL: the proxied dashboard)
set -eu
config_py=$1
forwarder_py=$2
shift 2

umask 077
private="$HOME/.dask-panda-session"
mkdir -p "$private"
chmod 0700 "$private"
printf '%s\n' "$forwarder_py" > "$private/dashboard-forwarder.py"
python -c "$config_py" "$private/jupyter_server_config.json" "$private/dashboard-forwarder.py"

umask 022
d="$HOME/.jupyter/lab/user-settings/dask-labextension"
mkdir -p "$d"
if [ ! -e "$d/plugin.jupyterlab-settings" ]; then
  printf '%s\n' "$DPS_DASK_LABEXTENSION_SETTINGS" > "$d/plugin.jupyterlab-settings"
fi
exec jupyter lab --config="$private/jupyter_server_config.json" "$@"
