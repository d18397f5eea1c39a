"""What the three Harvester plugins share: the PluginBase shim, queue parameters -> service, codes.

Why a shim: Harvester builds a plugin with ``Class(**section)`` where ``section`` is the plugin's
part of ``panda_queueconfig.json`` (plus the queue's ``common`` keys, ``queueName``, ``siteName``
and ``dbInterface``), and its ``PluginBase.__init__`` sets every keyword argument as an attribute.
When ``pandaharvester`` is importable we subclass its ``PluginBase`` (so ``make_logger`` and any
future behaviour come with it); otherwise a compatible base does the same ``setattr`` loop, so
importing these modules, and the unit tests, never need pandaharvester.

Why lazy: Harvester builds a NEW plugin object every cycle (original-system.md section 2.1), so
construction must cost nothing: the :class:`SessionService` is made on first use, and even then
neither helm nor the Kubernetes API is touched until a call needs them (both are lazy). No
per-worker state lives in the plugin: it lives in the cluster and in the WorkSpec (``batchID``
and the ``dask_panda_session`` work attribute).

The queue parameters (every one documented in ``docs/harvester.md``) map onto
:class:`orchestrator.service.Settings`; unknown keys are ignored, because Harvester copies the
queue's ``common`` section into every plugin section.

Error codes: Harvester's ``WorkerErrors`` (``SUCCEEDED=0``, ``UNKNOWN=1000``, ``PREEMPTED=1001``,
``GENERAL_ERROR=9000``; worker codes are >= 1000) plus codes of our own in Harvester's "5.8
Kubernetes errors" block, chosen clear of the codes Harvester reserves there (5801, 5881, 5882).
:func:`error_code` is the one mapping from a session's reason to a code; the table is repeated
in ``docs/harvester.md``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from orchestrator.service import SessionService, Settings
from orchestrator.session import Phase, Reason, SessionState

__all__ = [
    "ATTRIBUTE_KEY",
    "DaskPluginBase",
    "ErrorCodes",
    "WorkerStatus",
    "error_code",
    "harvester_available",
    "settings_from_params",
    "worker_location",
]

log = logging.getLogger(__name__)

ATTRIBUTE_KEY: Final = "dask_panda_session"
"""The one work attribute (``WorkSpec.workAttributes[ATTRIBUTE_KEY]``) this package writes.

It holds where the session lives (``namespace``, ``release``), so that the monitor and the sweeper
find it without a schema change in Harvester (the original added ``namespace`` and
``podStartTime`` columns, defect 20), and what the monitor last saw (phase, addresses, timings).
"""


class WorkerStatus:
    """Harvester's worker statuses (``WorkSpec.ST_*``; the same strings, without importing it)."""

    submitted: Final = "submitted"
    running: Final = "running"
    finished: Final = "finished"
    failed: Final = "failed"
    ready: Final = "ready"
    cancelled: Final = "cancelled"
    idle: Final = "idle"
    missed: Final = "missed"


PHASE_TO_STATUS: Final[Mapping[Phase, str]] = {
    Phase.STARTING: WorkerStatus.submitted,
    Phase.RUNNING: WorkerStatus.running,
    Phase.FINISHED: WorkerStatus.finished,
    Phase.FAILED: WorkerStatus.failed,
    Phase.CANCELLED: WorkerStatus.cancelled,
}
"""Session phase -> Harvester worker status; every value is in Harvester's ``WorkSpec.ST_LIST``."""


