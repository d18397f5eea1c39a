"""PURE: what a submit does when it meets the job's Secret and release as they are.

The per-job Secret is the submit's lock and identity record. Every submit creates it first; the
API server lets exactly one create succeed, so exactly one submitter holds a job at a time, and the
Secret's annotations say which call (`submit-id`, a fresh uuid4 per call) and which Harvester
worker made it. A submitter that finds the Secret taken reads it and the release and asks `decide`
what to do. Ages are measured on the API server's clock only (the Secret's creationTimestamp
against the server's Date), never the host's, so a skewed host neither steals a live lock nor
waits on a dead one forever.

Holding the lock:
* no release -> install;
* `deployed` -> adopt, unless it was made for another Harvester worker (a previous worker's
  session of the same job): then replace it (sweep, install);
* `failed`, `uninstalling`, anything else not live -> replace it;
* `pending-*` -> wait: a helm run without the lock may still finish (the caller replaces the
  release once it has waited longer than an install may take).

Not holding it (another submitter's Secret):
* young (less than the install timeout + margin old): that submitter is at work -> wait, or adopt
  a `deployed` release of the same worker;
* old: that submitter is gone (killed between the Secret and the install, or during the
  install) -> take the lock over (delete that very Secret, by uid, and create ours).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from orchestrator.helm import HelmReleaseInfo
from orchestrator.names import ANN_SUBMIT_ID, ANN_WORKER_ID

__all__ = [
    "ANN_SUBMIT_ID",
    "ANN_WORKER_ID",
    "STALE_MARGIN_SECONDS",
    "Decision",
    "Lock",
    "Step",
    "decide",
]

# Beyond the install timeout: the submitter kills helm's whole process group at the install timeout
# plus helm.py's deadline margin (30 s) and kill grace (5 s); the rest covers the Secret write, the
# status call and the undo of a failed install. Ages are on the API server's clock, so host clock
# skew does not eat into it.
STALE_MARGIN_SECONDS: Final = 60.0


class Step(StrEnum):
    INSTALL = "install"  # the lock is ours and there is no release
    ADOPT = "adopt"  # the job's session is deployed: return it
    REPLACE = "replace"  # the lock is ours: sweep the release (keep the lock), then install
    TAKE_LOCK = "take-lock"  # the holder is gone: delete its Secret (by uid) and create ours
    WAIT = "wait"  # someone is at work on the job: poll again


@dataclass(frozen=True)
class Decision:
    step: Step
    why: str


@dataclass(frozen=True)
class Lock:
    """The identity record of a submit, read from the Secret's metadata (never its data)."""

    uid: str
    submit_id: str
    worker_id: str  # "" when unknown
    created: datetime | None

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> Lock:
        annotations = meta.get("annotations") or {}
        return cls(
            uid=str(meta.get("uid") or ""),
            submit_id=str(annotations.get(ANN_SUBMIT_ID) or ""),
            worker_id=str(annotations.get(ANN_WORKER_ID) or ""),
            created=parse_time(meta.get("creationTimestamp")),
        )

    def age(self, server_now: datetime | None) -> float | None:
        """Seconds since the Secret was made, on the API server's clock; None when unknown."""
        if self.created is None or server_now is None:
            return None
        return (server_now - self.created).total_seconds()


def parse_time(value: object) -> datetime | None:
    """An API timestamp (RFC 3339, `Z`) as an aware datetime; None when absent or malformed."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def different_workers(a: str, b: str) -> bool:
    """Two Harvester worker ids that are both known and differ (unknown matches anything)."""
    return bool(a) and bool(b) and a != b


def decide(
    release: HelmReleaseInfo | None,
    *,
    ours: bool,
    lock_age: float | None,
    holder_worker_id: str,
    worker_id: str,
    stale_after: float,
) -> Decision:
    """The next step of a submit (see the module docstring).

    `ours`: this call holds the lock. `lock_age`: the holder's Secret's age on the server clock
    (None when unknown: treated as young, so a lock is never taken on a guess). `holder_worker_id`:
    the Harvester worker the existing session was made for (the Secret's annotation, or the
    release's values when the lock is ours). `worker_id`: this call's ("" when not given).
    """
    young = ours or lock_age is None or lock_age < stale_after
    age = "unknown" if lock_age is None else f"{lock_age:.0f} s"
    if release is None:
        if ours:
            return Decision(Step.INSTALL, "no release")
        if young:
            return Decision(Step.WAIT, f"another submitter holds the job (its lock is {age} old)")
        return Decision(Step.TAKE_LOCK, f"stale lock: no release and the lock is {age} old")
    status = release.status
    if status == "deployed":
        if not different_workers(holder_worker_id, worker_id):
            return Decision(Step.ADOPT, "deployed")
        why = f"deployed for Harvester worker {holder_worker_id}, not {worker_id}"
        return Decision(Step.REPLACE if ours else Step.TAKE_LOCK, why)
    if status.startswith("pending-"):
        if young:
            return Decision(Step.WAIT, f"{status}: an install may be under way (lock {age} old)")
        return Decision(Step.TAKE_LOCK, f"{status} with a lock {age} old: helm was killed")
    if ours:
        return Decision(Step.REPLACE, status)
    if young:
        return Decision(Step.WAIT, f"{status}: its submitter may be undoing it (lock {age} old)")
    return Decision(Step.TAKE_LOCK, f"{status} with a lock {age} old")
