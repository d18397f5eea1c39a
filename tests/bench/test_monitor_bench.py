"""Bench: one monitor cycle over 1 to 5,000 sessions, three designs side by side.

``ours`` (``SessionService.observe``: one pod LIST per namespace, each pod decoded straight into
a compact record of the fields the rules read, every session derived from memory), ``ours_dicts``
(the same rules over the whole pods decoded as plain dicts: the path before the records; its
states must be identical), the upstream Harvester Kubernetes monitor's approach (one LIST per chunk of 500
names, typed models, a task per worker on 4 threads; see ``monitor_approaches``) and the naive
Helm design (one ``helm status`` per release).

Two parts, one results file (``tests/bench/results/monitor.json``):

* ``test_side_by_side_on_live_releases``: the local cluster, real releases (sizes
  ``DPS_BENCH_HELM_SIZES``, default 1,10,50), every design including real ``helm status``.
* ``test_monitor_cycle_at_scale``: recorded pods served as raw JSON bytes through the real
  ``Kube`` (sizes ``DPS_BENCH_MONITOR_SIZES``, default 1,10,100,1000,5000; about 3.4 pods per
  session), so the decoding is measured too. The naive Helm design is not run there: its figures
  are extrapolated from the live measurement (per-release cost x N), and labelled so.

Asserted: request counts and that the designs agree where they must (never a timing).

    .venv/bin/python -m pytest -p no:cacheprovider -m bench tests/bench/test_monitor_bench.py -s
"""

from __future__ import annotations

import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from orchestrator.kube import Kube
from orchestrator.service import SessionService
from tests.bench.conftest import RESULTS
from tests.bench.monitor_approaches import DictPodsKube, helm_status_cycle, upstream_cycle
from tests.bench.monitor_world import RawApi, build_world
from tests.bench.test_orchestrator_bench import big_node
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import fast_timeouts, job, prepare_namespace, service, values_file
from tests.conftest import ROOT, TOOLS_BIN
from tests.doubles import make_service

__all__ = ["big_node"]

SIZES = [int(s) for s in os.environ.get("DPS_BENCH_MONITOR_SIZES", "1,10,100,1000,5000").split(",") if s]
# the upstream emulation costs about 30 s of CPU per 1,000 sessions (typed models): measured up
# to this size, extrapolated linearly beyond it (one LIST and model decoding per chunk: linear)
UPSTREAM_MAX = int(os.environ.get("DPS_BENCH_UPSTREAM_MAX", "1000"))
HELM_SIZES = [int(s) for s in os.environ.get("DPS_BENCH_HELM_SIZES", "1,10,50").split(",") if s]
OUT = RESULTS / "monitor.json"
COMMAND = ".venv/bin/python -m pytest -p no:cacheprovider -m bench tests/bench/test_monitor_bench.py -s"


def _load() -> dict[str, Any]:
    try:
        return dict(json.loads(OUT.read_text()))
    except (OSError, ValueError):
        return {}


def _save(section: str, figures: dict[str, Any]) -> None:
    doc = _load()
    doc.update(
        {
            "benchmark": "monitor cycle: ours vs the upstream Kubernetes monitor vs one helm status per release",
            "command": COMMAND,
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        }
    )
    doc[section] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(OUT)


def measure(cycle: Callable[[], Any], repeat: int, requests: Callable[[], int]) -> tuple[dict[str, Any], Any]:
    """Median wall and CPU seconds of ``repeat`` cycles, the requests of one, and the last result."""
    walls, cpus, counts = [], [], []
    result: Any = None
    for _ in range(repeat):
        result = None
        gc.collect()
        before = requests()
        cpu, wall = time.process_time(), time.perf_counter()
        result = cycle()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        counts.append(requests() - before)
    assert len(set(counts)) == 1, counts  # the same work every cycle
    figures = {
        "api_requests": counts[0],
        "wall_seconds_median": round(statistics.median(walls), 4),
        "wall_seconds_min": round(min(walls), 4),
        "cpu_seconds_median": round(statistics.median(cpus), 4),
        "repeat": repeat,
    }
    return figures, result


