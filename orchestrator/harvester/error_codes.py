"""The supplemental error codes the plugins give Harvester, and the one reason -> code mapping.

Harvester's ``WorkerErrors.error_codes`` (``pandaharvester/harvestercore/worker_errors.py`` in
https://github.com/HSF/harvester) defines ``SUCCEEDED=0``, ``UNKNOWN=1000``, ``PREEMPTED=1001``
and ``GENERAL_ERROR=9000``; any other worker code must be >= 1000. The same file numbers its
message-pattern codes by block: 5.x batch-system errors (55xx HTCondor, 56xx Slurm; 5110 is listed
as deprecated) and 6.8 Kubernetes errors (6801-6884). Our own codes sit in the 58xx sub-block of
the batch-system range, which Harvester does not use, so they never collide with a code Harvester
sets itself. An OOM kill keeps the historical memory code 5110.

:func:`error_code` is the one mapping from a session's reason to a code. The table in
``docs/harvester.md`` repeats it, and a unit test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from orchestrator.session import Phase, Reason, SessionState

__all__ = ["REASON_CODES", "ErrorCodes", "error_code"]


class ErrorCodes:
    """Supplemental error codes (``WorkSpec.set_supplemental_error``), Harvester's and ours."""

    # Harvester's WorkerErrors.error_codes
    SUCCEEDED: Final = 0
    UNKNOWN: Final = 1000
    PREEMPTED: Final = 1001
    GENERAL_ERROR: Final = 9000
    # Harvester's own Kubernetes plugin codes (message patterns, block 6.8), never set by us
    K8S_BACKOFF_LIMIT: Final = 6801
    K8S_CONTAINER_NOT_TERMINATED: Final = 6883
    K8S_TERMINATED_BY_K8S: Final = 6884
    # Harvester's historical memory code (now listed there as deprecated): what an OOM kill is
    MEMORY_EXCEEDED: Final = 5110
    # dask-panda-session: the 58xx sub-block, unused by Harvester
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


REASON_CODES: Final[Mapping[str, int]] = {
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
"""Reason of a failed or cancelled session -> code; a reason not listed gets GENERAL_ERROR."""


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
        code = REASON_CODES.get(str(state.reason), ErrorCodes.GENERAL_ERROR)
    what = str(state.reason or state.phase)
    parts = [] if state.pilot_exit_code is None else [f"pilot exit code {state.pilot_exit_code}"]
    parts.append(f"{what}: {state.message}" if state.message else what)
    return code, "; ".join(parts)
