"""The pods of one release -> :class:`SessionState`. PURE: no API calls, no clock, no I/O.

Why pure: the monitor lists every pod of a namespace ONCE per cycle (plain dicts in the
Kubernetes API JSON shape, camelCase), groups them with :func:`group_pods_by_release` and derives
every session from memory with :func:`derive_session`. Being a function of (pods, events, now),
every rule is tested from recorded pod objects, without a cluster.

Modules: :mod:`~orchestrator.session.vocabulary` (label and annotation keys, components, Phase,
Reason, Timings, SessionState), :mod:`~orchestrator.session.pods` (the readers: each pod, a
decoded record or a dict, is read once into a frozen ``PodView``), :mod:`~orchestrator.session.rules` (the ordered tuple
``RULES`` and :func:`derive_session`), :mod:`~orchestrator.session.deadlines` (the orchestrator's
lifetime / lease / startup limits and the clock-skew tolerance), :mod:`~orchestrator.session.services`
(the JupyterLab Services of a namespace -> the external JupyterLab URL and the dashboard behind it).

Chart conventions relied on: every object carries ``app.kubernetes.io/name=dask-panda-session``
and ``app.kubernetes.io/instance=<release>``; ``app.kubernetes.io/component`` is one of
scheduler, worker, pilot, jupyterlab (session pods), prepare, cleanup (hook Job pods) or test;
labels ``dask-panda-session/{pandaid,mode,queue,worker-id}``; the annotations named ``ANN_*``;
containers named like their component; the pilot's and the scheduler's restartPolicy is Never,
the others' OnFailure; ``activeDeadlineSeconds`` = lifetime on every session pod.

What ends a session (what dask and Kubernetes mean): the release being deleted, or the scheduler,
the pilot or JupyterLab ending or being deleted; the pilot's exit decides a batch session. A
worker terminating (drain, spot preemption, eviction, ``kubectl delete pod``), lost, restarting
or unschedulable after the session is established is a SHORTFALL: dask goes on with fewer
workers, so the session stays ``running`` and the reason, the counts and the message say what
is short.

The rules (``rules.RULES``), in the order they are tried; the first that matches wins:

1. ``nothing_of_the_session``: no session pods. Release not known -> ``cancelled``/
   ``ReleaseMissing``; otherwise ``starting`` (the pre-install hook may still run), with hook
   problems (a failed prepare hook, an image pull error) reported as in rule 11.
2. ``batch_pilot_succeeded``: batch, the pilot exited 0 (or its pod Succeeded) -> ``finished``.
3. ``pilot_failed``: ``failed`` with reason ``DeadlineExceeded`` (pod killed by
   ``activeDeadlineSeconds``), ``OOMKilled``, the pod's own reason (e.g. ``Evicted``),
   ``InitContainerFailed`` or ``PilotExitCode``, with ``pilot_exit_code`` set. In interactive
   mode the pilot is a stager: exit 0 means staging is done and the session goes on.
4. ``jupyterlab_shut_down``: interactive, the jupyterlab pod Succeeded (user shut the server
   down, idle culling) -> ``finished``.
5. ``lifetime_reached_in_cluster``: any session pod Failed with reason ``DeadlineExceeded`` ->
   ``failed``/``DeadlineExceeded``: activeDeadlineSeconds is the lifetime, the same for all.
6. ``core_component_failed``: the scheduler (or, interactive, jupyterlab) pod Failed (a bare
   pod: it will not come back), or -- once established -- its container restarted at least
   ``MAX_RESTARTS`` times and is down again -> ``failed`` with ``SchedulerFailed`` /
   ``JupyterLabFailed``, or ``OOMKilled``. A scheduler that exited 0 (its idle timeout) is not a
   failure by itself: the pilot (batch) or the user (interactive) decides (``SchedulerExited``).
7. ``release_being_deleted``: the pre-delete cleanup hook pod exists, or the scheduler, the pilot
   or JupyterLab has a ``deletionTimestamp`` -> ``cancelled``/``Deleting``. A worker's
   deletionTimestamp is NOT a deletion of the session (rule 10). Failures that happen *because*
   of a deletion (containers killed after it was requested) do not count for rules 3-6;
   failures from before it do. These come first because a pilot or scheduler failure explains
   more than the deletion that followed it.
8. ``orphaned``: pods remain but the release is not known -> ``cancelled``/``ReleaseMissing``.
9. ``workers_never_ready``: established, yet NO worker is Ready, every wanted worker pod exists,
   none was ever Ready (``PodView.was_ready``), none is being deleted or gone, and each one's
   startup timeout has passed, measured from THAT worker's creation -> ``failed`` with the
   workers' specific problem (``ImagePullBackOff``, ``Unschedulable``, ...) or
   ``StartupTimeout``: the session will never compute. Any other shortfall goes to rule 10.
10. ``running``: established (batch: the pilot container started; interactive: jupyterlab Ready
    or restarted, i.e. it was up). Reason None when the scheduler (and jupyterlab) are Ready
    and the wanted workers are; else ``SchedulerExited``, ``SchedulerNotReady``,
    ``JupyterLabNotReady``, then the first worker shortfall: ``WorkerTerminating``
    (deletionTimestamp), ``WorkerLost`` (Failed/Succeeded), the worker's specific problem
    (``CrashLoopBackOff``, ``OOMKilled``, ``Unschedulable``, ``ImagePullBackOff``, ...) or
    ``WorkersMissing`` (fewer worker pods than wanted). The message names every short worker.
    A worker that was up and is down again is never failed by the startup timeout.
11. ``starting``: not established. Problems found on the pods, most important component first:
    waiting reasons ImagePullBackOff, ErrImagePull, InvalidImageName,
    CreateContainerConfigError, CreateContainerError, CrashLoopBackOff (``OOMKilled`` if the
    crashing container was OOM-killed); PodScheduled=False/``Unschedulable``; a container stuck
    in ContainerCreating, ``FailedMount`` when an event says so. Before the session's startup
    timeout (measured from ``submitted``) the phase stays ``starting`` with that reason; after
    it -> ``failed`` with that reason, or ``StartupTimeout``.

``SessionState.deadline`` says which limit ended a session (``startup`` for rules 1, 9 and 11
past their timeout, ``lifetime`` for ``DeadlineExceeded``, ``lease`` for the interactive lease):
whatever its reason, such a session is to be uninstalled.

Time: every timeout comparison adds ``CLOCK_SKEW_TOLERANCE`` (120 s; the ``skew_tolerance``
keyword overrides it): a verdict needs the limit exceeded by more than the tolerance. ``now``
should be the API server's time; creationTimestamps are on that clock, kubelet timestamps
(startedAt, finishedAt, condition transitions) on the nodes' clocks. A timestamp further than
the tolerance in the future, or a kubelet timestamp further than the tolerance before its pod's
creation, proves a larger skew: ``clock_skew_seconds`` reports it, the message says it, and no
verdict relies on the skewed timestamps.

Timings: ``submitted`` = earliest creationTimestamp (session and prepare-hook pods);
``scheduler_ready`` = the scheduler's Ready condition lastTransitionTime (while Ready);
``workers_ready`` = when the last of the wanted workers became Ready (None until all wanted are
Ready, and when none are wanted); ``pilot_started`` = the pilot container's startedAt;
``ended`` = the pilot's finishedAt (batch), jupyterlab's finishedAt (interactive), or for a
failure the failing container's finishedAt if any.
"""

