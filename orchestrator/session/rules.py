"""The lifecycle of a session as an ordered tuple of small named rules (see :data:`RULES`).

Each rule takes the :class:`Context` of one release (its pods read once, the counts and times
derived once) and returns an :class:`Outcome` or None; :func:`derive_session` returns the first
outcome. The order IS the lifecycle: what ends a session is checked before what keeps it
running, and what only explains a slow start comes last. The package docstring lists the rules
and why they are in this order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, Final

import msgspec

from orchestrator.kube import PodAnnotations, PodLabels, PodRecord
from orchestrator.session.deadlines import exceeded, skew_note
from orchestrator.session.pods import (
    MESSAGE_MAX,
    Pod,
    PodView,
    clip,
    describe,
    exit_code,
    finished_at,
    is_running,
    merged_annotations,
    merged_labels,
    problem,
    read_pod,
    str_or_none,
    terminated,
    to_int,
    to_seconds,
)
from orchestrator.session.pods import aware as _aware
from orchestrator.session.vocabulary import (
    CLEANUP,
    CLOCK_SKEW_TOLERANCE,
    CORE_COMPONENTS,
    HOOK_COMPONENTS,
    JUPYTERLAB,
    MAX_RESTARTS,
    PILOT,
    SCHEDULER,
    SESSION_COMPONENTS,
    WORKER,
    Deadline,
    Phase,
    Reason,
    SessionState,
    Timings,
    iso,
)

_GONE: Final = frozenset({"Failed", "Succeeded"})
_NOTES_MAX: Final = 3  # worker shortfalls named in a message; the rest are counted


class Outcome(msgspec.Struct, frozen=True, gc=False):
    """The verdict of one rule; ``deadline`` names the limit that ended the session, if one did.

    (msgspec Structs, like :class:`Context`: one of each per session and cycle, built in C.)
    """

    phase: Phase
    reason: str | None
    message: str
    ended: datetime | None = None
    deadline: str | None = None


class Context(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One release, read once: the pods by role, the counts and the times every rule needs."""

    release: str
    namespace: str
    now: datetime
    skew_tolerance: float
    release_known: bool
    events: Sequence[Mapping[str, Any]] | None
    session: tuple[PodView, ...]
    hooks: tuple[PodView, ...]
    scheduler: PodView | None
    pilot: PodView | None
    jupyterlab: PodView | None
    workers: tuple[PodView, ...]
    labels: PodLabels
    annotations: PodAnnotations
    mode: str | None
    startup_timeout: float | None
    submitted: datetime | None
    pilot_started: datetime | None
    pilot_exit_code: int | None
    established: bool
    ready_workers: tuple[PodView, ...]
    workers_wanted: int
    clock_skew_seconds: float | None

    @property
    def interactive(self) -> bool:
        return self.mode == "interactive"

    @property
    def counts(self) -> str:
        return f"{len(self.ready_workers)}/{self.workers_wanted} workers ready"

    def past(self, since: datetime | None, limit: float | None) -> bool:
        """``limit`` seconds from ``since`` have passed, by more than the skew tolerance."""
        return exceeded(since, limit, self.now, self.skew_tolerance)

    @property
    def startup_passed(self) -> bool:
        """The session's startup timeout (from ``submitted``) has passed."""
        return self.past(self.submitted, self.startup_timeout)


Rule = Callable[[Context], Outcome | None]


# --------------------------------------------------------------------------------------------
# the rules, in their order


def nothing_of_the_session(ctx: Context) -> Outcome | None:
    """No session pod: the release is gone, or its pre-install hook still runs."""
    if ctx.session:
        return None
    if not ctx.release_known:
        left = f"; {len(ctx.hooks)} hook pod(s) remain" if ctx.hooks else ""
        return Outcome(Phase.CANCELLED, Reason.RELEASE_MISSING, f"release {ctx.release} not found{left}")
    return _starting(ctx, ctx.hooks, "no session pods yet (pre-install hook)")


def _pilot_killed_at_lifetime(pod: PodView) -> bool:
    return pod.phase == "Failed" and pod.reason == Reason.DEADLINE_EXCEEDED


