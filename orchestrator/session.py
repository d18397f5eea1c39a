"""The pods of one release -> :class:`SessionState`. PURE: no API calls, no clock, no I/O.

Why pure: the monitor lists every pod of a namespace ONCE per cycle (plain dicts in the
Kubernetes API JSON shape, camelCase), groups them with :func:`group_pods_by_release` and derives
every session from memory with :func:`derive_session`. Being a function of (pods, events, now),
every rule below is tested from recorded pod objects, without a cluster.

Chart conventions relied on: every object carries ``app.kubernetes.io/name=dask-panda-session``
and ``app.kubernetes.io/instance=<release>``; ``app.kubernetes.io/component`` is one of
scheduler, worker, pilot, jupyterlab (session pods), prepare, cleanup (hook Job pods) or test;
labels ``dask-panda-session/{pandaid,mode,queue,worker-id}``; the annotations named ``ANN_*``
below; containers named like their component; the pilot's and the scheduler's restartPolicy is Never, the others'
OnFailure; ``activeDeadlineSeconds`` = lifetime on every session pod.

Rules of :func:`derive_session`, in the order they are applied (the first that matches wins):

1. No session pods: release not known -> ``cancelled``/``ReleaseMissing``; otherwise
   ``starting`` (the pre-install hook may still run), and hook problems (a failed prepare hook,
   an image pull error) are reported like the startup problems of rule 10.
2. Batch: the pilot exited 0 (or its pod Succeeded) -> ``finished``.
3. The pilot failed -> ``failed`` with reason ``DeadlineExceeded`` (pod killed by
   ``activeDeadlineSeconds``), ``OOMKilled``, the pod's own reason (e.g. ``Evicted``),
   ``InitContainerFailed`` (an init container exited non-zero), or ``PilotExitCode``, with
   ``pilot_exit_code`` set. In interactive mode the pilot is a stager: exit 0 means staging is
   done and the session goes on; only exit != 0 fails it.
4. Interactive: the jupyterlab pod Succeeded (user shut the server down, idle culling) ->
   ``finished``.
5. Any session pod Failed with reason ``DeadlineExceeded`` -> ``failed``/``DeadlineExceeded``.
6. The scheduler (or, interactive, jupyterlab) pod Failed (a bare pod: it will not come back),
   or -- once the session was established (rule 9) -- its container restarted at least
   ``MAX_RESTARTS`` times and is down again -> ``failed`` with ``SchedulerFailed`` /
   ``JupyterLabFailed``, or ``OOMKilled`` if the last termination says so. A scheduler that
   exited 0 (its idle timeout) is not a failure by itself: the pilot (batch) or the user
   (interactive) decides; rule 9 reports it as ``SchedulerExited``.
7. A session pod has a ``deletionTimestamp``, or the pre-delete cleanup hook pod exists ->
   ``cancelled``/``Deleting``. Failures that happen *because* of a deletion (containers killed
   after the delete was requested) do not count for rules 3-6; failures from before it do.
8. Pods remain but the release is not known -> ``cancelled``/``ReleaseMissing`` (orphans).
9. Established -> ``running``: batch once the pilot container started (its init container gated
   it on the scheduler), interactive once jupyterlab is Ready (or has restarted: it was up
   before). Reason None when the scheduler (and jupyterlab) are Ready, else ``SchedulerExited``
   (idle timeout), ``SchedulerNotReady`` or ``JupyterLabNotReady``. Fewer Ready workers than
   wanted stays ``running``: the counts and the message say so; a worker with a problem of rule
   10 gives the reason, and past the startup timeout with workers still missing because of such a
   problem the session is ``failed`` with that reason (it will never get its workers).
10. Otherwise ``starting``. Problems found on the pods, most important component first:
    waiting reasons ImagePullBackOff, ErrImagePull, InvalidImageName, CreateContainerConfigError,
    CreateContainerError, CrashLoopBackOff (``OOMKilled`` if the crashing container was
    OOM-killed); PodScheduled=False/``Unschedulable``; a container stuck in ContainerCreating,
    ``FailedMount`` when an event (optional ``events`` argument) says so. Before the startup
    timeout (measured from ``submitted``) the phase stays ``starting`` with that reason; after it
    -> ``failed`` with that reason, or ``StartupTimeout`` if nothing more specific is known.

Timings: ``submitted`` = earliest creationTimestamp (session and prepare-hook pods);
``scheduler_ready`` = the scheduler's Ready condition lastTransitionTime (while Ready);
``workers_ready`` = when the last of the wanted workers became Ready (None until all wanted are
Ready, and when none are wanted); ``pilot_started`` = the pilot container's startedAt;
``ended`` = the pilot's finishedAt (batch), jupyterlab's finishedAt (interactive), or for a
failure the failing container's finishedAt if any.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "ANN_DASHBOARD_URL",
    "ANN_JUPYTER_URL",
    "ANN_LEASE_SECONDS",
    "ANN_LIFETIME_SECONDS",
    "ANN_SCHEDULER_ADDRESS",
    "ANN_STARTUP_SECONDS",
    "ANN_WORKERS_WANTED",
    "APP_NAME",
    "COMPONENT_LABEL",
    "INSTANCE_LABEL",
    "MAX_RESTARTS",
    "NAME_LABEL",
    "SESSION_COMPONENTS",
    "Phase",
    "Reason",
    "SessionState",
    "Timings",
    "deadline_verdict",
    "derive_session",
    "group_pods_by_release",
]

Pod = Mapping[str, Any]

APP_NAME: Final = "dask-panda-session"
NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
PANDAID_LABEL: Final = "dask-panda-session/pandaid"
MODE_LABEL: Final = "dask-panda-session/mode"
QUEUE_LABEL: Final = "dask-panda-session/queue"
WORKER_ID_LABEL: Final = "dask-panda-session/worker-id"

ANN_SCHEDULER_ADDRESS: Final = "dask-panda-session/scheduler-address"
ANN_DASHBOARD_URL: Final = "dask-panda-session/dashboard-url"
ANN_JUPYTER_URL: Final = "dask-panda-session/jupyter-url"
ANN_WORKERS_WANTED: Final = "dask-panda-session/workers-wanted"
ANN_STARTUP_SECONDS: Final = "dask-panda-session/startup-seconds"
ANN_LEASE_SECONDS: Final = "dask-panda-session/lease-seconds"
ANN_LIFETIME_SECONDS: Final = "dask-panda-session/lifetime-seconds"

SCHEDULER: Final = "scheduler"
WORKER: Final = "worker"
PILOT: Final = "pilot"
JUPYTERLAB: Final = "jupyterlab"
PREPARE: Final = "prepare"
CLEANUP: Final = "cleanup"
SESSION_COMPONENTS: Final = frozenset({SCHEDULER, WORKER, PILOT, JUPYTERLAB})
# most important first: a problem of the scheduler explains more than one of a worker
_PRIORITY: Final = {SCHEDULER: 0, PILOT: 1, JUPYTERLAB: 2, WORKER: 3, PREPARE: 4, CLEANUP: 5}

MAX_RESTARTS: Final = 3
"""Restarts of an established scheduler/jupyterlab after which a crash counts as final."""
_MESSAGE_MAX: Final = 400


class Phase(StrEnum):
    """Where a session is in its life; the last three are final."""

    STARTING = "starting"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_PHASES: Final = frozenset({Phase.FINISHED, Phase.FAILED, Phase.CANCELLED})


class Reason(StrEnum):
    """Every reason this module reports itself; Kubernetes pod reasons (``Evicted``) pass through."""

    RELEASE_MISSING = "ReleaseMissing"
    DELETING = "Deleting"
    PILOT_EXIT_CODE = "PilotExitCode"
    PILOT_FAILED = "PilotFailed"
    INIT_CONTAINER_FAILED = "InitContainerFailed"
    OOM_KILLED = "OOMKilled"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    SCHEDULER_FAILED = "SchedulerFailed"
    JUPYTERLAB_FAILED = "JupyterLabFailed"
    SCHEDULER_NOT_READY = "SchedulerNotReady"
    SCHEDULER_EXITED = "SchedulerExited"
    JUPYTERLAB_NOT_READY = "JupyterLabNotReady"
    HOOK_FAILED = "HookFailed"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    ERR_IMAGE_PULL = "ErrImagePull"
    INVALID_IMAGE_NAME = "InvalidImageName"
    CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    CREATE_CONTAINER_ERROR = "CreateContainerError"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    UNSCHEDULABLE = "Unschedulable"
    FAILED_MOUNT = "FailedMount"
    STARTUP_TIMEOUT = "StartupTimeout"
    LIFETIME_EXCEEDED = "LifetimeExceeded"
    LEASE_EXPIRED = "LeaseExpired"


_WAITING_PROBLEMS: Final = frozenset(
    {
        Reason.IMAGE_PULL_BACK_OFF,
        Reason.ERR_IMAGE_PULL,
        Reason.INVALID_IMAGE_NAME,
        Reason.CREATE_CONTAINER_CONFIG_ERROR,
        Reason.CREATE_CONTAINER_ERROR,
        Reason.CRASH_LOOP_BACK_OFF,
    }
)
_CREATING: Final = frozenset({"ContainerCreating", "PodInitializing"})
_MOUNT_EVENTS: Final = frozenset({"FailedMount", "FailedAttachVolume"})


@dataclass(frozen=True)
class Timings:
    """When each step of a session happened (None: not yet, or not known)."""

    submitted: datetime | None = None
    scheduler_ready: datetime | None = None
    workers_ready: datetime | None = None
    pilot_started: datetime | None = None
    ended: datetime | None = None

    def to_dict(self) -> dict[str, str | None]:
        """ISO-8601 strings (UTC), for JSON output."""
        return {
            "submitted": _iso(self.submitted),
            "scheduler_ready": _iso(self.scheduler_ready),
            "workers_ready": _iso(self.workers_ready),
            "pilot_started": _iso(self.pilot_started),
            "ended": _iso(self.ended),
        }


@dataclass(frozen=True)
class SessionState:
    """What one release is doing, for the monitor, the CLI and the deadline checks.

    ``reason`` is None only when the session is happy (starting normally, running fully, or
    finished); ``message`` is the human detail (which pod or container, which exit code).
    """

    release: str
    namespace: str
    phase: Phase
    pandaid: int | None = None
    mode: str | None = None
    reason: str | None = None
    message: str = ""
    pilot_exit_code: int | None = None
    workers_ready: int = 0
    workers_wanted: int = 0
    scheduler_address: str | None = None
    dashboard_url: str | None = None
    jupyter_url: str | None = None
    queue: str | None = None
    harvester_worker_id: int | None = None
    timings: Timings = field(default_factory=Timings)

    @property
    def final(self) -> bool:
        """True once nothing more will happen (finished, failed or cancelled)."""
        return self.phase in FINAL_PHASES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; the keys of the CLI's ``status --output json``."""
        return {
            "release": self.release,
            "namespace": self.namespace,
            "pandaid": self.pandaid,
            "mode": self.mode,
            "phase": str(self.phase),
            "reason": None if self.reason is None else str(self.reason),
            "message": self.message,
            "pilot_exit_code": self.pilot_exit_code,
            "workers_ready": self.workers_ready,
            "workers_wanted": self.workers_wanted,
            "scheduler_address": self.scheduler_address,
            "dashboard_url": self.dashboard_url,
            "jupyter_url": self.jupyter_url,
            "queue": self.queue,
            "harvester_worker_id": self.harvester_worker_id,
            "timings": self.timings.to_dict(),
        }


