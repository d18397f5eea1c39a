"""submit_lock.decide: the whole table of what a submit meets and does (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.helm import HelmReleaseInfo
from orchestrator.submit_lock import ANN_SUBMIT_ID, ANN_WORKER_ID, Lock, Step, decide

STALE_AFTER = 420.0
YOUNG, OLD, UNKNOWN = 10.0, 1000.0, None


def info(status: str) -> HelmReleaseInfo:
    return HelmReleaseInfo("dask-1", "ns", 1, status, None)


@pytest.mark.parametrize(
    ("status", "ours", "age", "holder", "worker", "step"),
    [
        # no release
        (None, True, None, "", "", Step.INSTALL),
        (None, False, YOUNG, "", "", Step.WAIT),
        (None, False, UNKNOWN, "", "", Step.WAIT),  # never take a lock on a guess
        (None, False, OLD, "", "", Step.TAKE_LOCK),
        # deployed
        ("deployed", False, YOUNG, "7", "7", Step.ADOPT),
        ("deployed", False, OLD, "", "7", Step.ADOPT),  # unknown worker: adopt, never destroy
        ("deployed", False, OLD, "7", "", Step.ADOPT),  # no worker given (the CLI): adopt
        ("deployed", False, OLD, "7", "8", Step.TAKE_LOCK),
        ("deployed", True, None, "7", "8", Step.REPLACE),
        ("deployed", True, None, "8", "8", Step.ADOPT),
        # pending
        ("pending-install", False, YOUNG, "", "", Step.WAIT),
        ("pending-upgrade", False, OLD, "", "", Step.TAKE_LOCK),
        ("pending-install", True, None, "", "", Step.WAIT),
        # dead
        ("failed", True, None, "", "", Step.REPLACE),
        ("uninstalling", True, None, "", "", Step.REPLACE),
        ("failed", False, YOUNG, "", "", Step.WAIT),
        ("failed", False, OLD, "", "", Step.TAKE_LOCK),
        ("uninstalling", False, OLD, "", "", Step.TAKE_LOCK),
        ("superseded", True, None, "", "", Step.REPLACE),
    ],
)
def test_decide(
    status: str | None, ours: bool, age: float | None, holder: str, worker: str, step: Step
) -> None:
    release = None if status is None else info(status)
    decision = decide(
        release, ours=ours, lock_age=age, holder_worker_id=holder, worker_id=worker, stale_after=STALE_AFTER
    )
    assert decision.step is step, decision.why


def test_lock_from_metadata_and_age_on_the_server_clock() -> None:
    lock = Lock.from_metadata(
        {
            "uid": "u1",
            "creationTimestamp": "2026-11-28T10:00:00Z",
            "annotations": {ANN_SUBMIT_ID: "abc", ANN_WORKER_ID: "7"},
        }
    )
    assert (lock.uid, lock.submit_id, lock.worker_id) == ("u1", "abc", "7")
    assert lock.age(datetime(2026, 11, 28, 10, 1, tzinfo=UTC)) == 60.0
    assert lock.age(None) is None
    assert Lock.from_metadata({}).age(datetime(2026, 11, 28, tzinfo=UTC)) is None
