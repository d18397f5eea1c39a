"""The external JupyterLab URL, read from the LoadBalancer Service's status on the real API server.

On the local cluster nobody runs a cloud load balancer: the kwok Stage
``scripts/cluster/stages/dps-service-loadbalancer.yaml`` plays the cloud controller and writes
``status.loadBalancer.ingress[0].ip`` (192.0.2.<last octet of the ClusterIP>, a never-routed test
address). ``observe`` must report that address as ``jupyter_url`` and the dashboard behind it,
with one Service LIST for the namespace, and the CLI's ``status`` must show it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.session import Phase
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import fast_timeouts, job, prepare_namespace, service, values_file
from tests.conftest import ROOT

pytestmark = pytest.mark.cluster


@pytest.fixture
def queue_ns(kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str]) -> str:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    return namespace


def test_status_reports_the_address_the_load_balancer_assigned(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path
) -> None:
    svc = service(kube_cluster, queue_ns)
    exposure = {
        "jupyterlab": {
            "service": {"type": "LoadBalancer", "port": 8888, "loadBalancerSourceRanges": ["198.51.100.0/24"]}
        }
    }
    extra = [values_file(tmp_path, "lb", {**fast_timeouts(startup=60), **exposure})]
    result = svc.submit(job(700, mode="interactive", password="a-Password-for-700"), values_files=extra)
    release = result.release
    try:
        deadline = time.monotonic() + 90
        state = svc.observe([release])[release]
        while time.monotonic() < deadline and not (
            state.phase is Phase.RUNNING and state.jupyter_url and "192.0.2." in state.jupyter_url
        ):
            time.sleep(1.0)
            state = svc.observe([release])[release]
        lb = kube_cluster.core.read_namespaced_service(f"{release}-jupyterlab", queue_ns)
        ingress = lb.status.load_balancer.ingress
        assert ingress, "the kwok LoadBalancer stage assigned no address"
        url = f"http://{ingress[0].ip}:8888/"
        assert state.phase is Phase.RUNNING, (state.phase, state.reason, state.message)
        assert state.jupyter_url == url
        assert state.dashboard_url == f"{url}dask/status"

        before = svc.kube.requests
        svc.observe()
        assert svc.kube.requests - before == 2  # one pod LIST, one Service LIST

        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator.cli",
                "--kubeconfig",
                str(kube_cluster.kubeconfig),
                "-n",
                queue_ns,
                "status",
                release,
                "-o",
                "json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        shown = json.loads(proc.stdout)
        shown = shown[0] if isinstance(shown, list) else shown
        assert shown["jupyter_url"] == url
        assert "a-Password-for-700" not in proc.stdout + proc.stderr
    finally:
        svc.sweep(release)
