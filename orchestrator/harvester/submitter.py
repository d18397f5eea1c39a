"""``DaskHelmSubmitter.submit_workers``: one Helm release per worker, never waiting for pods.

Harvester's contract (its ``dummy_submitter`` and ``harvesterbody/submitter.py``,
https://github.com/HSF/harvester): one ``(result, message)`` per workspec, in order; ``True`` =
submitted (``batchID`` set), ``False`` = permanent failure (no retry), ``None`` = temporary failure
(Harvester retries up to ``maxSubmissionAttempts``). The plugin never sets the worker's status:
the body sets ``submitted`` from a true result, overriding whatever a plugin set.

How our errors map: an :class:`~orchestrator.errors.InputError` (the job, or the queue's values,
refused before anything was created) is permanent -> ``False``; everything else (cluster
unreachable, helm timeout, or an error we cannot classify) -> ``None``, because the service's
submit is idempotent and removes what a failed install created, so a retry is always safe and
Harvester bounds it. ``True`` is returned only after ``helm install`` returned, and always as the
bool itself: any truthy value (an exit status such as 8, say) counts as success to Harvester.

Each submit runs helm (status + install), so the list is spread over ``nProcesses`` threads.
``helm install`` does not ``--wait``: the call returns once the release and its pre-install hook
exist, not when the pods run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from orchestrator.errors import InputError
from orchestrator.harvester.plugin_base import DaskPluginBase
from orchestrator.harvester.workspec import merge_attribute
from orchestrator.service import is_temporary

__all__ = ["DaskHelmSubmitter"]

log = logging.getLogger(__name__)

SubmitReturn = tuple[bool | None, str]


class DaskHelmSubmitter(DaskPluginBase):
    """Harvester submitter plugin (push mode, one job per worker)."""

    def submit_workers(self, workspec_list: Iterable[Any]) -> list[SubmitReturn]:
        """Install one release per workspec; one ``(True|False|None, message)`` each, in order."""
        workspecs = list(workspec_list)
        if not workspecs:
            return []
        _ = self.service  # build once, before the threads share it
        threads = min(self.n_threads, len(workspecs))
        if threads == 1:
            return [self._submit_one(workspec) for workspec in workspecs]
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dask-helm-submit") as pool:
            return list(pool.map(self._submit_one, workspecs))

    def _submit_one(self, workspec: Any) -> SubmitReturn:
        worker_id = getattr(workspec, "workerID", None)
        who = f"worker {worker_id}"
        try:
            jobs = list(workspec.get_jobspec_list() or [])
        except Exception as err:  # a broken WorkSpec must not take the whole list down
            return False, f"{who}: cannot read its jobs: {type(err).__name__}: {err}"
        if len(jobs) != 1:
            return False, (
                f"{who}: holds {len(jobs)} jobs; this submitter runs exactly one job per worker "
                "(push mode, mapType OneToOne)"
            )
        job = jobs[0]
        service = self.service
        try:
            result = service.submit(
                job,
                harvester_worker_id=worker_id if isinstance(worker_id, int) else None,
            )
        except InputError as err:
            log.info("%s: job refused: %s", who, err)
            return False, f"{who}: bad job or queue values (not retried): {err}"
        except Exception as err:
            kind = "temporary failure" if is_temporary(err) else "unexpected failure"
            log.warning("%s: %s: %s: %s", who, kind, type(err).__name__, err)
            return None, f"{who}: {kind}, will retry: {type(err).__name__}: {err}"
        workspec.batchID = result.release
        merge_attribute(
            workspec,
            {
                "namespace": result.namespace,
                "release": result.release,
                "pandaid": result.pandaid,
                "mode": result.mode,
                "workers": result.workers,
                "submitted": service.clock().isoformat(),
                "adjustments": list(result.adjustments),
            },
        )
        verb = "installed" if result.created else "found existing release"
        notes = f" ({'; '.join(result.adjustments)})" if result.adjustments else ""
        return True, (
            f"{verb} {result.namespace}/{result.release}: PanDA job {result.pandaid}, "
            f"{result.mode} mode, {result.workers} workers{notes}"
        )
