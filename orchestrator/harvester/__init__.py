"""Harvester plugins: each PanDA job of a push-mode (OneToOne) queue becomes one Helm release.

Queue configurations name these exact paths (see ``docs/harvester.md``):

* ``orchestrator.harvester.submitter.DaskHelmSubmitter`` (``submit_workers``),
* ``orchestrator.harvester.monitor.DaskHelmMonitor`` (``check_workers``),
* ``orchestrator.harvester.sweeper.DaskHelmSweeper`` (``kill_workers``, ``kill_worker``,
  ``sweep_worker``).

They are adapters: they call :class:`orchestrator.service.SessionService` and translate its
results and errors into Harvester's return values; the logic lives in the service layer.
Importing this package never imports pandaharvester (the plugins subclass its PluginBase only
when it is importable).
"""

from orchestrator.harvester.base import ATTRIBUTE_KEY, ErrorCodes, WorkerStatus, error_code

__all__ = ["ATTRIBUTE_KEY", "ErrorCodes", "WorkerStatus", "error_code"]
