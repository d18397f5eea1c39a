"""Test doubles for the Harvester plugins: WorkSpec/JobSpec with Harvester's documented semantics,
and fake helm/kube objects for SessionService (no helm binary, no cluster).

Written from Harvester's WorkSpec (``pandaharvester/harvestercore/work_spec.py`` in
https://github.com/HSF/harvester; not copied from it): status strings and ST_LIST, ``set_supplemental_error`` (code kept when not None,
diag cut at 256 characters), ``get_jobspec_list``, ``set_work_attributes`` (merges top-level keys,
marks the blob changed only when a value differs) / ``get_work_attribute`` (``(found, value)``),
and a ``set_status`` that records every call so a test can assert a plugin never made one.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator import helm as helm_mod
from orchestrator import kube as kube_mod
from orchestrator.helm import HelmReleaseInfo
from orchestrator.service import SessionService, Settings

DATA = Path(__file__).parent / "data"
EXAMPLE_JOB = DATA / "harvester-example-pandaJobData.json"
PODS = DATA / "pods"
FIXTURE_PANDAID = "1759473585"
FIXTURE_NAMESPACE = "dask-sessions"
NOW = datetime(2026, 11, 28, 10, 5, 0, tzinfo=UTC)  # 5 min after the fixtures' pods were created


# ------------------------------------------------------------------------------------------------
# Harvester's WorkSpec and JobSpec


class WorkSpec:
    """A Harvester WorkSpec as the plugins see it."""

    ST_submitted = "submitted"
    ST_running = "running"
    ST_finished = "finished"
    ST_failed = "failed"
    ST_ready = "ready"
    ST_cancelled = "cancelled"
    ST_idle = "idle"
    ST_missed = "missed"
    ST_pending = "pending"  # exists, but is NOT in ST_LIST
    ST_LIST = (ST_submitted, ST_running, ST_finished, ST_failed, ST_ready, ST_cancelled, ST_idle, ST_missed)
    FINAL_STATUSES = (ST_finished, ST_failed, ST_cancelled, ST_missed)

    def __init__(self, worker_id: int, jobs: Sequence[JobSpec] | None = None, **fields: Any) -> None:
        self.workerID = worker_id
        self.batchID: str | None = None
        self.status: str | None = None
        self.mapType = "OneToOne"
        self.queueName: str | None = None
        self.workAttributes: dict[str, Any] | None = None
        self.errorCode: int | None = None
        self.errorDiag: str | None = None
        self.diagMessage: str | None = None
        self.nativeExitCode: int | None = None
        self.nativeStatus: str | None = None
        self.submitTime: datetime | None = None
        # set by Harvester in its database when the worker is marked to be killed (PanDA's
        # tobekilled, a kill command); the real sweeper body never saves the workspec afterwards
        self.killTime: datetime | None = None
        self.jobspec_list: list[JobSpec] | None = list(jobs) if jobs is not None else None
        self.status_calls: list[Any] = []
        self.updated: set[str] = set()
        for key, value in fields.items():
            setattr(self, key, value)

    def set_status(self, value: Any) -> None:
        self.status_calls.append(value)
        self.status = value

    def get_jobspec_list(self) -> list[JobSpec] | None:
        return self.jobspec_list

    def set_jobspec_list(self, jobs: Sequence[JobSpec]) -> None:
        self.jobspec_list = list(jobs)

    def set_work_attributes(self, data: Mapping[str, Any] | None) -> None:
        if data is None:
            return
        if self.workAttributes is None:
            self.workAttributes = {}
        for key, value in data.items():
            if key not in self.workAttributes or self.workAttributes[key] != value:
                self.workAttributes[key] = value
                self.updated.add("workAttributes")

    def get_work_attribute(self, name: str) -> tuple[bool, Any]:
        if self.workAttributes is None or name not in self.workAttributes:
            return False, None
        return True, self.workAttributes[name]

    def has_work_attribute(self, name: str) -> bool:
        return self.workAttributes is not None and name in self.workAttributes

    def set_supplemental_error(self, error_code: int | None, error_diag: Any) -> None:
        if error_code is not None:
            self.errorCode = error_code
        if error_diag not in (None, ""):
            self.errorDiag = str(error_diag)[:256]

    def is_final_status(self) -> bool:
        return self.status in self.FINAL_STATUSES

    def set_dialog_message(self, msg: str | None) -> None:
        """What Harvester's monitor body does with the diag a plugin returns."""
        if msg not in (None, ""):
            self.diagMessage = str(msg)[:500]

    def convert_to_propagate(self) -> dict[str, Any]:
        """The fields ``update_workers`` sends PanDA, as Harvester's own method picks them: the
        status fields, ``diagMessage`` (the errorDiag instead when there is an error code) and,
        of the work attributes, only ``stdOut``, ``stdErr``, ``batchLog`` and ``jdl``."""
        data: dict[str, Any] = {}
        for attr in ("workerID", "batchID", "status", "nativeExitCode", "nativeStatus", "diagMessage", "errorCode"):
            value = getattr(self, attr, None)
            if value is not None:
                data[attr] = value
        if self.errorCode not in (None, 0) and self.errorDiag not in (None, ""):
            data["diagMessage"] = self.errorDiag
        for attr in ("stdOut", "stdErr", "batchLog", "jdl"):
            if self.workAttributes is not None and attr in self.workAttributes:
                data[attr] = self.workAttributes[attr]
        return data

    @property
    def session(self) -> dict[str, Any]:
        """This package's work attribute (test convenience)."""
        found, value = self.get_work_attribute("dask_panda_session")
        return dict(value) if found else {}


