"""Benchmarks write their figures to tests/bench/results/<name>.json; they never assert a timing."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The benchmarks run on the local cluster: share the cluster tier's fixtures.
from tests.cluster.conftest import kube_cluster, namespace, shared_pv

__all__ = ["kube_cluster", "namespace", "shared_pv", "write_results"]

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, figures: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {
        "benchmark": name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        **figures,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