def batch_pilot_succeeded(ctx: Context) -> Outcome | None:
    """Batch: the pilot exited 0 (or its pod Succeeded): the job is done."""
    pilot = ctx.pilot
    if pilot is None or ctx.interactive or _pilot_killed_at_lifetime(pilot):
        return None
    ended = terminated(pilot.main)
    if (ended is not None and to_int(ended.exit_code) == 0) or (ended is None and pilot.phase == "Succeeded"):
        finished = finished_at(ended)
        return Outcome(Phase.FINISHED, None, f"pilot in pod {pilot.name} exited with code 0", finished)
    return None


def pilot_failed(ctx: Context) -> Outcome | None:
    """The pilot failed (both modes; an interactive stager's exit 0 is not a failure)."""
    pilot = ctx.pilot
    if pilot is None:
        return None
    ended = terminated(pilot.main)
    code = exit_code(ended)
    finished = finished_at(ended)
    if _pilot_killed_at_lifetime(pilot):
        when = pilot.failure_time()
        if not pilot.failure_counts(when):
            return None
        message = f"pilot pod {pilot.name} was killed at the session lifetime (activeDeadlineSeconds)"
        return Outcome(Phase.FAILED, Reason.DEADLINE_EXCEEDED, message, finished or when, Deadline.LIFETIME)
    if (ended is not None and code == 0) or (ended is None and pilot.phase == "Succeeded"):
        return None
    if ended is not None:
        if not pilot.failure_counts(finished):
            return None
        if ended.reason == Reason.OOM_KILLED:
            reason: str = Reason.OOM_KILLED
        elif pilot.phase == "Failed" and pilot.reason not in (None, "Error"):
            reason = str(pilot.reason)
        else:
            reason = Reason.PILOT_EXIT_CODE
        return Outcome(
            Phase.FAILED, reason, f"pilot container in pod {pilot.name} {describe(ended)}", finished
        )
    if pilot.phase != "Failed":
        return None
    for init in pilot.init_containers:
        init_ended = terminated(init)
        if init_ended is not None and to_int(init_ended.exit_code) not in (None, 0):
            init_finished = init_ended.finished_at
            if not pilot.failure_counts(init_finished):
                return None
            message = f"init container {init.name} of pilot pod {pilot.name} {describe(init_ended)}"
            return Outcome(Phase.FAILED, Reason.INIT_CONTAINER_FAILED, message, init_finished)
    when = pilot.failure_time()
    if not pilot.failure_counts(when):
        return None
    detail = f": {pilot.status_message}" if pilot.status_message else ""
    return Outcome(
        Phase.FAILED, pilot.reason or Reason.PILOT_FAILED, f"pilot pod {pilot.name} failed{detail}", when
    )


def jupyterlab_shut_down(ctx: Context) -> Outcome | None:
    """Interactive: JupyterLab Succeeded (the user shut the server down, or idle culling)."""
    lab = ctx.jupyterlab
    if not ctx.interactive or lab is None or lab.phase != "Succeeded":
        return None
    finished = finished_at(terminated(lab.main))
    return Outcome(Phase.FINISHED, None, f"JupyterLab in pod {lab.name} was shut down", finished)


def lifetime_reached_in_cluster(ctx: Context) -> Outcome | None:
    """A session pod was killed by activeDeadlineSeconds (= the lifetime, on every session pod)."""
    for pod in ctx.session:
        if pod.phase != "Failed" or pod.reason != Reason.DEADLINE_EXCEEDED:
            continue
        when = pod.failure_time()
        if not pod.failure_counts(when):
            continue
        message = f"{pod.component} pod {pod.name} was killed at the session lifetime (activeDeadlineSeconds)"
        return Outcome(Phase.FAILED, Reason.DEADLINE_EXCEEDED, message, when, Deadline.LIFETIME)
    return None


def core_component_failed(ctx: Context) -> Outcome | None:
    """The scheduler (or, interactive, JupyterLab) is gone for good."""
    for pod in (ctx.scheduler, ctx.jupyterlab if ctx.interactive else None):
        if pod is not None:
            outcome = _core_failure(pod, pod.component or SCHEDULER, ctx.established)
            if outcome is not None:
                return outcome
    return None


