"""Pods the job controller should have let go of: terminating pods of a Job that no longer exists.

A Job's pods carry the `batch.kubernetes.io/job-tracking` finalizer until the job controller has
counted them. When the Job is deleted, the controller removes that finalizer from its orphaned
pods; but it acts on watch events only, and after an API-server restart its informers can stay
behind for a minute or more and miss those events (seen on a real kube-controller-manager). The
pod then stays `Terminating` for good: the sweep would never be clean and the namespace could
never be deleted. The sweep does what the controller's orphan handling does, for the release's
own pods only and only once the owning Job is verifiably gone (see `SessionService`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

JOB_TRACKING_FINALIZER: Final = "batch.kubernetes.io/job-tracking"


@dataclass(frozen=True)
class HeldPod:
    """A terminating pod held only by the job-tracking finalizer of the Job `job` (name, uid)."""

    name: str
    resource_version: str
    finalizers: tuple[str, ...]  # what remains once the job-tracking finalizer is removed
    job: str
    job_uid: str


def _controller_job(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    for ref in meta.get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("controller") and ref.get("kind") == "Job":
            return str(ref.get("name") or ""), str(ref.get("uid") or "")
    return None


def held_pods(pods: Iterable[Mapping[str, Any]]) -> list[HeldPod]:
    """The pods among `pods` that are being deleted and still carry the job-tracking finalizer
    of a controlling Job; whether that Job still exists is for the caller to check."""
    held: list[HeldPod] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        finalizers = [str(f) for f in meta.get("finalizers") or ()]
        if not meta.get("deletionTimestamp") or JOB_TRACKING_FINALIZER not in finalizers:
            continue
        owner = _controller_job(meta)
        if owner is None or not owner[0]:
            continue
        held.append(
            HeldPod(
                name=str(meta.get("name") or ""),
                resource_version=str(meta.get("resourceVersion") or ""),
                finalizers=tuple(f for f in finalizers if f != JOB_TRACKING_FINALIZER),
                job=owner[0],
                job_uid=owner[1],
            )
        )
    return held


def orphaned(pod: HeldPod, job: Mapping[str, Any] | None) -> bool:
    """True when the pod's Job is gone: no object of that name, or one with another uid."""
    if job is None:
        return True
    return str((job.get("metadata") or {}).get("uid") or "") != pod.job_uid
