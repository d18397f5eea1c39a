"""FakeKube: the Kubernetes API seam (`orchestrator.seams.KubeSeam`) over objects in memory.

It behaves like the API server where the service layer depends on it: a second create of one
Secret is refused (409, `KubeConflict`); created objects get a uid and a creationTimestamp from
the server's own clock (`server_now`, which a test can move or set apart from the host's); every
answer that carries a Date carries that clock (unless `send_date` is off); deletes honour uid
preconditions; label selectors match `key=value` and bare `key` (exists); a labelled LIST is one
request per kind, as on the real API. Every request is counted (`requests`) and recorded as
(method, namespace) in `calls`, so a test can assert what was asked and how often; `unavailable`
makes every request fail as an unreachable cluster does. It is thread-safe, so real threads can
race on it.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.kube import (
    APP_SELECTOR,
    LEFTOVER_KINDS,
    Kind,
    KubeConflict,
    KubeError,
    KubeUnavailable,
    PodRecord,
)
from orchestrator.names import ANN_SUBMIT_ID, ANN_WORKER_ID, INSTANCE_LABEL, NAME_LABEL, secret_name

SERVER_NOW = datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
"""The API server's clock unless a test sets another: five minutes after the recorded pods began."""


def stamp(when: datetime) -> str:
    """A timestamp as the API writes it (whole seconds, Z)."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _selector(selector: str) -> tuple[dict[str, str], set[str]]:
    """The API server's label-selector syntax: `key=value` must match, a bare `key` must exist."""
    parts = [part.split("=", 1) for part in selector.split(",") if part]
    return {p[0]: p[1] for p in parts if len(p) == 2}, {p[0] for p in parts if len(p) == 1}


def _matches(obj: Mapping[str, Any], selector: str) -> bool:
    wanted, present = _selector(selector)
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items()) and present <= labels.keys()