def release_being_deleted(ctx: Context) -> Outcome | None:
    """The pre-delete cleanup hook runs, or the scheduler, the pilot or JupyterLab is being deleted.

    A worker being deleted (drain, preemption, eviction, ``kubectl delete pod``) is not here:
    dask survives it, :func:`running` reports it as a shortfall.
    """
    deleting = [pod for pod in ctx.session if pod.deleting and pod.component in CORE_COMPONENTS]
    cleanup = any(pod.component == CLEANUP for pod in ctx.hooks)
    if not deleting and not cleanup:
        return None
    what = (
        ", ".join(f"{pod.component} pod {pod.name} is being deleted" for pod in deleting)
        if deleting
        else "the pre-delete cleanup hook runs"
    )
    return Outcome(Phase.CANCELLED, Reason.DELETING, f"release {ctx.release} is being deleted: {what}")


def orphaned(ctx: Context) -> Outcome | None:
    """Pods remain but Helm does not know the release any more."""
    if ctx.release_known:
        return None
    message = f"release {ctx.release} not found but {len(ctx.session)} of its pod(s) remain"
    return Outcome(Phase.CANCELLED, Reason.RELEASE_MISSING, message)


def workers_never_ready(ctx: Context) -> Outcome | None:
    """Established, yet no wanted worker ever became Ready, each past its own startup timeout.

    Only when NO worker is Ready, every wanted worker pod exists, none was ever Ready, none is
    being deleted or gone, and each one's startup timeout (from that worker's own creation)
    has passed: the session will never compute. Any other shortfall is reported by
    :func:`running` and the session goes on.
    """
    timeout = ctx.startup_timeout
    if (
        not ctx.established
        or timeout is None
        or ctx.workers_wanted <= 0
        or ctx.ready_workers
        or len(ctx.workers) < ctx.workers_wanted
    ):
        return None
    for pod in ctx.workers:
        if pod.was_ready or pod.deleting or pod.phase in _GONE or not ctx.past(pod.created, timeout):
            return None
    problems = [p for p in (problem(pod, ctx.events) for pod in ctx.workers) if p is not None]
    specific = next((p for p in problems if p[0] is not None), None)
    stuck = next((p for p in problems if p[0] is None), None)
    reason = specific[0] if specific is not None and specific[0] is not None else Reason.STARTUP_TIMEOUT
    detail = (specific or stuck or (None, f"{len(ctx.workers)} worker pod(s) never Ready"))[1]
    message = (
        f"{ctx.counts}: no worker became Ready within the startup timeout "
        f"({timeout:.0f} s from each worker's creation): {detail}"
    )
    return Outcome(Phase.FAILED, reason, message, deadline=Deadline.STARTUP)


def running(ctx: Context) -> Outcome | None:
    """Established (batch: the pilot started; interactive: JupyterLab Ready or restarted).

    The reason says what is short: the scheduler or JupyterLab first, then the workers
    (terminating, lost, restarting, unschedulable, missing); the message names them.
    """
    if not ctx.established:
        return None
    parts: list[str] = []
    reason: str | None = None
    scheduler, lab = ctx.scheduler, ctx.jupyterlab
    if scheduler is not None and scheduler.phase == "Succeeded":
        reason = Reason.SCHEDULER_EXITED
        parts.append("the scheduler exited with code 0 (idle timeout)")
    elif scheduler is None or not scheduler.ready:
        reason = Reason.SCHEDULER_NOT_READY
        parts.append("the scheduler is not Ready")
    elif ctx.interactive and (lab is None or not lab.ready):
        reason = Reason.JUPYTERLAB_NOT_READY
        parts.append("JupyterLab is not Ready")
    if ctx.interactive:
        parts.append("staging done" if ctx.pilot_exit_code == 0 else "JupyterLab up")
    else:
        parts.append("pilot running")
    parts.append(ctx.counts)
    shortfall = _worker_shortfall(ctx)
    parts.extend(note for _, note in shortfall[:_NOTES_MAX])
    if len(shortfall) > _NOTES_MAX:
        parts.append(f"and {len(shortfall) - _NOTES_MAX} more worker shortfall(s)")
    if ctx.interactive and ctx.pilot is not None:
        # the stager pilot of a live session is optional: its problem is a note
        stager = problem(ctx.pilot, ctx.events)
        if stager is not None and stager[0] is not None:
            parts.append(stager[1])
    if reason is None and len(ctx.ready_workers) < ctx.workers_wanted:
        reason = next((r for r, _ in shortfall if r is not None), None)
    return Outcome(Phase.RUNNING, reason, "; ".join(parts))


