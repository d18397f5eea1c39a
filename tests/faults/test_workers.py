"""One worker in trouble under a running session: held Terminating by a finalizer (a drain, a
preemption, an eviction whose pod is slow to go), or in restart back-off after an OOM kill. dask
survives the loss of a worker, so the session stays ``running``, reporting the shortfall (a
reason, fewer Ready workers than wanted); only its scheduler, pilot or JupyterLab ending, or the
release being deleted, ends it. Watched past the startup timeout, and with the deadline
enforcement running, so a startup rule measured on the session's age would show.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from orchestrator.session import Phase, SessionState
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import fast_timeouts, job, service, values_file
from tests.faults.flow import (
    check_one_release,
    count_bad,
    retry_submit,
    sweep_and_check,
    wait_running,
)
from tests.faults.ledger import FaultRecord

pytestmark = pytest.mark.faults

HOLD = "kwok.dask-panda-session/hold"
STARTUP = 10  # the chart's minimum


def watch(svc: object, release: str, seconds: float) -> tuple[list[SessionState], dict[str, str]]:
    """Observe (and enforce deadlines) for ``seconds``; every state seen and what was ended."""
    from orchestrator.service import SessionService

    assert isinstance(svc, SessionService)
    states: list[SessionState] = []
    ended: dict[str, str] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states.append(svc.observe([release])[release])
        ended.update(svc.enforce_deadlines())
        time.sleep(1.0)
    return states, ended


def test_worker_held_terminating_by_a_finalizer(
    kube_cluster: KubeCluster, faults_ns: str, tmp_path: Path, fault: FaultRecord
) -> None:
    fault.fault = "one worker held Terminating by a finalizer"
    svc = service(kube_cluster, faults_ns)
    extra = [values_file(tmp_path, "t", fast_timeouts(startup=STARTUP))]
    release = retry_submit(svc, job(9401, workers=3), extra, fault).release
    fault.sessions += 1
    state = wait_running(svc, release, fault)
    kube_cluster.wait_for(
        "3 workers ready", lambda: svc.observe([release])[release].workers_ready == 3, timeout=60
    )
    worker = f"{release}-worker-1"
    kube_cluster.kubectl_run(
        "patch",
        "pod",
        worker,
        "-n",
        faults_ns,
        "--type=json",
        "-p",
        json.dumps([{"op": "add", "path": "/metadata/finalizers", "value": [HOLD]}]),
    )
    kube_cluster.kubectl_run("delete", "pod", worker, "-n", faults_ns, "--wait=false")
    fault.injected += 1
    try:
        pod = kube_cluster.core.read_namespaced_pod(worker, faults_ns)
        assert pod.metadata.deletion_timestamp is not None, "positive control: the worker is Terminating"
        held, ended = watch(svc, release, STARTUP + 6)
        still_there = kube_cluster.core.read_namespaced_pod(worker, faults_ns)
        assert still_there.metadata.deletion_timestamp is not None, "the finalizer held the pod throughout"
    finally:
        # Always let the pod go: a held pod would also hold the namespace's deletion.
        kube_cluster.kubectl_run(
            "patch",
            "pod",
            worker,
            "-n",
            faults_ns,
            "--type=json",
            "-p",
            json.dumps([{"op": "remove", "path": "/metadata/finalizers"}]),
            check=False,
        )
    kube_cluster.wait_for(
        f"{worker} gone",
        lambda: (
            worker not in {p.metadata.name for p in kube_cluster.core.list_namespaced_pod(faults_ns).items}
        ),
        timeout=60,
    )
    gone, ended_after = watch(svc, release, 3)
    count_bad(fault, held + gone, "one worker Terminating")
    if release in ended or release in ended_after:
        fault.false_verdict(release, "killed", str(ended or ended_after), "ended by the deadline enforcement")

    assert [s for s in held + gone if s.phase is not Phase.RUNNING] == []
    last = held[-1]
    assert last.workers_wanted == state.workers_wanted == 3
    assert last.workers_ready < last.workers_wanted, last
    assert last.reason, f"the shortfall is reported with a reason: {last}"
    assert gone[-1].workers_ready == 2, gone[-1]
    check_one_release(svc, faults_ns, release, fault)
    sweep_and_check(svc, kube_cluster, faults_ns, release, fault)


def test_worker_in_restart_back_off(
    kube_cluster: KubeCluster, faults_ns: str, tmp_path: Path, fault: FaultRecord
) -> None:
    fault.fault = "one worker in restart back-off (OOMKilled)"
    svc = service(kube_cluster, faults_ns)
    extra = [values_file(tmp_path, "t", fast_timeouts(startup=STARTUP))]
    release = retry_submit(svc, job(9402, workers=2), extra, fault).release
    fault.sessions += 1
    wait_running(svc, release, fault)
    kube_cluster.wait_for(
        "2 workers ready", lambda: svc.observe([release])[release].workers_ready == 2, timeout=60
    )
    # What the kubelet reports for a worker OOM-killed three times and now waiting to restart
    # (kwok leaves a Running pod's status alone, so the patch stays as written).
    worker = f"{release}-worker-1"
    pod = kube_cluster.core.read_namespaced_pod(worker, faults_ns)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    started = pod.status.start_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
        {"type": "Initialized", "status": "True", "lastTransitionTime": started},
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": started},
        {
            "type": "ContainersReady",
            "status": "False",
            "reason": "ContainersNotReady",
            "lastTransitionTime": now,
            "message": "containers with unready status: [worker]",
        },
        {
            "type": "Ready",
            "status": "False",
            "reason": "ContainersNotReady",
            "lastTransitionTime": now,
            "message": "containers with unready status: [worker]",
        },
    ]
    statuses = [
        {
            "name": c.name,
            "image": c.image,
            "imageID": "",
            "ready": False,
            "started": False,
            "restartCount": 3,
            "state": {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off 40s restarting failed container={c.name} pod={worker}",
                }
            },
            "lastState": {
                "terminated": {
                    "exitCode": 137,
                    "reason": "OOMKilled",
                    "startedAt": started,
                    "finishedAt": now,
                }
            },
        }
        for c in pod.spec.containers
    ]
    kube_cluster.kubectl_run(
        "patch",
        "pod",
        worker,
        "-n",
        faults_ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Running", "conditions": conditions, "containerStatuses": statuses}}),
    )
    fault.injected += 1
    patched = kube_cluster.core.read_namespaced_pod(worker, faults_ns)
    assert patched.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff", "positive control"

    states, ended = watch(svc, release, STARTUP + 6)
    count_bad(fault, states, "one worker in back-off")
    if release in ended:
        fault.false_verdict(release, "killed", ended[release], "ended by the deadline enforcement")
    still = kube_cluster.core.read_namespaced_pod(worker, faults_ns)
    assert still.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff", "kwok left it alone"

    assert [s for s in states if s.phase is not Phase.RUNNING] == []
    last = states[-1]
    assert (last.workers_ready, last.workers_wanted) == (1, 2), last
    assert last.reason in ("CrashLoopBackOff", "OOMKilled"), last
    check_one_release(svc, faults_ns, release, fault)
    sweep_and_check(svc, kube_cluster, faults_ns, release, fault)
