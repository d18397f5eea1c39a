"""The state rules of a session as dask and Kubernetes mean them: what ends a session (the release
deleted, the scheduler, the pilot or JupyterLab ending) and what is only a shortfall of workers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.session import (
    RULES,
    Deadline,
    Phase,
    Reason,
    derive_session,
    group_pods_by_release,
    read_pod,
)
from orchestrator.session import rules as rules_mod
from tests.unit.pod_builders import (
    REL,
    SKEW,
    STARTUP,
    batch,
    derive,
    fixture,
    interactive,
    pod,
    replace,
    running,
    terminated,
    ts,
    waiting,
    worker,
)

OLD = STARTUP * 10  # a session far older than its startup timeout


def unschedulable(since: float = 0) -> dict[str, Any]:
    return {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available.",
        "lastTransitionTime": ts(since),
    }


def pending_worker(i: int, created: float, **kwargs: Any) -> dict[str, Any]:
    """A worker pod that has never run (by default: Unschedulable)."""
    if "state" not in kwargs:
        kwargs["scheduled"] = kwargs.get("scheduled") or unschedulable(created)
        kwargs["state"] = {}
    kwargs.setdefault("phase", "Pending")
    made = worker(i, created=created, ready=False, **kwargs)
    if kwargs["state"] == {}:
        made["status"]["containerStatuses"] = []
    return made


def oom_back_off(i: int, *, ready_lost: float, mode: str = "batch") -> dict[str, Any]:
    """A worker that was Ready, was OOM-killed at ``ready_lost`` and is in restart back-off."""
    return worker(
        i,
        mode=mode,
        ready=False,
        unready_since=ready_lost,
        restarts=4,
        state=waiting("CrashLoopBackOff", "back-off 1m20s restarting failed container"),
        last_state=terminated(137, "OOMKilled", started=ready_lost - 30, finished=ready_lost),
    )


# ---------------------------------------------------------------------------------------------
# the order is the lifecycle


def test_the_rules_are_an_ordered_tuple_of_named_functions() -> None:
    names = [rule.__name__ for rule in RULES]
    assert names == [
        "nothing_of_the_session",
        "batch_pilot_succeeded",
        "pilot_failed",
        "jupyterlab_shut_down",
        "lifetime_reached_in_cluster",
        "core_component_failed",
        "release_being_deleted",
        "orphaned",
        "workers_never_ready",
        "running",
        "starting",
    ]
    assert all(rule.__doc__ for rule in RULES)


def test_each_pod_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(raw: Any) -> Any:
        calls.append(raw["metadata"]["name"])
        return read_pod(raw)

    monkeypatch.setattr(rules_mod, "read_pod", counting)
    pods = [*interactive(), pod("cleanup", created=55), oom_back_off(2, ready_lost=500)]
    derive(pods, now=OLD)
    assert sorted(calls) == sorted(p["metadata"]["name"] for p in pods)


def test_pods_read_beforehand_give_the_same_state() -> None:
    pods = [*batch(), pending_worker(2, created=OLD - 10)]
    views = [read_pod(p) for p in pods]
    assert derive(views, now=OLD) == derive(pods, now=OLD)


# ---------------------------------------------------------------------------------------------
# a worker being deleted is a shortfall; the core being deleted ends the session


@pytest.mark.parametrize("mode", ["batch", "interactive"])
def test_a_terminating_worker_is_a_shortfall(mode: str) -> None:
    pods = batch() if mode == "batch" else interactive()
    pods[2] = worker(1, mode=mode, ready=False, unready_since=595, deleting=590)
    state = derive(pods, now=600)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.WORKER_TERMINATING)
    assert (state.workers_ready, state.workers_wanted) == (1, 2)
    assert f"{REL}-worker-1 is terminating" in state.message
    assert state.deadline is None
    assert not state.final


def test_a_terminating_worker_still_ready_is_not_counted() -> None:
    pods = batch()
    pods[1] = worker(0, deleting=590)
    state = derive(pods, now=600)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.WORKER_TERMINATING)
    assert state.workers_ready == 1
    assert f"{REL}-worker-0 is terminating" in state.message
    assert "still Ready" in state.message


def test_recorded_node_drain_of_one_worker() -> None:
    ((release, pods),) = group_pods_by_release(fixture("worker-terminating.json")).items()
    state = derive_session(release, "dask-sessions", pods, now=datetime(2026, 11, 28, 10, 20, tzinfo=UTC))
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.WORKER_TERMINATING), state.message
    assert (state.workers_ready, state.workers_wanted) == (1, 2)
    assert "dask-1759473585-worker-1" in state.message


@pytest.mark.parametrize("component", ["scheduler", "pilot", "jupyterlab"])
def test_a_core_component_being_deleted_ends_the_session(component: str) -> None:
    pods = interactive()
    victim = pod(component, mode="interactive", deleting=590, state=running(25))
    state = derive(replace(pods, component, victim), now=600)
    assert (state.phase, state.reason) == (Phase.CANCELLED, Reason.DELETING)
    assert f"{component} pod {REL}-{component} is being deleted" in state.message


@pytest.mark.parametrize("mode", ["batch", "interactive"])
def test_the_cleanup_hook_ends_the_session(mode: str) -> None:
    pods = batch() if mode == "batch" else interactive()
    state = derive([*pods, pod("cleanup", mode=mode, created=590)], now=600)
    assert (state.phase, state.reason) == (Phase.CANCELLED, Reason.DELETING)
    assert "cleanup hook" in state.message


def test_a_whole_release_uninstalled_without_hooks_is_deleting() -> None:
    pods = [worker(0, deleting=590), worker(1, deleting=590), pod("scheduler", deleting=590)]
    pods.append(pod("pilot", deleting=590, state=running(25)))
    assert derive(pods, now=600).reason == Reason.DELETING


# ---------------------------------------------------------------------------------------------
# workers lost, missing, restarting, unschedulable: shortfalls


def test_an_evicted_worker_is_lost_not_the_end() -> None:
    pods = batch()
    pods[2] = worker(
        1, phase="Failed", reason="Evicted", message="The node was low on resource: memory.", state={}
    )
    state = derive(pods, now=OLD)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.WORKER_LOST)
    assert f"{REL}-worker-1 is failed (Evicted)" in state.message
    assert "low on resource" in state.message


def test_a_missing_worker_pod_is_a_shortfall() -> None:
    pods = [p for p in batch() if p["metadata"]["name"] != f"{REL}-worker-1"]
    state = derive(pods, now=OLD)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.WORKERS_MISSING)
    assert (state.workers_ready, state.workers_wanted) == (1, 2)
    assert "1 of 2 worker pod(s) missing" in state.message


@pytest.mark.parametrize(
    ("last", "reason"),
    [(terminated(137, "OOMKilled"), Reason.OOM_KILLED), (terminated(1), Reason.CRASH_LOOP_BACK_OFF)],
)
def test_a_worker_restarting_after_being_ready_never_fails_the_session(
    last: dict[str, Any], reason: str
) -> None:
    pods = batch()
    pods[1] = worker(
        0, ready=False, unready_since=OLD - 60, restarts=5, state=waiting("CrashLoopBackOff"), last_state=last
    )
    for now in (OLD, OLD * 100):
        state = derive(pods, now=now)
        assert (state.phase, state.reason) == (Phase.RUNNING, reason)
        assert state.deadline is None
        assert f"{REL}-worker-0" in state.message
        assert "it was Ready before" in state.message


def test_every_worker_restarting_after_being_ready_is_still_running() -> None:
    pods = replace(batch(), "worker", oom_back_off(0, ready_lost=OLD - 60))
    pods[2] = oom_back_off(1, ready_lost=OLD - 30)
    state = derive(pods, now=OLD * 3)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.OOM_KILLED)
    assert state.workers_ready == 0


def test_recorded_worker_oom_killed_in_back_off() -> None:
    ((release, pods),) = group_pods_by_release(fixture("worker-oomkilled-back-off.json")).items()
    state = derive_session(release, "dask-sessions", pods, now=datetime(2026, 11, 28, 10, 20, tzinfo=UTC))
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.OOM_KILLED), state.message
    assert (state.workers_ready, state.workers_wanted) == (1, 2)
    assert "dask-1759473585-worker-0" in state.message
    assert state.deadline is None


def test_a_new_unschedulable_worker_in_an_old_session_is_running() -> None:
    # the autoscaler adds a node: the worker's own age counts, not the session's
    pods = batch()
    pods[2] = pending_worker(1, created=OLD - 60)
    state = derive(pods, now=OLD)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.UNSCHEDULABLE)
    assert "Insufficient cpu" in state.message
    assert f"{REL}-worker-1" in state.message


def test_the_only_worker_new_and_unschedulable_is_running() -> None:
    pods = [p for p in batch() if p["metadata"]["name"] != f"{REL}-worker-1"]
    pods = replace(pods, "worker", pending_worker(0, created=OLD - 60, wanted=1))
    state = derive(pods, now=OLD)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.UNSCHEDULABLE)
    assert state.deadline is None


def test_batch_pilot_exit_decides_whatever_the_workers() -> None:
    pods = batch(terminated(0, finished=900), pilot_phase="Succeeded")
    pods[1] = worker(0, deleting=800)
    pods[2] = worker(1, phase="Failed", reason="Evicted", state={})
    state = derive(pods, now=1000)
    assert (state.phase, state.pilot_exit_code) == (Phase.FINISHED, 0)


# ---------------------------------------------------------------------------------------------
# never-Ready workers past their own startup timeout


def test_no_worker_ever_ready_past_each_own_timeout_fails_with_the_specific_reason() -> None:
    pods = batch()
    pods[1] = pending_worker(0, created=5)
    pods[2] = pending_worker(1, created=5)
    state = derive(pods, now=5 + STARTUP + SKEW + 1)
    assert (state.phase, state.reason) == (Phase.FAILED, Reason.UNSCHEDULABLE)
    assert state.deadline == Deadline.STARTUP
    assert "no worker became Ready within the startup timeout" in state.message


def test_no_worker_ever_ready_without_a_specific_problem_is_startup_timeout() -> None:
    pods = batch()
    pods[1] = worker(0, ready=False)
    pods[2] = worker(1, ready=False)
    state = derive(pods, now=STARTUP + SKEW + 1)
    assert (state.phase, state.reason, state.deadline) == (Phase.FAILED, Reason.STARTUP_TIMEOUT, "startup")


def test_no_worker_ever_ready_but_one_still_within_its_timeout_is_running() -> None:
    pods = batch()
    pods[1] = pending_worker(0, created=5)
    pods[2] = pending_worker(1, created=OLD - 60)  # recreated recently
    state = derive(pods, now=OLD)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.UNSCHEDULABLE)


def test_no_worker_ready_but_one_was_ready_before_is_running() -> None:
    pods = batch()
    pods[1] = pending_worker(0, created=5, state=waiting("ImagePullBackOff"))
    pods[2] = oom_back_off(1, ready_lost=OLD - 60)
    state = derive(pods, now=OLD)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.IMAGE_PULL_BACK_OFF)
    assert state.deadline is None


def test_no_worker_ready_and_one_missing_is_a_shortfall() -> None:
    # the missing worker may have run: the session is not judged by the startup timeout
    pods = [p for p in batch() if p["metadata"]["name"] != f"{REL}-worker-1"]
    pods = replace(pods, "worker", pending_worker(0, created=5, state=waiting("ErrImagePull")))
    state = derive(pods, now=OLD)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.ERR_IMAGE_PULL)


def test_before_establishment_the_session_startup_timeout_rules() -> None:
    pilot = pod("pilot", phase="Pending", state=waiting("PodInitializing"))
    pods = [pod("scheduler"), pending_worker(0, created=0), pending_worker(1, created=0), pilot]
    assert derive(pods, now=STARTUP).phase == Phase.STARTING
    state = derive(pods, now=STARTUP + SKEW + 1)
    assert (state.phase, state.reason, state.deadline) == (Phase.FAILED, Reason.UNSCHEDULABLE, "startup")


def test_many_short_workers_are_named_then_counted() -> None:
    wanted = 40
    pods = [pod("scheduler", wanted=wanted), pod("pilot", wanted=wanted, state=running(25))]
    pods += [worker(i, wanted=wanted, phase="Failed", reason="Evicted", state={}) for i in range(wanted)]
    state = derive(pods, now=OLD)
    assert (state.phase, state.reason, state.workers_ready) == (Phase.RUNNING, Reason.WORKER_LOST, 0)
    assert f"{REL}-worker-0 is failed" in state.message
    assert f"and {wanted - 3} more worker shortfall(s)" in state.message
    assert len(state.message) <= 400
