"""Every name the plugins share, from one module, as code written against earlier versions expects.

The names live in topical modules: :mod:`~orchestrator.harvester.statuses`,
:mod:`~orchestrator.harvester.error_codes`, :mod:`~orchestrator.harvester.queue_params`,
:mod:`~orchestrator.harvester.workspec` and :mod:`~orchestrator.harvester.plugin_base`. New code
imports from those; this module only re-exports them so that existing imports keep working.
"""

from __future__ import annotations

from orchestrator.harvester.error_codes import REASON_CODES, ErrorCodes, error_code
from orchestrator.harvester.plugin_base import CompatiblePluginBase, DaskPluginBase, harvester_available
from orchestrator.harvester.queue_params import settings_from_params
from orchestrator.harvester.statuses import PHASE_TO_STATUS, WorkerStatus
from orchestrator.harvester.workspec import (
    ATTRIBUTE_KEY,
    merge_attribute,
    naive_to_utc,
    session_attribute,
    worker_location,
)

__all__ = [
    "ATTRIBUTE_KEY",
    "PHASE_TO_STATUS",
    "REASON_CODES",
    "CompatiblePluginBase",
    "DaskPluginBase",
    "ErrorCodes",
    "WorkerStatus",
    "error_code",
    "harvester_available",
    "merge_attribute",
    "naive_to_utc",
    "session_attribute",
    "settings_from_params",
    "worker_location",
]
