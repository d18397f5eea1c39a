"""User code the smoke tier runs inside the session's client containers (pilot, JupyterLab).

Why separate: these are the scripts a PanDA user would run; they are executed unchanged with
`python -c` in the container's environment, and each prints one JSON line for the test to check.
"""

from __future__ import annotations

import json
import subprocess

from tests.smoke.kubelet import Kubelet

# The talk's example, exactly as a user writes it, with the Client built the way the pilot's
# payload and a JupyterLab notebook build it: from DASK_SCHEDULER_ADDRESS. A smaller equivalent
# runs on known data and is compared with numpy; get_versions(check=True) must pass with no
# VersionMismatchWarning (turned into an error).
TALK_SCRIPT = r"""
import json, os, warnings
import numpy as np
import dask.array as da
from dask.distributed import Client

with warnings.catch_warnings():
    warnings.simplefilter("error")  # a version mismatch warning fails the script
    client = Client(os.environ["DASK_SCHEDULER_ADDRESS"])
    versions = client.get_versions(check=True)

x = da.random.random((10000, 10000), chunks=(1000, 1000))
y = x + x.T
z = y[::2, 5000:].mean(axis=1)
result = z.compute()

rng = np.random.default_rng(2026)
small = rng.random((1000, 1000))
xs = da.from_array(small, chunks=(250, 250))
zs = (xs + xs.T)[::2, 500:].mean(axis=1).compute()
expected = (small + small.T)[::2, 500:].mean(axis=1)

info = client.scheduler_info()
print(json.dumps({
    "shape": list(result.shape),
    "finite": bool(np.isfinite(result).all()),
    "mean": float(result.mean()),
    "min": float(result.min()),
    "max": float(result.max()),
    "small_matches_numpy": bool(np.allclose(zs, expected)),
    "small_shape": list(zs.shape),
    "workers": sorted(w["name"] for w in info["workers"].values()),
    "scheduler_dask": versions["scheduler"]["packages"]["dask"],
    "client_dask": versions["client"]["packages"]["dask"],
    "worker_dask": sorted({w["packages"]["dask"] for w in versions["workers"].values()}),
}))
client.close()
"""

# Workers as the scheduler sees them: names, threads and memory limits.
WORKERS_SCRIPT = r"""
import json, os, sys
from dask.distributed import Client

want = int(sys.argv[1])
with Client(os.environ["DASK_SCHEDULER_ADDRESS"], timeout=60) as client:
    client.wait_for_workers(want, timeout=120)
    workers = client.scheduler_info()["workers"].values()
    print(json.dumps(sorted(
        [{"name": w["name"], "nthreads": w["nthreads"], "memory_limit": w["memory_limit"]} for w in workers],
        key=lambda w: w["name"],
    )))
"""


def run_python(
    kubelet: Kubelet, pod: str, container: str, code: str, *args: str, timeout: float = 300
) -> object:
    """`kubectl exec <pod> -c <container> -- python -c <code> <args>`; returns the JSON it prints."""
    result: subprocess.CompletedProcess[str] = kubelet.exec(
        pod, container, ["python", "-c", code, *args], timeout=timeout
    )
    assert result.returncode == 0, (
        f"exec in {pod}/{container} failed ({result.returncode}):\n{result.stdout[-4000:]}"
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(("{", "["))]
    assert lines, f"no JSON output from {pod}/{container}:\n{result.stdout[-4000:]}"
    return json.loads(lines[-1])
