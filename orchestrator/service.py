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

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator import helm as helm_mod
from orchestrator import kube as kube_mod
from orchestrator import session as session_mod
from orchestrator.errors import DaskPandaSessionError, InputError
from orchestrator.job import PandaJob, parse_job
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
from orchestrator.values import QueueConfig, RenderedValues, load_queue, render_values, secret_name

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
    chart: Path | None = None
    helm_executable: str = "helm"
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
    """`sweep`'s verdict: clean means nothing labelled for the job remains in the namespace."""

    release: str
    namespace: str
    clean: bool
    release_existed: bool
    used_fallback: bool = False
    cleanup_completed: bool | None = None
    remaining: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


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
        helm: helm_mod.Helm | None = None,
        kube: kube_mod.Kube | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or Settings()
        s = self.settings
        self.helm = helm or helm_mod.Helm(
            executable=s.helm_executable,
            kubeconfig=s.kubeconfig,
            kubecontext=s.kube_context,
            chart=s.chart,
            timeout=s.install_timeout,
        )
        self.kube = kube or kube_mod.Kube(
            kubeconfig=s.kubeconfig, context=s.kube_context, request_timeout=s.request_timeout
        )
        self.clock = clock
        self.sleep = sleep

    # -- render / submit ----------------------------------------------------------------------
    def queue(self, queue: str | None = None, values_files: Sequence[str] = ()) -> QueueConfig:
        return load_queue(queue or self.settings.queue, [*self.settings.values_files, *values_files])

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
        pods_listed, server_now = self.kube.list_pods_at(ns)
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
        worker): one `helm status` and one Secret DELETE; `sweep` does the thorough check.
        """
        ns = namespace or self.settings.namespace
        if self.helm.release(release, ns) is None:
            self.kube.delete(kube_mod.SECRET, ns, secret_name(release))
            return SweepResult(release=release, namespace=ns, clean=True, release_existed=False)
        return self.sweep(release, namespace=ns, verify=False)

    def sweep(self, release: str, *, namespace: str | None = None, verify: bool = True) -> SweepResult:
        """Uninstall, recover from a hung or failed pre-delete hook, delete leftovers, verify.

        Returns clean=True only when nothing labelled for the job remains (with verify).
        """
        return self.sweep_release(release, namespace or self.settings.namespace, verify=verify)

    def sweep_release(
        self, release: str, namespace: str, *, verify: bool = True, keep_lock: bool = False
    ) -> SweepResult:
        """`sweep`; with `keep_lock`, the job's Secret stays (a submit replacing the release
        holds it as its lock) and "clean" means nothing else labelled for the job remains."""
        ns = namespace
        notes: list[str] = []
        used_fallback = False
        cleanup_completed: bool | None = None
        info = self.helm.release(release, ns)
        if info is not None:
            values: dict[str, Any] | None = None
            try:
                if info.status in ("uninstalling", "failed") or info.status.startswith("pending-"):
                    raise helm_mod.HelmError(f"release is {info.status}: skipping its hooks")
                self.helm.uninstall(release, ns, timeout=self.settings.uninstall_timeout)
            except helm_mod.HelmError as err:
                notes.append(f"uninstall with hooks failed: {err}")
                used_fallback = True
                try:
                    values = self.helm.get_values(release, ns)
                except helm_mod.HelmError as verr:
                    notes.append(f"cannot read the release values for the cleanup step: {verr}")
                self.helm.uninstall(release, ns, no_hooks=True, timeout=self.settings.uninstall_timeout)
            if values is not None:
                cleanup_completed = self._run_cleanup(release, ns, values, notes)
        if not keep_lock:
            self.kube.delete(kube_mod.SECRET, ns, secret_name(release))
        self.delete_leftovers(ns, release, keep_lock=keep_lock)
        remaining: list[str] = []
        if verify:
            remaining = self._wait_gone(ns, release, keep_lock=keep_lock)
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
            self.sleep(1.0)

    def _run_cleanup(self, release: str, namespace: str, values: Mapping[str, Any], notes: list[str]) -> bool:
        """Run the chart's own cleanup Job (rendered by helm, without its hook annotations)."""
        try:
            objects = self.helm.template(release, namespace, values, show_only="Job")
        except helm_mod.HelmError as err:
            notes.append(f"cannot render the cleanup step: {err}")
            return False
        job = next((o for o in objects if o["metadata"]["name"] == f"{release}-cleanup"), None)
        if job is None:
            notes.append("the chart rendered no cleanup Job")
            return False
        for key in [k for k in job["metadata"].get("annotations", {}) if k.startswith("helm.sh/")]:
            del job["metadata"]["annotations"][key]
        name = job["metadata"]["name"]
        self.kube.delete(kube_mod.JOB, namespace, name)
        deadline = time.monotonic() + self.settings.cleanup_timeout
        while self.kube.get(kube_mod.JOB, namespace, name) is not None and time.monotonic() < deadline:
            self.sleep(1.0)
        self.kube.create(kube_mod.JOB, namespace, job)
        while time.monotonic() < deadline:
            current = self.kube.get(kube_mod.JOB, namespace, name) or {}
            for cond in current.get("status", {}).get("conditions", []) or []:
                if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
                    done = bool(cond["type"] == "Complete")
                    if not done:
                        notes.append(f"cleanup step failed: {cond.get('reason')}: {cond.get('message')}")
                    self.kube.delete(kube_mod.JOB, namespace, name)
                    return done
            self.sleep(1.0)
        notes.append(f"cleanup step did not finish within {self.settings.cleanup_timeout:.0f} s")
        self.kube.delete(kube_mod.JOB, namespace, name)
        return False

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
            instance = obj.get("metadata", {}).get("labels", {}).get(kube_mod.INSTANCE_LABEL)
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
        for name, info in sorted(releases.items()):
            lifetime = self._lifetime(by_instance.get(name, []))
            if info.updated is not None and now - info.updated > timedelta(seconds=lifetime) + grace:
                result.append(GcAction(name, f"release older than its lifetime ({lifetime:.0f} s)"))
        if dry_run:
            return result
        done = GcActions(failures=result.failures)
        for action in result:
            if action.release in done.failures:
                continue
            try:
                if action.release in releases:
                    self.sweep(action.release, namespace=ns)
                else:
                    self.kube.delete_labelled(ns, kube_mod.instance_selector(action.release))
            except DaskPandaSessionError as err:
                self._failed(done.failures, action.release, err, "collect", ns, result)
                continue
            done.append(action)
        return done

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
