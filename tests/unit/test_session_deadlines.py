"""Deadlines with a clock-skew tolerance: no verdict unless a limit is exceeded by more than the
tolerance, none from timestamps that prove a larger skew; and `overdue` names every session a
deadline ended, whatever the reason it reports."""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from datetime import datetime
from typing import Any

import pytest

from orchestrator.helm import HelmReleaseInfo
from orchestrator.service import SessionService, Settings
from orchestrator.session import (
    CLOCK_SKEW_TOLERANCE,
    Deadline,
    Phase,
    Reason,
    SessionState,
    Timings,
    apply_deadline,
    check_deadlines,
    deadline_verdict,
)
from tests.doubles import FakeHelm, FakeKube
from tests.unit.pod_builders import (
    LEASE,
    LIFETIME,
    NS,
    REL,
    SKEW,
    STARTUP,
    at,
    batch,
    derive,
    interactive,
    pod,
    running,
    terminated,
    ts,
    waiting,
    worker,
)

TEN_MINUTES = 600.0
KUBELET_KEYS = frozenset({"startedAt", "finishedAt", "lastTransitionTime", "startTime"})
ANNOTATIONS = {
    "dask-panda-session/lifetime-seconds": str(LIFETIME),
    "dask-panda-session/lease-seconds": str(LEASE),
    "dask-panda-session/startup-seconds": str(STARTUP),
}