class JobSpec:
    """A Harvester JobSpec: PandaID and the job dict (``jobParams``; secrets already decoded)."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.jobParams = dict(params)
        self.PandaID = params.get("PandaID")
        self.taskID = params.get("taskID")
        self.attemptNr = params.get("attemptNr")

    def get_job_params(self, strip: bool = False) -> dict[str, Any]:
        if not strip:
            return self.jobParams  # the same object, as Harvester does
        return {k: v for k, v in self.jobParams.items() if k != "secrets"}


def example_params(pandaid: int | None = None, **fields: Any) -> dict[str, Any]:
    """The shared example job (a fresh copy), with another PandaID and fields replaced."""
    params = dict(json.loads(EXAMPLE_JOB.read_text())[FIXTURE_PANDAID])
    if pandaid is not None:
        params["PandaID"] = pandaid
    for key, value in fields.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return params


def worker(worker_id: int, pandaid: int | None = None, **fields: Any) -> WorkSpec:
    """A worker holding one job (the example job with the given PandaID)."""
    return WorkSpec(worker_id, [JobSpec(example_params(pandaid or 1_000_000 + worker_id, **fields))])


# ------------------------------------------------------------------------------------------------
# recorded pods, moved to another release / namespace


def fixture_pods(name: str, pandaid: int | str, namespace: str = FIXTURE_NAMESPACE) -> list[dict[str, Any]]:
    """The pods of tests/unit/data/pods/<name>.json as if they belonged to PandaID ``pandaid``.

    Every fixture's release is ``dask-<PandaID>``: replacing the PandaID digits and the namespace
    in the JSON text moves names, labels and annotations together.
    """
    data = json.loads((PODS / f"{name}.json").read_text())
    release = {p["metadata"]["labels"]["app.kubernetes.io/instance"] for p in data["items"]}.pop()
    old_id = release.removeprefix("dask-")
    text = json.dumps(data["items"]).replace(old_id, str(pandaid)).replace(FIXTURE_NAMESPACE, namespace)
    return list(json.loads(text))


def with_pilot_exit(pods: list[dict[str, Any]], code: int) -> list[dict[str, Any]]:
    """A finished session's pods with the pilot failed with exit ``code`` instead."""
    pods = copy.deepcopy(pods)
    for pod in pods:
        if pod["metadata"]["labels"]["app.kubernetes.io/component"] != "pilot":
            continue
        pod["status"]["phase"] = "Failed"
        for status in pod["status"]["containerStatuses"]:
            terminated = status["state"]["terminated"]
            terminated["exitCode"] = code
            terminated["reason"] = "Error"
    return pods


# ------------------------------------------------------------------------------------------------
# fake helm and kube for SessionService


