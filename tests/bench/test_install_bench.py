"""Time from `helm install` (plain helm, no orchestrator) to every pod Running, for one release,
with helm 4 and helm 3, on the local cluster; written to tests/bench/results/install.json.

The release is installed as an operator does by hand: the per-job Secret (the job definition)
first, then ``helm install`` with the queue's values and a per-job file naming that Secret and
the definition's sha256 (the values never hold the definition; their schema refuses it).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.bench.conftest import write_results
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import prepare_namespace
from tests.cluster.test_chart_lifecycle import install_chart, job_values
from tests.conftest import TOOLS_BIN

ROUNDS = 3


def test_install_to_running(
    kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str], tmp_path: Path
) -> None:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    figures: dict[str, dict[str, float]] = {}
    for binary in ("helm", "helm3"):
        installs, running = [], []
        for round_ in range(ROUNDS):
            pandaid = 8000 + round_ + (10 if binary == "helm3" else 0)
            release = f"dask-{pandaid}"
            # the current values contract: the definition travels in the per-job Secret (made by
            # hand, as an operator does), the values name it and carry its sha256
            values = job_values(
                kube_cluster, namespace, tmp_path, pandaid, "batch", workers={"replicas": 3}, tests={"enabled": False}
            )
            started = time.perf_counter()
            install = install_chart(kube_cluster, binary, release, namespace, values)
            assert install.returncode == 0, install.stderr
            installed = time.perf_counter()

            def all_running(release: str = release) -> bool:
                pods = kube_cluster.core.list_namespaced_pod(
                    namespace, label_selector=f"app.kubernetes.io/instance={release}"
                ).items
                session = [
                    p
                    for p in pods
                    if p.metadata.labels.get("app.kubernetes.io/component")
                    in ("scheduler", "worker", "pilot")
                ]
                return len(session) == 5 and all(p.status.phase == "Running" for p in session)

            kube_cluster.wait_for("all pods Running", all_running, timeout=60, interval=0.1)
            done = time.perf_counter()
            installs.append(installed - started)
            running.append(done - started)
            subprocess.run(
                [str(TOOLS_BIN / binary), "uninstall", release, "-n", namespace],
                env=kube_cluster.env,
                capture_output=True,
                check=True,
            )
        figures[binary] = {
            "helm_install_seconds_median": round(statistics.median(installs), 2),
            "install_to_all_pods_running_seconds_median": round(statistics.median(running), 2),
            "rounds": ROUNDS,
        }
        assert all(r >= i for r, i in zip(running, installs, strict=True))
    write_results("install", {"release": "GOOGLE_DASK values, batch, 3 workers", **figures})