def _stamps(node: Any, keys: frozenset[str]) -> Iterator[tuple[MutableMapping[str, Any], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, str):
                yield node, key
            else:
                yield from _stamps(value, keys)
    elif isinstance(node, list):
        for item in node:
            yield from _stamps(item, keys)


def shifted(pods: list[dict[str, Any]], seconds: float, *, creation: bool = False) -> list[dict[str, Any]]:
    """The pods with every kubelet timestamp (and, with ``creation``, every API server one)
    moved by ``seconds``: a node clock (or the whole cluster) off by that much."""
    out: list[dict[str, Any]] = json.loads(json.dumps(pods))
    base = at(0).timestamp()
    keys = KUBELET_KEYS | ({"creationTimestamp", "deletionTimestamp"} if creation else frozenset())
    for p in out:
        for node, key in _stamps(p, keys):
            moved = datetime.fromisoformat(node[key]).timestamp() - base + seconds
            node[key] = ts(moved)
    return out


def slow_start() -> list[dict[str, Any]]:
    """A healthy session slow to start: the scheduler still pulls its (big) image."""
    scheduler = pod("scheduler", phase="Pending", state=waiting("ContainerCreating"))
    pilot = pod("pilot", phase="Pending", state=waiting("PodInitializing"))
    return [scheduler, worker(0, phase="Pending", ready=False), pilot]


def image_pull() -> list[dict[str, Any]]:
    scheduler = pod("scheduler", phase="Pending", state=waiting("ImagePullBackOff"))
    return [scheduler, pod("pilot", phase="Pending", state=waiting("PodInitializing"))]


def live(phase: Phase = Phase.RUNNING, mode: str = "batch", **timings: datetime | None) -> SessionState:
    base: dict[str, datetime | None] = {
        "submitted": at(0),
        "scheduler_ready": at(20),
        "pilot_started": at(25),
    }
    base.update(timings)
    return SessionState(release=REL, namespace=NS, phase=phase, mode=mode, timings=Timings(**base))


# ---------------------------------------------------------------------------------------------
# the tolerance at the boundary


def test_the_tolerance_is_two_minutes() -> None:
    assert CLOCK_SKEW_TOLERANCE == 120.0


@pytest.mark.parametrize(
    ("now", "phase"), [(STARTUP + SKEW, Phase.STARTING), (STARTUP + SKEW + 1, Phase.FAILED)]
)
def test_session_startup_timeout_counts_beyond_the_tolerance(now: float, phase: Phase) -> None:
    state = derive(image_pull(), now=now)
    assert (state.phase, state.reason) == (phase, Reason.IMAGE_PULL_BACK_OFF)


@pytest.mark.parametrize(("now", "phase"), [(STARTUP, Phase.STARTING), (STARTUP + 1, Phase.FAILED)])
def test_the_tolerance_is_a_keyword(now: float, phase: Phase) -> None:
    assert derive(image_pull(), now=now, skew_tolerance=0).phase == phase
    assert derive(image_pull(), now=now + 50, skew_tolerance=50).phase == phase


@pytest.mark.parametrize(
    ("now", "phase"), [(100 + STARTUP + SKEW, Phase.RUNNING), (100 + STARTUP + SKEW + 1, Phase.FAILED)]
)
def test_worker_startup_timeout_counts_from_its_creation_beyond_the_tolerance(
    now: float, phase: Phase
) -> None:
    pods = batch()
    pods[1] = worker(0, created=100, ready=False)
    pods[2] = worker(1, created=100, ready=False)
    assert derive(pods, now=now).phase == phase


@pytest.mark.parametrize(
    ("state", "inside", "verdict"),
    [
        (live(), LIFETIME + SKEW, Reason.LIFETIME_EXCEEDED),
        (live(mode="interactive"), 25 + LEASE + SKEW, Reason.LEASE_EXPIRED),
        (
            live(Phase.STARTING, pilot_started=None, scheduler_ready=None),
            STARTUP + SKEW,
            Reason.STARTUP_TIMEOUT,
        ),
    ],
)
def test_deadline_verdicts_need_more_than_the_tolerance(
    state: SessionState, inside: float, verdict: str
) -> None:
    assert deadline_verdict(state, ANNOTATIONS, at(inside)) is None
    assert deadline_verdict(state, ANNOTATIONS, at(inside + 1)) == verdict
    assert deadline_verdict(state, ANNOTATIONS, at(inside - SKEW + 1), skew_tolerance=0) == verdict


# ---------------------------------------------------------------------------------------------
# clock skew: never a false failure, never a kill on skewed timestamps


@pytest.mark.parametrize("offset", [-TEN_MINUTES, TEN_MINUTES])
@pytest.mark.parametrize("real_age", [60.0, STARTUP - 10.0])
def test_node_clocks_ten_minutes_off_never_fail_a_slow_start(offset: float, real_age: float) -> None:
    pods = shifted(slow_start(), offset)
    state = apply_deadline(derive(pods, now=real_age), pods, at(real_age))
    assert (state.phase, state.reason, state.deadline) == (Phase.STARTING, None, None)
    assert state.clock_skew_seconds is not None
    assert state.clock_skew_seconds >= TEN_MINUTES - real_age - 30
    assert "clock skew" in state.message


@pytest.mark.parametrize("real_age", [60.0, STARTUP - 10.0])
def test_now_ten_minutes_behind_the_cluster_never_fails_a_start(real_age: float) -> None:
    for pods in (slow_start(), image_pull()):
        now = real_age - TEN_MINUTES
        state = apply_deadline(derive(pods, now=now), pods, at(now))
        assert state.phase is Phase.STARTING
        assert state.deadline is None
        assert "clock skew" in state.message


@pytest.mark.parametrize("offset", [-TEN_MINUTES, TEN_MINUTES])
def test_now_ten_minutes_off_keeps_a_running_session_running(offset: float) -> None:
    for pods in (batch(), interactive()):
        now = 900 + offset
        state = apply_deadline(derive(pods, now=now), pods, at(now))
        assert (state.phase, state.reason, state.deadline) == (Phase.RUNNING, None, None)


def test_established_workers_created_in_the_future_are_not_timed_out() -> None:
    pods = batch()
    pods[1] = worker(0, created=2000, ready=False)
    pods[2] = worker(1, created=2000, ready=False)
    state = derive(pods, now=2000 - TEN_MINUTES + STARTUP)
    assert state.phase is Phase.RUNNING
    assert state.deadline is None


def test_a_node_clock_behind_never_ends_the_lease_early() -> None:
    # pilot really started at 25: the lease has 100 s to go, but the node's clock says it
    # started ten minutes before its own pod was created
    real_now = 25 + LEASE - 100
    pods = shifted(interactive(), -TEN_MINUTES)
    state = derive(pods, now=real_now)
    assert state.clock_skew_seconds is not None and state.clock_skew_seconds > SKEW
    check = check_deadlines(state, pods, at(real_now))
    assert check.verdict is None
    assert check.note is not None and "lease passed but not enforced" in check.note
    ended = apply_deadline(state, pods, at(real_now))
    assert (ended.phase, ended.deadline) == (Phase.RUNNING, None)
    assert "lease passed but not enforced" in ended.message


@pytest.mark.parametrize(("behind", "verdict"), [(SKEW - 5, Reason.LEASE_EXPIRED), (SKEW + 30, None)])
def test_kubelet_skew_just_inside_the_tolerance_still_ends_the_lease(
    behind: float, verdict: str | None
) -> None:
    pods = shifted(interactive(), -behind)
    now = 25 + LEASE + SKEW + 1
    assert deadline_verdict(derive(pods, now=now), pods, at(now)) == verdict


def test_a_lease_start_in_the_future_gives_no_verdict() -> None:
    state = live(mode="interactive", pilot_started=at(LEASE * 3))
    assert deadline_verdict(state, ANNOTATIONS, at(LEASE * 2)) is None


def test_the_lifetime_counts_on_the_api_server_clock_whatever_the_nodes_say() -> None:
    pods = shifted(batch(), -TEN_MINUTES)  # node clocks behind: creation times are the API's
    now = LIFETIME + SKEW + 1
    state = apply_deadline(derive(pods, now=now), pods, at(now))
    assert (state.phase, state.reason, state.deadline) == (Phase.FAILED, Reason.DEADLINE_EXCEEDED, "lifetime")


def test_to_dict_has_the_deadline_and_the_skew() -> None:
    pods = shifted(batch(), TEN_MINUTES)
    data = derive(pods, now=60).to_dict()
    assert data["deadline"] is None
    assert data["clock_skew_seconds"] == pytest.approx(TEN_MINUTES - 60 + 31, abs=30)
    assert json.loads(json.dumps(data)) == data


# ---------------------------------------------------------------------------------------------
# which deadline ended a session; overdue and enforce act on all of them


@pytest.mark.parametrize(
    ("pods", "now", "reason", "deadline"),
    [
        (image_pull(), STARTUP + SKEW + 1, Reason.IMAGE_PULL_BACK_OFF, Deadline.STARTUP),
        (slow_start(), STARTUP + SKEW + 1, Reason.STARTUP_TIMEOUT, Deadline.STARTUP),
        (batch(), LIFETIME + SKEW + 1, Reason.DEADLINE_EXCEEDED, Deadline.LIFETIME),
        (interactive(), 25 + LEASE + SKEW + 1, Reason.LEASE_EXPIRED, Deadline.LEASE),
    ],
)
def test_the_state_says_which_deadline_ended_it(
    pods: list[dict[str, Any]], now: float, reason: str, deadline: str
) -> None:
    state = apply_deadline(derive(pods, now=now), pods, at(now))
    assert (state.reason, state.deadline) == (reason, deadline)
    assert state.final


def test_cluster_deadline_exceeded_is_the_lifetime() -> None:
    pods = batch(terminated(137, finished=LIFETIME), pilot_phase="Failed", reason="DeadlineExceeded")
    state = derive(pods, now=LIFETIME + 5)
    assert (state.reason, state.deadline) == (Reason.DEADLINE_EXCEEDED, "lifetime")


def test_ends_not_caused_by_a_deadline_have_none() -> None:
    finished = derive(batch(terminated(0, finished=400), pilot_phase="Succeeded"), now=500)
    failed = derive(batch(terminated(3, finished=400), pilot_phase="Failed"), now=500)
    deleting = derive([*batch(), pod("cleanup", created=450)], now=500)
    assert [s.deadline for s in (finished, failed, deleting)] == [None, None, None]


def _service() -> tuple[SessionService, FakeHelm, FakeKube]:
    helm, kube = FakeHelm(), FakeKube()
    svc = SessionService(
        Settings(namespace=NS), helm=helm, kube=kube, clock=lambda: at(0), sleep=lambda _: None
    )
    return svc, helm, kube


def test_overdue_names_every_session_a_deadline_ended_whatever_its_reason() -> None:
    svc, _, _ = _service()
    now = STARTUP + SKEW + 1
    states = {
        "pull": derive(image_pull(), now=now),
        "slow": derive(slow_start(), now=now),
        "no-worker": derive(
            [
                pod("scheduler"),
                worker(0, phase="Pending", ready=False, state=waiting("ErrImagePull")),
                worker(1, phase="Pending", ready=False, state=waiting("ErrImagePull")),
                pod("pilot", state=running(25)),
            ],
            now=now,
        ),
        "running": derive(batch(), now=now),
        "finished": derive(batch(terminated(0, finished=400), pilot_phase="Succeeded"), now=now),
        "exit-code": derive(batch(terminated(3, finished=400), pilot_phase="Failed"), now=now),
        "legacy": SessionState("legacy", NS, Phase.FAILED, reason=Reason.STARTUP_TIMEOUT),
    }
    assert svc.overdue(states) == {
        "pull": Reason.IMAGE_PULL_BACK_OFF,
        "slow": Reason.STARTUP_TIMEOUT,
        "no-worker": Reason.ERR_IMAGE_PULL,
        "legacy": Reason.STARTUP_TIMEOUT,
    }


def test_enforce_ends_a_session_failed_at_its_startup_under_a_specific_reason() -> None:
    svc, helm, kube = _service()
    for p in image_pull():
        kube.put(NS, "Pod", p)
    helm.releases[(NS, REL)] = HelmReleaseInfo(REL, NS, 1, "deployed", None)
    ended = svc.enforce_deadlines(now=at(STARTUP + SKEW + 1))
    assert ended == {REL: Reason.IMAGE_PULL_BACK_OFF}
    assert (NS, REL) not in helm.releases


def test_enforce_leaves_a_slow_start_alone_within_the_tolerance() -> None:
    svc, helm, kube = _service()
    for p in image_pull():
        kube.put(NS, "Pod", p)
    helm.releases[(NS, REL)] = HelmReleaseInfo(REL, NS, 1, "deployed", None)
    assert svc.enforce_deadlines(now=at(STARTUP + SKEW)) == {}
    assert (NS, REL) in helm.releases


def test_the_skew_note_survives_a_long_message() -> None:
    long_reason = "x" * 1000
    pods = shifted(
        [
            pod("scheduler", phase="Pending", state=waiting("ImagePullBackOff", long_reason)),
            *slow_start()[1:],
        ],
        TEN_MINUTES,
    )
    state = derive(pods, now=60)
    assert state.message.endswith("no deadline verdict relies on the skewed timestamps")
    assert "ImagePullBackOff" in state.message
    assert len(state.message) <= 400