# --------------------------------------------------------------------------------------------
# reading pod dicts defensively: a missing or odd field means "not known", never a crash


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _get(obj: object, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _aware(now: datetime) -> datetime:
    """``now`` as an aware datetime; a naive one is taken as UTC (Kubernetes times are UTC)."""
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _clip(text: str) -> str:
    """One line, bounded: messages end up in Harvester's 256-char diagnostics and table cells."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MESSAGE_MAX else flat[: _MESSAGE_MAX - 3] + "..."


def _labels(pod: Pod) -> Mapping[str, Any]:
    labels = _get(pod, "metadata", "labels")
    return labels if isinstance(labels, Mapping) else {}


def _annotations(pod: Pod) -> Mapping[str, Any]:
    annotations = _get(pod, "metadata", "annotations")
    return annotations if isinstance(annotations, Mapping) else {}


def _name(pod: Pod) -> str:
    name = _get(pod, "metadata", "name")
    return name if isinstance(name, str) else "?"


def _component(pod: Pod) -> str | None:
    value = _labels(pod).get(COMPONENT_LABEL)
    return value if isinstance(value, str) else None


def _phase(pod: Pod) -> str | None:
    value = _get(pod, "status", "phase")
    return value if isinstance(value, str) else None


def _pod_reason(pod: Pod) -> str | None:
    value = _get(pod, "status", "reason")
    return value if isinstance(value, str) and value else None


def _condition(pod: Pod, kind: str) -> Mapping[str, Any] | None:
    conditions = _get(pod, "status", "conditions")
    if isinstance(conditions, list):
        for condition in conditions:
            if isinstance(condition, Mapping) and condition.get("type") == kind:
                return condition
    return None


def _is_ready(pod: Pod) -> bool:
    condition = _condition(pod, "Ready")
    return condition is not None and condition.get("status") == "True"


def _ready_since(pod: Pod) -> datetime | None:
    """When the pod became Ready, if it is Ready now and the time is recorded."""
    condition = _condition(pod, "Ready")
    if condition is None or condition.get("status") != "True":
        return None
    return _time(condition.get("lastTransitionTime"))


def _statuses(pod: Pod, key: str) -> list[Mapping[str, Any]]:
    values = _get(pod, "status", key)
    return [value for value in values if isinstance(value, Mapping)] if isinstance(values, list) else []


def _main(pod: Pod, name: str) -> Mapping[str, Any] | None:
    """The status of the pod's main container (named like the component; else the first one)."""
    statuses = _statuses(pod, "containerStatuses")
    for status in statuses:
        if status.get("name") == name:
            return status
    return statuses[0] if statuses else None


def _terminated(status: Mapping[str, Any] | None, *, last: bool = False) -> Mapping[str, Any] | None:
    value = _get(status, "lastState" if last else "state", "terminated")
    return value if isinstance(value, Mapping) else None


def _deletion_requested(pod: Pod) -> datetime | None:
    """When the delete was asked for: deletionTimestamp minus the grace period."""
    stamp = _time(_get(pod, "metadata", "deletionTimestamp"))
    if stamp is None:
        return None
    grace = _int(_get(pod, "metadata", "deletionGracePeriodSeconds")) or 0
    return stamp - timedelta(seconds=max(grace, 0))


def _failure_counts(pod: Pod, when: datetime | None) -> bool:
    """A failure counts unless the pod is being deleted and it did not clearly happen before."""
    requested = _deletion_requested(pod)
    return requested is None or (when is not None and when < requested)


def _failure_time(pod: Pod, status: Mapping[str, Any] | None) -> datetime | None:
    """The container's finishedAt, else the pod's latest condition transition."""
    ended = _time(_get(_terminated(status), "finishedAt"))
    if ended is not None:
        return ended
    times = [_time(_get(c, "lastTransitionTime")) for c in _get(pod, "status", "conditions") or ()]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _describe(terminated: Mapping[str, Any]) -> str:
    code = _int(terminated.get("exitCode"))
    reason = terminated.get("reason")
    text = f"exited with code {code}"
    return f"{text} ({reason})" if isinstance(reason, str) and reason else text


@dataclass(frozen=True)
class _Outcome:
    """A verdict of one rule."""

    phase: Phase
    reason: str | None
    message: str
    ended: datetime | None = None


# --------------------------------------------------------------------------------------------
# the rules, one function each


def _pilot_outcome(pod: Pod, mode: str) -> tuple[_Outcome | None, int | None]:
    """Rules 2 and 3: the verdict of the pilot pod (None while it runs) and its exit code."""
    name = _name(pod)
    status = _main(pod, PILOT)
    terminated = _terminated(status)
    code = _int(_get(terminated, "exitCode"))
    ended = _time(_get(terminated, "finishedAt"))
    pod_phase, pod_reason = _phase(pod), _pod_reason(pod)

    if pod_phase == "Failed" and pod_reason == Reason.DEADLINE_EXCEEDED:
        when = _failure_time(pod, status)
        if not _failure_counts(pod, when):
            return None, code
        message = f"pilot pod {name} was killed at the session lifetime (activeDeadlineSeconds)"
        return _Outcome(Phase.FAILED, Reason.DEADLINE_EXCEEDED, message, ended or when), code
    if (terminated is not None and code == 0) or (terminated is None and pod_phase == "Succeeded"):
        if mode == "interactive":
            return None, 0
        return _Outcome(Phase.FINISHED, None, f"pilot in pod {name} exited with code 0", ended), 0
    if terminated is not None:
        if not _failure_counts(pod, ended):
            return None, code
        if terminated.get("reason") == Reason.OOM_KILLED:
            reason: str = Reason.OOM_KILLED
        elif pod_phase == "Failed" and pod_reason not in (None, "Error"):
            reason = str(pod_reason)
        else:
            reason = Reason.PILOT_EXIT_CODE
        message = f"pilot container in pod {name} {_describe(terminated)}"
        return _Outcome(Phase.FAILED, reason, message, ended), code
    for init in _statuses(pod, "initContainerStatuses"):
        init_terminated = _terminated(init)
        init_code = _int(_get(init_terminated, "exitCode"))
        if init_terminated is not None and init_code not in (None, 0) and pod_phase == "Failed":
            init_ended = _time(init_terminated.get("finishedAt"))
            if not _failure_counts(pod, init_ended):
                return None, None
            message = f"init container {init.get('name')} of pilot pod {name} {_describe(init_terminated)}"
            return _Outcome(Phase.FAILED, Reason.INIT_CONTAINER_FAILED, message, init_ended), None
    if pod_phase == "Failed":
        when = _failure_time(pod, status)
        if not _failure_counts(pod, when):
            return None, None
        detail = _get(pod, "status", "message")
        message = f"pilot pod {name} failed" + (f": {detail}" if isinstance(detail, str) and detail else "")
        return _Outcome(Phase.FAILED, pod_reason or Reason.PILOT_FAILED, message, when), None
    return None, code


def _jupyterlab_finished(pod: Pod) -> _Outcome | None:
    """Rule 4: the user shut JupyterLab down (or it culled itself when idle)."""
    if _phase(pod) != "Succeeded":
        return None
    ended = _time(_get(_terminated(_main(pod, JUPYTERLAB)), "finishedAt"))
    return _Outcome(Phase.FINISHED, None, f"JupyterLab in pod {_name(pod)} was shut down", ended)


def _deadline(pod: Pod) -> _Outcome | None:
    """Rule 5: a session pod killed by activeDeadlineSeconds."""
    if _phase(pod) != "Failed" or _pod_reason(pod) != Reason.DEADLINE_EXCEEDED:
        return None
    when = _failure_time(pod, _main(pod, _component(pod) or ""))
    if not _failure_counts(pod, when):
        return None
    message = f"{_component(pod)} pod {_name(pod)} was killed at the session lifetime (activeDeadlineSeconds)"
    return _Outcome(Phase.FAILED, Reason.DEADLINE_EXCEEDED, message, when)


def _core_failure(pod: Pod, component: str, established: bool) -> _Outcome | None:
    """Rule 6: the scheduler (or JupyterLab) is gone for good."""
    failed_reason = Reason.SCHEDULER_FAILED if component == SCHEDULER else Reason.JUPYTERLAB_FAILED
    status = _main(pod, component)
    current, last = _terminated(status), _terminated(status, last=True)
    pod_phase = _phase(pod)
    if pod_phase == "Failed":
        when = _failure_time(pod, status)
        if not _failure_counts(pod, when):
            return None
        ending = current or last
        oom = ending is not None and ending.get("reason") == Reason.OOM_KILLED
        detail = (
            _describe(ending) if ending is not None else f"failed ({_pod_reason(pod) or 'no reason given'})"
        )
        pod_reason = _pod_reason(pod)
        if ending is not None and pod_reason is not None:
            detail += f" (pod reason {pod_reason})"
        message = f"{component} pod {_name(pod)} {detail}"
        return _Outcome(Phase.FAILED, Reason.OOM_KILLED if oom else failed_reason, message, when)
    restarts = _int(_get(status, "restartCount")) or 0
    running = isinstance(_get(status, "state", "running"), Mapping)
    if not established or restarts < MAX_RESTARTS or running:
        return None
    ending = current or last
    if ending is None or _int(ending.get("exitCode")) == 0:
        return None
    when = _time(ending.get("finishedAt"))
    if not _failure_counts(pod, when):
        return None
    oom = ending.get("reason") == Reason.OOM_KILLED
    message = f"{component} container in pod {_name(pod)} {_describe(ending)} after {restarts} restarts"
    return _Outcome(Phase.FAILED, Reason.OOM_KILLED if oom else failed_reason, message, when)


def _pod_events(events: Sequence[Mapping[str, Any]] | None, pod: Pod) -> list[Mapping[str, Any]]:
    if not events:
        return []
    name = _name(pod)
    return [e for e in events if isinstance(e, Mapping) and _get(e, "involvedObject", "name") == name]


def _problem(pod: Pod, events: Sequence[Mapping[str, Any]] | None) -> tuple[str | None, str] | None:
    """Rule 10: what keeps one pod from starting: (reason or None for "just stuck", message)."""
    name, component = _name(pod), _component(pod) or "session"
    if component in (PREPARE, CLEANUP) and _phase(pod) == "Failed":
        detail = ""
        for status in _statuses(pod, "containerStatuses"):
            terminated = _terminated(status)
            if terminated is not None:
                detail = f": container {status.get('name')} {_describe(terminated)}"
        return Reason.HOOK_FAILED, f"{component} hook pod {name} failed{detail}"
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        detail = scheduled.get("message") or scheduled.get("reason") or "not scheduled"
        if scheduled.get("reason") == Reason.UNSCHEDULABLE:
            return Reason.UNSCHEDULABLE, f"{component} pod {name} is unschedulable: {detail}"
        return None, f"{component} pod {name} is not scheduled yet: {detail}"
    creating: str | None = None
    for kind in ("initContainerStatuses", "containerStatuses"):
        for status in _statuses(pod, kind):
            waiting = _get(status, "state", "waiting")
            reason = _get(waiting, "reason")
            if not isinstance(reason, str):
                continue
            detail = _get(waiting, "message")
            where = f"container {status.get('name')} of {component} pod {name}"
            if reason in _WAITING_PROBLEMS:
                last = _terminated(status, last=True)
                if reason == Reason.CRASH_LOOP_BACK_OFF and last is not None:
                    text = f"{where}: CrashLoopBackOff, last {_describe(last)}"
                    if last.get("reason") == Reason.OOM_KILLED:
                        return Reason.OOM_KILLED, text
                    return reason, text
                return reason, f"{where}: {reason}" + (
                    f": {detail}" if isinstance(detail, str) and detail else ""
                )
            if reason in _CREATING and creating is None:
                creating = f"{where} is still {reason}"
    if creating is not None or _phase(pod) == "Pending":
        for event in _pod_events(events, pod):
            if event.get("reason") in _MOUNT_EVENTS:
                return (
                    Reason.FAILED_MOUNT,
                    f"{component} pod {name}: {event.get('reason')}: {event.get('message')}",
                )
        if creating is not None:
            return None, creating
    return None


# --------------------------------------------------------------------------------------------
# public API


def group_pods_by_release(pods: Iterable[Pod]) -> dict[str, list[dict[str, Any]]]:
    """Pods of this chart (name label ``dask-panda-session``) keyed by their instance label.

    Hook and test pods are kept in their release's group: :func:`derive_session` ignores them
    for the phase but uses them to explain a failure (a failed prepare hook) or a deletion in
    progress (the pre-delete cleanup hook). Pods of other applications are dropped.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        labels = _labels(pod)
        release = labels.get(INSTANCE_LABEL)
        if labels.get(NAME_LABEL) != APP_NAME or not isinstance(release, str) or not release:
            continue
        groups.setdefault(release, []).append(dict(pod))
    return groups


def _merged_annotations(pods: Iterable[Pod]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for pod in pods:
        for key, value in _annotations(pod).items():
            merged.setdefault(key, value)
    return merged


def derive_session(
    release: str,
    namespace: str,
    pods: Iterable[Pod],
    *,
    now: datetime,
    startup_timeout: float | None = None,
    release_known: bool = True,
    events: Sequence[Mapping[str, Any]] | None = None,
) -> SessionState:
    """The state of one release from its pods (the rules are in the module docstring).

    ``startup_timeout`` (seconds) defaults to the pods' ``startup-seconds`` annotation; with
    neither, a session never fails for being slow to start. ``release_known`` says whether Helm
    still knows the release. ``events`` (Kubernetes Event dicts, optional) only refine a reason
    (``FailedMount``). ``now`` is passed in, never read from the clock, to keep this pure.
    """
    now = _aware(now)
    mine = [pod for pod in pods if _labels(pod).get(INSTANCE_LABEL, release) == release]
    mine.sort(key=lambda p: (_PRIORITY.get(_component(p) or "", 9), _name(p)))
    session = [pod for pod in mine if _component(pod) in SESSION_COMPONENTS]
    hooks = [pod for pod in mine if _component(pod) in (PREPARE, CLEANUP)]
    by_component: dict[str, list[Pod]] = {}
    for pod in session:
        by_component.setdefault(_component(pod) or "", []).append(pod)
    scheduler = next(iter(by_component.get(SCHEDULER, [])), None)
    pilot = next(iter(by_component.get(PILOT, [])), None)
    jupyterlab = next(iter(by_component.get(JUPYTERLAB, [])), None)
    workers = by_component.get(WORKER, [])

    annotations = _merged_annotations(session)
    labels: dict[str, Any] = {}
    for pod in session + hooks:
        for key, value in _labels(pod).items():
            labels.setdefault(key, value)
    mode_label = labels.get(MODE_LABEL)
    if mode_label in ("batch", "interactive"):
        mode: str | None = str(mode_label)
    elif session:
        mode = "interactive" if jupyterlab is not None else "batch"
    else:
        mode = None
    interactive = mode == "interactive"

    # timings and counts
    created = [
        _time(_get(pod, "metadata", "creationTimestamp"))
        for pod in session + hooks
        if _component(pod) != CLEANUP
    ]
    submitted = min((t for t in created if t is not None), default=None)
    scheduler_ready = _ready_since(scheduler) if scheduler is not None else None
    ready_workers = [pod for pod in workers if _is_ready(pod)]
    ready_times = sorted(t for t in (_ready_since(pod) for pod in ready_workers) if t is not None)
    wanted = _int(annotations.get(ANN_WORKERS_WANTED))
    workers_wanted = wanted if wanted is not None and wanted >= 0 else len(workers)
    workers_ready_at = None
    if 0 < workers_wanted <= len(ready_workers) and len(ready_times) == len(ready_workers):
        # the moment the count of Ready workers reached the wanted number
        workers_ready_at = ready_times[workers_wanted - 1]
    pilot_status = _main(pilot, PILOT) if pilot is not None else None
    pilot_started = _time(_get(pilot_status, "state", "running", "startedAt")) or _time(
        _get(pilot_status, "state", "terminated", "startedAt")
    )
    if startup_timeout is None:
        startup_timeout = _seconds(annotations.get(ANN_STARTUP_SECONDS))

    def state(outcome: _Outcome, exit_code: int | None = None) -> SessionState:
        worker_id = labels.get(WORKER_ID_LABEL)
        queue = labels.get(QUEUE_LABEL)
        jupyter_url = annotations.get(ANN_JUPYTER_URL) if interactive else None
        return SessionState(
            release=release,
            namespace=namespace,
            phase=outcome.phase,
            pandaid=_int(labels.get(PANDAID_LABEL)),
            mode=mode,
            reason=outcome.reason,
            message=_clip(outcome.message),
            pilot_exit_code=exit_code,
            workers_ready=len(ready_workers),
            workers_wanted=workers_wanted,
            scheduler_address=_str_or_none(annotations.get(ANN_SCHEDULER_ADDRESS)),
            dashboard_url=_str_or_none(annotations.get(ANN_DASHBOARD_URL)),
            jupyter_url=_str_or_none(jupyter_url),
            queue=_str_or_none(queue),
            harvester_worker_id=_int(worker_id),
            timings=Timings(
                submitted=submitted,
                scheduler_ready=scheduler_ready,
                workers_ready=workers_ready_at,
                pilot_started=pilot_started,
                ended=outcome.ended,
            ),
        )

    def timed_out() -> bool:
        return (
            startup_timeout is not None
            and submitted is not None
            and now - submitted > timedelta(seconds=startup_timeout)
        )

    # rule 1: nothing of the session exists (yet, or any more)
    if not session:
        if not release_known:
            left = f"; {len(hooks)} hook pod(s) remain" if hooks else ""
            return state(
                _Outcome(Phase.CANCELLED, Reason.RELEASE_MISSING, f"release {release} not found{left}")
            )
        return state(_starting(hooks, events, timed_out(), "no session pods yet (pre-install hook)"))

    # rules 2-3: the pilot
    exit_code: int | None = None
    if pilot is not None:
        outcome, exit_code = _pilot_outcome(pilot, mode or "batch")
        if outcome is not None:
            return state(outcome, exit_code)
    # rule 4: JupyterLab shut down
    if interactive and jupyterlab is not None:
        outcome = _jupyterlab_finished(jupyterlab)
        if outcome is not None:
            return state(outcome, exit_code)
    # rule 5: lifetime reached in the cluster
    for pod in session:
        outcome = _deadline(pod)
        if outcome is not None:
            return state(outcome, exit_code)
    # rule 6: scheduler / JupyterLab gone
    if interactive:
        jupyter_status = _main(jupyterlab, JUPYTERLAB) if jupyterlab is not None else None
        established = jupyterlab is not None and (
            _is_ready(jupyterlab) or (_int(_get(jupyter_status, "restartCount")) or 0) > 0
        )
    else:
        established = pilot_started is not None
    for core in (scheduler, jupyterlab if interactive else None):
        if core is not None:
            outcome = _core_failure(core, _component(core) or SCHEDULER, established)
            if outcome is not None:
                return state(outcome, exit_code)
    # rule 7: being deleted
    deleting = [pod for pod in session if _deletion_requested(pod) is not None]
    if deleting or any(_component(pod) == CLEANUP for pod in hooks):
        what = f"{len(deleting)} pod(s) being deleted" if deleting else "the pre-delete cleanup hook runs"
        return state(
            _Outcome(Phase.CANCELLED, Reason.DELETING, f"release {release} is being deleted: {what}"),
            exit_code,
        )
    # rule 8: orphans
    if not release_known:
        message = f"release {release} not found but {len(session)} of its pod(s) remain"
        return state(_Outcome(Phase.CANCELLED, Reason.RELEASE_MISSING, message), exit_code)
    # rule 9: running
    counts = f"{len(ready_workers)}/{workers_wanted} workers ready"
    # problems of pods the session can run without: workers, and the stager pilot of a live session
    optional = workers + ([pilot] if interactive and pilot is not None else [])
    notes = [p[1] for p in (_problem(pod, events) for pod in optional) if p is not None and p[0] is not None]
    if established:
        # A worker that cannot start (image, scheduling, crash loop) is reported while the session
        # runs; past the startup timeout with workers still missing, the session has failed: it
        # will never get the workers it was given.
        worker_problem = next(
            (
                p
                for p in (_problem(pod, events) for pod in workers if not _is_ready(pod))
                if p is not None and p[0] is not None
            ),
            None,
        )
        if worker_problem is not None and len(ready_workers) < workers_wanted and timed_out():
            return state(
                _Outcome(
                    Phase.FAILED,
                    worker_problem[0],
                    f"{counts} within the startup timeout: {worker_problem[1]}",
                ),
                exit_code,
            )
        parts = []
        reason: str | None = None
        if scheduler is not None and _phase(scheduler) == "Succeeded":
            reason = Reason.SCHEDULER_EXITED
            parts.append("the scheduler exited with code 0 (idle timeout)")
        elif scheduler is None or not _is_ready(scheduler):
            reason = Reason.SCHEDULER_NOT_READY
            parts.append("the scheduler is not Ready")
        elif interactive and (jupyterlab is None or not _is_ready(jupyterlab)):
            reason = Reason.JUPYTERLAB_NOT_READY
            parts.append("JupyterLab is not Ready")
        if interactive:
            parts.append("staging done" if exit_code == 0 else "JupyterLab up")
        else:
            parts.append("pilot running")
        parts.append(counts)
        parts.extend(notes[:1])
        if reason is None and worker_problem is not None and len(ready_workers) < workers_wanted:
            reason = worker_problem[0]
        return state(_Outcome(Phase.RUNNING, reason, "; ".join(parts)), exit_code)
    # rule 10: starting
    return state(_starting(session + hooks, events, timed_out(), f"starting; {counts}"), exit_code)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _starting(
    pods: Sequence[Pod],
    events: Sequence[Mapping[str, Any]] | None,
    timed_out: bool,
    idle_message: str,
) -> _Outcome:
    """Rule 10 (and rule 1's hooks): still starting, or failed if past the startup timeout."""
    problems = [p for p in (_problem(pod, events) for pod in pods) if p is not None]
    specific = next((p for p in problems if p[0] is not None), None)
    stuck = next((p for p in problems if p[0] is None), None)
    if timed_out:
        reason = specific[0] if specific is not None else Reason.STARTUP_TIMEOUT
        detail = (specific or stuck or (None, idle_message))[1]
        return _Outcome(Phase.FAILED, reason, f"not started within the startup timeout: {detail}")
    if specific is not None:
        return _Outcome(Phase.STARTING, specific[0], specific[1])
    return _Outcome(Phase.STARTING, None, stuck[1] if stuck is not None else idle_message)


def deadline_verdict(
    state: SessionState,
    pods_or_annotations: Iterable[Pod] | Mapping[str, Any],
    now: datetime,
) -> str | None:
    """Why the orchestrator should kill a live session now, or None.

    ``LifetimeExceeded`` (now - submitted > lifetime), ``LeaseExpired`` (interactive: now -
    pilot_started, or scheduler_ready if the pilot has not started, > lease) or
    ``StartupTimeout`` (still starting after the startup timeout), in that order. Only for
    ``starting``/``running`` sessions: final ones are the sweeper's business, and
    :func:`derive_session` already turns a startup timeout into ``failed``, so ``StartupTimeout``
    here covers sessions derived without a timeout. The limits come from the session pods'
    annotations (or a mapping of those annotations); a missing annotation disables its check.
    """
    if state.phase not in (Phase.STARTING, Phase.RUNNING):
        return None
    now = _aware(now)
    if isinstance(pods_or_annotations, Mapping):
        annotations: Mapping[str, Any] = pods_or_annotations
    else:
        annotations = _merged_annotations(
            pod for pod in pods_or_annotations if _component(pod) in SESSION_COMPONENTS
        )
    lifetime = _seconds(annotations.get(ANN_LIFETIME_SECONDS))
    lease = _seconds(annotations.get(ANN_LEASE_SECONDS))
    startup = _seconds(annotations.get(ANN_STARTUP_SECONDS))
    submitted = state.timings.submitted

    def past(since: datetime | None, limit: float | None) -> bool:
        return since is not None and limit is not None and now - since > timedelta(seconds=limit)

    if past(submitted, lifetime):
        return Reason.LIFETIME_EXCEEDED
    if state.mode == "interactive" and past(
        state.timings.pilot_started or state.timings.scheduler_ready, lease
    ):
        return Reason.LEASE_EXPIRED
    if state.phase is Phase.STARTING and past(submitted, startup):
        return Reason.STARTUP_TIMEOUT
    return None
