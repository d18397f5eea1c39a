"""Bench: submit throughput through ``DaskHelmSubmitter.submit_workers`` and the sweep at scale.

For each ``nProcesses`` (``DPS_BENCH_SUBMIT_THREADS``, default 1,2,4,8), ``DPS_BENCH_SUBMIT_JOBS``
jobs (default 100) are submitted in one ``submit_workers`` call on the local cluster; recorded:
jobs per minute, p50/p95 latency of one submit, the kube-apiserver's CPU seconds (from
``/proc/<pid>/stat`` of the cluster's own API server) and where one submit's time goes (a bare
helm process start, the prepare hook Job's round trip from its object times). Then the same
releases are killed (``kill_workers``) and swept (``sweep_worker`` each, which verifies that
nothing labelled for the job remains), timed, and the namespace is checked empty.

Asserted: every submit succeeded, every sweep verified its job empty, nothing of ours remains
(never a timing). Results: ``tests/bench/results/submit.json``.

    DPS_CLUSTER_STATE=... .venv/bin/python -m pytest -p no:cacheprovider -m bench tests/bench/test_submit_bench.py -s
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.harvester.submitter import DaskHelmSubmitter
from orchestrator.harvester.sweeper import DaskHelmSweeper
from tests.bench.conftest import write_results
from tests.bench.test_orchestrator_bench import big_node
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import fast_timeouts, labelled_by, prepare_namespace, values_file
from tests.cluster.test_harvester_cycle import queue_params
from tests.conftest import TOOLS_BIN
from tests.doubles import worker

__all__ = ["big_node"]

THREADS = [int(s) for s in os.environ.get("DPS_BENCH_SUBMIT_THREADS", "1,2,4,8").split(",") if s]
JOBS = int(os.environ.get("DPS_BENCH_SUBMIT_JOBS", "100"))
RESULTS_NAME = os.environ.get("DPS_BENCH_SUBMIT_RESULTS", "submit")
COMMAND = (
    "DPS_CLUSTER_STATE=<state dir> .venv/bin/python -m pytest -p no:cacheprovider -m bench "
    "tests/bench/test_submit_bench.py -s"
)


def _apiserver_pid() -> int | None:
    """The kube-apiserver of this cluster (its pid as the cluster script recorded it)."""
    state = os.environ.get("DPS_CLUSTER_STATE")
    if not state:
        return None
    try:
        return int((Path(state) / "pids" / "kube-apiserver.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (``/proc/<pid>/stat`` fields 14 and 15, in clock ticks)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _used(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


def _helm_start_seconds(env: dict[str, str], rounds: int = 5) -> float:
    """A bare helm process start (``helm version``: no API request), median of ``rounds``."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([str(TOOLS_BIN / "helm"), "version", "--short"], env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def _hook_round_trips(cluster: KubeCluster, namespace: str, hook: str, releases: set[str]) -> list[float]:
    """Seconds from each ``hook`` Job's pod creation to the Job's completion (one-second resolution).

    The hook Jobs are deleted once they succeed (their delete policy), so the figures come from
    the job controller's Events, which outlive them: ``SuccessfulCreate`` then ``Completed``.
    """
    done = cluster.kubectl_run("get", "events", "-n", namespace, "-o", "json")
    created: dict[str, datetime] = {}
    completed: dict[str, datetime] = {}
    for event in json.loads(done.stdout)["items"]:
        involved = event.get("involvedObject") or {}
        name = str(involved.get("name", ""))
        when = event.get("firstTimestamp") or event.get("eventTime")
        if involved.get("kind") != "Job" or name.removesuffix(f"-{hook}") not in releases or not when:
            continue
        moment = datetime.fromisoformat(when)
        if event.get("reason") == "SuccessfulCreate":
            created[name] = min(created.get(name, moment), moment)
        elif event.get("reason") == "Completed":
            completed[name] = moment
    return [(completed[n] - created[n]).total_seconds() for n in completed if n in created]


