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

The modules, by topic: ``statuses`` (worker statuses), ``error_codes`` (supplemental error codes),
``queue_params`` (queue parameters -> settings), ``workspec`` (what a WorkSpec carries),
``plugin_base`` (the PluginBase shim), ``package_guard`` (the import-name check below); ``base``
re-exports them all for code written against the earlier single module.

The import-name check runs first: every plugin module imports this package before anything else.
"""

from orchestrator.harvester.package_guard import require_own_orchestrator

require_own_orchestrator()

from orchestrator.harvester.error_codes import ErrorCodes, error_code  # noqa: E402
from orchestrator.harvester.statuses import WorkerStatus  # noqa: E402
from orchestrator.harvester.workspec import ATTRIBUTE_KEY  # noqa: E402

__all__ = ["ATTRIBUTE_KEY", "ErrorCodes", "WorkerStatus", "error_code"]
