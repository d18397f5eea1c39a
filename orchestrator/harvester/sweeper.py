"""``DaskHelmSweeper``: end sessions (``kill_workers``/``kill_worker``) and verify (``sweep_worker``).

Harvester's contract (its ``base_sweeper`` and ``harvesterbody/sweeper.py``,
https://github.com/HSF/harvester): ``kill_workers(workspec_list)`` returns one
``(bool, message)`` per workspec, in order; it is called for workers to kill (PanDA kill, queue
time limit, check timeout) and AGAIN for every final worker at clean-up time, so it must be
idempotent and cheap once the release is gone. ``sweep_worker(workspec)`` returns ``(True, msg)``
only when nothing labelled for the job remains and its directory on the shared volume is gone:
then Harvester deletes the worker's row, and with it the last pointer to the session. A directory
whose cleanup failed is named in the ``(False, msg)`` ("still present: directory <PandaID>-<attempt>"),
and its cleanup runs again on every later call until it succeeds (the service keeps a record of it,
so the verdict holds even once the release is gone).

``kill`` is the service's uninstall with hooks (the pre-delete hook removes the job's work
directory; a failed or wedged hook falls back to an uninstall without hooks plus the cleanup step,
run once the session's pods are gone), then a
label-based deletion of leftovers without waiting. When the release is already gone that is one
``helm status`` and one label-selected LIST per kind. ``sweep`` does the same and then waits until
nothing labelled for the job remains (up to ``verifyTimeout``).

A successful kill or sweep records ``killed`` in the worker's attribute: from then on the monitor
reports a release without pods as ``cancelled`` at once, instead of ``submitted`` during the grace
it gives a just-submitted release.

A worker without ``batchID`` was never submitted: there is nothing to kill or sweep -> ``True``.
Any error -> ``False`` with the reason; Harvester calls again next cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from orchestrator.harvester.plugin_base import DaskPluginBase
from orchestrator.harvester.workspec import merge_attribute, worker_location

__all__ = ["DaskHelmSweeper"]

log = logging.getLogger(__name__)

SweepReturn = tuple[bool, str]


class DaskHelmSweeper(DaskPluginBase):
    """Harvester sweeper plugin."""

    def kill_workers(self, workspec_list: Iterable[Any]) -> list[SweepReturn]:
        """End every worker's session; one ``(bool, message)`` each, in order (idempotent)."""
        workspecs = list(workspec_list)
        if not workspecs:
            return []
        try:
            _ = self.service  # build once, before the threads share it
        except Exception as err:
            return [(False, f"cannot build the session service: {err}")] * len(workspecs)
        threads = min(self.n_threads, len(workspecs))
        if threads == 1:
            return [self._end(workspec, verify=False) for workspec in workspecs]
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dask-helm-kill") as pool:
            return list(pool.map(lambda ws: self._end(ws, verify=False), workspecs))

    def kill_worker(self, workspec: Any) -> SweepReturn:
        """The deprecated single-worker form Harvester falls back to."""
        return self.kill_workers([workspec])[0]

    def sweep_worker(self, workspec: Any) -> SweepReturn:
        """Uninstall if needed and verify: True only when nothing labelled for the job remains."""
        try:
            _ = self.service
        except Exception as err:
            return False, f"cannot build the session service: {err}"
        return self._end(workspec, verify=True)

    def _end(self, workspec: Any, *, verify: bool) -> SweepReturn:
        location = worker_location(workspec)
        if location is None:
            return True, "no batchID: the worker was never submitted, nothing to remove"
        namespace = self.namespace_of(workspec)
        release = location[1]
        where = f"{namespace}/{release}"
        service = self.service
        try:
            if verify:
                result = service.sweep(release, namespace=namespace)
            else:
                result = service.kill(release, namespace=namespace)
        except Exception as err:
            log.warning("%s %s failed: %s: %s", "sweep" if verify else "kill", where, type(err).__name__, err)
            return False, f"{where}: {type(err).__name__}: {err}"
        # the monitor must not mistake a session killed right after its submit for one starting
        merge_attribute(workspec, {"killed": service.clock().isoformat()})
        notes = f" ({'; '.join(result.notes)})" if result.notes else ""
        if verify and not result.clean:
            return False, f"{where}: still present: {', '.join(result.remaining)}{notes}"
        what = "uninstalled" if result.release_existed else "release already gone"
        if result.used_fallback:
            what += ", hooks bypassed"
        suffix = ", nothing left" if verify else ""
        return True, f"{where}: {what}{suffix}{notes}"
