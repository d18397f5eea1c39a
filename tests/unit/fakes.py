"""Seams for unit tests: stand-ins for the two I/O modules (helm, kube) with the same methods.

They keep just enough state to behave like the real thing for the service layer (a release
exists after install, pods can be planted, a Secret is stored) and record every call, so tests
can assert what was done, how many API requests were made, and that nothing was left behind.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.helm import HelmReleaseInfo
from orchestrator.kube import APP_SELECTOR, Kind, KubeUnavailable


@dataclass
class FakeHelm:
    releases: dict[tuple[str, str], HelmReleaseInfo] = field(default_factory=dict)
    values: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail_install: Exception | None = None
    fail_uninstall_with_hooks: Exception | None = None
    version: str = "4.1.4"

    def release(self, name: str, namespace: str) -> HelmReleaseInfo | None:
        self.calls.append(("status", namespace, name))
        return self.releases.get((namespace, name))

    def install(
        self,
        name: str,
        namespace: str,
        values: Mapping[str, Any],
        *,
        timeout: float | None = None,
        secrets: Sequence[str] = (),
    ) -> HelmReleaseInfo:
        self.calls.append(("install", namespace, name))
        if self.fail_install is not None:
            raise self.fail_install
        info = HelmReleaseInfo(name, namespace, 1, "deployed", datetime.now(UTC))
        self.releases[(namespace, name)] = info
        self.values[(namespace, name)] = copy.deepcopy(dict(values))
        return info

    def uninstall(
        self,
        name: str,
        namespace: str,
        *,
        no_hooks: bool = False,
        timeout: float | None = None,
        wait: bool = False,
    ) -> bool:
        self.calls.append(("uninstall-no-hooks" if no_hooks else "uninstall", namespace, name))
        if not no_hooks and self.fail_uninstall_with_hooks is not None and (namespace, name) in self.releases:
            raise self.fail_uninstall_with_hooks
        return self.releases.pop((namespace, name), None) is not None

    def get_values(self, name: str, namespace: str) -> dict[str, Any]:
        self.calls.append(("get-values", namespace, name))
        return copy.deepcopy(self.values.get((namespace, name), {}))

    def list_releases(self, namespace: str) -> list[HelmReleaseInfo]:
        self.calls.append(("list", namespace))
        return [info for (ns, _), info in self.releases.items() if ns == namespace]

    def template(
        self, name: str, namespace: str, values: Mapping[str, Any], show_only: str | None = None
    ) -> list[dict[str, Any]]:
        self.calls.append(("template", namespace, name))
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": f"{name}-cleanup",
                "annotations": {"helm.sh/hook": "pre-delete"},
                "labels": {},
            },
            "spec": {},
        }
        return [job]


@dataclass
class FakeKube:
    """Objects per namespace as {(kind name, object name): object JSON}."""

    objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    requests: int = 0
    lists: list[tuple[str, str]] = field(default_factory=list)
    unavailable: bool = False
    secrets_written: list[dict[str, str]] = field(default_factory=list)
    jobs_complete: bool = True

    def _count(self) -> None:
        self.requests += 1
        if self.unavailable:
            raise KubeUnavailable("GET /api/v1/pods: cluster unreachable: ConnectionRefusedError")

    def put(self, namespace: str, kind: str, obj: dict[str, Any]) -> None:
        self.objects.setdefault(namespace, {})[(kind, obj["metadata"]["name"])] = obj

    def list_pods(self, namespace: str, selector: str = APP_SELECTOR) -> list[dict[str, Any]]:
        self._count()
        self.lists.append(("pods", namespace))
        return [copy.deepcopy(o) for (k, _), o in self.objects.get(namespace, {}).items() if k == "Pod"]

    def pod_events(self, namespace: str, release: str) -> list[dict[str, Any]]:
        self._count()
        return []

    def create_secret(
        self, namespace: str, name: str, data: Mapping[str, str], labels: Mapping[str, str]
    ) -> None:
        self._count()
        self.secrets_written.append(dict(data))
        self.put(
            namespace,
            "Secret",
            {"metadata": {"name": name, "labels": dict(labels)}, "stringData": dict(data)},
        )

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        self._count()
        return self.objects.get(namespace, {}).pop((kind.name, name), None) is not None

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        self._count()
        obj = self.objects.get(namespace, {}).get((kind.name, name))
        if obj is not None and kind.name == "Job" and self.jobs_complete:
            obj.setdefault("status", {})["conditions"] = [{"type": "Complete", "status": "True"}]
        return obj

    def create(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count()
        obj = copy.deepcopy(dict(body))
        self.put(namespace, kind.name, obj)
        return obj

    def list_labelled(
        self, namespace: str, selector: str, kinds: Sequence[Kind] = ()
    ) -> list[tuple[Kind, dict[str, Any]]]:
        self._count()
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        found = []
        for (kind, _), obj in self.objects.get(namespace, {}).items():
            labels = obj.get("metadata", {}).get("labels", {})
            if all(labels.get(k) == v for k, v in wanted.items()):
                found.append((Kind(kind, "v1", kind.lower() + "s"), obj))
        return found

    def delete_labelled(self, namespace: str, selector: str, kinds: Sequence[Kind] = ()) -> int:
        found = self.list_labelled(namespace, selector)
        for kind, obj in found:
            self.objects[namespace].pop((kind.name, obj["metadata"]["name"]), None)
        return len(found)


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
                "app.kubernetes.io/name": "dask-panda-session",
                "app.kubernetes.io/instance": release,
                "app.kubernetes.io/component": component,
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