def traced_peak_mb(cycle: Callable[[], Any]) -> float:
    """Peak of the Python heap during one cycle (tracemalloc; a separate, slower run)."""
    gc.collect()
    tracemalloc.start()
    try:
        cycle()
        return round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    finally:
        tracemalloc.stop()


def expected_requests(states: dict[str, Any]) -> int:
    """ONE pod LIST per namespace, plus one Service LIST when an interactive session is live (its
    external JupyterLab URL lives in the Service's status)."""
    return 1 + any(s.mode == "interactive" and not s.final for s in states.values())


def _fake_cycles(size: int) -> tuple[dict[str, Callable[[], Any]], RawApi, list[str]]:
    world = build_world(size)
    api = RawApi(world)
    ours, _, _ = make_service("bench")
    ours.kube = Kube(api_client=api)
    reduced, _, _ = make_service("bench")
    reduced.kube = DictPodsKube(api_client=api)
    upstream_kube = Kube(api_client=api)

    def observe(svc: SessionService) -> Callable[[], Any]:
        return lambda: svc.observe(world.releases, namespace="bench", with_events=False)

    cycles = {
        "ours": observe(ours),
        "ours_dicts": observe(reduced),
        "upstream_emulated": lambda: upstream_cycle(upstream_kube, "bench", world.releases),
    }
    return cycles, api, world.releases


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def rss_of_one_cycle(approach: str, size: int) -> dict[str, float]:
    """Run in a fresh process: RSS before one cycle and its peak during it (MiB).

    Building the recorded world peaks higher than a cycle, so the peak counter (VmHWM) is reset
    to the current RSS once the world is built (Linux: ``/proc/self/clear_refs``).
    """
    cycles, _, _ = _fake_cycles(size)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_mb("VmRSS")
    cycles[approach]()
    peak = _status_mb("VmHWM")
    return {"rss_before_mb": round(before, 1), "rss_peak_mb": round(peak, 1), "cycle_rss_mb": round(peak - before, 1)}


def _rss_in_subprocess(approach: str, size: int) -> dict[str, float]:
    code = (
        "import json; from tests.bench.test_monitor_bench import rss_of_one_cycle; "
        f"print(json.dumps(rss_of_one_cycle({approach!r}, {size})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=900
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _helm_per_release() -> dict[str, Any] | None:
    live = _load().get("live_releases", {}).get("sizes", {})
    if not live:
        return None
    size = max(live, key=int)
    return {"measured_at_live_releases": int(size), **live[size]["naive_helm_status"]}


# ------------------------------------------------------------------------------------------------
# on the local cluster


@pytest.fixture
def live_namespace(
    kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str], big_node: str
) -> Iterator[str]:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    yield namespace
    kube_cluster.kubectl_run(
        "delete", "jobs,pods,services,networkpolicies,secrets", "--all", "-n", namespace, "--wait=false", timeout=300
    )


