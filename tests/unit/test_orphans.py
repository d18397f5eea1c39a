"""orphans + the sweep: terminating hook pods held by the job-tracking finalizer of a Job that
is gone are let go (the job controller's orphan handling, when it missed the Job's deletion)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.orphans import JOB_TRACKING_FINALIZER, held_pods, orphaned
from orchestrator.service import SessionService, Settings
from tests.doubles import FakeHelm, FakeKube, pod

pytestmark = pytest.mark.unit

RELEASE = "dask-9103"


def held(name: str = f"{RELEASE}-cleanup-abcde", *, job_uid: str = "job-uid-1", version: str = "17") -> dict[str, Any]:
    obj = pod(RELEASE, "cleanup", name=name, phase="Succeeded")
    obj["metadata"].update(
        deletionTimestamp="2026-11-28T10:01:00Z",
        finalizers=[JOB_TRACKING_FINALIZER, "example.com/keep"],
        resourceVersion=version,
        ownerReferences=[
            {"apiVersion": "batch/v1", "kind": "Job", "name": f"{RELEASE}-cleanup", "uid": job_uid, "controller": True}
        ],
    )
    return obj


def job(uid: str) -> dict[str, Any]:
    return {"metadata": {"name": f"{RELEASE}-cleanup", "uid": uid, "labels": {"app.kubernetes.io/instance": RELEASE}}}


def make(**settings: Any) -> tuple[SessionService, FakeKube]:
    kube = FakeKube()
    svc = SessionService(
        Settings(namespace="ns", **settings), helm=FakeHelm(), kube=kube, sleep=lambda _: None
    )
    return svc, kube


def test_only_terminating_pods_with_the_finalizer_and_a_controlling_job_are_held() -> None:
    alive = held("a")
    del alive["metadata"]["deletionTimestamp"]
    no_finalizer = held("b")
    no_finalizer["metadata"]["finalizers"] = ["example.com/keep"]
    not_controller = held("c")
    not_controller["metadata"]["ownerReferences"][0]["controller"] = False
    replica_set = held("d")
    replica_set["metadata"]["ownerReferences"][0]["kind"] = "ReplicaSet"
    found = held_pods([alive, no_finalizer, not_controller, replica_set, held("e")])
    assert [(p.name, p.job, p.job_uid, p.resource_version) for p in found] == [
        ("e", f"{RELEASE}-cleanup", "job-uid-1", "17")
    ]
    # only the job-tracking finalizer goes; any other stays
    assert found[0].finalizers == ("example.com/keep",)


def test_a_pod_is_orphaned_when_its_job_is_gone_or_replaced() -> None:
    (one,) = held_pods([held()])
    assert orphaned(one, None)
    assert orphaned(one, job("another-uid"))
    assert not orphaned(one, job("job-uid-1"))


def test_the_sweep_lets_go_of_a_pod_whose_job_is_gone() -> None:
    svc, kube = make(verify_timeout=5.0)
    stuck = held()
    stuck["metadata"]["finalizers"] = [JOB_TRACKING_FINALIZER]
    kube.put("ns", "Pod", stuck)
    result = svc.sweep(RELEASE)
    assert result.clean, result
    assert kube.finalizer_changes == [("Pod", stuck["metadata"]["name"], ())]


def test_the_sweep_leaves_a_pod_of_a_live_job_to_the_job_controller() -> None:
    svc, kube = make(verify_timeout=0.0)
    kube.put("ns", "Pod", held())
    live = job("job-uid-1")
    live["metadata"]["labels"] = {}  # not the release's: the sweep does not delete it
    kube.put("ns", "Job", live)
    result = svc.sweep(RELEASE)
    assert not result.clean
    assert kube.finalizer_changes == []
    assert result.remaining == (f"Pod/{RELEASE}-cleanup-abcde",)


def test_a_pod_changed_since_it_was_listed_is_not_touched() -> None:
    svc, kube = make()
    listed = held(version="17")
    kube.put("ns", "Pod", held(version="18"))  # the API server has a newer version by now
    assert svc.release_orphaned_pods("ns", [listed]) == 0
    assert kube.finalizer_changes == []
    assert svc.release_orphaned_pods("ns", [held(version="18")]) == 1
