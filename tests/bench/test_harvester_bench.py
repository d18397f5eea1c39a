"""Bench: ``DaskHelmMonitor.check_workers`` over 1,000 workers in one call.

The Kubernetes API is a fake (tests.doubles.FakeKube) holding recorded pod JSON
(tests/data/pods/) for 1,000 releases, 3,400 pods: what a LIST of a busy namespace
returns. What is measured: the API requests the call makes (asserted: one pod LIST per namespace,
plus one Service LIST where an interactive session is live, whatever
the chunk size) and the wall time (recorded only; machines differ). Results go to
``tests/bench/results/harvester.json``.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.harvester.base import ATTRIBUTE_KEY
from orchestrator.harvester.monitor import DaskHelmMonitor
from orchestrator.kube import APP_SELECTOR
from tests.doubles import NOW, FakeKube, WorkSpec, fixture_pods, make_service, with_pilot_exit

RESULTS = Path(__file__).parent / "results" / "harvester.json"
WORKERS = 1000
ROUNDS = 5
# a realistic mix of session states, cycled over the releases
MIX = (
    "batch-running",
    "batch-running",
    "batch-running",
    "interactive-staged",
    "batch-finished",
    "pilot-exit",
    "batch-pilot-oomkilled",
    "image-pull-backoff",
    "unschedulable",
    "deadline-exceeded",
)


class JsonKube(FakeKube):
    """A FakeKube whose LIST decodes a JSON body, as the real client does (``Kube.request``)."""

    def list_pods_at(
        self, namespace: str, selector: str = APP_SELECTOR
    ) -> tuple[list[dict[str, Any]], datetime | None]:
        """The pods through a JSON round trip; observe's reduced LIST (`list_pod_states_at`) comes
        through here too."""
        self._count("list_pods", namespace)
        body = json.dumps({"kind": "PodList", "apiVersion": "v1", "items": self.of_kind(namespace, "Pod")})
        return list(json.loads(body)["items"]), self._date()


def pods_for(kind: str, pandaid: int, namespace: str) -> list[dict[str, Any]]:
    if kind == "pilot-exit":
        return with_pilot_exit(fixture_pods("batch-finished", pandaid, namespace), 3)
    return fixture_pods(kind, pandaid, namespace)


def build(namespaces: int) -> tuple[DaskHelmMonitor, Any, Any, list[WorkSpec], int]:
    service, helm, kube = make_service("bench", kube=JsonKube())
    monitor = DaskHelmMonitor(queueName="GOOGLE_DASK", namespace="bench", service=service)
    workspecs = []
    pods = 0
    for i in range(WORKERS):
        pandaid = 5_000_000 + i
        namespace = f"bench-{i % namespaces}"
        release_pods = pods_for(MIX[i % len(MIX)], pandaid, namespace)
        pods += len(release_pods)
        kube.add(release_pods)
        ws = WorkSpec(i + 1, [])
        ws.batchID = f"dask-{pandaid}"
        ws.set_work_attributes({ATTRIBUTE_KEY: {"namespace": namespace, "release": ws.batchID}})
        workspecs.append(ws)
    return monitor, helm, kube, workspecs, pods


def run(namespaces: int) -> dict[str, Any]:
    monitor, helm, kube, workspecs, pods = build(namespaces)
    times = []
    requests = []
    statuses: dict[str, int] = {}
    for _ in range(ROUNDS):
        before, first_call = kube.requests, len(kube.calls)
        started = time.perf_counter()
        ok, results = monitor.check_workers(workspecs)
        times.append(time.perf_counter() - started)
        requests.append(kube.requests - before)
        made = [method for method, _ in kube.calls[first_call:]]
        # one pod LIST per namespace; one Service LIST more where an interactive session is live
        assert made.count("list_pods") == namespaces, made
        assert made.count("list_services") <= namespaces and set(made) <= {"list_pods", "list_services"}, made
        assert ok and len(results) == WORKERS
        statuses = {}
        for status, _ in results:
            assert status in WorkSpec.ST_LIST
            statuses[status] = statuses.get(status, 0) + 1
    assert len(set(requests)) == 1, requests  # the same requests every call
    assert helm.calls == []
    return {
        "workers": WORKERS,
        "namespaces": namespaces,
        "pods_listed": pods,
        "api_requests_per_call": requests[0],
        "helm_calls": 0,
        "rounds": ROUNDS,
        "wall_seconds_median": round(statistics.median(times), 4),
        "wall_seconds_min": round(min(times), 4),
        "wall_seconds_max": round(max(times), 4),
        "statuses": dict(sorted(statuses.items())),
    }


def test_check_workers_1000_workers_one_call() -> None:
    results = {
        "benchmark": "DaskHelmMonitor.check_workers, one call over 1,000 workers (fake API, recorded pods)",
        "command": ".venv/bin/python -m pytest tests/bench/test_harvester_bench.py -m bench",
        "clock": NOW.isoformat(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cases": [run(1), run(4)],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(RESULTS)
    print(json.dumps(results, indent=2))
