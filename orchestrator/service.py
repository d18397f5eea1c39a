"""submit / observe / kill / sweep / gc / deadlines: the orchestrator's operations, composed of the
pure steps (job, values, session) and the two I/O modules (helm, kube).

The adapters (the CLI and the Harvester plugins) call these and only translate. State lives in the
cluster, never in this object: release and Secret names are derived from the PandaID, the session
state from the pods, so any process can pick up any session (Harvester builds new plugin objects
every cycle).

Costs, by design:
* `observe`: ONE pod LIST per namespace, whatever the number of sessions (its Date header is the
  clock the states are judged on), plus ONE Service LIST of the JupyterLab Services when an
  interactive session is going (their external addresses); events are fetched only for a
  session that is failing. No helm process.
* `submit`: one Secret create (the job's lock) + one `helm status` + one `helm install`; a
  concurrent or repeated submit: the create's conflict, one metadata GET and one `helm status`.
* `kill`/`sweep`: helm uninstall, then label-based verification over every kind the release and
  its hooks can create.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from orchestrator import helm as helm_mod
from orchestrator import kube as kube_mod
from orchestrator import orphans
from orchestrator import session as session_mod
from orchestrator.errors import DaskPandaSessionError, InputError
from orchestrator.job import PandaJob, parse_job, parse_release_name
from orchestrator.jobdirs import DirectoryCounts, gc_job, parse_counts
from orchestrator.names import (
    ANN_PENDING_DIRECTORY,
    ANN_PENDING_JOB,
    APP_NAME,
    CLEANUP,
    GC_JOB_NAME,
    GC_RELEASE,
    GC_RUN_LABEL,
    HELM_ANNOTATION_PREFIX,
    INSTANCE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_LABEL,
    NETWORK_POLICY,
    PENDING_CLEANUP_LABEL,
    POD,
    PROBE_LABEL,
    PROBE_NAME_PREFIX,
    hook_job_name,
    pending_cleanup_name,
    secret_name,
)
from orchestrator.seams import HelmSeam, KubeSeam
from orchestrator.session import (
    CLOCK_SKEW_TOLERANCE,
    DEADLINE_REASONS,
    Phase,
    SessionState,
    apply_deadline,
    derive_session,
    group_pods_by_release,
)
from orchestrator.submit import Submit, SubmitBusy
from orchestrator.values import (
    QueueConfig,
    RenderedValues,
    deep_merge,
    job_directory,
    load_queue,
    render_values,
)

__all__ = [
    "Ended",
    "GcAction",
    "GcActions",
    "SessionService",
    "Settings",
    "SubmitBusy",
    "SubmitResult",
    "SweepResult",
    "utcnow",
]

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Settings:
    """Everything an operator or a Harvester queue configures; every timeout in seconds."""

    namespace: str = "default"
    queue: str = "GOOGLE_DASK"
    values_files: tuple[str, ...] = ()
    chart: Path | None = None  # None: the checkout's or the installed package's (orchestrator.resources)
    values_dir: Path | None = None  # where a queue named by name has its <QUEUE>.yaml; None: as chart
    helm_executable: str = "helm"
    # helm's caches across processes (None: orchestrator.helm.default_cache_dir(); helm's own
    # HELM_CACHE_HOME / KUBECACHEDIR, when set, win)
    helm_cache_dir: Path | None = None
    # helm's client-side OpenAPI probe on install (see orchestrator.helm.Helm): only for a server
    # without field validation (Kubernetes before 1.27)
    helm_openapi_validation: bool = False
    kubeconfig: str | None = None
    kube_context: str | None = None
    install_timeout: float = 300.0
    harvester_id: str = ""  # Harvester's [master] harvester_id: the pilot's HARVESTER_ID and PANDA_JSID
    submit_poll_seconds: float = 2.0  # how often a submit looks again while another one is at work
    uninstall_timeout: float = 120.0
    cleanup_timeout: float = 120.0
    verify_timeout: float = 60.0
    request_timeout: tuple[float, float] = (5.0, 30.0)
    gc_grace_seconds: float = 600.0
    # How far node and host clocks may disagree with the API server's before a deadline counts
    # (see orchestrator.session.deadlines); 0 only where every clock is one (a local test cluster).
    clock_skew_tolerance: float = CLOCK_SKEW_TOLERANCE
    default_lifetime_seconds: float = 86400.0


@dataclass(frozen=True)
class SubmitResult:
    """The outcome of `submit`; `created` is False when the job's release already existed."""

    release: str
    namespace: str
    pandaid: int
    mode: str
    workers: int
    created: bool
    adjustments: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "namespace": self.namespace,
            "pandaid": self.pandaid,
            "mode": self.mode,
            "workers": self.workers,
            "created": self.created,
            "adjustments": list(self.adjustments),
        }


@dataclass(frozen=True)
class SweepResult:
    """`sweep`'s verdict: clean means nothing labelled for the job remains in the namespace and
    its directory's cleanup did not fail (`cleanup_completed` False: `remaining` names the
    directory as `directory <jobsDirectory>/<PandaID>-<attempt>`)."""

    release: str
    namespace: str
    clean: bool
    release_existed: bool
    used_fallback: bool = False
    cleanup_completed: bool | None = None
    remaining: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