def test_side_by_side_on_live_releases(kube_cluster: KubeCluster, live_namespace: str, tmp_path: Path) -> None:
    if not HELM_SIZES:
        pytest.skip("DPS_BENCH_HELM_SIZES is empty")
    tiny = {"resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}
    bench_values = {
        **fast_timeouts(startup=600, lifetime=7200),
        "tests": {"enabled": False},
        "scheduler": tiny,
        "workers": tiny,
        "pilot": tiny,
    }
    extra = [values_file(tmp_path, "bench", bench_values)]
    svc = service(kube_cluster, live_namespace, install_timeout=300.0)
    real_kube = svc.kube
    assert isinstance(real_kube, Kube)
    reduced = service(kube_cluster, live_namespace, install_timeout=300.0)
    reduced.kube = DictPodsKube(kubeconfig=kube_cluster.kubeconfig)
    releases: list[str] = []
    figures: dict[str, Any] = {"load_average_at_start": os.getloadavg(), "sizes": {}}
    for size in HELM_SIZES:
        for i in range(len(releases), size):
            releases.append(svc.submit(job(20_000 + i, workers=2), values_files=extra).release)
        _settle(svc, releases)
        row: dict[str, Any] = {"sessions": size}
        row["ours"], ours = measure(
            lambda: svc.observe(releases, with_events=False), 5, lambda: svc.kube.requests
        )
        row["ours_dicts"], again = measure(
            lambda: reduced.observe(releases, with_events=False), 5, lambda: reduced.kube.requests
        )
        row["upstream_emulated"], upstream = measure(
            lambda: upstream_cycle(real_kube, live_namespace, releases), 5, lambda: svc.kube.requests
        )
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        helm_states = helm_status_cycle(TOOLS_BIN / "helm", live_namespace, releases, kube_cluster.env)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        row["naive_helm_status"] = {
            "wall_seconds": round(wall, 3),
            "repeat": 1,
            "cpu_seconds_children": round(
                (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime), 3
            ),
            "process_starts": size,
            "api_requests": "not counted (inside helm; at least one Secret read per release)",
        }
        for name in ("ours", "ours_dicts", "upstream_emulated"):
            row[name]["process_starts"] = 0
        assert row["ours"]["api_requests"] == row["ours_dicts"]["api_requests"] == 1
        assert row["upstream_emulated"]["api_requests"] == math.ceil(size / 500)
        assert {r: s.phase for r, s in ours.items()} == {r: s.phase for r, s in again.items()}
        assert sorted(helm_states) == sorted(releases) == sorted(upstream)
        base = row["ours"]["wall_seconds_median"]
        row["ratios_wall_over_ours"] = {
            name: round(row[name]["wall_seconds_median"] / base, 1) for name in ("ours_dicts", "upstream_emulated")
        }
        row["ratios_wall_over_ours"]["naive_helm_status"] = round(wall / base, 1)
        row["phases"] = {p: sum(1 for s in ours.values() if str(s.phase) == p) for p in {str(s.phase) for s in ours.values()}}
        figures["sizes"][str(size)] = row
        print(json.dumps(row, indent=1))
    _save("live_releases", figures)


def _settle(svc: SessionService, releases: list[str], timeout: float = 300.0) -> None:
    """Wait (bounded) until no session is still starting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = svc.observe(releases, with_events=False)
        if all(str(s.phase) != "starting" for s in states.values()):
            return
        time.sleep(2)


# ------------------------------------------------------------------------------------------------
# at scale, after the live part (its helm figures are extrapolated here)


@pytest.mark.timeout(3600)
def test_monitor_cycle_at_scale() -> None:
    figures: dict[str, Any] = {"load_average_at_start": os.getloadavg(), "sizes": {}}
    helm = _helm_per_release()
    upstream_measured: tuple[int, dict[str, Any]] | None = None
    for size in SIZES:
        cycles, api, releases = _fake_cycles(size)
        if size > UPSTREAM_MAX:
            del cycles["upstream_emulated"]
        row: dict[str, Any] = {"sessions": size}
        results: dict[str, Any] = {}
        for name, cycle in cycles.items():
            # the upstream emulation costs minutes at a thousand sessions: measured once there,
            # its memory by the fresh-process RSS below
            slow = name == "upstream_emulated" and size >= 1000
            repeat = 1 if slow else 3 if size >= 1000 else 5
            row[name], results[name] = measure(cycle, repeat, partial(getattr, api, "requests"))
            row[name]["process_starts"] = 0
            row[name]["traced_peak_mb"] = None if slow else traced_peak_mb(cycle)
        row["pods"] = api.world.pods
        row["list_body_mb"] = round(len(api.world.body) / 2**20, 1)
        # what must hold whatever the machine: one LIST per namespace, one per chunk of 500, and
        # the compact records derive exactly the states the whole pod dicts do
        assert row["ours"]["api_requests"] == row["ours_dicts"]["api_requests"] == expected_requests(results["ours"])
        assert results["ours"] == results["ours_dicts"]
        assert sorted(results["ours"]) == sorted(releases)
        if "upstream_emulated" in results:
            assert row["upstream_emulated"]["api_requests"] == math.ceil(size / 500)
            assert sorted(results["upstream_emulated"]) == sorted(releases)
            upstream_measured = (size, row["upstream_emulated"])
        elif upstream_measured is not None:
            at, measured = upstream_measured
            row["upstream_emulated"] = {
                "label": f"EXTRAPOLATED linearly from the measured {at} sessions x {size}",
                "api_requests": math.ceil(size / 500),
                "wall_seconds_median": round(measured["wall_seconds_median"] * size / at, 2),
                "cpu_seconds_median": round(measured["cpu_seconds_median"] * size / at, 2),
                "process_starts": 0,
                "traced_peak_mb": None,
            }
        if helm is not None:
            per = helm["wall_seconds"] / helm["measured_at_live_releases"]
            cpu_per = helm["cpu_seconds_children"] / helm["measured_at_live_releases"]
            row["naive_helm_extrapolated"] = {
                "label": f"EXTRAPOLATED: per-release cost measured on {helm['measured_at_live_releases']} live releases x {size}",
                "wall_seconds": round(per * size, 2),
                "cpu_seconds_children": round(cpu_per * size, 2),
                "process_starts": size,
            }
        ours = row["ours"]["wall_seconds_median"]
        row["ratios_wall_over_ours"] = {
            name: round(row[name]["wall_seconds_median"] / ours, 2)
            for name in ("ours_dicts", "upstream_emulated")
            if ours and name in row
        }
        if helm is not None and ours:
            row["ratios_wall_over_ours"]["naive_helm_extrapolated"] = round(
                row["naive_helm_extrapolated"]["wall_seconds"] / ours, 1
            )
        figures["sizes"][str(size)] = row
        print(json.dumps(row, indent=1))
    largest = max(SIZES)
    upstream_at = min(largest, UPSTREAM_MAX)
    figures["peak_rss_one_cycle_fresh_process"] = {
        "sessions": largest,
        **{name: _rss_in_subprocess(name, largest) for name in ("ours", "ours_dicts")},
        "upstream_emulated": {"sessions": upstream_at, **_rss_in_subprocess("upstream_emulated", upstream_at)},
    }
    figures["process_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    _save("recorded_pods_fake_api", figures)


def test_the_list_share_of_a_cycle() -> None:
    """How much of ``ours`` is the LIST itself (request and decoding): what a watch cache saves."""
    size = max(SIZES)
    world = build_world(size)
    api = RawApi(world)
    figures: dict[str, Any] = {"sessions": size, "pods": world.pods}
    for name, kube in (("ours", Kube(api_client=api)), ("ours_dicts", DictPodsKube(api_client=api))):
        svc, _, _ = make_service("bench")
        svc.kube = kube
        listed, _ = measure(partial(kube.list_pod_states_at, "bench"), 3, lambda: api.requests)
        cycle, _ = measure(
            partial(svc.observe, world.releases, namespace="bench", with_events=False),
            3,
            lambda: api.requests,
        )
        assert listed["api_requests"] == 1 and cycle["api_requests"] == expected_requests(svc.observe(world.releases, namespace="bench", with_events=False))
        figures[name] = {
            "list_and_decode_cpu_seconds_median": listed["cpu_seconds_median"],
            "whole_cycle_cpu_seconds_median": cycle["cpu_seconds_median"],
            "list_share_of_cpu": round(listed["cpu_seconds_median"] / cycle["cpu_seconds_median"], 2),
            "list_and_decode_wall_seconds_median": listed["wall_seconds_median"],
            "whole_cycle_wall_seconds_median": cycle["wall_seconds_median"],
        }
    print(json.dumps(figures, indent=1))
    _save("list_share", figures)
