"""Unit tests of orchestrator.session: every phase and reason from recorded pod objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.session import (
    MAX_RESTARTS,
    Phase,
    Reason,
    SessionState,
    Timings,
    deadline_verdict,
    derive_session,
    group_pods_by_release,
)
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

# ---------------------------------------------------------------------------------------------
# rule 1: nothing of the session


def test_no_pods_and_release_unknown_is_cancelled() -> None:
    state = derive([], release_known=False)
    assert (state.phase, state.reason) == (Phase.CANCELLED, Reason.RELEASE_MISSING)
    assert state.pandaid is None
    assert state.mode is None


def test_no_pods_but_release_known_is_starting() -> None:
    state = derive([])
    assert (state.phase, state.reason) == (Phase.STARTING, None)
    assert state.timings == Timings()


def test_only_prepare_hook_running_is_starting() -> None:
    hook = pod("prepare", name=f"{REL}-prepare-x1", created=-5)
    state = derive([hook], now=10)
    assert (state.phase, state.reason) == (Phase.STARTING, None)
    assert state.timings.submitted == at(-5)


@pytest.mark.parametrize(("now", "phase"), [(60, Phase.STARTING), (STARTUP + SKEW + 1, Phase.FAILED)])
def test_failed_prepare_hook_explains_the_startup(now: float, phase: Phase) -> None:
    hook = pod("prepare", phase="Failed", state=terminated(2, finished=8))
    state = derive([hook], now=now, startup_timeout=STARTUP)
    assert (state.phase, state.reason) == (phase, Reason.HOOK_FAILED)
    assert "exited with code 2" in state.message


def test_only_hook_pods_and_release_unknown_is_cancelled() -> None:
    state = derive([pod("cleanup")], release_known=False)
    assert (state.phase, state.reason) == (Phase.CANCELLED, Reason.RELEASE_MISSING)
    assert "hook pod" in state.message


# ---------------------------------------------------------------------------------------------
# running


def test_batch_running_happy() -> None:
    state = derive(batch())
    assert (state.phase, state.reason) == (Phase.RUNNING, None)
    assert (state.workers_ready, state.workers_wanted) == (2, 2)
    assert (state.pandaid, state.mode, state.queue, state.harvester_worker_id) == (
        42,
        "batch",
        "GOOGLE_DASK",
        7,
    )
    assert state.scheduler_address == f"tcp://{REL}-scheduler.{NS}.svc.cluster.local:8786"
    assert state.dashboard_url is not None
    assert state.jupyter_url is None
    assert state.pilot_exit_code is None
    assert state.timings == Timings(
        submitted=at(0), scheduler_ready=at(20), workers_ready=at(31), pilot_started=at(25), ended=None
    )


def test_a_worker_that_cannot_start_is_reported_while_running() -> None:
    pods = batch()
    pods[2] = worker(1, phase="Pending", state=waiting("ImagePullBackOff", "Back-off pulling image"))
    state = derive(pods, now=STARTUP - 10)
    assert (state.phase, state.reason) == (Phase.RUNNING, "ImagePullBackOff")
    assert (state.workers_ready, state.workers_wanted) == (1, 2)
    assert state.timings.workers_ready is None
    assert "1/2 workers ready" in state.message
    assert "ImagePullBackOff" in state.message


def test_one_worker_that_never_started_is_a_shortfall_after_the_startup_timeout() -> None:
    # another worker is Ready: the session computes, with fewer workers
    pods = batch()
    pods[2] = worker(1, phase="Pending", state=waiting("ImagePullBackOff", "Back-off pulling image"))
    state = derive(pods, now=STARTUP * 10)
    assert (state.phase, state.reason) == (Phase.RUNNING, "ImagePullBackOff")
    assert state.deadline is None
    assert "1/2 workers ready" in state.message
    assert f"{REL}-worker-1" in state.message


def test_running_with_fewer_workers_but_no_problem_stays_running() -> None:
    pods = batch()
    pods[2] = worker(1, phase="Running", ready=False)
    state = derive(pods, now=STARTUP * 10)
    assert (state.phase, state.reason) == (Phase.RUNNING, None)
    assert (state.workers_ready, state.workers_wanted) == (1, 2)


def test_workers_ready_is_when_the_wanted_count_was_reached() -> None:
    pods = [*batch(), worker(2, ready_at=90)]
    state = derive(pods)
    assert (state.workers_ready, state.workers_wanted) == (3, 2)
    assert state.timings.workers_ready == at(31)


def test_no_workers_wanted() -> None:
    pods = [pod("scheduler", wanted=0), pod("pilot", wanted=0, state=running(25))]
    state = derive(pods)
    assert (state.phase, state.workers_ready, state.workers_wanted) == (Phase.RUNNING, 0, 0)
    assert state.timings.workers_ready is None


def test_workers_wanted_falls_back_to_the_worker_pods() -> None:
    pods = batch()
    for p in pods:
        del p["metadata"]["annotations"]["dask-panda-session/workers-wanted"]
    assert derive(pods).workers_wanted == 2


def test_batch_running_scheduler_not_ready() -> None:
    pods = replace(batch(), "scheduler", pod("scheduler", ready=False, restarts=1))
    state = derive(pods)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.SCHEDULER_NOT_READY)
    assert state.timings.scheduler_ready is None


def test_interactive_running_happy() -> None:
    state = derive(interactive())
    assert (state.phase, state.reason, state.mode) == (Phase.RUNNING, None, "interactive")
    assert state.jupyter_url == f"http://{REL}-jupyterlab.{NS}:8888/lab"


def test_interactive_stager_exit_zero_keeps_the_session_running() -> None:
    state = derive(interactive(pilot_state=terminated(0, finished=50), pilot_phase="Succeeded"), now=500)
    assert (state.phase, state.reason, state.pilot_exit_code) == (Phase.RUNNING, None, 0)
    assert state.timings.ended is None
    assert "staging done" in state.message


def test_interactive_jupyterlab_not_ready_yet_is_starting() -> None:
    pods = replace(interactive(), "jupyterlab", pod("jupyterlab", mode="interactive", ready=False))
    assert (derive(pods).phase, derive(pods).reason) == (Phase.STARTING, None)


def test_interactive_jupyterlab_restarted_and_not_ready_is_running() -> None:
    jl = pod("jupyterlab", mode="interactive", ready=False, restarts=1, last_state=terminated(1))
    state = derive(replace(interactive(), "jupyterlab", jl), now=STARTUP * 10)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.JUPYTERLAB_NOT_READY)


def test_interactive_stuck_pilot_is_a_note_not_a_failure() -> None:
    pods = replace(
        interactive(),
        "pilot",
        pod("pilot", mode="interactive", phase="Pending", state=waiting("ErrImagePull")),
    )
    state = derive(pods, now=STARTUP * 10)
    assert (state.phase, state.reason) == (Phase.RUNNING, None)
    assert "ErrImagePull" in state.message


# ---------------------------------------------------------------------------------------------
# finished and failed by the pilot


def test_batch_pilot_exit_zero_is_finished() -> None:
    state = derive(batch(terminated(0, started=25, finished=400), pilot_phase="Succeeded"), now=500)
    assert (state.phase, state.reason, state.pilot_exit_code) == (Phase.FINISHED, None, 0)
    assert state.timings.ended == at(400)
    assert state.timings.pilot_started == at(25)


def test_batch_pilot_succeeded_without_container_status() -> None:
    pilot = pod("pilot", phase="Succeeded")
    pilot["status"]["containerStatuses"] = []
    state = derive(replace(batch(), "pilot", pilot))
    assert (state.phase, state.pilot_exit_code) == (Phase.FINISHED, 0)


@pytest.mark.parametrize("mode", ["batch", "interactive"])
@pytest.mark.parametrize(
    ("state", "pod_reason", "reason", "code"),
    [
        (terminated(3), None, Reason.PILOT_EXIT_CODE, 3),
        (terminated(137, "OOMKilled"), None, Reason.OOM_KILLED, 137),
        (terminated(137, "Error"), "DeadlineExceeded", Reason.DEADLINE_EXCEEDED, 137),
        (terminated(137, "Error"), "Evicted", "Evicted", 137),
        (terminated(1), "Error", Reason.PILOT_EXIT_CODE, 1),
    ],
)
def test_pilot_failure(
    mode: str, state: dict[str, Any], pod_reason: str | None, reason: str, code: int
) -> None:
    pilot = pod("pilot", mode=mode, phase="Failed", state=state, reason=pod_reason)
    pods = batch() if mode == "batch" else interactive()
    result = derive(replace(pods, "pilot", pilot), now=500)
    assert (result.phase, result.reason, result.pilot_exit_code) == (Phase.FAILED, reason, code)
    assert f"{REL}-pilot" in result.message
    assert result.timings.ended == at(100)


def test_pilot_failed_without_container_state() -> None:
    pilot = pod("pilot", phase="Failed", state={}, reason="NodeLost", message="node went away")
    state = derive(replace(batch(), "pilot", pilot))
    assert (state.phase, state.reason, state.pilot_exit_code) == (Phase.FAILED, "NodeLost", None)
    assert "node went away" in state.message


def test_pilot_init_container_failure() -> None:
    init = [
        {"name": "wait-for-scheduler", "state": terminated(0)},
        {"name": "wait-for-job-definition", "state": terminated(1, finished=320)},
    ]
    pilot = pod("pilot", phase="Failed", state=waiting("PodInitializing"), init=init)
    state = derive(replace(batch(), "pilot", pilot), now=400)
    assert (state.phase, state.reason) == (Phase.FAILED, Reason.INIT_CONTAINER_FAILED)
    assert "wait-for-job-definition" in state.message
    assert state.timings.ended == at(320)


def test_interactive_jupyterlab_succeeded_is_finished() -> None:
    jl = pod("jupyterlab", mode="interactive", phase="Succeeded", state=terminated(0, finished=3000))
    state = derive(replace(interactive(terminated(0, finished=50), "Succeeded"), "jupyterlab", jl), now=3100)
    assert (state.phase, state.reason) == (Phase.FINISHED, None)
    assert state.timings.ended == at(3000)


def test_finished_batch_stays_finished_when_other_pods_hit_the_deadline() -> None:
    pods = batch(terminated(0, finished=400), pilot_phase="Succeeded")
    pods[1] = worker(0, phase="Failed", reason="DeadlineExceeded", state=terminated(137))
    assert derive(pods, now=LIFETIME + SKEW + 10).phase == Phase.FINISHED


# ---------------------------------------------------------------------------------------------
# deadline and core-component failures


@pytest.mark.parametrize("component", ["scheduler", "worker", "jupyterlab"])
def test_any_session_pod_deadline_exceeded(component: str) -> None:
    pods = interactive()
    victim = pod(
        component, mode="interactive", phase="Failed", reason="DeadlineExceeded", state=terminated(137)
    )
    if component == "worker":
        pods[1] = victim
    else:
        pods = replace(pods, component, victim)
    state = derive(pods, now=LIFETIME + 5)
    assert (state.phase, state.reason) == (Phase.FAILED, Reason.DEADLINE_EXCEEDED)
    assert component in state.message


@pytest.mark.parametrize(
    ("state", "pod_reason", "reason"),
    [
        (terminated(137, "OOMKilled"), None, Reason.OOM_KILLED),
        (terminated(1), None, Reason.SCHEDULER_FAILED),
        ({}, "Evicted", Reason.SCHEDULER_FAILED),
        (terminated(137), "Evicted", Reason.SCHEDULER_FAILED),
    ],
)
def test_scheduler_pod_gone(state: dict[str, Any], pod_reason: str | None, reason: str) -> None:
    scheduler = pod("scheduler", phase="Failed", state=state, reason=pod_reason)
    result = derive(replace(batch(), "scheduler", scheduler))
    assert (result.phase, result.reason) == (Phase.FAILED, reason)
    assert "scheduler" in result.message
    if pod_reason is not None:
        assert pod_reason in result.message


@pytest.mark.parametrize(
    ("last", "reason"),
    [(terminated(1), Reason.SCHEDULER_FAILED), (terminated(137, "OOMKilled"), Reason.OOM_KILLED)],
)
def test_established_scheduler_crashing_after_restarts(last: dict[str, Any], reason: str) -> None:
    scheduler = pod(
        "scheduler", ready=False, restarts=MAX_RESTARTS, state=waiting("CrashLoopBackOff"), last_state=last
    )
    state = derive(replace(batch(), "scheduler", scheduler), now=200)
    assert (state.phase, state.reason) == (Phase.FAILED, reason)
    assert f"after {MAX_RESTARTS} restarts" in state.message


def test_established_scheduler_restarted_fewer_times_is_running_not_ready() -> None:
    scheduler = pod(
        "scheduler",
        ready=False,
        restarts=MAX_RESTARTS - 1,
        state=waiting("CrashLoopBackOff"),
        last_state=terminated(1),
    )
    state = derive(replace(batch(), "scheduler", scheduler), now=200)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.SCHEDULER_NOT_READY)


@pytest.mark.parametrize("mode", ["batch", "interactive"])
def test_scheduler_idle_exit_is_reported_not_fatal(mode: str) -> None:
    pods = batch() if mode == "batch" else interactive()
    scheduler = pod("scheduler", mode=mode, phase="Succeeded", state=terminated(0, finished=1000))
    state = derive(replace(pods, "scheduler", scheduler), now=1100)
    assert (state.phase, state.reason) == (Phase.RUNNING, Reason.SCHEDULER_EXITED)
    assert "idle timeout" in state.message


def test_scheduler_idle_exit_then_pilot_finishes() -> None:
    scheduler = pod("scheduler", phase="Succeeded", state=terminated(0, finished=1000))
    pods = replace(batch(terminated(0, finished=1200), pilot_phase="Succeeded"), "scheduler", scheduler)
    assert derive(pods, now=1300).phase == Phase.FINISHED


def test_established_jupyterlab_crashing_after_restarts() -> None:
    jl = pod(
        "jupyterlab",
        mode="interactive",
        ready=False,
        restarts=MAX_RESTARTS,
        state=waiting("CrashLoopBackOff"),
        last_state=terminated(1),
    )
    state = derive(replace(interactive(), "jupyterlab", jl), now=200)
    assert (state.phase, state.reason) == (Phase.FAILED, Reason.JUPYTERLAB_FAILED)


def test_jupyterlab_pod_failed() -> None:
    jl = pod("jupyterlab", mode="interactive", phase="Failed", state={}, reason="Evicted")
    state = derive(replace(interactive(), "jupyterlab", jl))
    assert (state.phase, state.reason) == (Phase.FAILED, Reason.JUPYTERLAB_FAILED)


# ---------------------------------------------------------------------------------------------
# startup problems: before the startup timeout -> starting with the reason; after -> failed


def not_started(component_pod: dict[str, Any]) -> list[dict[str, Any]]:
    """A batch session whose pilot waits (init) and whose `component_pod` has a problem."""
    pilot = pod(
        "pilot",
        phase="Pending",
        state=waiting("PodInitializing"),
        init=[{"name": "wait-for-scheduler", "state": running(5)}],
    )
    return [component_pod, worker(0, phase="Pending"), pilot]


@pytest.mark.parametrize(
    "waiting_reason",
    [
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
    ],
)
@pytest.mark.parametrize(
    ("now", "phase"), [(STARTUP - 1, Phase.STARTING), (STARTUP + SKEW + 1, Phase.FAILED)]
)
def test_waiting_reasons(waiting_reason: str, now: float, phase: Phase) -> None:
    scheduler = pod("scheduler", phase="Pending", state=waiting(waiting_reason, "detail here"))
    state = derive(not_started(scheduler), now=now)
    assert (state.phase, state.reason) == (phase, waiting_reason)
    assert f"{REL}-scheduler" in state.message
    assert state.timings.ended is None


def test_crashloop_of_an_oom_killed_container_says_oomkilled() -> None:
    scheduler = pod(
        "scheduler", state=waiting("CrashLoopBackOff"), last_state=terminated(137, "OOMKilled"), restarts=1
    )
    state = derive(not_started(scheduler))
    assert (state.phase, state.reason) == (Phase.STARTING, Reason.OOM_KILLED)


def test_init_container_waiting_reason_counts() -> None:
    pilot = pod(
        "pilot",
        phase="Pending",
        state=waiting("PodInitializing"),
        init=[{"name": "wait-for-scheduler", "state": waiting("ErrImagePull")}],
    )
    state = derive([pod("scheduler"), pilot], now=STARTUP + SKEW + 1)
    assert (state.phase, state.reason) == (Phase.FAILED, Reason.ERR_IMAGE_PULL)
    assert "wait-for-scheduler" in state.message


@pytest.mark.parametrize(("now", "phase"), [(10, Phase.STARTING), (STARTUP + SKEW + 1, Phase.FAILED)])
def test_unschedulable(now: float, phase: Phase) -> None:
    cond = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient memory.",
        "lastTransitionTime": ts(0),
    }
    scheduler = pod("scheduler", phase="Pending", state={}, scheduled=cond)
    scheduler["status"]["containerStatuses"] = []
    state = derive(not_started(scheduler), now=now)
    assert (state.phase, state.reason) == (phase, Reason.UNSCHEDULABLE)
    assert "Insufficient memory" in state.message


@pytest.mark.parametrize(
    ("now", "phase", "reason"),
    [(10, Phase.STARTING, None), (STARTUP + SKEW + 1, Phase.FAILED, Reason.STARTUP_TIMEOUT)],
)
def test_stuck_container_creating(now: float, phase: Phase, reason: str | None) -> None:
    scheduler = pod("scheduler", phase="Pending", state=waiting("ContainerCreating"))
    state = derive(not_started(scheduler), now=now)
    assert (state.phase, state.reason) == (phase, reason)
    assert "ContainerCreating" in state.message


def mount_event(pod_name: str) -> dict[str, Any]:
    return {
        "type": "Warning",
        "reason": "FailedMount",
        "message": 'MountVolume.SetUp failed for volume "shared" : nfs: server not responding',
        "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": NS},
        "lastTimestamp": ts(30),
    }


@pytest.mark.parametrize(("now", "phase"), [(60, Phase.STARTING), (STARTUP + SKEW + 1, Phase.FAILED)])
def test_failed_mount_from_events(now: float, phase: Phase) -> None:
    scheduler = pod("scheduler", phase="Pending", state=waiting("ContainerCreating"))
    unrelated = {**mount_event("someone-else"), "reason": "FailedMount"}
    state = derive(not_started(scheduler), now=now, events=[unrelated, mount_event(f"{REL}-scheduler")])
    assert (state.phase, state.reason) == (phase, Reason.FAILED_MOUNT)
    assert "nfs: server not responding" in state.message


def test_events_of_other_pods_do_not_refine() -> None:
    scheduler = pod("scheduler", phase="Pending", state=waiting("ContainerCreating"))
    state = derive(not_started(scheduler), now=STARTUP + SKEW + 1, events=[mount_event("someone-else")])
    assert state.reason == Reason.STARTUP_TIMEOUT


def test_nothing_specific_after_timeout_is_startup_timeout() -> None:
    scheduler = pod("scheduler", ready=False)  # running, never Ready
    state = derive(not_started(scheduler), now=STARTUP + SKEW + 1)
    assert (state.phase, state.reason) == (Phase.FAILED, Reason.STARTUP_TIMEOUT)


def test_scheduler_crashloop_during_startup_goes_by_the_startup_timeout() -> None:
    scheduler = pod(
        "scheduler", ready=False, restarts=5, state=waiting("CrashLoopBackOff"), last_state=terminated(1)
    )
    assert derive(not_started(scheduler), now=60).phase == Phase.STARTING
    assert derive(not_started(scheduler), now=STARTUP + SKEW + 1).reason == Reason.CRASH_LOOP_BACK_OFF


def test_startup_timeout_argument_overrides_the_annotation() -> None:
    scheduler = pod("scheduler", phase="Pending", state=waiting("ImagePullBackOff"))
    pods = not_started(scheduler)
    assert derive(pods, now=50 + SKEW + 1, startup_timeout=50).phase == Phase.FAILED
    assert derive(pods, now=STARTUP * 2, startup_timeout=STARTUP * 3).phase == Phase.STARTING


def test_without_any_startup_timeout_a_session_never_fails_for_slowness() -> None:
    scheduler = pod("scheduler", phase="Pending", state=waiting("ImagePullBackOff"), startup=None)
    pilot = pod("pilot", phase="Pending", state=waiting("PodInitializing"), startup=None)
    state = derive([scheduler, pilot], now=10**6)
    assert (state.phase, state.reason) == (Phase.STARTING, Reason.IMAGE_PULL_BACK_OFF)


def test_scheduler_problem_is_reported_before_a_worker_problem() -> None:
    scheduler = pod("scheduler", phase="Pending", state=waiting("CreateContainerConfigError"))
    pods = [worker(0, phase="Pending", state=waiting("ImagePullBackOff")), scheduler]
    assert derive(pods).reason == Reason.CREATE_CONTAINER_CONFIG_ERROR


# ---------------------------------------------------------------------------------------------
# deletion and orphans


def test_deleting_scheduler_is_cancelled() -> None:
    pods = replace(batch(), "scheduler", pod("scheduler", deleting=50))
    state = derive(pods, now=60)
    assert (state.phase, state.reason) == (Phase.CANCELLED, Reason.DELETING)


def test_cleanup_hook_means_deleting() -> None:
    state = derive([*batch(), pod("cleanup", created=55)])
    assert (state.phase, state.reason) == (Phase.CANCELLED, Reason.DELETING)
    assert state.timings.submitted == at(0)


def test_test_pod_is_ignored() -> None:
    state = derive([*batch(), pod("test", phase="Failed", state=terminated(1))])
    assert (state.phase, state.reason) == (Phase.RUNNING, None)


def test_finished_session_being_deleted_stays_finished() -> None:
    pods = [
        {**p, "metadata": {**p["metadata"], "deletionTimestamp": ts(600), "deletionGracePeriodSeconds": 30}}
        for p in batch(terminated(0, finished=400), pilot_phase="Succeeded")
    ]
    assert derive(pods, now=580).phase == Phase.FINISHED


def test_failure_before_the_deletion_counts() -> None:
    pods = batch(terminated(3, finished=400), pilot_phase="Failed", deleting=500)
    state = derive(pods, now=510)
    assert (state.phase, state.reason, state.pilot_exit_code) == (Phase.FAILED, Reason.PILOT_EXIT_CODE, 3)


def test_failure_caused_by_the_deletion_is_deleting() -> None:
    pods = batch(terminated(143, finished=505), pilot_phase="Failed", deleting=500)
    state = derive(pods, now=510)
    assert (state.phase, state.reason) == (Phase.CANCELLED, Reason.DELETING)


def test_orphan_pods_without_release() -> None:
    state = derive(batch(), release_known=False)
    assert (state.phase, state.reason) == (Phase.CANCELLED, Reason.RELEASE_MISSING)
    assert "remain" in state.message


def test_finished_pods_without_release_stay_finished() -> None:
    pods = batch(terminated(0, finished=400), pilot_phase="Succeeded")
    assert derive(pods, release_known=False).phase == Phase.FINISHED


# ---------------------------------------------------------------------------------------------
# the output and robustness


def test_to_dict_is_json_ready() -> None:
    state = derive(batch(terminated(0, started=25, finished=400), pilot_phase="Succeeded"), now=500)
    data = state.to_dict()
    for key in (
        "release",
        "namespace",
        "pandaid",
        "mode",
        "phase",
        "reason",
        "message",
        "workers_ready",
        "workers_wanted",
        "scheduler_address",
        "dashboard_url",
        "jupyter_url",
        "timings",
    ):
        assert key in data
    assert data["phase"] == "finished"
    assert data["timings"]["ended"] == "2026-11-28T12:06:40Z"
    assert data["timings"]["workers_ready"] == "2026-11-28T12:00:31Z"
    assert json.loads(json.dumps(data)) == data
    assert state.final
    assert not derive(batch()).final


def test_pods_of_other_releases_are_ignored() -> None:
    other = pod("pilot", release="dask-43", phase="Failed", state=terminated(9))
    assert derive([*batch(), other]).phase == Phase.RUNNING


@pytest.mark.parametrize(
    "garbage",
    [
        {},
        {"metadata": None, "status": None},
        {"metadata": {"labels": {"app.kubernetes.io/component": "scheduler"}}, "status": {"conditions": "x"}},
        {
            "metadata": {
                "labels": {"app.kubernetes.io/component": "pilot"},
                "creationTimestamp": "not a time",
            },
            "status": {
                "phase": "Failed",
                "containerStatuses": [None, {"state": {"terminated": {"exitCode": "x"}}}],
            },
        },
        {
            "metadata": {"labels": {"app.kubernetes.io/component": "worker"}},
            "status": {"initContainerStatuses": 5},
        },
    ],
)
def test_malformed_pods_do_not_crash(garbage: dict[str, Any]) -> None:
    state = derive([garbage], now=10**6)
    assert isinstance(state.phase, Phase)
    json.dumps(state.to_dict())


def test_naive_now_is_utc() -> None:
    assert derive_session(REL, NS, batch(), now=at(60).replace(tzinfo=None)).phase == Phase.RUNNING


def test_group_pods_by_release() -> None:
    foreign = {"metadata": {"labels": {"app.kubernetes.io/name": "other", "app.kubernetes.io/instance": REL}}}
    unlabelled = {"metadata": {"labels": {"app.kubernetes.io/name": "dask-panda-session"}}}
    pods = [*batch(), pod("prepare"), pod("scheduler", release="dask-43"), foreign, unlabelled]
    groups = group_pods_by_release(pods)
    assert sorted(groups) == ["dask-42", "dask-43"]
    assert len(groups["dask-42"]) == 5
    assert group_pods_by_release([]) == {}


# ---------------------------------------------------------------------------------------------
# realistic full pod JSON fixtures (a PodList as `kubectl get pods -o json` / the API returns it)


FIXED_NOW = datetime(2026, 11, 28, 10, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "phase", "reason", "extra"),
    [
        ("batch-running.json", Phase.RUNNING, None, {"workers_ready": 2, "harvester_worker_id": 4242}),
        ("batch-finished.json", Phase.FINISHED, None, {"pilot_exit_code": 0}),
        ("batch-pilot-oomkilled.json", Phase.FAILED, Reason.OOM_KILLED, {"pilot_exit_code": 137}),
        ("interactive-staged.json", Phase.RUNNING, None, {"pilot_exit_code": 0, "mode": "interactive"}),
        ("image-pull-backoff.json", Phase.FAILED, Reason.IMAGE_PULL_BACK_OFF, {"workers_ready": 0}),
        ("unschedulable.json", Phase.FAILED, Reason.UNSCHEDULABLE, {"workers_ready": 0}),
        ("deadline-exceeded.json", Phase.FAILED, Reason.DEADLINE_EXCEEDED, {}),
    ],
)
def test_recorded_pod_lists(name: str, phase: Phase, reason: str | None, extra: dict[str, Any]) -> None:
    groups = group_pods_by_release(fixture(name))
    assert len(groups) == 1
    ((release, pods),) = groups.items()
    now = FIXED_NOW if "deadline" not in name else datetime(2026, 11, 29, 10, 1, tzinfo=UTC)
    state = derive_session(release, "dask-sessions", pods, now=now)
    assert (state.phase, state.reason) == (phase, reason), state.message
    for key, value in extra.items():
        assert getattr(state, key) == value
    assert state.scheduler_address == f"tcp://{release}-scheduler.dask-sessions.svc.cluster.local:8786"
    assert state.timings.submitted == datetime(2026, 11, 28, 10, 0, 2, tzinfo=UTC)
    if state.mode == "interactive":
        assert state.jupyter_url is not None


def test_recorded_image_pull_backoff_before_the_timeout() -> None:
    pods = fixture("image-pull-backoff.json")
    state = derive_session(
        "dask-1759480002", "dask-sessions", pods, now=datetime(2026, 11, 28, 10, 1, tzinfo=UTC)
    )
    assert (state.phase, state.reason) == (Phase.STARTING, Reason.IMAGE_PULL_BACK_OFF)
    assert "registry.example.org/nope/dask:0.0" in state.message


def test_recorded_batch_running_timings() -> None:
    state = derive_session("dask-1759473585", "dask-sessions", fixture("batch-running.json"), now=FIXED_NOW)
    assert state.timings.to_dict() == {
        "submitted": "2026-11-28T10:00:02Z",
        "scheduler_ready": "2026-11-28T10:00:20Z",
        "workers_ready": "2026-11-28T10:00:31Z",
        "pilot_started": "2026-11-28T10:00:26Z",
        "ended": None,
    }


# ---------------------------------------------------------------------------------------------
# deadline_verdict


ANNOTATIONS = {
    "dask-panda-session/lifetime-seconds": str(LIFETIME),
    "dask-panda-session/lease-seconds": str(LEASE),
    "dask-panda-session/startup-seconds": str(STARTUP),
}


def live(phase: Phase = Phase.RUNNING, mode: str = "batch", **timings: datetime | None) -> SessionState:
    base: dict[str, datetime | None] = {
        "submitted": at(0),
        "scheduler_ready": at(20),
        "pilot_started": at(25),
    }
    base.update(timings)
    return SessionState(release=REL, namespace=NS, phase=phase, mode=mode, timings=Timings(**base))


@pytest.mark.parametrize(
    ("state", "now", "verdict"),
    [
        (live(), 100, None),
        (live(), LIFETIME + SKEW + 1, Reason.LIFETIME_EXCEEDED),
        (live(mode="interactive"), LIFETIME + SKEW + 1, Reason.LIFETIME_EXCEEDED),
        (live(), LEASE + 100, None),  # batch sessions have no lease
        (live(mode="interactive"), 25 + LEASE + SKEW, None),
        (live(mode="interactive"), 25 + LEASE + SKEW + 1, Reason.LEASE_EXPIRED),
        (live(mode="interactive", pilot_started=None), 20 + LEASE + SKEW + 1, Reason.LEASE_EXPIRED),
        (live(mode="interactive", pilot_started=None, scheduler_ready=None), LEASE * 2, None),
        (
            live(Phase.STARTING, pilot_started=None, scheduler_ready=None),
            STARTUP + SKEW + 1,
            Reason.STARTUP_TIMEOUT,
        ),
        (live(Phase.STARTING), STARTUP - 1, None),
        (live(Phase.RUNNING), STARTUP + SKEW + 1, None),
        (live(Phase.FINISHED), LIFETIME * 2, None),
        (live(Phase.FAILED), LIFETIME * 2, None),
        (live(Phase.CANCELLED), LIFETIME * 2, None),
        (live(submitted=None), LIFETIME * 2, None),
    ],
)
def test_deadline_verdict(state: SessionState, now: float, verdict: str | None) -> None:
    assert deadline_verdict(state, ANNOTATIONS, at(now)) == verdict


def test_deadline_verdict_reads_pod_annotations() -> None:
    pods = interactive()
    state = derive(pods)
    assert deadline_verdict(state, pods, at(60)) is None
    assert deadline_verdict(state, pods, at(25 + LEASE + SKEW + 1)) == Reason.LEASE_EXPIRED
    assert deadline_verdict(state, pods, at(LIFETIME + SKEW + 1)) == Reason.LIFETIME_EXCEEDED


def test_deadline_verdict_without_annotations_never_kills() -> None:
    assert deadline_verdict(live(mode="interactive"), {}, at(LIFETIME * 10)) is None
    assert deadline_verdict(live(), [], at(LIFETIME * 10)) is None