def _timed_submits(submitter: DaskHelmSubmitter) -> list[float]:
    """Wrap the service's ``submit`` to record the latency of each call (thread-safe)."""
    latencies: list[float] = []
    lock = threading.Lock()
    service = submitter.service
    inner = service.submit

    def submit(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            with lock:
                latencies.append(time.perf_counter() - started)

    service.submit = submit  # type: ignore[method-assign]
    return latencies


@pytest.mark.timeout(7200)
def test_submit_throughput_and_sweep(
    kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str], big_node: str, tmp_path: Path
) -> None:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    tiny = {"resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}
    extra = values_file(
        tmp_path,
        "bench",
        {**fast_timeouts(startup=600, lifetime=7200), "tests": {"enabled": False}, "scheduler": tiny, "workers": tiny, "pilot": tiny},
    )
    env = dict(kube_cluster.env)
    pid = _apiserver_pid()
    figures: dict[str, Any] = {
        "jobs_per_setting": JOBS,
        "load_average_at_start": os.getloadavg(),
        "helm_process_start_seconds_median": _helm_start_seconds(env),
        "apiserver_pid_found": pid is not None,
        "settings": {},
    }
    next_id = 1
    for threads in THREADS:
        params = {**queue_params(kube_cluster, namespace, extra), "nProcesses": threads}
        submitter = DaskHelmSubmitter(**params)
        sweeper = DaskHelmSweeper(**params)
        latencies = _timed_submits(submitter)
        workspecs = [worker(next_id + i, pandaid=9_000_000 + next_id + i) for i in range(JOBS)]
        releases = {f"dask-{9_000_000 + next_id + i}" for i in range(JOBS)}
        next_id += JOBS
        cpu_before = _cpu_seconds(pid)
        own_before, helm_before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        results = submitter.submit_workers(workspecs)
        wall = time.perf_counter() - started
        cpu_after = _cpu_seconds(pid)
        own_after, helm_after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        assert [ok for ok, _ in results] == [True] * JOBS, [m for ok, m in results if ok is not True][:3]
        hooks = _hook_round_trips(kube_cluster, namespace, "prepare", releases)
        row: dict[str, Any] = {
            "nProcesses": threads,
            "jobs": JOBS,
            "wall_seconds": round(wall, 2),
            "jobs_per_minute": round(JOBS / wall * 60, 1),
            "latency_p50_seconds": _quantile(latencies, 0.5),
            "latency_p95_seconds": _quantile(latencies, 0.95),
            "latency_max_seconds": _quantile(latencies, 1.0),
            "apiserver_cpu_seconds": None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2),
            # this process (the submitter's Python) and its children (every helm process it ran)
            "submitter_cpu_seconds": round(_used(own_before, own_after), 2),
            "helm_processes_cpu_seconds": round(_used(helm_before, helm_after), 2),
            "prepare_hook_round_trip_seconds_median": statistics.median(hooks) if hooks else None,
            "prepare_hook_jobs_seen": len(hooks),
            "load_average_after": os.getloadavg(),
        }
        # the sweep at scale: kill every session, then sweep each (each sweep verifies its job empty)
        started = time.perf_counter()
        killed = sweeper.kill_workers(workspecs)
        kill_wall = time.perf_counter() - started
        swept = [sweeper.sweep_worker(ws) for ws in workspecs]
        sweep_wall = time.perf_counter() - started
        assert [ok for ok, _ in killed] == [True] * JOBS, [m for ok, m in killed if not ok][:3]
        assert [ok for ok, _ in swept] == [True] * JOBS, [m for ok, m in swept if not ok][:3]
        remaining = labelled_by(kube_cluster, namespace, "app.kubernetes.io/name=dask-panda-session")
        assert remaining == [], remaining[:5]
        row["sweep"] = {
            "sessions": JOBS,
            "kill_workers_seconds": round(kill_wall, 2),
            "kill_and_sweep_seconds": round(sweep_wall, 2),
            "verified_empty": True,
        }
        cleanups = _hook_round_trips(kube_cluster, namespace, "cleanup", releases)
        row["sweep"]["cleanup_hook_round_trip_seconds_median"] = statistics.median(cleanups) if cleanups else None
        row["sweep"]["cleanup_hook_jobs_seen"] = len(cleanups)
        figures["settings"][str(threads)] = row
        print(json.dumps(row, indent=1), flush=True)
        write_results(RESULTS_NAME, {"command": COMMAND, **figures})