class FakeKube:
    """The Kube calls SessionService makes, over in-memory pods; every request counted."""

    def __init__(self) -> None:
        self.pods: dict[str, list[dict[str, Any]]] = {}
        self.services: dict[str, list[dict[str, Any]]] = {}  # the JupyterLab Services per namespace
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.secret_meta: dict[tuple[str, str], dict[str, Any]] = {}
        self.server_now: datetime | None = NOW  # the API server's clock (the Date of its answers)
        self.requests = 0
        self.calls: list[tuple[str, str]] = []  # (method, namespace)
        self.down = False
        self.stubborn: set[str] = set()  # releases whose pods survive every deletion
        self._lock = threading.Lock()

    def _count(self, method: str, namespace: str) -> None:
        with self._lock:
            self.requests += 1
            self.calls.append((method, namespace))
        if self.down:
            raise kube_mod.KubeUnavailable(f"{method} {namespace}: cluster unreachable: connection refused")

    def lists(self, namespace: str | None = None) -> int:
        return sum(1 for m, ns in self.calls if m == "list_pods" and namespace in (None, ns))

    def add(self, pods: Sequence[Mapping[str, Any]]) -> None:
        for pod in pods:
            self.pods.setdefault(pod["metadata"]["namespace"], []).append(dict(pod))

    def remove_release(self, namespace: str, release: str) -> int:
        if release in self.stubborn:
            return 0
        before = len(self.pods.get(namespace, []))
        self.pods[namespace] = [
            p
            for p in self.pods.get(namespace, [])
            if p["metadata"]["labels"].get("app.kubernetes.io/instance") != release
        ]
        self.secrets.pop((namespace, f"{release}-secret"), None)
        return before - len(self.pods[namespace])

    def list_pods(self, namespace: str, selector: str = kube_mod.APP_SELECTOR) -> list[dict[str, Any]]:
        return self.list_pods_at(namespace, selector)[0]

    def list_pods_at(
        self, namespace: str, selector: str = kube_mod.APP_SELECTOR
    ) -> tuple[list[dict[str, Any]], datetime | None]:
        self._count("list_pods", namespace)
        return copy.deepcopy(self.pods.get(namespace, [])), self.server_now

    def list_pod_states_at(
        self, namespace: str, selector: str = kube_mod.APP_SELECTOR
    ) -> tuple[list[dict[str, Any]], datetime | None]:
        """The monitor's LIST (metadata and status only on the real API); whole pods here."""
        return self.list_pods_at(namespace, selector)

    def list_services(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self._count("list_services", namespace)
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        return [
            copy.deepcopy(s)
            for s in self.services.get(namespace, [])
            if all(s["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]

    def server_time(self) -> datetime | None:
        self._count("server_time", "")
        return self.server_now

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
        with self._lock:
            if (namespace, name) in self.secrets:
                raise kube_mod.KubeConflict(f"POST secrets {name}: 409 Conflict: already exists")
            self.secrets[(namespace, name)] = dict(data)
            meta = {
                "name": name,
                "uid": f"uid-{namespace}-{name}-{self.requests}",
                "creationTimestamp": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "labels": dict(labels),
                "annotations": dict(annotations or {}),
            }
            self.secret_meta[(namespace, name)] = meta
            return dict(meta)

    def metadata_at(
        self, kind: kube_mod.Kind, namespace: str, name: str
    ) -> tuple[dict[str, Any] | None, datetime | None]:
        self._count("metadata", namespace)
        if kind == kube_mod.SECRET and (namespace, name) in self.secrets:
            return dict(self.secret_meta.get((namespace, name), {"name": name})), self.server_now
        return None, self.server_now

    def delete(self, kind: kube_mod.Kind, namespace: str, name: str, *, uid: str | None = None) -> bool:
        self._count("delete", namespace)
        if kind == kube_mod.SECRET:
            meta = self.secret_meta.get((namespace, name), {})
            if uid is not None and (namespace, name) in self.secrets and meta.get("uid") != uid:
                return False
            self.secret_meta.pop((namespace, name), None)
            return self.secrets.pop((namespace, name), None) is not None
        return False

    def _labelled(self, namespace: str, selector: str) -> list[tuple[kube_mod.Kind, dict[str, Any]]]:
        release = selector.rpartition("app.kubernetes.io/instance=")[2]
        found: list[tuple[kube_mod.Kind, dict[str, Any]]] = [
            (kube_mod.POD, p)
            for p in self.pods.get(namespace, [])
            if p["metadata"]["labels"].get("app.kubernetes.io/instance") == release
        ]
        if (namespace, f"{release}-secret") in self.secrets:
            found.append((kube_mod.SECRET, {"metadata": {"name": f"{release}-secret"}}))
        return found

    def list_labelled(
        self, namespace: str, selector: str, kinds: Sequence[kube_mod.Kind] = kube_mod.LEFTOVER_KINDS
    ) -> list[tuple[kube_mod.Kind, dict[str, Any]]]:
        for _ in kinds:
            self._count("list_labelled", namespace)
        return self._labelled(namespace, selector)

    def delete_labelled(
        self, namespace: str, selector: str, kinds: Sequence[kube_mod.Kind] = kube_mod.LEFTOVER_KINDS
    ) -> int:
        found = self.list_labelled(namespace, selector, kinds)
        release = selector.rpartition("app.kubernetes.io/instance=")[2]
        self.remove_release(namespace, release)
        return len(found)

    def get(self, kind: kube_mod.Kind, namespace: str, name: str) -> dict[str, Any] | None:
        self._count("get", namespace)
        return None

    def create(self, kind: kube_mod.Kind, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._count("create", namespace)
        return dict(body)


class FakeHelm:
    """The Helm calls SessionService makes; releases in memory; failures injectable."""

    def __init__(self, kube: FakeKube | None = None) -> None:
        self.kube = kube
        self.releases: dict[tuple[str, str], HelmReleaseInfo] = {}
        self.values: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []  # (operation, namespace, release)
        self.install_error: Exception | None = None
        self.status_error: Exception | None = None
        self.uninstall_error: Exception | None = None
        self.install_pods: Any = None  # callable(release, namespace) -> pods, to simulate a start
        self._lock = threading.Lock()

    def _call(self, operation: str, namespace: str, name: str) -> None:
        with self._lock:
            self.calls.append((operation, namespace, name))

    def count(self, operation: str) -> int:
        return sum(1 for op, _, _ in self.calls if op == operation)

    def release(self, name: str, namespace: str) -> HelmReleaseInfo | None:
        self._call("status", namespace, name)
        if self.status_error is not None:
            raise self.status_error
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
        if self.install_error is not None:
            raise self.install_error
        info = HelmReleaseInfo(name, namespace, 1, "deployed", NOW)
        with self._lock:
            self.releases[(namespace, name)] = info
            self.values[(namespace, name)] = copy.deepcopy(dict(values))
        if self.install_pods is not None and self.kube is not None:
            self.kube.add(self.install_pods(name, namespace))
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
        self._call("uninstall", namespace, name)
        if self.uninstall_error is not None:
            raise self.uninstall_error
        with self._lock:
            existed = self.releases.pop((namespace, name), None) is not None
        if existed and self.kube is not None:
            self.kube.remove_release(namespace, name)
        return existed

    def get_values(self, name: str, namespace: str) -> dict[str, Any]:
        self._call("get_values", namespace, name)
        return copy.deepcopy(self.values.get((namespace, name), {}))

    def list_releases(self, namespace: str) -> list[HelmReleaseInfo]:
        self._call("list", namespace, "")
        return [info for (ns, _), info in self.releases.items() if ns == namespace]

    def template(
        self, name: str, namespace: str, values: Mapping[str, Any], show_only: str | None = None
    ) -> list[dict[str, Any]]:
        self._call("template", namespace, name)
        return []

    def deploy(self, namespace: str, release: str) -> None:
        """Pretend an install happened earlier (the release exists)."""
        self.releases[(namespace, release)] = HelmReleaseInfo(release, namespace, 1, "deployed", NOW)


def make_service(
    namespace: str = "harvester",
    *,
    kube: FakeKube | None = None,
    helm: FakeHelm | None = None,
    now: datetime = NOW,
    **settings: Any,
) -> tuple[SessionService, FakeHelm, FakeKube]:
    """A SessionService over fakes, its clock fixed at ``now`` and its sleeps free."""
    kube = kube or FakeKube()
    kube.server_now = now  # the tests' "now" is the cluster's time
    helm = helm or FakeHelm(kube)
    service = SessionService(
        Settings(namespace=namespace, queue="GOOGLE_DASK", verify_timeout=1.0, **settings),
        helm=helm,  # type: ignore[arg-type]
        kube=kube,  # type: ignore[arg-type]
        clock=lambda: now,
        sleep=lambda _seconds: None,
    )
    return service, helm, kube


HELM_TIMEOUT = helm_mod.HelmTimeout("helm install: no answer within 330 s")
HELM_UNAVAILABLE = helm_mod.HelmUnavailable("helm status: cluster unreachable: connection refused")