PROBE_KINDS: Final = (NETWORK_POLICY, POD)
"""What doctor's NetworkPolicy probe creates (it deletes them itself unless it is killed)."""
PROBE_STALE_SECONDS: Final = 3600.0
"""Far past any probe's own timeout and its pods' deadline: a probe that old is not running."""


@dataclass(frozen=True)
class GcAction:
    """One thing `gc` removed (or would remove, with dry_run)."""

    release: str
    why: str
    objects: tuple[str, ...] = field(default_factory=tuple)


class GcActions(list[GcAction]):
    """What `gc` removed (or would remove), and `failures`: {release: error} it could not handle."""

    def __init__(
        self, actions: Iterable[GcAction] = (), failures: Mapping[str, DaskPandaSessionError] | None = None
    ) -> None:
        super().__init__(actions)
        self.failures: dict[str, DaskPandaSessionError] = dict(failures or {})
        # what the directory gc Job found on the shared volume (None: it did not report)
        self.directories: DirectoryCounts | None = None
        self.directory_notes: list[str] = []


class Ended(dict[str, str]):
    """{release: reason} of the sessions `enforce_deadlines` ended, and `failures`: {release:
    error} of those it could not end (they are tried again on the next run)."""

    def __init__(
        self,
        ended: Mapping[str, str] | None = None,
        failures: Mapping[str, DaskPandaSessionError] | None = None,
    ) -> None:
        super().__init__(ended or {})
        self.failures: dict[str, DaskPandaSessionError] = dict(failures or {})


