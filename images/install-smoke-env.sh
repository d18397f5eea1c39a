#!/usr/bin/env bash
# Create the smoke tier's environment: a venv with exactly the pinned versions of
# images/versions.env that the chart's container commands need (dask, distributed, bokeh, numpy,
# pandas, lz4, msgpack, cloudpickle, tornado, toolz, jupyter-server, jupyterlab,
# jupyter-server-proxy, dask-labextension).
#
# Why: the smoke tier runs the scheduler, worker, gate and JupyterLab commands the chart renders
# as local processes; they must run with the versions the images carry, or a green smoke tier
# would prove nothing about the images. pyarrow, the pilot and the rucio clients are left out:
# no smoke test runs them (the pilot would talk to the real PanDA server).
#
# usage: PYTHON=python3.11 images/install-smoke-env.sh <venv-dir>
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSIONS="$HERE/versions.env"
PYTHON="${PYTHON:-python3.11}"

die() { printf 'install-smoke-env: error: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 <venv-dir>"
venv="$1"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=...)"

# Read versions.env without sourcing it (it is data, not a script).
declare -A v=()
while IFS= read -r line || [[ -n "$line" ]]; do
  [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
  [[ "$line" =~ ^([A-Z][A-Z0-9_]*)=([^[:space:]]+)$ ]] || die "bad line in versions.env: $line"
  v["${BASH_REMATCH[1]}"]="${BASH_REMATCH[2]}"
done < "$VERSIONS"
need() { [[ -n "${v[$1]:-}" ]] || die "$1 is missing in versions.env"; printf '%s' "${v[$1]}"; }

# The interpreter must be the pinned minor version, or the smoke tier would test another Python.
want_py="$(need PYTHON_VERSION)"
have_py="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$have_py" == "$want_py" ]] || die "$PYTHON is Python $have_py, versions.env pins PYTHON_VERSION=$want_py"

requirements=(
  "dask==$(need DASK_VERSION)"
  "distributed==$(need DISTRIBUTED_VERSION)"
  "bokeh==$(need BOKEH_VERSION)"
  "numpy==$(need NUMPY_VERSION)"
  "pandas==$(need PANDAS_VERSION)"
  "lz4==$(need LZ4_VERSION)"
  "msgpack==$(need MSGPACK_VERSION)"
  "cloudpickle==$(need CLOUDPICKLE_VERSION)"
  "tornado==$(need TORNADO_VERSION)"
  "toolz==$(need TOOLZ_VERSION)"
  "jupyter-server==$(need JUPYTER_SERVER_VERSION)"
  "jupyterlab==$(need JUPYTERLAB_VERSION)"
  "jupyter-server-proxy==$(need JUPYTER_SERVER_PROXY_VERSION)"
  "dask-labextension==$(need DASK_LABEXTENSION_VERSION)"
)

[[ -x "$venv/bin/python" ]] || "$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
"$venv/bin/python" -m pip check
printf 'install-smoke-env: %s ready (Python %s, dask %s, distributed %s, jupyterlab %s)\n' \
  "$venv" "$have_py" "$(need DASK_VERSION)" "$(need DISTRIBUTED_VERSION)" "$(need JUPYTERLAB_VERSION)" >&2