class ErrorCodes:
    """Supplemental error codes (``WorkSpec.set_supplemental_error``), Harvester's and ours."""

    # Harvester's WorkerErrors.error_codes
    SUCCEEDED: Final = 0
    UNKNOWN: Final = 1000
    PREEMPTED: Final = 1001
    GENERAL_ERROR: Final = 9000
    # Harvester's own Kubernetes codes (message patterns), kept for reference
    K8S_BACKOFF_LIMIT: Final = 5801
    K8S_CONTAINER_NOT_TERMINATED: Final = 5881
    K8S_TERMINATED_BY_K8S: Final = 5882
    # Harvester's memory code (5.1.1 "Memory errors"): what an OOM kill is
    MEMORY_EXCEEDED: Final = 5110
    # dask-panda-session (5.8.4x-5.8.6x)
    PILOT_EXIT_CODE: Final = 5840
    PILOT_FAILED: Final = 5841
    INIT_CONTAINER_FAILED: Final = 5842
    DEADLINE_EXCEEDED: Final = 5843
    SCHEDULER_FAILED: Final = 5844
    JUPYTERLAB_FAILED: Final = 5845
    HOOK_FAILED: Final = 5846
    IMAGE_PULL_FAILED: Final = 5850
    CREATE_CONTAINER_FAILED: Final = 5851
    CRASH_LOOP: Final = 5852
    UNSCHEDULABLE: Final = 5853
    FAILED_MOUNT: Final = 5854
    STARTUP_TIMEOUT: Final = 5855
    LIFETIME_EXCEEDED: Final = 5856
    LEASE_EXPIRED: Final = 5857
    RELEASE_MISSING: Final = 5860
    DELETED: Final = 5861
    NOT_SUBMITTED: Final = 5862


_REASON_CODES: Final[Mapping[str, int]] = {
    Reason.PILOT_EXIT_CODE: ErrorCodes.PILOT_EXIT_CODE,
    Reason.PILOT_FAILED: ErrorCodes.PILOT_FAILED,
    Reason.INIT_CONTAINER_FAILED: ErrorCodes.INIT_CONTAINER_FAILED,
    Reason.OOM_KILLED: ErrorCodes.MEMORY_EXCEEDED,
    Reason.DEADLINE_EXCEEDED: ErrorCodes.DEADLINE_EXCEEDED,
    Reason.SCHEDULER_FAILED: ErrorCodes.SCHEDULER_FAILED,
    Reason.JUPYTERLAB_FAILED: ErrorCodes.JUPYTERLAB_FAILED,
    Reason.HOOK_FAILED: ErrorCodes.HOOK_FAILED,
    Reason.IMAGE_PULL_BACK_OFF: ErrorCodes.IMAGE_PULL_FAILED,
    Reason.ERR_IMAGE_PULL: ErrorCodes.IMAGE_PULL_FAILED,
    Reason.INVALID_IMAGE_NAME: ErrorCodes.IMAGE_PULL_FAILED,
    Reason.CREATE_CONTAINER_CONFIG_ERROR: ErrorCodes.CREATE_CONTAINER_FAILED,
    Reason.CREATE_CONTAINER_ERROR: ErrorCodes.CREATE_CONTAINER_FAILED,
    Reason.CRASH_LOOP_BACK_OFF: ErrorCodes.CRASH_LOOP,
    Reason.UNSCHEDULABLE: ErrorCodes.UNSCHEDULABLE,
    Reason.FAILED_MOUNT: ErrorCodes.FAILED_MOUNT,
    Reason.STARTUP_TIMEOUT: ErrorCodes.STARTUP_TIMEOUT,
    Reason.LIFETIME_EXCEEDED: ErrorCodes.LIFETIME_EXCEEDED,
    Reason.LEASE_EXPIRED: ErrorCodes.LEASE_EXPIRED,
    Reason.RELEASE_MISSING: ErrorCodes.RELEASE_MISSING,
    Reason.DELETING: ErrorCodes.DELETED,
    # Kubernetes pod reasons that pass through derive_session
    "Evicted": ErrorCodes.PREEMPTED,
    "Preempting": ErrorCodes.PREEMPTED,
    "Shutdown": ErrorCodes.PREEMPTED,
    "NodeShutdown": ErrorCodes.PREEMPTED,
    "Terminated": ErrorCodes.PREEMPTED,
}