class SessionService:
    """The operations on sessions of one namespace (another namespace can be named per call)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        helm: HelmSeam | None = None,
        kube: KubeSeam | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or Settings()
        s = self.settings
        self.helm: HelmSeam = helm or helm_mod.Helm(
            executable=s.helm_executable,
            kubeconfig=s.kubeconfig,
            kubecontext=s.kube_context,
            chart=s.chart,
            timeout=s.install_timeout,
            cache_dir=s.helm_cache_dir,
            openapi_validation=s.helm_openapi_validation,
        )
        self.kube: KubeSeam = kube or kube_mod.Kube(
            kubeconfig=s.kubeconfig, context=s.kube_context, request_timeout=s.request_timeout
        )
        self.clock = clock
        self.sleep = sleep

    # -- render / submit ----------------------------------------------------------------------
    def queue(self, queue: str | None = None, values_files: Sequence[str] = ()) -> QueueConfig:
        return load_queue(
            queue or self.settings.queue,
            [*self.settings.values_files, *values_files],
            values_dir=self.settings.values_dir,
            chart=self.settings.chart,
        )

    def render(
        self,
        job_data: Mapping[str, Any] | object,
        *,
        queue: str | None = None,
        values_files: Sequence[str] = (),
        namespace: str | None = None,
        harvester_worker_id: int | None = None,
    ) -> tuple[PandaJob, RenderedValues]:
        """Parse and validate a job and its values; touches neither helm nor the cluster."""
        config = self.queue(queue, values_files)
        job = parse_job(job_data, queue_limits=config.limits, harvester_worker_id=harvester_worker_id)
        overrides = {"job": {"harvesterId": self.settings.harvester_id}} if self.settings.harvester_id else None
        rendered = render_values(
            job, config, namespace=namespace or self.settings.namespace, overrides=overrides
        )
        return job, rendered

    def submit(
        self,
        job_data: Mapping[str, Any] | object,
        *,
        queue: str | None = None,
        values_files: Sequence[str] = (),
        namespace: str | None = None,
        harvester_worker_id: int | None = None,
    ) -> SubmitResult:
        """Install the job's release, or return the one already deployed for it.

        Safe to race and to retry: the per-job Secret is the lock (see `orchestrator.submit`),
        so any number of concurrent submits of one job make exactly one release and all return
        it. A release left `failed`, `uninstalling` or stale `pending-*`, or deployed for another
        Harvester worker, is swept and installed again (once). Bad input raises an InputError
        before anything is created. A failed install undoes only what this call made: its own
        Secret (checked by submit-id and uid) and the release its own install created; a release
        someone else made (`HelmReleaseExists`) is never touched. Another submitter still at work
        after the install timeout gives `SubmitBusy` (temporary).
        """
        job, rendered = self.render(
            job_data,
            queue=queue,
            values_files=values_files,
            namespace=namespace,
            harvester_worker_id=harvester_worker_id,
        )
        result = SubmitResult(
            release=rendered.release,
            namespace=rendered.namespace,
            pandaid=job.pandaid,
            mode=str(job.mode),
            workers=job.workers,
            created=False,
            adjustments=rendered.adjustments,
        )
        worker = "" if job.harvester_worker_id is None else str(job.harvester_worker_id)
        created = Submit(self, job, rendered, worker).run()
        if created:
            log.info(
                "submitted %s/%s: PanDA job %s, %s mode, %d workers",
                rendered.namespace,
                rendered.release,
                job.pandaid,
                job.mode,
                job.workers,
            )
        return replace(result, created=created)

    # -- observe ----------------------------------------------------------------------------
    def observe(
        self,
        releases: Sequence[str] | None = None,
        *,
        namespace: str | None = None,
        now: datetime | None = None,
        submitted: Mapping[str, datetime] | None = None,
        with_events: bool = True,
    ) -> dict[str, SessionState]:
        """The state of many sessions from ONE pod LIST of the namespace (no helm call).

        `releases=None` means every session found. The states are judged on the API server's
        clock (the Date of that LIST; `now` overrides it): the pods' timestamps come from that
        clock too, so a skewed host changes no verdict. A release with no pod at all is reported
        `cancelled`/ReleaseMissing, unless `submitted` says it was submitted less than its
        startup grace ago (its hook or pods may not exist yet); `submitted` holds the caller's
        own (host) times, so that age is measured on the host clock.
        """
        ns = namespace or self.settings.namespace
        # metadata and status only: no rule reads a pod spec, and skipping it halves the decoding
        pods_listed, server_now = self.kube.list_pod_states_at(ns)
        if now is None:
            now = server_now
        if now is None:
            now = self.clock()
            log.debug("observe %s: the API server sent no Date; judging on the host clock", ns)
        host_now = self.clock()
        groups = group_pods_by_release(pods_listed)
        wanted = list(releases) if releases is not None else sorted(groups)
        states: dict[str, SessionState] = {}
        for release in wanted:
            pods = groups.get(release, [])
            known = True
            if not pods:
                since = (submitted or {}).get(release)
                known = (
                    since is not None and (host_now - since).total_seconds() < self.settings.gc_grace_seconds
                )
            tolerance = self.settings.clock_skew_tolerance
            state = derive_session(release, ns, pods, now=now, release_known=known, skew_tolerance=tolerance)
            if with_events and pods and state.reason and state.phase in (Phase.STARTING, Phase.FAILED):
                events = self.kube.pod_events(ns, release)
                state = derive_session(
                    release, ns, pods, now=now, release_known=known, events=events, skew_tolerance=tolerance
                )
            states[release] = apply_deadline(state, pods, now, skew_tolerance=tolerance)
        return self._with_external_urls(ns, states)

    def _with_external_urls(self, namespace: str, states: dict[str, SessionState]) -> dict[str, SessionState]:
        """Interactive states with the external JupyterLab URL and the dashboard behind it.

        At most ONE Service LIST per call (label-selected: the JupyterLab Services only), and
        none unless an interactive session is still going: a LoadBalancer's external address
        exists only in its Service's status. A refused LIST (a Role without it) keeps the
        render-time URLs and says so; an unreachable API server raises as the pod LIST does.
        """
        if not any(s.mode == "interactive" and not s.final for s in states.values()):
            return states
        try:
            services = self.kube.list_services(namespace, session_mod.JUPYTERLAB_SERVICE_SELECTOR)
        except kube_mod.KubeUnavailable:
            raise
        except kube_mod.KubeError as err:
            log.warning("observe %s: cannot list the JupyterLab Services (%s); URLs as rendered", namespace, err)
            services = []
        return session_mod.with_external_urls(states, services)

    def clock_skew(self) -> float:
        """Seconds the host's clock is ahead of the API server's (negative: behind); one request.

        Verdicts use the server's clock, so skew does not change them; a large skew still
        matters to whatever else on the host reads the time (Harvester's own bookkeeping).
        """
        server = self.kube.server_time()
        if server is None:
            raise kube_mod.KubeError("the API server sent no Date header: the clock skew is unknown")
        return (self.clock() - server).total_seconds()

    def server_now(self) -> datetime:
        """The API server's time (one request), or the host's when the server sends no Date."""
        server = self.kube.server_time()
        if server is None:
            log.debug("the API server sent no Date; using the host clock")
            return self.clock()
        return server

    # -- kill / sweep ----------------------------------------------------------------------------
    def kill(self, release: str, *, namespace: str | None = None) -> SweepResult:
        """End a session now: uninstall (hooks run), falling back as in `sweep` if they wedge.

        Cheap when the release is already gone (Harvester calls it again for every finished
        worker): one `helm status`, one Job GET (a cleanup of the job's directory that failed
        before is run again, as in `sweep`) and one Secret DELETE; `sweep` does the thorough
        check. A live release is uninstalled on that same `helm status` (no second one).
        """
        ns = namespace or self.settings.namespace
        info = self.helm.release(release, ns)
        if info is None and self.pending_cleanup(release, ns) is None:
            self.kube.delete(kube_mod.SECRET, ns, secret_name(release))
            return SweepResult(release=release, namespace=ns, clean=True, release_existed=False)
        return self._sweep(release, ns, info if info is not None else self.helm.release(release, ns), verify=False)

    def sweep(self, release: str, *, namespace: str | None = None, verify: bool = True) -> SweepResult:
        """Uninstall, recover from a hung or failed pre-delete hook, delete leftovers, verify.

        Returns clean=True only when nothing labelled for the job remains (with verify).
        """
        return self.sweep_release(release, namespace or self.settings.namespace, verify=verify)

    def sweep_release(
        self, release: str, namespace: str, *, verify: bool = True, keep_lock: bool = False
    ) -> SweepResult:
        """`sweep`; with `keep_lock`, the job's Secret stays (a submit replacing the release
        holds it as its lock) and "clean" means nothing else labelled for the job remains.

        The job's directory counts: the pre-delete hook removes it and fails when it cannot. When
        the hooks did not succeed (failed, timed out, skipped for a wedged release), the release
        is uninstalled without them and the chart's cleanup step runs once the session's pods are
        gone, so that files they held open (NFS keeps such files as `.nfs*` entries until closed)
        no longer block it. A cleanup that fails or times out makes the sweep not clean, with the
        directory named in `remaining` and in a note. A hook that succeeded has removed the
        directory (it checks), so the cleanup step does not run again.
        """
        return self._sweep(release, namespace, self.helm.release(release, namespace), verify=verify, keep_lock=keep_lock)

    def _sweep(
        self,
        release: str,
        namespace: str,
        info: helm_mod.HelmReleaseInfo | None,
        *,
        verify: bool = True,
        keep_lock: bool = False,
    ) -> SweepResult:
        """`sweep_release` for a release whose `helm status` (`info`) was just read."""
        ns = namespace
        notes: list[str] = []
        used_fallback = False
        cleanup_completed: bool | None = None
        directory: str | None = None
        if info is not None:
            values: dict[str, Any] | None = None
            try:
                if info.status in ("uninstalling", "failed") or info.status.startswith("pending-"):
                    raise helm_mod.HelmError(f"release is {info.status}: skipping its hooks")
                self.helm.uninstall(release, ns, timeout=self.settings.uninstall_timeout)
                # the hook removed the directory (it checks): a record of an earlier failed
                # cleanup of it (a failed submit's undo) is settled
                self.kube.delete(kube_mod.JOB, ns, pending_cleanup_name(release))
            except helm_mod.HelmError as err:
                notes.append(f"uninstall with hooks failed: {err}")
                used_fallback = True
                try:
                    values = self.helm.get_values(release, ns) or None
                except helm_mod.HelmError as verr:
                    notes.append(f"cannot read the release values for the cleanup step: {verr}")
                self.helm.uninstall(release, ns, no_hooks=True, timeout=self.settings.uninstall_timeout)
                if values is None:
                    values = self.cleanup_values(release, notes)
                directory = job_directory_of(values) if values is not None else None
                cleanup_completed = self.clean_job_directory(release, ns, values, notes)
        elif (record := self.pending_cleanup(release, ns)) is not None:
            directory = str((record["metadata"].get("annotations") or {}).get(ANN_PENDING_DIRECTORY) or "") or None
            cleanup_completed = self._retry_cleanup(release, ns, record, notes)
        if not keep_lock:
            self.kube.delete(kube_mod.SECRET, ns, secret_name(release))
        self.delete_leftovers(ns, release, keep_lock=keep_lock)
        remaining: list[str] = []
        if verify:
            remaining = self._wait_gone(ns, release, keep_lock=keep_lock)
        if cleanup_completed is False:
            left = f"directory {directory}" if directory else f"the job directory of {release}"
            remaining.append(left)
            notes.append(f"{left} may remain on the shared volume: its cleanup did not succeed")
        return SweepResult(
            release=release,
            namespace=ns,
            clean=not remaining,
            release_existed=info is not None,
            used_fallback=used_fallback,
            cleanup_completed=cleanup_completed,
            remaining=tuple(remaining),
            notes=tuple(notes),
        )

    def cleanup_values(self, release: str, notes: list[str]) -> dict[str, Any] | None:
        """Values to render the cleanup step from when the release's own cannot be read.

        The cleanup Job needs only the shared volume, the cleanup image, the hooks' settings and
        the job's identity: the first three come from this service's queue values (the queue the
        release was made from), the identity (PandaID and attempt) from the release name, which
        `orchestrator.job.release_name` derives from them. None, with a note, when the name is
        not one of ours or the queue cannot be read.
        """
        ident = parse_release_name(release)
        if ident is None:
            notes.append(
                f"cannot rebuild the cleanup step: {release!r} is not a <prefix>-<PandaID>[-a<attempt>] name"
            )
            return None
        try:
            queue = self.queue()
        except DaskPandaSessionError as err:
            notes.append(f"cannot rebuild the cleanup step: queue {self.settings.queue}: {err}")
            return None
        pandaid, attempt = ident
        identity = {
            "job": {"pandaId": str(pandaid), "attempt": attempt, "definitionSha256": "0" * 64},
            "secrets": {"existingSecret": secret_name(release)},
        }
        return deep_merge(queue.values, identity)

    def clean_job_directory(
        self, release: str, namespace: str, values: Mapping[str, Any] | None, notes: list[str]
    ) -> bool:
        """Remove the job's directory once the session's pods are gone: the chart's cleanup step.

        Used where the pre-delete hook did not run or did not succeed: the sweep's fallback and the
        undo of a failed submit (whose prepare hook may have made the directory). Returns whether
        the directory is gone; a failure is described in `notes`. `values` None (they could not be
        read nor rebuilt) is a failure.
        """
        if values is None:
            notes.append("the cleanup step cannot run: no values to render it from")
            return False
        self.delete_leftovers(namespace, release, keep_lock=True)
        if not self._wait_pods_gone(namespace, release):
            notes.append("the session's pods were still present when the cleanup step started")
        return self._run_cleanup(release, namespace, values, notes)

    def _wait_pods_gone(self, namespace: str, release: str) -> bool:
        """Wait (up to `verify_timeout`) until no pod of the release is left, deleting again."""
        deadline = time.monotonic() + self.settings.verify_timeout
        selector = kube_mod.instance_selector(release)
        while pods := self.kube.list_pods(namespace, selector):
            if time.monotonic() > deadline:
                return False
            self.delete_leftovers(namespace, release, keep_lock=True)
            self.release_orphaned_pods(namespace, pods)
            self.sleep(1.0)
        return True

    def release_orphaned_pods(self, namespace: str, pods: Iterable[Mapping[str, Any]]) -> int:
        """Remove the job-tracking finalizer from terminating pods whose Job is gone (what the
        job controller's orphan handling does, when it missed the Job's deletion: see
        `orchestrator.orphans`). One GET of the owning Job per such pod, before any change.
        Returns how many pods were released."""
        released = 0
        for pod in orphans.held_pods(pods):
            if not orphans.orphaned(pod, self.kube.get(kube_mod.JOB, namespace, pod.job)):
                continue
            if self.kube.set_finalizers(
                kube_mod.POD, namespace, pod.name, pod.finalizers, resource_version=pod.resource_version
            ):
                log.info("released pod %s/%s: its Job %s is gone", namespace, pod.name, pod.job)
                released += 1
        return released

    def delete_leftovers(self, namespace: str, release: str, *, keep_lock: bool = False) -> None:
        """Delete every object labelled for the job (but its Secret, with `keep_lock`)."""
        selector = kube_mod.instance_selector(release)
        if not keep_lock:
            self.kube.delete_labelled(namespace, selector)
            return
        for kind, obj in self._labelled(namespace, release, keep_lock=True):
            meta = obj.get("metadata", {})
            if not meta.get("deletionTimestamp"):
                self.kube.delete(kind, namespace, str(meta.get("name")))

    def _labelled(
        self, namespace: str, release: str, *, keep_lock: bool
    ) -> list[tuple[kube_mod.Kind, dict[str, Any]]]:
        found = self.kube.list_labelled(namespace, kube_mod.instance_selector(release))
        if not keep_lock:
            return found
        lock = secret_name(release)
        return [
            (kind, obj)
            for kind, obj in found
            if not (kind.name == kube_mod.SECRET.name and obj.get("metadata", {}).get("name") == lock)
        ]

    def _wait_gone(self, namespace: str, release: str, *, keep_lock: bool = False) -> list[str]:
        deadline = time.monotonic() + self.settings.verify_timeout
        while True:
            found = self._labelled(namespace, release, keep_lock=keep_lock)
            if not found:
                return []
            if time.monotonic() > deadline:
                return kube_mod.names(found)
            # objects still terminating, or created late by a controller: delete again
            self.delete_leftovers(namespace, release, keep_lock=keep_lock)
            self.release_orphaned_pods(namespace, [obj for kind, obj in found if kind.name == kube_mod.POD.name])
            self.sleep(1.0)

    def _run_cleanup(self, release: str, namespace: str, values: Mapping[str, Any], notes: list[str]) -> bool:
        """Run the chart's own cleanup Job (rendered by helm, without its hook annotations)."""
        job = self._render_cleanup(release, namespace, values, notes)
        if job is None:
            return False
        return self._execute_cleanup(release, namespace, job, job_directory_of(values), notes)

    def _render_cleanup(
        self, release: str, namespace: str, values: Mapping[str, Any], notes: list[str]
    ) -> dict[str, Any] | None:
        """The chart's cleanup Job for these values, without its hook annotations (None: a note)."""
        try:
            objects = self.helm.template(release, namespace, values, show_only="Job")
        except helm_mod.HelmError as err:
            notes.append(f"cannot render the cleanup step for directory {job_directory_of(values)}: {err}")
            return None
        job = next((o for o in objects if o["metadata"]["name"] == hook_job_name(release, CLEANUP)), None)
        if job is None:
            notes.append("the chart rendered no cleanup Job")
            return None
        for key in [k for k in job["metadata"].get("annotations", {}) if k.startswith(HELM_ANNOTATION_PREFIX)]:
            del job["metadata"]["annotations"][key]
        return job

    def _execute_cleanup(
        self, release: str, namespace: str, job: Mapping[str, Any], directory: str, notes: list[str]
    ) -> bool:
        """Run one cleanup Job to its end; a failure leaves a pending-cleanup record behind.

        The record (`pending_cleanup_name`) is a suspended Job, so it runs nothing: it keeps the
        cleanup Job to run again and the directory's name, and it carries no instance label, so
        the deletion of a release's leftovers does not take it. While it exists, `kill` and `sweep`
        of the release (even once the release is gone) run the cleanup again and are not clean
        until it succeeds: Harvester's sweep cannot forget a directory that is still there.
        """
        name = str(job["metadata"]["name"])
        self.kube.delete(kube_mod.JOB, namespace, name)
        deadline = time.monotonic() + self.settings.cleanup_timeout
        while self.kube.get(kube_mod.JOB, namespace, name) is not None and time.monotonic() < deadline:
            self.sleep(1.0)
        self.kube.create(kube_mod.JOB, namespace, job)
        failure = f"cleanup step for directory {directory} did not finish within {self.settings.cleanup_timeout:.0f} s"
        done = False
        while time.monotonic() < deadline:
            current = self.kube.get(kube_mod.JOB, namespace, name) or {}
            finished = [
                cond
                for cond in current.get("status", {}).get("conditions", []) or []
                if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed")
            ]
            if finished:
                done = finished[0].get("type") == "Complete"
                reason, message = finished[0].get("reason"), finished[0].get("message")
                failure = f"cleanup step failed for directory {directory}: {reason}: {message}"
                break
            self.sleep(1.0)
        self.kube.delete(kube_mod.JOB, namespace, name)
        if done:
            self.kube.delete(kube_mod.JOB, namespace, pending_cleanup_name(release))
            return True
        notes.append(failure)
        self._record_pending_cleanup(release, namespace, job, directory, notes)
        return False

    def _record_pending_cleanup(
        self, release: str, namespace: str, job: Mapping[str, Any], directory: str, notes: list[str]
    ) -> None:
        name = pending_cleanup_name(release)
        if self.kube.get(kube_mod.JOB, namespace, name) is not None:
            return
        template = job.get("spec", {}).get("template", {})
        record = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "labels": {
                    NAME_LABEL: APP_NAME,
                    MANAGED_BY_LABEL: MANAGED_BY,
                    PENDING_CLEANUP_LABEL: release,
                },
                "annotations": {
                    ANN_PENDING_DIRECTORY: directory,
                    ANN_PENDING_JOB: json.dumps(job, sort_keys=True, separators=(",", ":")),
                },
            },
            # never runs: a record, not work (a pod template is required, so the cleanup's own)
            "spec": {
                "suspend": True,
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": {PENDING_CLEANUP_LABEL: release}},
                    "spec": template.get("spec", {}),
                },
            },
        }
        try:
            self.kube.create(kube_mod.JOB, namespace, record)
        except kube_mod.KubeError as err:
            notes.append(f"cannot record the pending cleanup of {directory}: {err}")

    def pending_cleanup(self, release: str, namespace: str) -> dict[str, Any] | None:
        """The record of a cleanup that failed for this release (see `_execute_cleanup`), or None."""
        return self.kube.get(kube_mod.JOB, namespace, pending_cleanup_name(release))

    def _retry_cleanup(self, release: str, namespace: str, record: Mapping[str, Any], notes: list[str]) -> bool:
        """Run the recorded cleanup Job again (the release is gone: no pod of it holds files)."""
        annotations = record.get("metadata", {}).get("annotations", {}) or {}
        directory = str(annotations.get(ANN_PENDING_DIRECTORY) or f"the job directory of {release}")
        try:
            job = json.loads(str(annotations.get(ANN_PENDING_JOB)))
        except ValueError:
            job = None
        if not isinstance(job, dict) or job.get("metadata", {}).get("name") != hook_job_name(release, CLEANUP):
            notes.append(f"the pending cleanup of {directory} is unreadable: remove the directory by hand")
            return False
        notes.append(f"running the pending cleanup of directory {directory} again")
        if not self._wait_pods_gone(namespace, release):
            notes.append("the session's pods were still present when the cleanup step started")
        return self._execute_cleanup(release, namespace, job, directory, notes)

    # -- deadlines / gc ------------------------------------------------------------------------
    def overdue(
        self, states: Mapping[str, SessionState], *, namespace: str | None = None, now: datetime | None = None
    ) -> dict[str, str]:
        """{release: reason} of observed sessions that a deadline ended, live or final, whatever
        the reason reported (a startup timeout ends a session as ImagePullBackOff, Unschedulable,
        ...): `SessionState.deadline` says so. `observe` applies the deadlines to the pods it
        listed, so this makes no API call. These must be killed."""
        del namespace, now
        return {
            r: str(s.reason)
            for r, s in states.items()
            if s.deadline is not None or (s.final and s.reason in DEADLINE_REASONS)
        }

    def enforce_deadlines(self, *, namespace: str | None = None, now: datetime | None = None) -> Ended:
        """Observe the namespace (one LIST) and end every session past a deadline.

        Returns {release: reason} of the sessions it ended. Each session is ended on its own: one
        that cannot be (a helm or API error) is logged and put in `failures`, and the rest go on;
        during an outage (cluster or helm unreachable) the rest are reported as failed with it
        rather than tried one by one. Kubernetes enforces the lifetime too
        (activeDeadlineSeconds); this is the second line, and the only one for the interactive
        lease and the startup timeout.
        """
        ns = namespace or self.settings.namespace
        result = Ended()
        overdue = self.overdue(self.observe(namespace=ns, now=now))
        for release, reason in overdue.items():
            if release in result.failures:
                continue
            log.info("ending %s/%s: %s", ns, release, reason)
            try:
                self.kill(release, namespace=ns)
            except DaskPandaSessionError as err:
                self._failed(result.failures, release, err, "end", ns, overdue)
                continue
            result[release] = reason
        return result

    def gc(
        self, *, namespace: str | None = None, dry_run: bool = False, now: datetime | None = None
    ) -> GcActions:
        """Remove orphans (objects whose release is gone) and releases older than their lifetime.

        `helm list` only nominates orphans: each is confirmed with its own `helm status` before
        anything is deleted, so a partial or empty listing never removes a live session. Ages
        are measured on the API server's clock (`now` overrides it). Each release is handled on
        its own: a failure is logged and put in `failures`, and the rest go on.
        """
        ns = namespace or self.settings.namespace
        now = now or self.server_now()
        releases = {r.name: r for r in self.helm.list_releases(ns)}
        objects = self.kube.list_labelled(ns, kube_mod.APP_SELECTOR)
        by_instance: dict[str, list[tuple[kube_mod.Kind, dict[str, Any]]]] = {}
        for kind, obj in objects:
            instance = obj.get("metadata", {}).get("labels", {}).get(INSTANCE_LABEL)
            if instance:
                by_instance.setdefault(instance, []).append((kind, obj))
        result = GcActions()
        grace = timedelta(seconds=self.settings.gc_grace_seconds)
        candidates: list[GcAction] = []
        for instance, objs in sorted(by_instance.items()):
            if instance in releases:
                continue
            newest = max((t for _, o in objs if (t := _created(o)) is not None), default=None)
            if newest is not None and now - newest < grace:
                continue  # maybe a submit in progress: its Secret comes before its release
            candidates.append(GcAction(instance, "orphan: its release is gone", tuple(kube_mod.names(objs))))
        for action in candidates:
            if action.release in result.failures:
                continue
            try:
                live = self.helm.release(action.release, ns)
            except DaskPandaSessionError as err:
                self._failed(result.failures, action.release, err, "confirm the orphan", ns, candidates)
                continue
            if live is not None:
                log.warning("gc %s/%s: not an orphan, its release is %s", ns, action.release, live.status)
                continue
            result.append(action)
        probes = self._stale_probes(ns, now)
        for action in probes.values():
            result.append(action)
        for name, info in sorted(releases.items()):
            lifetime = self._lifetime(by_instance.get(name, []))
            if info.updated is not None and now - info.updated > timedelta(seconds=lifetime) + grace:
                result.append(GcAction(name, f"release older than its lifetime ({lifetime:.0f} s)"))
        keep = self._live_directories(releases, by_instance)
        if dry_run:
            self.gc_directories(ns, keep, dry_run=True, into=result)
            return result
        done = GcActions(failures=result.failures)
        for action in result:
            if action.release in done.failures:
                continue
            try:
                if action.release in probes:
                    selector = f"{PROBE_LABEL}={action.release.removeprefix(PROBE_NAME_PREFIX + '-')}"
                    self.kube.delete_labelled(ns, selector, kinds=PROBE_KINDS)
                elif action.release in releases:
                    self.sweep(action.release, namespace=ns)
                else:
                    self.kube.delete_labelled(ns, kube_mod.instance_selector(action.release))
            except DaskPandaSessionError as err:
                self._failed(done.failures, action.release, err, "collect", ns, result)
                continue
            done.append(action)
        self.gc_directories(ns, keep, dry_run=False, into=done)
        return done

    def _stale_probes(self, ns: str, now: datetime) -> dict[str, GcAction]:
        """Objects of a `doctor` NetworkPolicy probe that was killed before its own cleanup ran
        (its pods end on their deadline, its policy would stay), once older than
        PROBE_STALE_SECONDS; keyed by `<prefix>-<run id>`."""
        stale: dict[str, list[tuple[kube_mod.Kind, dict[str, Any]]]] = {}
        for kind, obj in self.kube.list_labelled(ns, PROBE_LABEL, kinds=PROBE_KINDS):
            run_id = obj.get("metadata", {}).get("labels", {}).get(PROBE_LABEL)
            created = _created(obj)
            if run_id and created is not None and (now - created).total_seconds() > PROBE_STALE_SECONDS:
                stale.setdefault(f"{PROBE_NAME_PREFIX}-{run_id}", []).append((kind, obj))
        return {
            name: GcAction(name, "left by an interrupted doctor probe", tuple(kube_mod.names(objs)))
            for name, objs in sorted(stale.items())
        }

    @staticmethod
    def _live_directories(releases: Iterable[str], instances: Iterable[str]) -> set[str]:
        """Directory names (`<PandaID>-<attempt>`) of every release listed and of every release
        with objects in the namespace (a submit in progress has its Secret before its release)."""
        keep: set[str] = set()
        for name in {*releases, *instances}:
            ident = parse_release_name(name)
            if ident is not None:
                keep.add(job_directory(*ident))
        return keep

    def gc_directories(
        self, namespace: str, keep: Iterable[str], *, dry_run: bool, into: GcActions
    ) -> DirectoryCounts | None:
        """Find (and unless `dry_run` remove) directories of releases that no longer exist.

        Runs the directory gc Job (`orchestrator.jobdirs`) made from the queue's cleanup Job,
        waits up to `cleanup_timeout` and reads its counts from the pod's termination message.
        The grace period is `gc_grace_seconds`: a directory modified within it is spared (its
        release may be in the middle of its install). Counts and notes go `into` the result.
        """
        notes = into.directory_notes
        values = self.cleanup_values(GC_RELEASE, notes)
        cleanup = None if values is None else self._render_cleanup(GC_RELEASE, namespace, values, notes)
        if cleanup is None:
            notes.append("directory gc skipped: the cleanup step cannot be rendered")
            return None
        name = GC_JOB_NAME
        try:
            job = gc_job(
                cleanup, name=name, keep=keep, grace_seconds=self.settings.gc_grace_seconds, dry_run=dry_run
            )
        except ValueError as err:
            notes.append(f"directory gc skipped: {err}")
            return None
        self.kube.delete(kube_mod.JOB, namespace, name)
        deadline = time.monotonic() + self.settings.cleanup_timeout
        while self.kube.get(kube_mod.JOB, namespace, name) is not None and time.monotonic() < deadline:
            self.sleep(1.0)
        self.kube.create(kube_mod.JOB, namespace, job)
        ended: str | None = None
        while ended is None and time.monotonic() < deadline:
            current = self.kube.get(kube_mod.JOB, namespace, name) or {}
            for cond in current.get("status", {}).get("conditions", []) or []:
                if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
                    ended = str(cond["type"])
            if ended is None:
                self.sleep(1.0)
        counts = None
        for pod in self.kube.list_pods(namespace, f"{GC_RUN_LABEL}={name}"):
            for status in pod.get("status", {}).get("containerStatuses", []) or []:
                message = str(status.get("state", {}).get("terminated", {}).get("message") or "")
                counts = parse_counts(message) or counts
        self.kube.delete(kube_mod.JOB, namespace, name)
        if ended is None:
            notes.append(f"directory gc did not finish within {self.settings.cleanup_timeout:.0f} s")
        elif counts is None:
            notes.append(f"directory gc ended ({ended}) without reporting its counts")
        elif counts.failed:
            notes.append(f"directory gc could not remove {counts.failed} director{'y' if counts.failed == 1 else 'ies'}")
        into.directories = counts
        return counts

    @staticmethod
    def _failed(
        failures: dict[str, DaskPandaSessionError],
        release: str,
        err: DaskPandaSessionError,
        what: str,
        namespace: str,
        todo: Iterable[str] | Iterable[GcAction],
    ) -> None:
        """Record one release's failure; an outage fails every release still to do with it."""
        log.warning("cannot %s %s/%s: %s: %s", what, namespace, release, type(err).__name__, err)
        failures[release] = err
        if isinstance(err, kube_mod.KubeUnavailable | helm_mod.HelmUnavailable):
            for item in todo:
                other = item.release if isinstance(item, GcAction) else item
                failures.setdefault(other, err)

    def _lifetime(self, objs: Iterable[tuple[kube_mod.Kind, Mapping[str, Any]]]) -> float:
        for _, obj in objs:
            value = obj.get("metadata", {}).get("annotations", {}).get(session_mod.ANN_LIFETIME_SECONDS)
            if value and str(value).isdigit():
                return float(value)
        return self.settings.default_lifetime_seconds


