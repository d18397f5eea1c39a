"""submit / observe / kill / sweep / gc / deadlines: the orchestrator's operations, composed of the
pure steps (job, values, session) and the two I/O modules (helm, kube).

The adapters (the CLI and the Harvester plugins) call these and only translate. State lives in the
cluster, never in this object: release and Secret names are derived from the PandaID, the session
state from the pods, so any process can pick up any session (Harvester builds new plugin objects
every cycle).

Costs, by design:
* `observe`: ONE pod LIST per namespace, whatever the number of sessions; events are fetched only
  for a session that is failing. No helm process.
* `submit`: one `helm status` (idempotency) + one Secret write + one `helm install`.
* `kill`/`sweep`: helm uninstall, then label-based verification over every kind the release and
  its hooks can create.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator import helm as helm_mod
from orchestrator import kube as kube_mod
from orchestrator import session as session_mod
from orchestrator.errors import DaskPandaSessionError, InputError
from orchestrator.job import PandaJob, parse_job
from orchestrator.session import (
    DEADLINE_REASONS,
    Phase,
    SessionState,
    apply_deadline,
    derive_session,
    group_pods_by_release,
)
from orchestrator.values import QueueConfig, RenderedValues, load_queue, render_values, secret_name

__all__ = [
    "GcAction",
    "SessionService",
    "Settings",
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
    uninstall_timeout: float = 120.0
    cleanup_timeout: float = 120.0
    verify_timeout: float = 60.0
    request_timeout: tuple[float, float] = (5.0, 30.0)
    gc_grace_seconds: float = 600.0
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
        rendered = render_values(job, config, namespace=namespace or self.settings.namespace)
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
        """Install the job's release; a second submit of the same job returns the existing one.

        Bad input raises an InputError before anything is created; if the install fails, the
        Secret and whatever helm created are removed again, so a failed submit leaves nothing.
        """
        job, rendered = self.render(
            job_data,
            queue=queue,
            values_files=values_files,
            namespace=namespace,
            harvester_worker_id=harvester_worker_id,
        )
        ns, release = rendered.namespace, rendered.release
        result = SubmitResult(
            release=release,
            namespace=ns,
            pandaid=job.pandaid,
            mode=str(job.mode),
            workers=job.workers,
            created=False,
            adjustments=rendered.adjustments,
        )
        if self.helm.release(release, ns) is not None:
            log.info("submit %s/%s: the release exists already; nothing to do", ns, release)
            return result
        if rendered.secret:
            labels = {
                "app.kubernetes.io/name": "dask-panda-session",
                "app.kubernetes.io/instance": release,
                "app.kubernetes.io/component": "secret",
                "app.kubernetes.io/managed-by": "dask-panda-session",
                "dask-panda-session/pandaid": str(job.pandaid),
            }
            assert rendered.secret_name is not None
            self.kube.create_secret(ns, rendered.secret_name, rendered.secret.reveal(), labels)
        try:
            self.helm.install(
                release,
                ns,
                rendered.values,
                timeout=self.settings.install_timeout,
                secrets=rendered.secret.values_to_scrub(),
            )
        except helm_mod.HelmError as err:
            log.warning(
                "submit %s/%s failed (%s); removing what was created", ns, release, type(err).__name__
            )
            self._undo_submit(release, ns)
            raise
        log.info(
            "submitted %s/%s: PanDA job %s, %s mode, %d workers",
            ns,
            release,
            job.pandaid,
            job.mode,
            job.workers,
        )
        return SubmitResult(**{**result.__dict__, "created": True})

    def _undo_submit(self, release: str, namespace: str) -> None:
        try:
            self.helm.uninstall(release, namespace, no_hooks=True, timeout=self.settings.uninstall_timeout)
        except helm_mod.HelmError as err:
            log.warning("undo %s/%s: helm uninstall failed: %s", namespace, release, err)
        try:
            self.kube.delete_labelled(namespace, kube_mod.instance_selector(release))
            self.kube.delete(kube_mod.SECRET, namespace, secret_name(release))
        except kube_mod.KubeError as err:
            log.warning("undo %s/%s: leftover deletion failed: %s", namespace, release, err)

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

        `releases=None` means every session found. A release with no pod at all is reported
        `cancelled`/ReleaseMissing, unless `submitted` says it was submitted less than its
        startup grace ago (its hook or pods may not exist yet).
        """
        ns = namespace or self.settings.namespace
        now = now or self.clock()
        groups = group_pods_by_release(self.kube.list_pods(ns))
        wanted = list(releases) if releases is not None else sorted(groups)
        states: dict[str, SessionState] = {}
        for release in wanted:
            pods = groups.get(release, [])
            known = True
            if not pods:
                since = (submitted or {}).get(release)
                known = since is not None and (now - since).total_seconds() < self.settings.gc_grace_seconds
            state = derive_session(release, ns, pods, now=now, release_known=known)
            if with_events and pods and state.reason and state.phase in (Phase.STARTING, Phase.FAILED):
                events = self.kube.pod_events(ns, release)
                state = derive_session(release, ns, pods, now=now, release_known=known, events=events)
            states[release] = apply_deadline(state, pods, now)
        return states

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
        ns = namespace or self.settings.namespace
        notes: list[str] = []
        used_fallback = False
        cleanup_completed: bool | None = None
        info = self.helm.release(release, ns)
        if info is not None:
            values: dict[str, Any] | None = None
            try:
                if info.status in ("uninstalling", "failed", "pending-install"):
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
        self.kube.delete(kube_mod.SECRET, ns, secret_name(release))
        selector = kube_mod.instance_selector(release)
        self.kube.delete_labelled(ns, selector)
        remaining: list[str] = []
        if verify:
            remaining = self._wait_gone(ns, selector)
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

    def _wait_gone(self, namespace: str, selector: str) -> list[str]:
        deadline = time.monotonic() + self.settings.verify_timeout
        while True:
            found = self.kube.list_labelled(namespace, selector)
            if not found:
                return []
            if time.monotonic() > deadline:
                return kube_mod.names(found)
            # objects still terminating, or created late by a controller: delete again
            self.kube.delete_labelled(namespace, selector)
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

    def enforce_deadlines(
        self, *, namespace: str | None = None, now: datetime | None = None
    ) -> dict[str, str]:
        """Observe the namespace (one LIST) and end every session past a deadline.

        Returns {release: reason} of the sessions it ended. Kubernetes enforces the lifetime too
        (activeDeadlineSeconds); this is the second line, and the only one for the interactive
        lease and the startup timeout.
        """
        ns = namespace or self.settings.namespace
        ended = self.overdue(self.observe(namespace=ns, now=now))
        for release, reason in ended.items():
            log.info("ending %s/%s: %s", ns, release, reason)
            self.kill(release, namespace=ns)
        return ended

    def gc(
        self, *, namespace: str | None = None, dry_run: bool = False, now: datetime | None = None
    ) -> list[GcAction]:
        """Remove orphans (objects whose release is gone) and releases older than their lifetime."""
        ns = namespace or self.settings.namespace
        now = now or self.clock()
        releases = {r.name: r for r in self.helm.list_releases(ns)}
        objects = self.kube.list_labelled(ns, kube_mod.APP_SELECTOR)
        by_instance: dict[str, list[tuple[kube_mod.Kind, dict[str, Any]]]] = {}
        for kind, obj in objects:
            instance = obj.get("metadata", {}).get("labels", {}).get(kube_mod.INSTANCE_LABEL)
            if instance:
                by_instance.setdefault(instance, []).append((kind, obj))
        actions: list[GcAction] = []
        grace = timedelta(seconds=self.settings.gc_grace_seconds)
        for instance, objs in sorted(by_instance.items()):
            if instance in releases:
                continue
            newest = max((t for _, o in objs if (t := _created(o)) is not None), default=None)
            if newest is not None and now - newest < grace:
                continue  # maybe a submit in progress: its Secret comes before its release
            actions.append(GcAction(instance, "orphan: its release is gone", tuple(kube_mod.names(objs))))
        for name, info in sorted(releases.items()):
            lifetime = self._lifetime(by_instance.get(name, []))
            if info.updated is not None and now - info.updated > timedelta(seconds=lifetime) + grace:
                actions.append(GcAction(name, f"release older than its lifetime ({lifetime:.0f} s)"))
        if not dry_run:
            for action in actions:
                if action.release in releases:
                    self.sweep(action.release, namespace=ns)
                else:
                    self.kube.delete_labelled(ns, kube_mod.instance_selector(action.release))
        return actions

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
    return isinstance(err, kube_mod.KubeUnavailable | helm_mod.HelmUnavailable | helm_mod.HelmTimeout)


__all__ += ["DaskPandaSessionError", "is_bad_input", "is_temporary"]