from __future__ import annotations

from orchestrator.session.deadlines import (
    DEADLINE_KIND,
    DEADLINE_OUTCOME,
    DEADLINE_REASONS,
    DeadlineCheck,
    apply_deadline,
    check_deadlines,
    deadline_verdict,
    exceeded,
)
from orchestrator.session.pods import Pod, PodView, group_pods_by_release, read_pod
from orchestrator.session.rules import RULES, Context, Outcome, build_context, derive_session
from orchestrator.session.services import (
    JUPYTERLAB_SERVICE_SELECTOR,
    external_jupyter_urls,
    is_in_cluster_url,
    proxied_dashboard_url,
    with_external_urls,
)
from orchestrator.session.vocabulary import (
    ANN_DASHBOARD_URL,
    ANN_JUPYTER_URL,
    ANN_LEASE_SECONDS,
    ANN_LIFETIME_SECONDS,
    ANN_SCHEDULER_ADDRESS,
    ANN_STARTUP_SECONDS,
    ANN_WORKERS_WANTED,
    APP_NAME,
    CLEANUP,
    CLOCK_SKEW_TOLERANCE,
    COMPONENT_LABEL,
    CORE_COMPONENTS,
    FINAL_PHASES,
    INSTANCE_LABEL,
    JUPYTERLAB,
    MAX_RESTARTS,
    MODE_LABEL,
    NAME_LABEL,
    PANDAID_LABEL,
    PILOT,
    PREPARE,
    QUEUE_LABEL,
    SCHEDULER,
    SESSION_COMPONENTS,
    WORKER,
    WORKER_ID_LABEL,
    Deadline,
    Phase,
    Reason,
    SessionState,
    Timings,
)

__all__ = [
    "ANN_DASHBOARD_URL",
    "ANN_JUPYTER_URL",
    "ANN_LEASE_SECONDS",
    "ANN_LIFETIME_SECONDS",
    "ANN_SCHEDULER_ADDRESS",
    "ANN_STARTUP_SECONDS",
    "ANN_WORKERS_WANTED",
    "APP_NAME",
    "CLEANUP",
    "CLOCK_SKEW_TOLERANCE",
    "COMPONENT_LABEL",
    "CORE_COMPONENTS",
    "DEADLINE_KIND",
    "DEADLINE_OUTCOME",
    "DEADLINE_REASONS",
    "FINAL_PHASES",
    "INSTANCE_LABEL",
    "JUPYTERLAB",
    "JUPYTERLAB_SERVICE_SELECTOR",
    "MAX_RESTARTS",
    "MODE_LABEL",
    "NAME_LABEL",
    "PANDAID_LABEL",
    "PILOT",
    "PREPARE",
    "QUEUE_LABEL",
    "RULES",
    "SCHEDULER",
    "SESSION_COMPONENTS",
    "WORKER",
    "WORKER_ID_LABEL",
    "Context",
    "Deadline",
    "DeadlineCheck",
    "Outcome",
    "Phase",
    "Pod",
    "PodView",
    "Reason",
    "SessionState",
    "Timings",
    "apply_deadline",
    "build_context",
    "check_deadlines",
    "deadline_verdict",
    "derive_session",
    "exceeded",
    "external_jupyter_urls",
    "group_pods_by_release",
    "is_in_cluster_url",
    "proxied_dashboard_url",
    "read_pod",
    "with_external_urls",
]
