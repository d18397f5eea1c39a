"""Harvester's worker statuses, and which one each session phase is reported as.

Kept apart from the error codes because the two answer different questions for Harvester: the
status drives the worker's life cycle (``WorkSpec.status``), the code only explains an end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from orchestrator.session import Phase

__all__ = ["PHASE_TO_STATUS", "WorkerStatus"]


class WorkerStatus:
    """Harvester's worker statuses (``WorkSpec.ST_*``; the same strings, without importing it).

    Harvester's monitor body stops updating the rest of a chunk when a plugin returns a status
    outside ``WorkSpec.ST_LIST``, so only these strings may ever be returned.
    """

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
