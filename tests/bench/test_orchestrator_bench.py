"""observe() at scale on the local cluster, against the naive way (one `helm status` per release),
and submit() latency. Figures go to tests/bench/results/orchestrator.json; only the request count
is asserted (it must not grow with the number of sessions).

    scripts/test.sh bench                      # sizes 1, 10, 100, 500
    DPS_BENCH_SIZES=1,10,50 scripts/test.sh bench
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.service import SessionService
from tests.bench.conftest import write_results
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import fast_timeouts, job, prepare_namespace, service, values_file
from tests.conftest import TOOLS_BIN

SIZES = [int(s) for s in os.environ.get("DPS_BENCH_SIZES", "1,10,100,500").split(",")]
LATENCY_SAMPLES = int(os.environ.get("DPS_BENCH_SUBMIT_SAMPLES", "50"))
REPEAT = 5


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@pytest.fixture
def big_node(kube_cluster: KubeCluster) -> Iterator[str]:
    """One more kwok node without a pod limit and with a /16 of pod IPs: the test cluster's two
    nodes (110 pods, a /24 each) hold about 40 sessions, the benchmark needs hundreds."""
    name = "bench-node-0"
    kube_cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"kubernetes.io/hostname": name, "type": "kwok"},
            },
            "spec": {"podCIDR": "10.2.0.0/16", "podCIDRs": ["10.2.0.0/16"]},
        }
    )
    kube_cluster.wait_for(
        "the benchmark node Ready",
        lambda: any(
            c.type == "Ready" and c.status == "True"
            for c in (kube_cluster.core.read_node(name).status.conditions or [])
        ),
        timeout=60,
    )
    # kwok's node template has no ephemeral storage and every container of the chart requests
    # some: give the node what a real one reports (as the cluster script does for its nodes)
    kube_cluster.kubectl_run(
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"capacity":{"ephemeral-storage":"1Ti"},"allocatable":{"ephemeral-storage":"1Ti"}}}',
    )
    # The small nodes' /24 of pod IPs runs out at about 250 sessions: keep new pods off them.
    others = [n.metadata.name for n in kube_cluster.core.list_node().items if n.metadata.name != name]
    kube_cluster.kubectl_run("cordon", *others)
    yield name
    kube_cluster.kubectl_run("uncordon", *others)
    kube_cluster.kubectl_run("delete", "node", name, "--wait=false")


def test_observe_scales_with_one_list(
    kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str], tmp_path: Path, big_node: str
) -> None:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    # Small requests: the benchmark node's 1Ti would hold only ~200 sessions at GOOGLE_DASK's sizes.
    tiny = {
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    }
    bench_values = {
        **fast_timeouts(startup=600, lifetime=7200),
        "tests": {"enabled": False},
        "scheduler": tiny,
        "workers": tiny,
        "pilot": tiny,
    }
    extra = [values_file(tmp_path, "bench", bench_values)]
    svc = service(kube_cluster, namespace, install_timeout=300.0)
    submit_seconds: list[float] = []
    releases: list[str] = []

    def submit(i: int) -> tuple[str, float]:
        started = time.perf_counter()
        result = svc.submit(job(10_000 + i, workers=2), values_files=extra)
        return result.release, time.perf_counter() - started

    figures: dict[str, object] = {"sizes": {}}
    for size in SIZES:
        todo = range(len(releases), size)
        # The first samples one at a time (their latency is the figure), the rest four at a time.
        sequential = [i for i in todo if i < LATENCY_SAMPLES]
        for i in sequential:
            release, seconds = submit(i)
            releases.append(release)
            submit_seconds.append(seconds)
        with ThreadPoolExecutor(max_workers=4) as pool:
            releases.extend(r for r, _ in pool.map(submit, [i for i in todo if i >= LATENCY_SAMPLES]))
        phases = _settle(svc, releases)
        walls, requests = [], []
        for _ in range(REPEAT):
            before = svc.kube.requests
            started = time.perf_counter()
            states = svc.observe(releases)
            walls.append(time.perf_counter() - started)
            requests.append(svc.kube.requests - before)
            assert len(states) == size
        naive_started = time.perf_counter()
        for release in releases:
            subprocess.run(
                [str(TOOLS_BIN / "helm"), "status", release, "-n", namespace, "-o", "json"],
                env=kube_cluster.env,
                capture_output=True,
                check=True,
            )
        naive = time.perf_counter() - naive_started
        observe_median = statistics.median(walls)
        figures["sizes"][str(size)] = {  # type: ignore[index]
            "observe_requests_per_call": max(requests),
            "observe_wall_seconds_median": round(observe_median, 4),
            "naive_helm_status_wall_seconds": round(naive, 3),
            "naive_helm_processes": size,
            "naive_over_observe": round(naive / observe_median, 1),
            "phases": phases,
        }
        assert max(requests) == 1, requests  # one LIST, whatever the number of sessions
    figures["submit_latency_seconds"] = {
        "samples": len(submit_seconds),
        "p50": round(percentile(submit_seconds, 0.5), 3),
        "p95": round(percentile(submit_seconds, 0.95), 3),
        "max": round(max(submit_seconds), 3),
    }
    path = write_results("orchestrator", figures)
    print(f"results written to {path}")
    if not releases:
        pytest.fail("no release was submitted")
    # Thousands of pods: clear them now so that the namespace fixture's deletion is quick.
    kube_cluster.kubectl_run(
        "delete", "jobs,pods,services,networkpolicies", "--all", "-n", namespace, "--wait=false", timeout=300
    )
    kube_cluster.wait_for(
        "the benchmark's pods gone",
        lambda: not kube_cluster.core.list_namespaced_pod(namespace, limit=1).items,
        timeout=600,
        interval=2,
    )


def _settle(svc: SessionService, releases: list[str], timeout: float = 300.0) -> dict[str, int]:
    """Wait until no session is still starting (bounded); return how many are in each phase."""
    deadline = time.monotonic() + timeout
    while True:
        states = svc.observe(releases)
        counts: dict[str, int] = {}
        for state in states.values():
            counts[str(state.phase)] = counts.get(str(state.phase), 0) + 1
        if counts.get("starting", 0) == 0 or time.monotonic() > deadline:
            return counts
        time.sleep(2)
