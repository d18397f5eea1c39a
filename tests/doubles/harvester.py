"""Harvester's side for the plugins' tests: WorkSpec and JobSpec with Harvester's documented
semantics, the example job, and a SessionService over the fake helm and Kubernetes API.

Written from Harvester's WorkSpec (``pandaharvester/harvestercore/work_spec.py`` in
https://github.com/HSF/harvester; not copied from it): status strings and ST_LIST, ``set_supplemental_error`` (code kept when not None,
diag cut at 256 characters), ``get_jobspec_list``, ``set_work_attributes`` (merges top-level keys,
marks the blob changed only when a value differs) / ``get_work_attribute`` (``(found, value)``),
and a ``set_status`` that records every call so a test can assert a plugin never made one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from orchestrator import helm as helm_mod
from orchestrator.service import SessionService, Settings
from tests.doubles.helm import FakeHelm
from tests.doubles.kube import SERVER_NOW, FakeKube
from tests.doubles.pods import EXAMPLE_JOB, FIXTURE_PANDAID

NOW = SERVER_NOW  # the plugins' clock and the cluster's: 5 min after the recorded pods were created


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


def make_service(
    namespace: str = "harvester",
    *,
    kube: FakeKube | None = None,
    helm: FakeHelm | None = None,
    now: datetime = NOW,
    **settings: Any,
) -> tuple[SessionService, FakeHelm, FakeKube]:
    """A SessionService over the doubles, its clock (and the cluster's) fixed at ``now`` and its
    sleeps free; helm is linked to the cluster, so an uninstall takes the release's pods away."""
    kube = kube or FakeKube()
    kube.server_now = now  # the tests' "now" is the cluster's time
    helm = helm or FakeHelm(kube, clock=lambda: now)
    service = SessionService(
        Settings(namespace=namespace, queue="GOOGLE_DASK", verify_timeout=1.0, **settings),
        helm=helm,
        kube=kube,
        clock=lambda: now,
        sleep=lambda _seconds: None,
    )
    return service, helm, kube


HELM_TIMEOUT = helm_mod.HelmTimeout("helm install: no answer within 330 s")
HELM_UNAVAILABLE = helm_mod.HelmUnavailable("helm status: cluster unreachable: connection refused")
