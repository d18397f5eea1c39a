"""The words of a session's state: chart labels and annotations, components, phases, reasons, and
the :class:`SessionState` record every adapter reads.

Kept apart from the rules so that the adapters (CLI, Harvester plugins) and the rules share one
vocabulary without the adapters importing any rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

# the chart's vocabulary (orchestrator/names.py), re-exported for the rules and adapters
from orchestrator.names import ANN_DASHBOARD_URL as ANN_DASHBOARD_URL
from orchestrator.names import ANN_JUPYTER_URL as ANN_JUPYTER_URL
from orchestrator.names import ANN_LEASE_SECONDS as ANN_LEASE_SECONDS
from orchestrator.names import ANN_LIFETIME_SECONDS as ANN_LIFETIME_SECONDS
from orchestrator.names import ANN_SCHEDULER_ADDRESS as ANN_SCHEDULER_ADDRESS
from orchestrator.names import ANN_STARTUP_SECONDS as ANN_STARTUP_SECONDS
from orchestrator.names import ANN_WORKERS_WANTED as ANN_WORKERS_WANTED
from orchestrator.names import APP_NAME as APP_NAME
from orchestrator.names import CLEANUP as CLEANUP
from orchestrator.names import COMPONENT_LABEL as COMPONENT_LABEL
from orchestrator.names import INSTANCE_LABEL as INSTANCE_LABEL
from orchestrator.names import JUPYTERLAB as JUPYTERLAB
from orchestrator.names import MODE_LABEL as MODE_LABEL
from orchestrator.names import NAME_LABEL as NAME_LABEL
from orchestrator.names import PANDAID_LABEL as PANDAID_LABEL
from orchestrator.names import PILOT as PILOT
from orchestrator.names import PREPARE as PREPARE
from orchestrator.names import QUEUE_LABEL as QUEUE_LABEL
from orchestrator.names import SCHEDULER as SCHEDULER
from orchestrator.names import WORKER as WORKER
from orchestrator.names import WORKER_ID_LABEL as WORKER_ID_LABEL

SESSION_COMPONENTS: Final = frozenset({SCHEDULER, WORKER, PILOT, JUPYTERLAB})
CORE_COMPONENTS: Final = frozenset({SCHEDULER, PILOT, JUPYTERLAB})
"""The components whose end (or deletion) ends the session; a worker's end is a shortfall."""
HOOK_COMPONENTS: Final = frozenset({PREPARE, CLEANUP})
# most important first: a problem of the scheduler explains more than one of a worker
PRIORITY: Final = {SCHEDULER: 0, PILOT: 1, JUPYTERLAB: 2, WORKER: 3, PREPARE: 4, CLEANUP: 5}

MAX_RESTARTS: Final = 3
"""Restarts of an established scheduler/jupyterlab after which a crash counts as final."""

CLOCK_SKEW_TOLERANCE: Final = 120.0
"""Seconds of disagreement between clocks that every deadline comparison tolerates.

``now`` is meant to be the API server's time, creationTimestamps are the API server's too, but
container start/finish times and condition transitions are written by each node's kubelet on
that node's clock. A deadline verdict is reached only when its limit is exceeded by more than
this, and a timestamp lying further than this in the future (or a kubelet timestamp lying
further than this before its own pod's creation) proves a skew beyond it: no verdict is then
based on that timestamp, and the message says so.
"""


class Phase(StrEnum):
    """Where a session is in its life; the last three are final."""

    STARTING = "starting"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_PHASES: Final = frozenset({Phase.FINISHED, Phase.FAILED, Phase.CANCELLED})


class Reason(StrEnum):
    """Every reason this package reports itself; Kubernetes pod reasons (``Evicted``) pass through."""

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
    # shortfalls of a running session: it goes on with fewer workers
    WORKER_TERMINATING = "WorkerTerminating"
    WORKER_LOST = "WorkerLost"
    WORKERS_MISSING = "WorkersMissing"


class Deadline(StrEnum):
    """Which of the orchestrator's limits ended a session (``SessionState.deadline``)."""

    STARTUP = "startup"
    LIFETIME = "lifetime"
    LEASE = "lease"


def iso(value: datetime | None) -> str | None:
    """ISO-8601 in UTC with a ``Z``, the Kubernetes style; None stays None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
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
            "submitted": iso(self.submitted),
            "scheduler_ready": iso(self.scheduler_ready),
            "workers_ready": iso(self.workers_ready),
            "pilot_started": iso(self.pilot_started),
            "ended": iso(self.ended),
        }


@dataclass(frozen=True, slots=True)
class SessionState:
    """What one release is doing, for the monitor, the CLI and the deadline checks.

    ``reason`` is None only when the session is happy (starting normally, running fully, or
    finished); ``message`` is the human detail (which pod or container, which exit code).
    ``deadline`` names the orchestrator's limit that ended the session (``startup``,
    ``lifetime`` -- also when Kubernetes' activeDeadlineSeconds did it -- or ``lease``), None
    otherwise: whatever the reason reported, such a session must be uninstalled.
    ``clock_skew_seconds`` is the largest clock disagreement seen in the pods' timestamps
    (kubelet times before their pod's creation, or any time after ``now``); None when nothing
    could be compared.
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
    deadline: str | None = None
    clock_skew_seconds: float | None = None

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
            "deadline": None if self.deadline is None else str(self.deadline),
            "clock_skew_seconds": self.clock_skew_seconds,
            "timings": self.timings.to_dict(),
        }
