"""Pod dicts in the Kubernetes API JSON shape for the session tests: small builders whose
defaults describe a healthy running session, and the recorded pod lists under data/pods."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.session import CLOCK_SKEW_TOLERANCE, Pod, PodView, SessionState, derive_session

PODS = Path(__file__).parents[1] / "data" / "pods"
T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
REL = "dask-42"
NS = "sessions"
STARTUP = 300
LEASE = 3600
LIFETIME = 86400
SKEW = CLOCK_SKEW_TOLERANCE  # every limit counts only when exceeded by more than this


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ts(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# factories: small pod dicts in the Kubernetes API JSON shape


def running(started: float = 10) -> dict[str, Any]:
    return {"running": {"startedAt": ts(started)}}


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": reason}
    if message is not None:
        body["message"] = message
    return {"waiting": body}


def terminated(
    code: int, reason: str | None = None, started: float = 10, finished: float = 100
) -> dict[str, Any]:
    body: dict[str, Any] = {"exitCode": code, "startedAt": ts(started), "finishedAt": ts(finished)}
    body["reason"] = reason or ("Completed" if code == 0 else "Error")
    return {"terminated": body}


def pod(
    component: str,
    *,
    release: str = REL,
    name: str | None = None,
    mode: str = "batch",
    phase: str = "Running",
    ready: bool | None = None,
    ready_at: float = 20,
    created: float = 0,
    state: dict[str, Any] | None = None,
    last_state: dict[str, Any] | None = None,
    restarts: int = 0,
    init: list[dict[str, Any]] | None = None,
    reason: str | None = None,
    message: str | None = None,
    scheduled: dict[str, Any] | None = None,
    deleting: float | None = None,
    grace: int = 30,
    annotations: dict[str, str] | None = None,
    wanted: int = 2,
    startup: int | None = STARTUP,
    unready_since: float | None = None,
) -> dict[str, Any]:
    """One pod of a release; defaults describe a healthy running session pod.

    ``unready_since`` (not Ready pods): when Ready turned False; later than ``created`` means
    the pod was Ready before and lost it (by default a not-Ready pod never was Ready).
    """
    ann = {
        "dask-panda-session/scheduler-address": f"tcp://{release}-scheduler.{NS}.svc.cluster.local:8786",
        "dask-panda-session/dashboard-url": f"http://{release}-scheduler.{NS}.svc.cluster.local:8787/status",
        "dask-panda-session/workers-wanted": str(wanted),
        "dask-panda-session/lease-seconds": str(LEASE),
        "dask-panda-session/lifetime-seconds": str(LIFETIME),
    }
    if startup is not None:
        ann["dask-panda-session/startup-seconds"] = str(startup)
    if mode == "interactive":
        ann["dask-panda-session/jupyter-url"] = f"http://{release}-jupyterlab.{NS}:8888/lab"
    ann.update(annotations or {})
    metadata: dict[str, Any] = {
        "name": name or f"{release}-{component}",
        "namespace": NS,
        "creationTimestamp": ts(created),
        "labels": {
            "app.kubernetes.io/name": "dask-panda-session",
            "app.kubernetes.io/instance": release,
            "app.kubernetes.io/component": component,
            "dask-panda-session/pandaid": "42",
            "dask-panda-session/mode": mode,
            "dask-panda-session/queue": "GOOGLE_DASK",
            "dask-panda-session/worker-id": "7",
        },
        "annotations": ann,
    }
    if deleting is not None:
        metadata["deletionTimestamp"] = ts(deleting + grace)
        metadata["deletionGracePeriodSeconds"] = grace
    if state is None:
        state = running() if phase == "Running" else {"waiting": {"reason": "ContainerCreating"}}
    if ready is None:
        ready = phase == "Running" and "running" in state
    unready_at = created if unready_since is None else unready_since
    conditions: list[dict[str, Any]] = [
        scheduled or {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(created)},
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "lastTransitionTime": ts(ready_at if ready else unready_at),
        },
    ]
    container = {
        "name": component,
        "state": state,
        "lastState": last_state or {},
        "ready": ready,
        "restartCount": restarts,
    }
    status: dict[str, Any] = {"phase": phase, "conditions": conditions, "containerStatuses": [container]}
    if init is not None:
        status["initContainerStatuses"] = init
    if reason is not None:
        status["reason"] = reason
    if message is not None:
        status["message"] = message
    return {"metadata": metadata, "status": status}


def worker(i: int, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("ready_at", 30 + i)
    return pod("worker", name=f"{REL}-worker-{i}", **kwargs)


def batch(
    pilot_state: dict[str, Any] | None = None, pilot_phase: str = "Running", **pilot_kwargs: Any
) -> list[dict[str, Any]]:
    """A batch session: scheduler, two workers, pilot (running unless told)."""
    return [
        pod("scheduler", ready_at=20),
        worker(0),
        worker(1),
        pod("pilot", phase=pilot_phase, state=pilot_state or running(25), **pilot_kwargs),
    ]


def interactive(
    pilot_state: dict[str, Any] | None = None, pilot_phase: str = "Running", **jupyter_kwargs: Any
) -> list[dict[str, Any]]:
    """An interactive session: scheduler, two workers, JupyterLab, the stager pilot."""
    jupyter_kwargs.setdefault("ready_at", 40)
    return [
        pod("scheduler", mode="interactive", ready_at=20),
        worker(0, mode="interactive"),
        worker(1, mode="interactive"),
        pod("jupyterlab", mode="interactive", **jupyter_kwargs),
        pod("pilot", mode="interactive", phase=pilot_phase, state=pilot_state or running(25)),
    ]


def derive(pods: Sequence[Pod | PodView], now: float = 60, **kwargs: Any) -> SessionState:
    return derive_session(REL, NS, pods, now=at(now), **kwargs)


def replace(pods: list[dict[str, Any]], component: str, new: dict[str, Any]) -> list[dict[str, Any]]:
    return [new if p["metadata"]["labels"]["app.kubernetes.io/component"] == component else p for p in pods]


def fixture(name: str) -> list[dict[str, Any]]:
    """The pods of a recorded PodList under data/pods."""
    items: list[dict[str, Any]] = json.loads((PODS / name).read_text())["items"]
    return items
