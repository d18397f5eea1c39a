"""Session pods in the Kubernetes API JSON shape: a builder whose defaults describe a healthy
running session, and the pods recorded from a real cluster (``tests/data/pods``), moved to
another release and namespace."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.names import COMPONENT_LABEL, INSTANCE_LABEL, NAME_LABEL

DATA = Path(__file__).resolve().parents[1] / "data"
EXAMPLE_JOB = DATA / "harvester-example-pandaJobData.json"
"""Harvester's pandaJobData.out of one job: the example every tier submits."""
PODS = DATA / "pods"
FIXTURE_PANDAID = "1759473585"
FIXTURE_NAMESPACE = "dask-sessions"


def pod(
    release: str,
    component: str,
    *,
    name: str | None = None,
    phase: str = "Running",
    ready: bool = True,
    mode: str = "batch",
    created: str = "2026-11-28T10:00:00Z",
    workers_wanted: int = 2,
    terminated: dict[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A session pod as the API returns it (only the fields the orchestrator reads)."""
    state: dict[str, Any] = {"running": {"startedAt": created}}
    if terminated is not None:
        state = {"terminated": {"startedAt": created, "finishedAt": created, **terminated}}
    ann = {
        "dask-panda-session/scheduler-address": f"tcp://{release}-scheduler.ns.svc.cluster.local:8786",
        "dask-panda-session/dashboard-url": f"http://{release}-scheduler.ns.svc.cluster.local:8787/status",
        "dask-panda-session/workers-wanted": str(workers_wanted),
        "dask-panda-session/startup-seconds": "600",
        "dask-panda-session/lease-seconds": "3600",
        "dask-panda-session/lifetime-seconds": "86400",
        **(annotations or {}),
    }
    return {
        "metadata": {
            "name": name or f"{release}-{component}",
            "creationTimestamp": created,
            "labels": {
                NAME_LABEL: "dask-panda-session",
                INSTANCE_LABEL: release,
                COMPONENT_LABEL: component,
                "dask-panda-session/pandaid": release.split("-")[1],
                "dask-panda-session/mode": mode,
            },
            "annotations": ann,
        },
        "spec": {"restartPolicy": "Never" if component == "pilot" else "OnFailure"},
        "status": {
            "phase": phase,
            "startTime": created,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": created},
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": created},
            ],
            "containerStatuses": [{"name": component, "ready": ready, "restartCount": 0, "state": state}],
        },
    }


def session_pods(release: str, *, workers: int = 2, mode: str = "batch", **kw: Any) -> list[dict[str, Any]]:
    """Every pod of one session: scheduler, pilot, the workers, and JupyterLab if interactive."""
    pods = [
        pod(release, "scheduler", mode=mode, workers_wanted=workers, **kw),
        pod(release, "pilot", mode=mode, workers_wanted=workers, **kw),
    ]
    pods += [
        pod(release, "worker", name=f"{release}-worker-{i}", mode=mode, workers_wanted=workers, **kw)
        for i in range(workers)
    ]
    if mode == "interactive":
        pods.append(pod(release, "jupyterlab", mode=mode, workers_wanted=workers, **kw))
    return pods


def fixture_pods(name: str, pandaid: int | str, namespace: str = FIXTURE_NAMESPACE) -> list[dict[str, Any]]:
    """The pods of ``tests/data/pods/<name>.json`` as if they belonged to PandaID ``pandaid``.

    Every fixture's release is ``dask-<PandaID>``: replacing the PandaID digits and the namespace
    in the JSON text moves names, labels and annotations together.
    """
    data = json.loads((PODS / f"{name}.json").read_text())
    release = {p["metadata"]["labels"][INSTANCE_LABEL] for p in data["items"]}.pop()
    old_id = release.removeprefix("dask-")
    text = json.dumps(data["items"]).replace(old_id, str(pandaid)).replace(FIXTURE_NAMESPACE, namespace)
    return list(json.loads(text))


def with_pilot_exit(pods: list[dict[str, Any]], code: int) -> list[dict[str, Any]]:
    """A finished session's pods with the pilot failed with exit ``code`` instead."""
    pods = copy.deepcopy(pods)
    for one in pods:
        if one["metadata"]["labels"][COMPONENT_LABEL] != "pilot":
            continue
        one["status"]["phase"] = "Failed"
        for status in one["status"]["containerStatuses"]:
            terminated = status["state"]["terminated"]
            terminated["exitCode"] = code
            terminated["reason"] = "Error"
    return pods