def starting(ctx: Context) -> Outcome | None:
    """Not established yet: starting, or failed once the session's startup timeout has passed."""
    return _starting(ctx, ctx.session + ctx.hooks, f"starting; {ctx.counts}")


RULES: Final[tuple[Rule, ...]] = (
    nothing_of_the_session,
    batch_pilot_succeeded,
    pilot_failed,
    jupyterlab_shut_down,
    lifetime_reached_in_cluster,
    core_component_failed,
    release_being_deleted,
    orphaned,
    workers_never_ready,
    running,
    starting,
)
"""The rules of :func:`derive_session`, in the order they are tried; the first outcome wins."""


# --------------------------------------------------------------------------------------------
# helpers of the rules


def _core_failure(pod: PodView, component: str, established: bool) -> Outcome | None:
    failed_reason = Reason.SCHEDULER_FAILED if component == SCHEDULER else Reason.JUPYTERLAB_FAILED
    current, last = terminated(pod.main), terminated(pod.main, last=True)
    if pod.phase == "Failed":
        when = pod.failure_time()
        if not pod.failure_counts(when):
            return None
        ending = current or last
        oom = ending is not None and ending.reason == Reason.OOM_KILLED
        detail = describe(ending) if ending is not None else f"failed ({pod.reason or 'no reason given'})"
        if ending is not None and pod.reason is not None:
            detail += f" (pod reason {pod.reason})"
        message = f"{component} pod {pod.name} {detail}"
        return Outcome(Phase.FAILED, Reason.OOM_KILLED if oom else failed_reason, message, when)
    restarts = pod.restarts
    if not established or restarts < MAX_RESTARTS or is_running(pod.main):
        return None
    ending = current or last
    if ending is None or to_int(ending.exit_code) == 0:
        return None
    when = ending.finished_at
    if not pod.failure_counts(when):
        return None
    oom = ending.reason == Reason.OOM_KILLED
    message = f"{component} container in pod {pod.name} {describe(ending)} after {restarts} restarts"
    return Outcome(Phase.FAILED, Reason.OOM_KILLED if oom else failed_reason, message, when)


def _worker_shortfall(ctx: Context) -> list[tuple[str | None, str]]:
    """(reason or None, note) for every worker that is not Ready, and for missing worker pods."""
    found: list[tuple[str | None, str]] = []
    for pod in ctx.workers:
        if pod.ready and not pod.deleting:
            continue
        before = " (still Ready)" if pod.ready else " (it was Ready before)" if pod.was_ready else ""
        if pod.deleting:
            since = f" since {iso(pod.deletion_requested)}" if pod.deletion_requested else ""
            found.append((Reason.WORKER_TERMINATING, f"worker pod {pod.name} is terminating{since}{before}"))
        elif pod.phase in _GONE:
            why = f" ({pod.reason})" if pod.reason else ""
            detail = f": {pod.status_message}" if pod.status_message else ""
            found.append(
                (Reason.WORKER_LOST, f"worker pod {pod.name} is {str(pod.phase).lower()}{why}{detail}")
            )
        elif (issue := problem(pod, ctx.events)) is not None:
            found.append((issue[0], issue[1] + before))
        else:
            found.append((None, f"worker pod {pod.name} is not Ready{before}"))
    missing = ctx.workers_wanted - len(ctx.workers)
    if missing > 0:
        found.append((Reason.WORKERS_MISSING, f"{missing} of {ctx.workers_wanted} worker pod(s) missing"))
    return found


