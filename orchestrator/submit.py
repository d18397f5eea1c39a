"""The submit protocol: one call of `SessionService.submit`, safe to race and to retry.

The per-job Secret (`values.secret_name`) is the submit's lock and identity record: every call
creates it first, and the API server lets exactly one create succeed. What a call that finds it
taken does is decided by the pure rules of `orchestrator.submit_lock` (adopt, wait, take a stale
lock over, replace a dead release); this module carries the decisions out with helm and the API:

* waits are polls (`SessionService.sleep`), bounded by the install timeout, then `SubmitBusy`
  (temporary);
* a dead release is swept (keeping the lock) and installed again, once;
* a stale lock is deleted by uid (`DeleteOptions.preconditions`), so only that very object goes;
* an undo after a failed install removes only what this call made: its Secret if the submit-id
  and uid are still its own, the release its own install created; `HelmReleaseExists` (a release
  someone else made) is never undone;
* the lock is made again before an install that follows a wait or a sweep, so that its age on
  the server clock counts from the install and no one takes it over mid-install.

The Secret's values go to the API in the create's body and nowhere else: never into a log line,
an error, or a read (the lock is read as metadata only).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from orchestrator import helm as helm_mod
from orchestrator import kube as kube_mod
from orchestrator.errors import DaskPandaSessionError
from orchestrator.job import PandaJob
from orchestrator.names import (
    ANN_SUBMIT_ID,
    ANN_WORKER_ID,
    APP_NAME,
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_LABEL,
    PANDAID_LABEL,
    SECRET_COMPONENT,
    secret_name,
)
from orchestrator.submit_lock import STALE_MARGIN_SECONDS, Lock, Step, decide
from orchestrator.values import RenderedValues

if TYPE_CHECKING:
    from orchestrator.service import SessionService

__all__ = ["Submit", "SubmitBusy"]

log = logging.getLogger(__name__)


class SubmitBusy(DaskPandaSessionError):
    """Another submitter is still at work on the job, or the leftovers of a swept release are
    still terminating: temporary, submit again later (nothing of this call is left behind)."""


class Submit:
    """One call of `SessionService.submit`: the lock protocol as a bounded loop (a wait budget of
    one install timeout, one replacement, a few lock take-overs)."""

    MAX_TAKEOVERS = 3

    def __init__(self, svc: SessionService, job: PandaJob, rendered: RenderedValues, worker: str) -> None:
        self.svc, self.kube, self.helm = svc, svc.kube, svc.helm
        self.rendered = rendered
        self.ns, self.release = rendered.namespace, rendered.release
        self.name = secret_name(rendered.release)
        self.worker = worker
        self.labels = {
            NAME_LABEL: APP_NAME,
            INSTANCE_LABEL: rendered.release,
            COMPONENT_LABEL: SECRET_COMPONENT,
            MANAGED_BY_LABEL: MANAGED_BY,
            PANDAID_LABEL: str(job.pandaid),
        }
        self.submit_id = uuid.uuid4().hex
        settings = svc.settings
        self.stale_after = settings.install_timeout + STALE_MARGIN_SECONDS
        self.poll = max(settings.submit_poll_seconds, 0.01)
        self.budget = settings.install_timeout
        self.mine: Lock | None = None  # the lock, while this call holds it
        self.fresh = False  # the lock was made in this very step (no renewal needed)
        self.waited = 0.0
        self.replaced = False
        self.takeovers = 0
        self.installing = False  # from here on, a failure is undone by `_undo`

    def where(self) -> str:
        return f"submit {self.ns}/{self.release}"

    def run(self) -> bool:
        """True when this call installed the release, False when it adopted the existing one.

        Whatever goes wrong before the install (helm or the API unreachable, a wait given up),
        this call's lock is released again, so a retry need not wait for it to turn stale.
        """
        try:
            return self._run()
        except BaseException:
            if self.mine is not None and not self.installing:
                self._unlock()
            raise

    def _run(self) -> bool:
        for _ in range(int(self.budget / self.poll) + 32):
            holder, server_now = self._lock()
            if holder is None:
                continue  # the holder's Secret went away between our create and our read
            info = self.helm.release(self.release, self.ns)
            ours = self.mine is not None
            decision = decide(
                info,
                ours=ours,
                lock_age=None if ours else holder.age(server_now),
                holder_worker_id=self._release_worker(info) if ours else holder.worker_id,
                worker_id=self.worker,
                stale_after=self.stale_after,
            )
            step = decision.step
            log.info("%s: %s (%s)", self.where(), step, decision.why)
            if step is Step.WAIT and self.waited >= self.budget:
                if not ours:
                    raise SubmitBusy(
                        f"{self.where()}: another submitter is still at work after "
                        f"{self.waited:.0f} s ({decision.why}); try again later"
                    )
                step = Step.REPLACE  # pending for longer than an install may take: helm was killed
            if step is Step.ADOPT:
                return False
            if step is Step.INSTALL:
                if not self.fresh:
                    self._renew()  # waited or swept: the lock must look young for the install
                elif self._install():
                    return True
            elif step is Step.REPLACE:
                self._replace(decision.why)
            elif step is Step.TAKE_LOCK:
                self._take_over(holder, decision.why)
            else:
                self.svc.sleep(self.poll)
                self.waited += self.poll
        raise SubmitBusy(f"{self.where()}: no decision reached; try again later")

    def _lock(self) -> tuple[Lock | None, datetime | None]:
        """The lock holding the job: ours (created now or before) or the other submitter's."""
        if self.mine is not None:
            self.fresh = False
            return self.mine, None
        annotations = {ANN_SUBMIT_ID: self.submit_id, ANN_WORKER_ID: self.worker}
        try:
            meta = self.kube.create_secret(
                self.ns, self.name, self.rendered.secret.reveal(), self.labels, annotations
            )
        except kube_mod.KubeConflict:
            held, server_now = self.kube.metadata_at(kube_mod.SECRET, self.ns, self.name)
            return (None if held is None else Lock.from_metadata(held)), server_now
        self.mine, self.fresh = Lock.from_metadata(meta), True
        return self.mine, None

    def _release_worker(self, info: helm_mod.HelmReleaseInfo | None) -> str:
        """The Harvester worker a deployed release was made for (only asked when it matters)."""
        if info is None or info.status != "deployed" or not self.worker:
            return ""
        try:
            values = self.helm.get_values(self.release, self.ns)
        except helm_mod.HelmError as err:
            log.warning("%s: cannot read the release's worker id (%s); adopting it", self.where(), err)
            return ""
        job = values.get("job")
        return str(job.get("harvesterWorkerId") or "") if isinstance(job, Mapping) else ""

    def _install(self) -> bool:
        rendered = self.rendered
        self.installing = True
        try:
            self.helm.install(
                self.release,
                self.ns,
                rendered.values,
                timeout=self.svc.settings.install_timeout,
                secrets=rendered.secret.values_to_scrub(),
            )
        except helm_mod.HelmReleaseExists:
            # Made by someone without the lock (a manual install, an older orchestrator): never
            # undo it; look again (adopt it once deployed).
            log.warning("%s: the release was made by someone else meanwhile", self.where())
            self.installing = False
            return False
        except helm_mod.HelmError as err:
            log.warning("%s failed (%s); removing what this call created", self.where(), type(err).__name__)
            # a chart that refused the values applied nothing: no hook ran, no directory was made
            self._undo(clean_directory=not isinstance(err, helm_mod.HelmRenderError))
            raise
        return True

    def _undo(self, *, clean_directory: bool = True) -> None:
        """Remove the release this call's install made and this call's Secret, if still ours.

        The release goes without its hooks (a failed install may have left them unable to run),
        so the job's directory, which the prepare hook may have made, is removed by the chart's
        cleanup step once the pods are gone (`SessionService.clean_job_directory`, rendered from
        this call's own values). A directory that cannot be removed is logged; the prepare hook
        of a later install of the job refuses it, so it is never silently reused.
        """
        assert self.mine is not None
        try:
            meta, _ = self.kube.metadata_at(kube_mod.SECRET, self.ns, self.name)
        except kube_mod.KubeError as err:
            log.warning("%s: undo skipped, cannot read the lock: %s", self.where(), err)
            return
        held = None if meta is None else Lock.from_metadata(meta)
        if held is None or held.submit_id != self.submit_id or held.uid != self.mine.uid:
            log.warning("%s: undo skipped: the lock is no longer this call's", self.where())
            return
        try:
            self.helm.uninstall(
                self.release, self.ns, no_hooks=True, timeout=self.svc.settings.uninstall_timeout
            )
        except helm_mod.HelmError as err:
            log.warning("%s: undo: helm uninstall failed: %s", self.where(), err)
        try:
            self.svc.delete_leftovers(self.ns, self.release, keep_lock=True)
        except kube_mod.KubeError as err:
            log.warning("%s: undo: leftover deletion failed: %s", self.where(), err)
        if clean_directory:
            notes: list[str] = []
            try:
                if not self.svc.clean_job_directory(self.release, self.ns, self.rendered.values, notes):
                    log.warning("%s: undo: the job directory may remain: %s", self.where(), "; ".join(notes))
            except DaskPandaSessionError as err:
                log.warning("%s: undo: the cleanup step failed: %s: %s", self.where(), type(err).__name__, err)
        self._unlock()

    def _unlock(self) -> None:
        """Delete this call's Secret (that very object: uid precondition)."""
        if self.mine is None:
            return
        try:
            self.kube.delete(kube_mod.SECRET, self.ns, self.name, uid=self.mine.uid)
        except kube_mod.KubeError as err:
            log.warning("%s: cannot delete this call's lock: %s", self.where(), err)
        self.mine = None

    def _renew(self) -> None:
        """Make the lock again, so that its age (on the server) counts from this install."""
        assert self.mine is not None
        self.kube.delete(kube_mod.SECRET, self.ns, self.name, uid=self.mine.uid)
        self.mine = None

    def _replace(self, why: str) -> None:
        if self.replaced:
            self._unlock()
            raise SubmitBusy(f"{self.where()}: the release is still {why} after one sweep; try again later")
        self.replaced = True
        log.warning("%s: the release is %s: sweeping it and installing again", self.where(), why)
        swept = self.svc.sweep_release(self.release, self.ns, keep_lock=True)
        if not swept.clean:
            self._unlock()
            raise SubmitBusy(
                f"{self.where()}: the previous release's objects are still present: "
                f"{', '.join(swept.remaining)}; try again later"
            )

    def _take_over(self, holder: Lock, why: str) -> None:
        self.takeovers += 1
        if self.takeovers > self.MAX_TAKEOVERS:
            raise SubmitBusy(f"{self.where()}: the lock keeps changing hands; try again later")
        log.warning("%s: taking the job's lock over (%s)", self.where(), why)
        self.kube.delete(kube_mod.SECRET, self.ns, self.name, uid=holder.uid)
