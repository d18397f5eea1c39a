#!/bin/sh
# jupyterlab-start: JupyterLab's entry point. Presets dask-labextension to the session's proxied
# dashboard, then execs `jupyter lab` with the container's args.
#
# The setting is the user's own (written once into the empty home, never over a file the user
# changed): dask-labextension then opens the dashboard of this session's scheduler through
# jupyter-server-proxy, behind the same login as the lab.
#
# Environment (set by templates/jupyterlab.yaml):
#   HOME                            the lab's home (an emptyDir)
#   DPS_DASK_LABEXTENSION_SETTINGS  the settings JSON (defaultURL: the proxied dashboard)
set -eu
d="$HOME/.jupyter/lab/user-settings/dask-labextension"
mkdir -p "$d"
if [ ! -e "$d/plugin.jupyterlab-settings" ]; then
  printf '%s\n' "$DPS_DASK_LABEXTENSION_SETTINGS" > "$d/plugin.jupyterlab-settings"
fi
exec jupyter lab "$@"
