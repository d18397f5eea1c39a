"""``DaskHelmMonitor.check_workers``: the state of a whole chunk of workers from one LIST per namespace.

Harvester's contract (its ``dummy_monitor`` and ``harvesterbody/monitor.py``,
https://github.com/HSF/harvester): ``(True, [(status, diag), ...])`` in the order of the
workspecs, each status in ``WorkSpec.ST_LIST``; ``(False, [])`` when the check as a whole failed,
so that nothing is updated (and nothing cancelled) during a cluster outage. The body sets the
status from the returned list; the plugin never calls ``set_status``. A per-worker ``None`` means
"could not check": Harvester keeps the old status and, past ``checkTimeout``, kills the worker, so
a healthy worker must never get ``None``; and a status outside ``ST_LIST`` makes the body stop
updating the rest of the chunk.

Cost: the workers are grouped by the namespace their submit recorded, and the service's
``observe`` lists each namespace's session pods ONCE (no helm call, no per-worker request, no
Event request: ``with_events=False``, the FailedMount refinement is not worth an extra request per
failing session here), plus ONE Service LIST when the namespace has an interactive session going
(a LoadBalancer's external address is only in its Service's status). Everything else is derived
in memory.

Decisions (documented in docs/harvester.md):

* phase -> status: starting -> submitted, running -> running, finished -> finished,
  failed -> failed, cancelled -> cancelled. A healthy worker is never ``None``.
* A release that is gone (no pods, helm uninstalled it) is ``cancelled``/ReleaseMissing, except
  right after its submit (the ``submitted`` time recorded by the submitter, else the WorkSpec's
  ``submitTime``): then it is ``submitted`` while its pre-install hook runs (for the service's
  ``gc_grace_seconds``), unless the worker is to be killed (Harvester's ``killTime``) or the
  sweeper already killed it.
* A worker without ``batchID`` was never submitted (Harvester sets ``submitted`` only after
  ``submit_workers`` returned True with a batchID): it is ``cancelled`` at once with
  NOT_SUBMITTED, rather than ``None`` which Harvester would keep re-checking until
  ``checkTimeout`` (if one is configured at all).
* Supplemental errors are set for final sessions only
  (:func:`~orchestrator.harvester.error_codes.error_code`):
  a starting session's ImagePullBackOff may still recover. The pilot's exit code also goes to
  ``nativeExitCode``.
* The JupyterLab URL reaches PanDA while an interactive session runs: Harvester sends PanDA only
  ``diagMessage``, ``nativeStatus``, ``nativeExitCode``, ``errorCode`` and the work attributes
  ``stdOut``, ``stdErr``, ``batchLog``, ``jdl``, so the diag starts with ``JupyterLab: <url>``
  and ``stdOut`` holds the URL. The password never leaves the per-job Secret.
* Deadlines cost nothing extra: ``observe`` applies them to the pods it listed, so a session past
  its startup timeout or lifetime is reported ``failed`` (StartupTimeout, DeadlineExceeded) and an
  interactive session past its lease ``finished``/LeaseExpired, from the same LIST. The monitor
  does NOT kill them: a kill runs helm, and nothing per session belongs in a call Harvester makes
  every cycle for thousands of workers. Ending them is the sweeper's (``kill_workers``, which
  Harvester calls for every final worker) and, promptly, ``SessionService.enforce_deadlines`` run
  outside Harvester; Kubernetes' ``activeDeadlineSeconds`` bounds every session pod meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from orchestrator.harvester.error_codes import ErrorCodes, error_code
from orchestrator.harvester.plugin_base import DaskPluginBase
from orchestrator.harvester.statuses import PHASE_TO_STATUS, WorkerStatus
from orchestrator.harvester.workspec import (
    PANDA_URL_ATTRIBUTE,
    jupyter_diag,
    merge_attribute,
    naive_to_utc,
    session_attribute,
    worker_location,
)
from orchestrator.session import Phase, SessionState

__all__ = ["DaskHelmMonitor"]

log = logging.getLogger(__name__)

CheckReturn = tuple[bool, list[tuple[str | None, str]]]

NO_BATCH_ID = "no batchID: the worker was never submitted to the cluster"


class DaskHelmMonitor(DaskPluginBase):
    """Harvester monitor plugin."""

    def check_workers(self, workspec_list: Iterable[Any]) -> CheckReturn:
        """The status and diagnostics of every workspec, from one pod LIST per namespace."""
        workspecs = list(workspec_list)
        results: list[tuple[str | None, str] | None] = [None] * len(workspecs)
        chunks: dict[str, list[tuple[int, str, Any]]] = {}
        try:
            service = self.service
            default_ns = service.settings.namespace
        except Exception as err:  # a bad queue parameter: say so, update nothing
            log.error("monitor: cannot build the session service: %s", err)
            return False, []
        for index, workspec in enumerate(workspecs):
            location = worker_location(workspec)
            if location is None:
                workspec.set_supplemental_error(ErrorCodes.NOT_SUBMITTED, NO_BATCH_ID)
                results[index] = (WorkerStatus.cancelled, NO_BATCH_ID)
                continue
            namespace, release = location
            chunks.setdefault(namespace or default_ns, []).append((index, release, workspec))

        observed: dict[str, Mapping[str, SessionState]] = {}
        for namespace, members in chunks.items():
            submitted = {release: t for _, release, ws in members if (t := _submitted(ws)) is not None}
            releases = list(dict.fromkeys(release for _, release, _ in members))
            try:
                observed[namespace] = service.observe(
                    releases, namespace=namespace, submitted=submitted, with_events=False
                )
            except Exception as err:  # KubeUnavailable above all: never cancel during an outage
                log.warning(
                    "monitor: cannot list namespace %s (%s: %s); no worker updated",
                    namespace,
                    type(err).__name__,
                    err,
                )
                return False, []

        for namespace, members in chunks.items():
            for index, release, workspec in members:
                try:
                    results[index] = _report(workspec, observed[namespace][release])
                except Exception as err:  # one odd worker must not fail the whole chunk
                    log.exception("monitor: worker %s: cannot report", getattr(workspec, "workerID", "?"))
                    results[index] = (None, f"cannot report {namespace}/{release}: {type(err).__name__}")
        return True, [result or (None, "not checked") for result in results]


def _submitted(workspec: Any) -> datetime | None:
    """When the worker was submitted: our attribute, else Harvester's submitTime (naive UTC).

    None once the worker is to be killed: a killed release without pods is gone, not starting.
    Harvester marks such a worker with ``killTime`` in its database, and that is what the
    monitor sees: Harvester's sweeper body does not save the workspec after ``kill_workers``, so
    the ``killed`` attribute our sweeper sets reaches the monitor only when something else saves
    the worker (a driver that shares the objects, as the tests' cycle driver does).
    """
    if getattr(workspec, "killTime", None) is not None:
        return None
    attribute = session_attribute(workspec)
    if attribute.get("killed"):
        return None
    recorded = naive_to_utc(attribute.get("submitted"))
    return recorded or naive_to_utc(getattr(workspec, "submitTime", None))


def _report(workspec: Any, state: SessionState) -> tuple[str, str]:
    """Translate one session into (status, diag) and the worker's attributes and error fields."""
    status = PHASE_TO_STATUS[state.phase]
    diag = f"{state.reason}: {state.message}" if state.reason else state.message
    error = error_code(state)
    if error is not None:
        workspec.set_supplemental_error(*error)
    if state.pilot_exit_code is not None:
        workspec.nativeExitCode = state.pilot_exit_code
    native = f"{state.phase}/{state.reason}" if state.reason else str(state.phase)
    if getattr(workspec, "nativeStatus", None) != native:
        workspec.nativeStatus = native
    if state.phase == Phase.RUNNING and state.mode == "interactive" and state.jupyter_url:
        # what reaches PanDA: the URL, never the password (it is only in the per-job Secret)
        diag = jupyter_diag(state.jupyter_url, diag)
        workspec.set_work_attributes({PANDA_URL_ATTRIBUTE: state.jupyter_url})
    merge_attribute(
        workspec,
        {
            "namespace": state.namespace,
            "release": state.release,
            "phase": str(state.phase),
            "reason": None if state.reason is None else str(state.reason),
            "pilot_exit_code": state.pilot_exit_code,
            "workers_ready": state.workers_ready,
            "workers_wanted": state.workers_wanted,
            "scheduler_address": state.scheduler_address,
            "dashboard_url": state.dashboard_url,
            "jupyter_url": state.jupyter_url,
            "timings": state.timings.to_dict(),
        },
    )
    return status, diag