def _starting(ctx: Context, pods: Sequence[PodView], idle_message: str) -> Outcome:
    """Still starting, or failed if the session's startup timeout has passed."""
    problems = [p for p in (problem(pod, ctx.events) for pod in pods) if p is not None]
    specific = next((p for p in problems if p[0] is not None), None)
    stuck = next((p for p in problems if p[0] is None), None)
    if ctx.startup_passed:
        reason = specific[0] if specific is not None and specific[0] is not None else Reason.STARTUP_TIMEOUT
        detail = (specific or stuck or (None, idle_message))[1]
        return Outcome(
            Phase.FAILED,
            reason,
            f"not started within the startup timeout: {detail}",
            deadline=Deadline.STARTUP,
        )
    if specific is not None:
        return Outcome(Phase.STARTING, specific[0], specific[1])
    return Outcome(Phase.STARTING, None, stuck[1] if stuck is not None else idle_message)


# --------------------------------------------------------------------------------------------
# building the context, applying the rules


def build_context(
    release: str,
    namespace: str,
    pods: Iterable[Pod | PodView | PodRecord],
    *,
    now: datetime,
    startup_timeout: float | None = None,
    release_known: bool = True,
    events: Sequence[Mapping[str, Any]] | None = None,
    skew_tolerance: float = CLOCK_SKEW_TOLERANCE,
) -> Context:
    """Read the release's pods once and derive what every rule needs."""
    now = _aware(now)
    mine: list[PodView] = []
    for pod in pods:
        view = pod if type(pod) is PodView or isinstance(pod, PodView) else read_pod(pod)
        instance = view.labels.instance
        if instance is msgspec.UNSET or instance == release:
            mine.append(view)
    mine.sort(key=_IMPORTANCE)
    session_list: list[PodView] = []
    hook_list: list[PodView] = []
    worker_list: list[PodView] = []
    scheduler: PodView | None = None
    pilot: PodView | None = None
    jupyterlab: PodView | None = None
    submitted: datetime | None = None
    skew: float | None = None
    for view in mine:
        # the clock skew: kubelet times before their pod's creation, or any time after now
        if skew is None or view.skew_behind > skew:
            skew = view.skew_behind
        if view.latest_time is not None:
            ahead = (view.latest_time - now).total_seconds()
            if ahead > skew:
                skew = ahead
        component = view.component
        if component in SESSION_COMPONENTS or component in HOOK_COMPONENTS:
            created = view.created  # submitted: the earliest creation, the cleanup hook's aside
            if created is not None and component != CLEANUP and (submitted is None or created < submitted):
                submitted = created
        if component in SESSION_COMPONENTS:
            session_list.append(view)
            if component == WORKER:
                worker_list.append(view)
            elif component == SCHEDULER and scheduler is None:
                scheduler = view
            elif component == PILOT and pilot is None:
                pilot = view
            elif component == JUPYTERLAB and jupyterlab is None:
                jupyterlab = view
        elif component in HOOK_COMPONENTS:
            hook_list.append(view)
    session, hooks, workers = tuple(session_list), tuple(hook_list), tuple(worker_list)
    annotations = merged_annotations(session)
    labels = merged_labels(session + hooks)
    mode_label = labels.mode
    if mode_label in ("batch", "interactive"):
        mode: str | None = str(mode_label)
    elif session:
        mode = "interactive" if jupyterlab is not None else "batch"
    else:
        mode = None

    # a worker being deleted is on its way out (its endpoints are already removed): not counted
    ready_workers = tuple(v for v in workers if v.ready and v.deletion_timestamp is None)
    wanted = to_int(annotations.workers_wanted)
    pilot_main = pilot.main if pilot is not None else None
    pilot_ended = terminated(pilot_main)
    pilot_state = pilot_main.state if pilot_main is not None else None
    pilot_running = pilot_state.running if pilot_state is not None else None
    pilot_started = (pilot_running.started_at if pilot_running is not None else None) or (
        pilot_ended.started_at if pilot_ended is not None else None
    )
    if pilot_ended is not None:
        exit_code = to_int(pilot_ended.exit_code)
    else:
        exit_code = 0 if pilot is not None and pilot.phase == "Succeeded" else None
    if mode == "interactive":
        established = jupyterlab is not None and (jupyterlab.ready or jupyterlab.restarts > 0)
    else:
        established = pilot_started is not None
    if startup_timeout is None:
        startup_timeout = to_seconds(annotations.startup_seconds)
    return Context(
        release=release,
        namespace=namespace,
        now=now,
        skew_tolerance=skew_tolerance,
        release_known=release_known,
        events=events,
        session=session,
        hooks=hooks,
        scheduler=scheduler,
        pilot=pilot,
        jupyterlab=jupyterlab,
        workers=workers,
        labels=labels,
        annotations=annotations,
        mode=mode,
        startup_timeout=startup_timeout,
        submitted=submitted,
        pilot_started=pilot_started,
        pilot_exit_code=exit_code,
        established=established,
        ready_workers=ready_workers,
        workers_wanted=wanted if wanted is not None and wanted >= 0 else len(workers),
        clock_skew_seconds=None if skew is None else round(max(0.0, skew), 1),
    )


