"""The faults tier's record: what was injected, into how many sessions, and what went wrong.

Each test fills one :class:`FaultRecord` while it runs (the counts are taken before the test's
assertions, so a failing test still reports what it saw); the session writes them all, summed per
fault, to ``tests/faults/results.json``: the table a release note quotes.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"
COMMAND = "DPS_CLUSTER_STATE=<dir> .venv/bin/python -m pytest -p no:cacheprovider -m faults tests/faults"

COUNTS = (
    "injected",
    "sessions",
    "false_verdicts",
    "duplicate_releases",
    "leftovers",
    "stray_helm_processes",
    "misclassified_errors",
)


@dataclass
class FaultRecord:
    """One test's tally. ``false_verdicts``: a healthy session reported failed or cancelled, or a
    running session killed during an outage; ``misclassified_errors``: an error raised during an
    outage that the orchestrator does not call temporary (Harvester would give the job up)."""

    fault: str
    test: str
    injected: int = 0
    sessions: int = 0
    false_verdicts: int = 0
    duplicate_releases: int = 0
    leftovers: int = 0
    stray_helm_processes: int = 0
    misclassified_errors: int = 0
    outcome: str = "not run"
    notes: list[str] = field(default_factory=list)
    verdicts: set[tuple[str, str, str]] = field(default_factory=set, repr=False)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def false_verdict(self, release: str, phase: str, reason: str | None, detail: str) -> None:
        """Count each wrong (session, phase, reason) once, however often it is observed."""
        key = (release, str(phase), str(reason))
        if key not in self.verdicts:
            self.verdicts.add(key)
            self.false_verdicts += 1
            self.note(f"{release} reported {phase}/{reason} while healthy: {detail[:200]}")


@dataclass
class Ledger:
    records: list[FaultRecord] = field(default_factory=list)

    def new(self, fault: str, test: str) -> FaultRecord:
        record = FaultRecord(fault=fault, test=test)
        self.records.append(record)
        return record

    def table(self) -> list[dict[str, Any]]:
        """One row per fault, the counts summed over its tests; outcome 'passed' only if all passed."""
        rows: dict[str, dict[str, Any]] = {}
        for rec in self.records:
            row = rows.setdefault(rec.fault, {"fault": rec.fault, **dict.fromkeys(COUNTS, 0), "tests": []})
            for key in COUNTS:
                row[key] += getattr(rec, key)
            row["tests"].append({"test": rec.test, "outcome": rec.outcome, "notes": rec.notes})
        for row in rows.values():
            outcomes = {t["outcome"] for t in row["tests"]}
            row["outcome"] = "passed" if outcomes == {"passed"} else "failed"
        return list(rows.values())

    def write(self, path: Path = RESULTS) -> Path:
        rows = self.table()
        totals = {key: sum(r[key] for r in rows) for key in COUNTS}
        doc = {
            "tier": "faults",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": COMMAND,
            "commit": _git_commit(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "columns": {
                "injected": "times the fault was injected",
                "sessions": "sessions (releases) involved",
                "false_verdicts": "healthy sessions reported failed/cancelled, or killed during an outage",
                "duplicate_releases": "installs of a job beyond its first (a second release or revision)",
                "leftovers": "objects labelled for a job (or its release) left after its sweep",
                "stray_helm_processes": "helm processes alive after the operation that started them returned",
                "misclassified_errors": "errors raised during an outage that are not temporary",
            },
            "faults": rows,
            "totals": totals,
        }
        path.write_text(scrub_paths(json.dumps(doc, indent=2)) + "\n")
        return path


def scrub_paths(text: str) -> str:
    """The table is committed and quoted: no machine paths in it (the repository becomes ``.``,
    the cluster's state directory ``<cluster state>``)."""
    root = str(Path(__file__).resolve().parents[2])
    state = os.environ.get("DPS_CLUSTER_STATE", "/tmp/dask-panda-session-cluster").rstrip("/")
    return text.replace(root + "/", "./").replace(root, ".").replace(state, "<cluster state>")


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None