def error_code(state: SessionState) -> tuple[int, str] | None:
    """The supplemental error (code, diag) of a FINAL session, or None while it still lives.

    Only final sessions get one: a starting session with ImagePullBackOff may still recover, and
    a code set then would stay on the worker after it did. A finished session is SUCCEEDED; a
    failed or cancelled one gets its reason's code (GENERAL_ERROR for a reason we do not know).
    The pilot's exit code, when known, is named first in the diag (Harvester cuts it at 256).
    """
    if not state.final:
        return None
    if state.phase is Phase.FINISHED:
        code: int = ErrorCodes.SUCCEEDED
    else:
        code = _REASON_CODES.get(str(state.reason), ErrorCodes.GENERAL_ERROR)
    what = str(state.reason or state.phase)
    parts = [] if state.pilot_exit_code is None else [f"pilot exit code {state.pilot_exit_code}"]
    parts.append(f"{what}: {state.message}" if state.message else what)
    return code, "; ".join(parts)


# ------------------------------------------------------------------------------------------------
# the PluginBase shim


def _harvester_plugin_base() -> type | None:
    """Harvester's PluginBase when pandaharvester is importable (never required)."""
    try:
        module = importlib.import_module("pandaharvester.harvestercore.plugin_base")
    except ImportError:
        return None
    base = getattr(module, "PluginBase", None)
    return base if isinstance(base, type) else None


class CompatiblePluginBase:
    """Harvester's PluginBase semantics without Harvester: every keyword becomes an attribute."""

    def __init__(self, **kwarg: Any) -> None:
        for key, value in kwarg.items():
            setattr(self, key, value)


_HARVESTER_BASE: Final = _harvester_plugin_base()


def harvester_available() -> bool:
    """True when the plugins subclass Harvester's own PluginBase."""
    return _HARVESTER_BASE is not None


if TYPE_CHECKING:
    _Base = CompatiblePluginBase
else:
    _Base = _HARVESTER_BASE or CompatiblePluginBase


class DaskPluginBase(_Base):
    """Base of the three plugins: queue parameters -> a lazily built :class:`SessionService`.

    Tests (or an embedding process) may pass ``service=<SessionService>`` as a keyword argument;
    Harvester never does, and then the service is built from the queue parameters on first use.
    """

    def __init__(self, **kwarg: Any) -> None:
        self._service: SessionService | None = None
        super().__init__(**kwarg)

    @property
    def service(self) -> SessionService:
        """The service layer for this plugin's queue parameters (cheap: no helm or API call)."""
        if self._service is None:
            self._service = SessionService(settings_from_params(vars(self)))
        return self._service

    @service.setter
    def service(self, value: SessionService) -> None:
        self._service = value

    @property
    def n_threads(self) -> int:
        """``nProcesses``: the threads of submit_workers / kill_workers (each runs helm)."""
        return max(1, _as_int(getattr(self, "nProcesses", None), 4))

    def namespace_of(self, workspec: Any) -> str:
        """The namespace of a worker's session: its work attribute, else the configured one."""
        location = worker_location(workspec)
        recorded = location[0] if location is not None else None
        return recorded or self.service.settings.namespace


# ------------------------------------------------------------------------------------------------
# queue parameters -> Settings

_TIMEOUTS: Final = {
    "installTimeout": "install_timeout",
    "uninstallTimeout": "uninstall_timeout",
    "cleanupTimeout": "cleanup_timeout",
    "verifyTimeout": "verify_timeout",
    "gcGraceSeconds": "gc_grace_seconds",
    "defaultLifetimeSeconds": "default_lifetime_seconds",
}


def _as_int(value: object, default: int) -> int:
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(str(value))
    except ValueError:
        return default