_IMPORTANCE: Final = attrgetter("rank", "name")


def _workers_ready_at(ctx: Context) -> datetime | None:
    """The moment the count of Ready workers reached the wanted number (None before, or none wanted)."""
    wanted, ready = ctx.workers_wanted, ctx.ready_workers
    if not 0 < wanted <= len(ready):
        return None
    times = [v.ready_since for v in ready]
    if None in times:
        return None
    return sorted(times)[wanted - 1]  # type: ignore[type-var]


def state_of(ctx: Context, outcome: Outcome) -> SessionState:
    """The :class:`SessionState` of an outcome, with the context's counts, addresses and timings."""
    note = skew_note(ctx.clock_skew_seconds, ctx.skew_tolerance)
    if note is None:
        message = clip(outcome.message)
    else:  # the skew note is never clipped away
        message = f"{clip(outcome.message, MESSAGE_MAX - len(note) - 2)}; {note}"
    annotations, labels = ctx.annotations, ctx.labels
    return SessionState(
        release=ctx.release,
        namespace=ctx.namespace,
        phase=outcome.phase,
        pandaid=to_int(labels.pandaid),
        mode=ctx.mode,
        reason=outcome.reason,
        message=message,
        pilot_exit_code=ctx.pilot_exit_code,
        workers_ready=len(ctx.ready_workers),
        workers_wanted=ctx.workers_wanted,
        scheduler_address=str_or_none(annotations.scheduler_address),
        dashboard_url=str_or_none(annotations.dashboard_url),
        jupyter_url=str_or_none(annotations.jupyter_url) if ctx.interactive else None,
        queue=str_or_none(labels.queue),
        harvester_worker_id=to_int(labels.worker_id),
        timings=Timings(
            submitted=ctx.submitted,
            scheduler_ready=ctx.scheduler.ready_since if ctx.scheduler is not None else None,
            workers_ready=_workers_ready_at(ctx),
            pilot_started=ctx.pilot_started,
            ended=outcome.ended,
        ),
        deadline=None if outcome.deadline is None else str(outcome.deadline),
        clock_skew_seconds=ctx.clock_skew_seconds,
    )


def derive_session(
    release: str,
    namespace: str,
    pods: Iterable[Pod | PodView | PodRecord],
    *,
    now: datetime,
    startup_timeout: float | None = None,
    release_known: bool = True,
    events: Sequence[Mapping[str, Any]] | None = None,
    skew_tolerance: float = CLOCK_SKEW_TOLERANCE,
) -> SessionState:
    """The state of one release from its pods: the first outcome of :data:`RULES`.

    ``startup_timeout`` (seconds) defaults to the pods' ``startup-seconds`` annotation; with
    neither, a session never fails for being slow to start. ``release_known`` says whether Helm
    still knows the release. ``events`` (Kubernetes Event dicts, optional) only refine a reason
    (``FailedMount``). ``now`` is passed in, never read from the clock, to keep this pure; it
    should be the API server's time. ``skew_tolerance`` (seconds) is added to every timeout.
    """
    ctx = build_context(
        release,
        namespace,
        pods,
        now=now,
        startup_timeout=startup_timeout,
        release_known=release_known,
        events=events,
        skew_tolerance=skew_tolerance,
    )
    for rule in RULES:
        outcome = rule(ctx)
        if outcome is not None:
            return state_of(ctx, outcome)
    # unreachable: `starting` always answers; kept so that a new rule order cannot return None
    return state_of(ctx, _starting(ctx, ctx.session + ctx.hooks, f"starting; {ctx.counts}"))