@dataclass
class FakeKube:
    """Objects per namespace as {(kind name, object name): object JSON}; cluster-scoped objects
    (volumes) are kept under the namespace ""."""

    objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    requests: int = 0
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, namespace) per request
    unavailable: bool = False  # every request fails as on an unreachable cluster
    secrets_written: list[dict[str, str]] = field(default_factory=list)
    deleted: list[tuple[str, str, str | None]] = field(default_factory=list)  # (kind, name, uid)
    finalizer_changes: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    jobs_complete: bool = True  # a Job read back is Complete
    server_now: datetime = SERVER_NOW  # the API server's clock
    send_date: bool = True  # whether answers carry a Date header
    denied: set[tuple[str, str, str]] = field(default_factory=set)  # (verb, resource, group) refused
    reviews: list[dict[str, str]] = field(default_factory=list)  # SelfSubjectAccessReviews asked
    stubborn: set[str] = field(default_factory=set)  # releases whose pods survive every deletion
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _uids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    # -- the test's side ---------------------------------------------------------------------
    def _count(self, method: str = "request", namespace: str = "") -> None:
        with self.lock:
            self.requests += 1
            self.calls.append((method, namespace))
        if self.unavailable:
            raise KubeUnavailable(f"{method} {namespace}: cluster unreachable: connection refused")

    def _date(self) -> datetime | None:
        return self.server_now if self.send_date else None

    def put(self, namespace: str, kind: str, obj: dict[str, Any]) -> None:
        """Store (or replace) one object as it is."""
        with self.lock:
            self.objects.setdefault(namespace, {})[(kind, obj["metadata"]["name"])] = obj

    def add(self, pods: Iterable[Mapping[str, Any]], kind: str = "Pod") -> None:
        """Store objects under the namespace their metadata names (recorded pods, Services)."""
        for obj in pods:
            self.put(obj["metadata"]["namespace"], kind, dict(obj))

    def find(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self.objects.get(namespace, {}).get((kind, name))

    def of_kind(self, namespace: str, kind: str) -> list[dict[str, Any]]:
        """The stored objects of one kind in a namespace, in the order they were stored."""
        with self.lock:
            return [o for (k, _), o in self.objects.get(namespace, {}).items() if k == kind]

    def lists(self, namespace: str | None = None) -> int:
        """How many pod LISTs were made (in `namespace`, or anywhere)."""
        with self.lock:
            return sum(1 for m, ns in self.calls if m == "list_pods" and namespace in (None, ns))

    def remove_release(self, namespace: str, release: str) -> int:
        """What `helm uninstall` takes away: the release's pods (unless stubborn) and its Secret."""
        if release in self.stubborn:
            return 0
        with self.lock:
            stored = self.objects.get(namespace, {})
            pods = [
                key
                for key, o in stored.items()
                if key[0] == "Pod" and o["metadata"].get("labels", {}).get(INSTANCE_LABEL) == release
            ]
            for key in pods:
                del stored[key]
            stored.pop(("Secret", secret_name(release)), None)
        return len(pods)

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
            "name": secret_name(release),
            "uid": f"uid-planted-{next(self._uids)}",
            "creationTimestamp": stamp(self.server_now - timedelta(seconds=age)),
            "labels": {NAME_LABEL: "dask-panda-session", INSTANCE_LABEL: release},
            "annotations": {ANN_SUBMIT_ID: submit_id, ANN_WORKER_ID: worker},
        }
        self.put(namespace, "Secret", {"metadata": meta, "stringData": {}})
        return meta

    # -- the seam ----------------------------------------------------------------------------
    def list_pods(self, namespace: str, selector: str = APP_SELECTOR) -> list[dict[str, Any]]:
        return self.list_pods_at(namespace, selector)[0]

    def list_pods_at(
        self, namespace: str, selector: str = APP_SELECTOR
    ) -> tuple[list[dict[str, Any]], datetime | None]:
        self._count("list_pods", namespace)
        with self.lock:
            pods = [copy.deepcopy(o) for o in self.of_kind(namespace, "Pod") if _matches(o, selector)]
        return pods, self._date()

    def list_pod_states_at(
        self, namespace: str, selector: str = APP_SELECTOR
    ) -> tuple[list[PodRecord | dict[str, Any]], datetime | None]:
        """The monitor's LIST (metadata and status only on the real API); whole pods here."""
        pods, date = self.list_pods_at(namespace, selector)
        return list(pods), date

    def list_services(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self._count("list_services", namespace)
        with self.lock:
            return [copy.deepcopy(o) for o in self.of_kind(namespace, "Service") if _matches(o, selector)]

    def server_time(self) -> datetime | None:
        self._count("server_time")
        return self._date()

    def version(self) -> str:
        self._count("version")
        return "v1.35.4"

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> Any:
        """The raw call, for what doctor asks: access reviews, a claim's events, a volume."""
        self._count(method, path)
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
            items = [
                e
                for e in self.of_kind(parts[3], "Event")
                if all(e.get("involvedObject", {}).get(k.split(".", 1)[1]) == v for k, v in wanted.items())
            ]
            return {"items": copy.deepcopy(items)}
        raise NotImplementedError(f"FakeKube.request {method} {path}")

    def exists(self, path: str) -> bool:
        self._count("exists")
        return True

    def pod_events(self, namespace: str, release: str) -> list[dict[str, Any]]:
        self._count("pod_events", namespace)
        return []

    def create_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        self._count("create_secret", namespace)
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
        self._count("metadata", namespace)
        obj = self.find(namespace, kind.name, name)
        return (copy.deepcopy(obj["metadata"]) if obj else None), self._date()

    def _survives(self, kind: str, obj: Mapping[str, Any]) -> bool:
        return kind == "Pod" and obj["metadata"].get("labels", {}).get(INSTANCE_LABEL) in self.stubborn

    def delete(self, kind: Kind, namespace: str, name: str, *, uid: str | None = None) -> bool:
        self._count("delete", namespace)
        with self.lock:
            obj = self.find(namespace, kind.name, name)
            if obj is None:
                return False
            if uid is not None and obj["metadata"].get("uid") != uid:
                return False  # the precondition failed: the name belongs to a newer object
            self.deleted.append((kind.name, name, uid))
            self._remove(namespace, kind.name, obj)
            return True

    def _remove(self, namespace: str, kind: str, obj: dict[str, Any]) -> None:
        """As the API server: an object with finalizers is only marked as terminating (and a
        stubborn release's pod survives every deletion)."""
        meta = obj["metadata"]
        if self._survives(kind, obj):
            return
        if meta.get("finalizers"):
            meta.setdefault("deletionTimestamp", stamp(self.server_now))
            return
        self.objects[namespace].pop((kind, meta["name"]), None)

    def set_finalizers(
        self, kind: Kind, namespace: str, name: str, finalizers: Sequence[str], *, resource_version: str
    ) -> bool:
        """As the API server: refused (False) unless the object is at `resource_version`; a
        terminating object left without finalizers is gone."""
        self._count("patch", namespace)
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
        self._count("get", namespace)
        obj = self.find(namespace, kind.name, name)
        if obj is not None and kind.name == "Job" and self.jobs_complete:
            obj.setdefault("status", {})["conditions"] = [{"type": "Complete", "status": "True"}]
        return obj

    def create(self, kind: Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("create", namespace)
        obj = copy.deepcopy(dict(body))
        self.put(namespace, kind.name, obj)
        return obj

    def list_labelled(
        self, namespace: str, selector: str, kinds: Sequence[Kind] = LEFTOVER_KINDS
    ) -> list[tuple[Kind, dict[str, Any]]]:
        found: list[tuple[Kind, dict[str, Any]]] = []
        for kind in kinds:  # one LIST per kind, as on the real API
            self._count("list_labelled", namespace)
            found += [(kind, copy.deepcopy(o)) for o in self.of_kind(namespace, kind.name) if _matches(o, selector)]
        return found

    def delete_labelled(self, namespace: str, selector: str, kinds: Sequence[Kind] = LEFTOVER_KINDS) -> int:
        found = self.list_labelled(namespace, selector, kinds)
        with self.lock:
            for kind, obj in found:
                self.deleted.append((kind.name, obj["metadata"]["name"], None))
                stored = self.find(namespace, kind.name, obj["metadata"]["name"])
                if stored is not None:
                    self._remove(namespace, kind.name, stored)
        return len(found)