def _as_float(name: str, value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"queue parameter {name}: must be a number of seconds, got {value!r}")
    try:
        number = float(str(value))
    except ValueError:
        raise ValueError(f"queue parameter {name}: must be a number of seconds, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"queue parameter {name}: must be positive, got {value!r}")
    return number


def _files(value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Sequence):
        return tuple(str(item) for item in value if str(item))
    raise ValueError(
        f"queue parameter valuesFiles: a list of paths or a comma-separated string, got {value!r}"
    )


def _first(params: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = params.get(name)
        if value not in (None, ""):
            return value
    return None


def settings_from_params(params: Mapping[str, Any]) -> Settings:
    """A plugin's queue-config parameters -> :class:`Settings` (see docs/harvester.md).

    ``daskQueue`` defaults to Harvester's ``queueName`` (so the PanDA queue GOOGLE_DASK uses
    ``values/GOOGLE_DASK.yaml``); ``kubeconfig`` also accepts upstream K8s plugins' name
    ``k8s_config_file``. A malformed number raises ValueError naming the parameter.
    """
    defaults = Settings()
    fields: dict[str, Any] = {}
    queue = _first(params, "daskQueue", "queueName")
    if queue is not None:
        fields["queue"] = str(queue)
    namespace = _first(params, "namespace")
    if namespace is not None:
        fields["namespace"] = str(namespace)
    fields["values_files"] = _files(params.get("valuesFiles"))
    chart = _first(params, "chart")
    if chart is not None:
        fields["chart"] = Path(str(chart))
    kubeconfig = _first(params, "kubeconfig", "k8s_config_file")
    if kubeconfig is not None:
        fields["kubeconfig"] = str(kubeconfig)
    context = _first(params, "kubeContext")
    if context is not None:
        fields["kube_context"] = str(context)
    helm = _first(params, "helmExecutable")
    if helm is not None:
        fields["helm_executable"] = str(helm)
    for key, field_name in _TIMEOUTS.items():
        value = params.get(key)
        if value not in (None, ""):
            fields[field_name] = _as_float(key, value)
    connect, read = params.get("requestConnectTimeout"), params.get("requestReadTimeout")
    fields["request_timeout"] = (
        defaults.request_timeout[0] if connect in (None, "") else _as_float("requestConnectTimeout", connect),
        defaults.request_timeout[1] if read in (None, "") else _as_float("requestReadTimeout", read),
    )
    return Settings(**fields)


# ------------------------------------------------------------------------------------------------
# where a worker's session lives


def _attribute(workspec: Any) -> dict[str, Any]:
    getter = getattr(workspec, "get_work_attribute", None)
    if callable(getter):
        found, value = getter(ATTRIBUTE_KEY)
        return dict(value) if found and isinstance(value, Mapping) else {}
    attributes = getattr(workspec, "workAttributes", None)
    value = attributes.get(ATTRIBUTE_KEY) if isinstance(attributes, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def worker_location(workspec: Any) -> tuple[str | None, str] | None:
    """(namespace, release) of a worker, or None when it has no batchID (never submitted).

    The release is the batchID; the namespace is the one the submitter recorded in the work
    attribute (None when there is none: the caller uses the configured namespace). A batchID of
    the form ``namespace/release`` is accepted too, for workers made by hand or whose attribute
    was lost.
    """
    batch_id = getattr(workspec, "batchID", None)
    if batch_id in (None, ""):
        return None
    text = str(batch_id)
    recorded = _attribute(workspec).get("namespace")
    namespace = recorded if isinstance(recorded, str) and recorded else None
    if "/" in text:
        ns, _, release = text.partition("/")
        return (namespace or ns or None, release)
    return (namespace, text)


def merge_attribute(workspec: Any, update: Mapping[str, Any]) -> None:
    """Merge ``update`` into the worker's ``dask_panda_session`` attribute (only if it changes).

    Harvester's ``set_work_attributes`` replaces a top-level key and marks the blob for a DB
    write when the value differs: writing the merged whole keeps earlier keys (the namespace)
    and leaves the row alone when nothing changed.
    """
    current = _attribute(workspec)
    merged = {**current, **update}
    if merged != current:
        workspec.set_work_attributes({ATTRIBUTE_KEY: merged})


def naive_to_utc(value: object) -> datetime | None:
    """Harvester keeps naive UTC datetimes; the service wants aware ones."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None
