"""The orchestrator's deadlines (lifetime, interactive lease, startup timeout), clock-skew tolerant.

Kubernetes enforces the lifetime itself (``activeDeadlineSeconds`` on every session pod); the
orchestrator is the second line for it and the only one for the lease and the startup timeout.
Every comparison here and in the rules goes through :func:`exceeded`: a limit counts as passed
only when it is exceeded by more than the clock-skew tolerance, so a few minutes of disagreement
between the nodes' clocks, the API server's and the caller's ``now`` never turn a healthy
session into a killed one. A timestamp lying in the future by more than the tolerance yields no
verdict at all (it is later than ``now``, so its limit cannot be exceeded), and a session whose
kubelet timestamps prove a skew beyond the tolerance gets no lease verdict: the lease is counted
from such timestamps. The skew is reported in the message instead.

The lifetime and the startup timeout are counted from ``submitted`` (creationTimestamps, the API
server's clock): with ``now`` taken from the API server too they need no node clock at all.
A ``now`` running ahead of the API server's clock by more than the tolerance cannot be told
apart from elapsed time from the pods alone: callers pass the API server's time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from orchestrator.session.pods import (
    Pod,
    PodView,
    annotations_of,
    aware,
    clip,
    session_annotations,
    to_seconds,
)
from orchestrator.session.vocabulary import (
    CLOCK_SKEW_TOLERANCE,
    Deadline,
    Phase,
    Reason,
    SessionState,
)

# What a deadline verdict does to a live session: the phase it ends in and the reason reported.
DEADLINE_OUTCOME: Final[dict[str, tuple[Phase, str]]] = {
    Reason.LIFETIME_EXCEEDED: (Phase.FAILED, Reason.DEADLINE_EXCEEDED),
    Reason.STARTUP_TIMEOUT: (Phase.FAILED, Reason.STARTUP_TIMEOUT),
    Reason.LEASE_EXPIRED: (Phase.FINISHED, Reason.LEASE_EXPIRED),
}
DEADLINE_REASONS: Final = frozenset(reason for _, reason in DEADLINE_OUTCOME.values())
# Which limit each verdict stands for (``SessionState.deadline``).
DEADLINE_KIND: Final[dict[str, Deadline]] = {
    Reason.LIFETIME_EXCEEDED: Deadline.LIFETIME,
    Reason.STARTUP_TIMEOUT: Deadline.STARTUP,
    Reason.LEASE_EXPIRED: Deadline.LEASE,
}


def exceeded(since: datetime | None, limit: float | None, now: datetime, tolerance: float) -> bool:
    """True when more than ``limit + tolerance`` seconds passed from ``since`` to ``now``.

    An unknown start or limit is never exceeded; neither is a start in the future.
    """
    if since is None or limit is None:
        return False
    return (now - since).total_seconds() > limit + max(tolerance, 0.0)


def skew_note(skew: float | None, tolerance: float) -> str | None:
    """The message part that reports a clock skew beyond the tolerance, or None."""
    if skew is None or skew <= tolerance:
        return None
    return (
        f"clock skew of {skew:.0f} s between the nodes, the API server and now exceeds the "
        f"{tolerance:.0f} s tolerance: no deadline verdict relies on the skewed timestamps"
    )


@dataclass(frozen=True)
class DeadlineCheck:
    """The verdict of :func:`check_deadlines` (a ``Reason`` value or None); ``note`` says why a
    limit that has passed gave no verdict (a clock skew beyond the tolerance)."""

    verdict: str | None = None
    note: str | None = None


def check_deadlines(
    state: SessionState,
    pods_or_annotations: Iterable[Pod | PodView] | Mapping[str, Any],
    now: datetime,
    *,
    skew_tolerance: float = CLOCK_SKEW_TOLERANCE,
) -> DeadlineCheck:
    """:func:`deadline_verdict` with the reason a verdict was held back (clock skew), if any."""
    if state.phase not in (Phase.STARTING, Phase.RUNNING):
        return DeadlineCheck()
    now = aware(now)
    if isinstance(pods_or_annotations, Mapping):
        annotations = annotations_of(pods_or_annotations)
    else:
        annotations = session_annotations(pods_or_annotations)
    lifetime = to_seconds(annotations.lifetime_seconds)
    lease = to_seconds(annotations.lease_seconds)
    startup = to_seconds(annotations.startup_seconds)
    submitted = state.timings.submitted
    note = skew_note(state.clock_skew_seconds, skew_tolerance)

    if exceeded(submitted, lifetime, now, skew_tolerance):
        return DeadlineCheck(Reason.LIFETIME_EXCEEDED)
    if state.mode == "interactive":
        # counted from kubelet timestamps (a node's clock): not when they are proven skewed
        since = state.timings.pilot_started or state.timings.scheduler_ready
        if exceeded(since, lease, now, skew_tolerance):
            if note is not None:
                return DeadlineCheck(None, f"lease passed but not enforced: {note}")
            return DeadlineCheck(Reason.LEASE_EXPIRED)
    if state.phase is Phase.STARTING and exceeded(submitted, startup, now, skew_tolerance):
        return DeadlineCheck(Reason.STARTUP_TIMEOUT)
    return DeadlineCheck()


def deadline_verdict(
    state: SessionState,
    pods_or_annotations: Iterable[Pod | PodView] | Mapping[str, Any],
    now: datetime,
    *,
    skew_tolerance: float = CLOCK_SKEW_TOLERANCE,
) -> str | None:
    """Why the orchestrator should kill a live session now, or None.

    ``LifetimeExceeded`` (now - submitted > lifetime), ``LeaseExpired`` (interactive: now -
    pilot_started, or scheduler_ready if the pilot has not started, > lease) or
    ``StartupTimeout`` (still starting after the startup timeout), in that order, each only
    when exceeded by more than ``skew_tolerance`` seconds. Only for ``starting``/``running``
    sessions: final ones are the sweeper's business, and the rules already turn a startup
    timeout into ``failed``, so ``StartupTimeout`` here covers sessions derived without a
    timeout. The limits come from the session pods' annotations (or a mapping of those
    annotations); a missing annotation disables its check.
    """
    return check_deadlines(state, pods_or_annotations, now, skew_tolerance=skew_tolerance).verdict


def apply_deadline(
    state: SessionState,
    pods: Sequence[Pod | PodView] | Mapping[str, Any],
    now: datetime,
    *,
    skew_tolerance: float = CLOCK_SKEW_TOLERANCE,
) -> SessionState:
    """A live session past its lifetime, lease or startup timeout is reported as ended (pure).

    The lifetime ends as failed/DeadlineExceeded (what Kubernetes' activeDeadlineSeconds reports),
    the interactive lease as finished/LeaseExpired (the pilot's own lease semantics), a startup
    that never finished as failed/StartupTimeout; ``deadline`` says which limit it was. The
    caller then kills the release. A verdict held back by clock skew is said in the message.
    """
    check = check_deadlines(state, pods, now, skew_tolerance=skew_tolerance)
    if check.verdict is None:
        if check.note is not None:
            return replace(
                state, message=clip(f"{state.message}; {check.note}" if state.message else check.note)
            )
        return state
    phase, reason = DEADLINE_OUTCOME[check.verdict]
    message = (
        f"{check.verdict}: ended by the orchestrator ({state.message})" if state.message else check.verdict
    )
    return replace(
        state, phase=phase, reason=reason, message=message, deadline=str(DEADLINE_KIND[check.verdict])
    )
