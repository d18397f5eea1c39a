"""Before and after: one monitor cycle of this tree against an earlier commit, runs interleaved.

The machine is shared and its load changes by the minute, so two codes are only comparable when
measured in turns: each round runs the baseline, then this tree, each in a fresh process over the
same recorded world (``monitor_world``, served as raw JSON through the real ``Kube``), ``cycles``
cycles of ``SessionService.observe`` each. Reported per code: CPU seconds min / median, wall
seconds min / median (of every cycle of every round), the process' peak RSS (world included),
and the load average around the runs. The baseline is the commit's ``orchestrator`` and ``tests``
unpacked into a temporary directory (``git archive``); it must have ``tests/bench/monitor_world.py``.

    .venv/bin/python -m tests.bench.monitor_ab --baseline <commit> [--sessions 5000] [--cycles 5] [--rounds 2]

The figures go to the ``before_after`` section of ``tests/bench/results/monitor.json``. Nothing
is asserted: a timing is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.conftest import RESULTS
from tests.conftest import ROOT

OUT = RESULTS / "monitor.json"

# Runs in the code under test (this tree or the baseline): only what both have is imported.
_CHILD = """
import gc, json, resource, statistics, sys, time
from orchestrator.kube import Kube
from tests.bench.monitor_world import RawApi, build_world
try:
    from tests.doubles import make_service
except ImportError:  # a baseline from before the doubles moved to tests/doubles
    from tests.unit.harvester_doubles import make_service
world = build_world(int(sys.argv[1]))
svc, _, _ = make_service("bench")
svc.kube = Kube(api_client=RawApi(world))
cpus, walls = [], []
for _ in range(int(sys.argv[2])):
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    states = svc.observe(world.releases, namespace="bench", with_events=False)
    walls.append(time.perf_counter() - wall)
    cpus.append(time.process_time() - cpu)
    assert sorted(states) == sorted(world.releases)
phases = sorted(f"{s.phase}/{s.reason}" for s in states.values())
print(json.dumps({"cpu": cpus, "wall": walls, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "phases": phases}))
"""


def unpack(commit: str, into: Path) -> Path:
    """The commit's ``orchestrator`` and ``tests`` in ``into`` (``git archive``, no checkout)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "orchestrator", "tests"],
        cwd=ROOT, capture_output=True, check=True, timeout=120,
    ).stdout
    tar = into / "code.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as opened:
        opened.extractall(into, filter="data")
    return into


def run_once(code_root: Path, sessions: int, cycles: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(sessions), str(cycles)],
        cwd=code_root, env=env, capture_output=True, text=True, check=True, timeout=1800,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    cpus = [c for r in runs for c in r["cpu"]]
    walls = [w for r in runs for w in r["wall"]]
    return {
        "cpu_seconds_min": round(min(cpus), 3),
        "cpu_seconds_median": round(statistics.median(cpus), 3),
        "wall_seconds_min": round(min(walls), 3),
        "wall_seconds_median": round(statistics.median(walls), 3),
        "process_max_rss_mb": round(max(r["max_rss_mb"] for r in runs), 1),
        "cycles": len(cpus),
    }


def compare(baseline: str, sessions: int, cycles: int, rounds: int) -> dict[str, Any]:
    """Interleaved runs of the baseline and this tree; both must derive the same states."""
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "now": []}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        base_root = unpack(baseline, Path(tmp))
        for _ in range(rounds):
            runs["baseline"].append(run_once(base_root, sessions, cycles))
            runs["now"].append(run_once(ROOT, sessions, cycles))
            loads.append(os.getloadavg()[0])
    same = runs["baseline"][-1]["phases"] == runs["now"][-1]["phases"]
    return {
        "sessions": sessions,
        "baseline_commit": baseline,
        "now_commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip(),
        "rounds": rounds,
        "load_average_1min": [round(x, 1) for x in loads],
        "same_phases_and_reasons": same,
        "baseline": _summary(runs["baseline"]),
        "now": _summary(runs["now"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="the commit to compare against")
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    figures = compare(args.baseline, args.sessions, args.cycles, args.rounds)
    figures["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    figures["command"] = (
        f".venv/bin/python -m tests.bench.monitor_ab --baseline {args.baseline} --sessions {args.sessions} "
        f"--cycles {args.cycles} --rounds {args.rounds}"
    )
    doc = json.loads(OUT.read_text()) if OUT.exists() else {}
    doc["before_after"] = figures
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(figures, indent=1))
    return 0 if figures["same_phases_and_reasons"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