def job_directory_of(values: Mapping[str, Any]) -> str:
    """The job's directory on the shared volume, as the chart names it from these values
    (`<sharedVolume.jobsDirectory>/<job.pandaId>-<job.attempt>`), for messages."""
    job = _mapping(values.get("job"))
    shared = _mapping(values.get("sharedVolume"))
    try:
        name = job_directory(int(str(job.get("pandaId"))), int(str(job.get("attempt", 0))))
    except ValueError:
        name = f"{job.get('pandaId')}-{job.get('attempt', 0)}"
    parent = str(shared.get("jobsDirectory") or "").strip("/")
    return f"{parent}/{name}" if parent else name


def _mapping(node: object) -> Mapping[str, Any]:
    return node if isinstance(node, Mapping) else {}


def _created(obj: Mapping[str, Any]) -> datetime | None:
    text = obj.get("metadata", {}).get("creationTimestamp")
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def is_bad_input(err: BaseException) -> bool:
    """True for errors caused by the caller's input (nothing was created)."""
    return isinstance(err, InputError)


def is_temporary(err: BaseException) -> bool:
    """True for errors worth retrying later (cluster unreachable, helm timeout)."""
    return isinstance(
        err, kube_mod.KubeUnavailable | helm_mod.HelmUnavailable | helm_mod.HelmTimeout | SubmitBusy
    )


__all__ += ["DaskPandaSessionError", "is_bad_input", "is_temporary"]
