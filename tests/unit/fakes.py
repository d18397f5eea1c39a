"""Seams for unit tests: stand-ins for the two I/O modules (helm, kube) with the same methods.

They keep just enough state to behave like the real thing for the service layer (a release
exists after install, pods can be planted, a Secret is stored) and record every call, so tests
can assert what was done, how many API requests were made, and that nothing was left behind.

Like the real API server, FakeKube refuses a second create of one Secret (409), stamps objects
with a uid and a creationTimestamp from its own clock (`server_now`, which a test can move or
set apart from the host's), answers lists with that clock as their Date, and honours uid
preconditions on delete. FakeHelm refuses to install over an existing release
(`HelmReleaseExists`), can hold an install in `pending-install` for a while (`install_delay`)
and leave a `failed` release behind. Both are thread-safe, so real threads can race on them.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.helm import HelmReleaseExists, HelmReleaseInfo
from orchestrator.kube import APP_SELECTOR, SECRET, Kind, KubeConflict, KubeError, KubeUnavailable
from orchestrator.submit_lock import ANN_SUBMIT_ID, ANN_WORKER_ID

SERVER_NOW = datetime(2026, 11, 28, 10, 5, tzinfo=UTC)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeHelm:
    releases: dict[tuple[str, str], HelmReleaseInfo] = field(default_factory=dict)
    values: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail_install: Exception | None = None
    fail_install_leaves: str | None = None  # the status a failed install leaves (None: no release)
    fail_uninstall_with_hooks: Exception | None = None
    fail_release: dict[str, Exception] = field(default_factory=dict)  # `helm status` of these fails
    install_delay: float = 0.0  # real seconds an install stays pending-install (racing threads)
    on_install: Callable[[str, str], None] | None = None  # runs first in install; may raise
    version: str = "4.1.4"
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def _call(self, *call: str) -> None:
        with self.lock:
            self.calls.append(call)

    def count(self, operation: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c[0] == operation)

    def release(self, name: str, namespace: str) -> HelmReleaseInfo | None:
        self._call("status", namespace, name)
        if name in self.fail_release:
            raise self.fail_release[name]
        with self.lock:
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
        self._call("install", namespace, name)
        if self.on_install is not None:
            self.on_install(namespace, name)
        key = (namespace, name)
        with self.lock:
            if key in self.releases:
                raise HelmReleaseExists(
                    f"helm install {namespace}/{name}: cannot re-use a name that is still in use"
                )
            pending = HelmReleaseInfo(name, namespace, 1, "pending-install", datetime.now(UTC))
            self.releases[key] = pending
            self.values[key] = copy.deepcopy(dict(values))
        if self.install_delay:
            time.sleep(self.install_delay)
        with self.lock:
            if self.fail_install is not None:
                if self.fail_install_leaves is None:
                    self.releases.pop(key, None)
                    self.values.pop(key, None)
                else:
                    self.releases[key] = HelmReleaseInfo(name, namespace, 1, self.fail_install_leaves, None)
                raise self.fail_install
            info = HelmReleaseInfo(name, namespace, 1, "deployed", datetime.now(UTC))
            self.releases[key] = info
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
        self._call("uninstall-no-hooks" if no_hooks else "uninstall", namespace, name)
        with self.lock:
            if (
                not no_hooks
                and self.fail_uninstall_with_hooks is not None
                and (namespace, name) in self.releases
            ):
                raise self.fail_uninstall_with_hooks
            return self.releases.pop((namespace, name), None) is not None

    def get_values(self, name: str, namespace: str) -> dict[str, Any]:
        self._call("get-values", namespace, name)
        with self.lock:
            return copy.deepcopy(self.values.get((namespace, name), {}))

    def list_releases(self, namespace: str) -> list[HelmReleaseInfo]:
        self._call("list", namespace)
        with self.lock:
            return [info for (ns, _), info in self.releases.items() if ns == namespace]

    def template(
        self, name: str, namespace: str, values: Mapping[str, Any], show_only: str | None = None
    ) -> list[dict[str, Any]]:
        self._call("template", namespace, name)
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
    deleted: list[tuple[str, str, str | None]] = field(default_factory=list)  # (kind, name, uid)
    finalizer_changes: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    jobs_complete: bool = True
    server_now: datetime = SERVER_NOW  # the API server's clock
    send_date: bool = True  # whether answers carry a Date header
    denied: set[tuple[str, str, str]] = field(default_factory=set)  # (verb, resource, group) refused
    reviews: list[dict[str, str]] = field(default_factory=list)  # SelfSubjectAccessReviews asked
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _uids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def _count(self) -> None:
        with self.lock:
            self.requests += 1
        if self.unavailable:
            raise KubeUnavailable("GET /api/v1/pods: cluster unreachable: ConnectionRefusedError")

    def _date(self) -> datetime | None:
        return self.server_now if self.send_date else None

    def put(self, namespace: str, kind: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.objects.setdefault(namespace, {})[(kind, obj["metadata"]["name"])] = obj

    def find(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self.objects.get(namespace, {}).get((kind, name))

    def plant_lock(
        self,
        namespace: str,
        release: str,
        *,
        age: float,
        submit_id: str = "someone-else",
        worker: str = "",
    ) -> dict[str, Any]:
        """Another submitter's lock Secret, made `age` seconds ago on the server's clock."""
        meta = {
            "name": f"{release}-secret",
            "uid": f"uid-planted-{next(self._uids)}",
            "creationTimestamp": stamp(self.server_now - timedelta(seconds=age)),
            "labels": {"app.kubernetes.io/name": "dask-panda-session", "app.kubernetes.io/instance": release},
            "annotations": {ANN_SUBMIT_ID: submit_id, ANN_WORKER_ID: worker},
        }
        self.put(namespace, "Secret", {"metadata": meta, "stringData": {}})
        return meta

    def list_pods(self, namespace: str, selector: str = APP_SELECTOR) -> list[dict[str, Any]]:
        return self.list_pods_at(namespace, selector)[0]

    def list_pods_at(
        self, namespace: str, selector: str = APP_SELECTOR
    ) -> tuple[list[dict[str, Any]], datetime | None]:
        self._count()
        with self.lock:
            self.lists.append(("pods", namespace))
            pods = [copy.deepcopy(o) for (k, _), o in self.objects.get(namespace, {}).items() if k == "Pod"]
        return pods, self._date()

    def list_pod_states_at(
        self, namespace: str, selector: str = APP_SELECTOR
    ) -> tuple[list[dict[str, Any]], datetime | None]:
        """The monitor's LIST (metadata and status only on the real API); whole pods here."""
        return self.list_pods_at(namespace, selector)

    def list_services(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self._count()
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        with self.lock:
            self.lists.append(("services", namespace))
            return [
                copy.deepcopy(o)
                for (k, _), o in self.objects.get(namespace, {}).items()
                if k == "Service" and all(o["metadata"].get("labels", {}).get(a) == b for a, b in wanted.items())
            ]

    def server_time(self) -> datetime | None:
        self._count()
        return self._date()

    def version(self) -> str:
        self._count()
        return "v1.35.4"

    def can_i(self, namespace: str, verb: str, resource: str, group: str = "") -> bool:
        self._count()
        return (verb, resource, group) not in self.denied

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        missing_ok: bool = False,
        **_: Any,
    ) -> Any:
        """The raw call, for what doctor asks: access reviews, a claim's events, a volume
        (cluster-scoped objects are kept under the namespace "")."""
        self._count()
        parts = path.strip("/").split("/")
        if method == "POST" and parts[-1] == "selfsubjectaccessreviews":
            attrs = dict(body["spec"]["resourceAttributes"])
            with self.lock:
                self.reviews.append(attrs)
            allowed = (attrs["verb"], attrs["resource"], attrs.get("group", "")) not in self.denied
            return {"status": {"allowed": allowed}}
        if method == "GET" and parts[:3] == ["api", "v1", "persistentvolumes"]:
            if ("get", "persistentvolumes", "") in self.denied:
                raise KubeError(f"GET {path}: 403 Forbidden: persistentvolumes is forbidden")
            found = self.find("", "PersistentVolume", parts[3])
            if found is None and not missing_ok:
                raise KubeError(f"GET {path}: 404 Not Found")
            return copy.deepcopy(found)
        if method == "GET" and parts[-1] == "events":
            wanted = dict(p.split("=", 1) for p in (query or {}).get("fieldSelector", "").split(",") if p)
            with self.lock:
                events = [o for (k, _), o in self.objects.get(parts[3], {}).items() if k == "Event"]
            items = [
                e
                for e in events
                if all(e.get("involvedObject", {}).get(k.split(".", 1)[1]) == v for k, v in wanted.items())
            ]
            return {"items": copy.deepcopy(items)}
        raise NotImplementedError(f"FakeKube.request {method} {path}")

    def exists(self, path: str) -> bool:
        self._count()
        return True

    def pod_events(self, namespace: str, release: str) -> list[dict[str, Any]]:
        self._count()
        return []

    def create_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        self._count()
        with self.lock:
            if self.find(namespace, "Secret", name) is not None:
                raise KubeConflict(f"POST secrets {name}: 409 Conflict: secrets {name!r} already exists")
            self.secrets_written.append(dict(data))
            meta = {
                "name": name,
                "uid": f"uid-{next(self._uids)}",
                "creationTimestamp": stamp(self.server_now),
                "labels": dict(labels),
                "annotations": dict(annotations or {}),
            }
            self.put(namespace, "Secret", {"metadata": meta, "stringData": dict(data)})
            return copy.deepcopy(meta)

    def metadata_at(
        self, kind: Kind, namespace: str, name: str
    ) -> tuple[dict[str, Any] | None, datetime | None]:
        self._count()
        obj = self.find(namespace, kind.name, name)
        return (copy.deepcopy(obj["metadata"]) if obj else None), self._date()

    def delete(self, kind: Kind, namespace: str, name: str, *, uid: str | None = None) -> bool:
        self._count()
        with self.lock:
            obj = self.find(namespace, kind.name, name)
            if obj is None:
                return False
            if uid is not None and obj["metadata"].get("uid") != uid:
                return False  # the precondition failed: the name belongs to a newer object
            self.deleted.append((kind.name, name, uid))
            self._remove(namespace, kind.name, obj)
            return True

    def set_finalizers(
        self, kind: Kind, namespace: str, name: str, finalizers: Sequence[str], *, resource_version: str
    ) -> bool:
        """As the API server: refused (False) unless the object is at `resource_version`; a
        terminating object left without finalizers is gone."""
        self._count()
        with self.lock:
            obj = self.find(namespace, kind.name, name)
            if obj is None or str(obj["metadata"].get("resourceVersion", "")) != resource_version:
                return False
            self.finalizer_changes.append((kind.name, name, tuple(finalizers)))
            obj["metadata"]["finalizers"] = list(finalizers)
            if not finalizers and obj["metadata"].get("deletionTimestamp"):
                self.objects[namespace].pop((kind.name, name), None)
            return True

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        self._count()
        obj = self.find(namespace, kind.name, name)
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
        # "key=value" must match, a bare "key" must exist (the API server's selector syntax)
        parts = [part.split("=", 1) for part in selector.split(",")]
        wanted = {p[0]: p[1] for p in parts if len(p) == 2}
        present = {p[0] for p in parts if len(p) == 1}
        only = {k.name for k in kinds}
        found = []
        with self.lock:
            for (kind, _), obj in self.objects.get(namespace, {}).items():
                if only and kind not in only:
                    continue
                labels = obj.get("metadata", {}).get("labels", {})
                if all(labels.get(k) == v for k, v in wanted.items()) and present <= labels.keys():
                    found.append((SECRET if kind == "Secret" else Kind(kind, "v1", kind.lower() + "s"), obj))
        return found

    def delete_labelled(self, namespace: str, selector: str, kinds: Sequence[Kind] = ()) -> int:
        found = self.list_labelled(namespace, selector, kinds)
        with self.lock:
            for kind, obj in found:
                self.deleted.append((kind.name, obj["metadata"]["name"], None))
                self._remove(namespace, kind.name, obj)
        return len(found)

    def _remove(self, namespace: str, kind: str, obj: dict[str, Any]) -> None:
        """As the API server: an object with finalizers is only marked as terminating."""
        meta = obj["metadata"]
        if meta.get("finalizers"):
            meta.setdefault("deletionTimestamp", stamp(self.server_now))
            return
        self.objects[namespace].pop((kind, meta["name"]), None)


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
