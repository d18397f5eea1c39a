"""The kube-apiserver SIGKILLed and started again during a submit, an observe and a sweep.

An unreachable API server is a temporary condition: the operation in flight fails with an error
the orchestrator calls temporary (Harvester retries it next cycle), or rides the outage out; a
running session is never reported failed or cancelled and never killed because of it; the retried
submit makes exactly one release and the retried sweep leaves nothing behind.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.service import is_temporary
from orchestrator.session import Phase, SessionState
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import fast_timeouts, job, service, values_file
from tests.faults.flow import (
    call_during_outage,
    check_one_release,
    count_bad,
    describe,
    hooks_take,
    pod_uids,
    retry_submit,
    retry_sweep,
    sweep_and_check,
    wait_pod,
    wait_running,
)
from tests.faults.inject import apiserver_outage
from tests.faults.ledger import FaultRecord

pytestmark = pytest.mark.faults

OUTAGE_SECONDS = 4.0


def test_apiserver_killed_during_a_submit(
    kube_cluster: KubeCluster, faults_ns: str, tmp_path: Path, fault: FaultRecord
) -> None:
    fault.fault = "kube-apiserver killed during a submit"
    svc = service(kube_cluster, faults_ns, install_timeout=30.0)
    extra = [values_file(tmp_path, "t", {**fast_timeouts(startup=60), **hooks_take(6)})]
    doc = job(9101)
    release = "dask-9101"
    fault.sessions += 1
    outcome: dict[str, Any] = {}

    def submit() -> None:
        try:
            outcome["result"] = retry_submit(svc, doc, extra, fault, timeout=90)
        except BaseException as err:
            outcome["error"] = err

    thread = threading.Thread(target=submit, daemon=True)
    thread.start()
    # helm is waiting for the prepare hook (held Running for 6 s): take the API server away.
    wait_pod(kube_cluster, faults_ns, release, "prepare")
    with apiserver_outage(OUTAGE_SECONDS):
        fault.injected += 1
        # Harvester's next cycle retries the same job while the API server is still away.
        retried = call_during_outage(fault, "submit", lambda: svc.submit(dict(doc), values_files=extra))
        assert retried is None, f"a submit during the outage cannot have succeeded: {retried}"
    thread.join(timeout=200)
    assert not thread.is_alive(), "submit hangs after the API server came back"
    if "error" in outcome:
        fault.note(f"submit gave up: {describe(outcome['error'])}")
        raise outcome["error"]
    assert outcome["result"].release == release
    wait_running(svc, release, fault)
    check_one_release(svc, faults_ns, release, fault)
    sweep_and_check(svc, kube_cluster, faults_ns, release, fault)
    assert fault.misclassified_errors == 0, fault.notes


def test_apiserver_killed_during_an_observe(
    kube_cluster: KubeCluster, faults_ns: str, tmp_path: Path, fault: FaultRecord
) -> None:
    fault.fault = "kube-apiserver killed during an observe"
    svc = service(kube_cluster, faults_ns)
    extra = [values_file(tmp_path, "t", fast_timeouts(startup=10))]
    result = retry_submit(svc, job(9102), extra, fault)
    release = result.release
    fault.sessions += 1
    wait_running(svc, release, fault)
    uids = pod_uids(kube_cluster, faults_ns, release)
    assert uids, "no session pods"

    states: list[SessionState] = []
    errors: list[BaseException] = []
    killed: list[dict[str, str]] = []
    stop = threading.Event()

    def monitor() -> None:
        # The monitor and the deadline cron keep running through the outage, as they would.
        while not stop.is_set():
            try:
                states.append(svc.observe([release])[release])
                killed.append(svc.enforce_deadlines())
            except Exception as err:
                errors.append(err)
            time.sleep(0.3)

    thread = threading.Thread(target=monitor, daemon=True)
    thread.start()
    time.sleep(1.0)
    seen_before = len(states)
    with apiserver_outage(OUTAGE_SECONDS + 2):
        fault.injected += 1
    time.sleep(3.0)
    stop.set()
    thread.join(timeout=120)
    assert not thread.is_alive(), "observe hangs after the API server came back"

    count_bad(fault, states, "observe during the outage")
    not_temporary = [e for e in errors if not is_temporary(e)]
    fault.misclassified_errors += len(not_temporary)
    for err in not_temporary[:3]:
        fault.note(f"observe: NOT temporary: {describe(err)}")
    ended = {r for k in killed for r in k}
    if release in ended or pod_uids(kube_cluster, faults_ns, release) != uids:
        fault.false_verdict(release, "killed", None, "killed or its pods replaced during the outage")
    after = svc.observe([release])[release]
    count_bad(fault, [after], "observe after the outage")

    assert seen_before > 0, "no observation before the outage"
    assert errors, "the outage was not noticed: the API server did not go away"
    assert not_temporary == [], [describe(e) for e in not_temporary[:3]]
    assert after.phase is Phase.RUNNING, after
    assert [s for s in states if s.phase is not Phase.RUNNING] == []
    assert release not in ended
    assert pod_uids(kube_cluster, faults_ns, release) == uids
    check_one_release(svc, faults_ns, release, fault)
    sweep_and_check(svc, kube_cluster, faults_ns, release, fault)
    assert fault.false_verdicts == 0, fault.notes


def test_apiserver_killed_during_a_sweep(
    kube_cluster: KubeCluster, faults_ns: str, tmp_path: Path, fault: FaultRecord
) -> None:
    fault.fault = "kube-apiserver killed during a sweep"
    svc = service(kube_cluster, faults_ns, uninstall_timeout=30.0, cleanup_timeout=20.0)
    extra = [values_file(tmp_path, "t", {**fast_timeouts(startup=60), **hooks_take(6)})]
    result = retry_submit(svc, job(9103), extra, fault)
    release = result.release
    fault.sessions += 1
    wait_running(svc, release, fault)
    outcome: dict[str, Any] = {}

    def sweep() -> None:
        try:
            # After the restart, kube-controller-manager's informers can take a minute or more to
            # resume (its reflectors backed off while the server was away): the hook Job and the
            # fallback's cleanup Job complete late, and the Job controller can miss the deletion
            # of a Job whose pod it still holds (the sweep lets go of that pod). The sweeper is
            # tried again until clean, as Harvester's next cycles would.
            outcome["result"] = retry_sweep(svc, release, fault, timeout=240)
        except BaseException as err:
            outcome["error"] = err

    thread = threading.Thread(target=sweep, daemon=True)
    thread.start()
    # helm uninstall waits for the pre-delete cleanup hook (held Running for 6 s).
    wait_pod(kube_cluster, faults_ns, release, "cleanup")
    with apiserver_outage(OUTAGE_SECONDS):
        fault.injected += 1
        # Another sweeper (the next cycle, or `gc`) starts a sweep while the API server is away:
        # it must neither call the job clean (nothing can be verified) nor fail for good.
        during = call_during_outage(fault, "sweep", lambda: svc.sweep(release))
        assert during is None or not during.clean, (
            f"a sweep cannot be verified clean during the outage: {during}"
        )
    thread.join(timeout=360)
    assert not thread.is_alive(), "sweep hangs after the API server came back"
    if "error" in outcome:
        raise outcome["error"]
    assert outcome["result"].clean, outcome["result"]
    # Swept: check the invariant once more (a second sweep of a gone release is clean and cheap).
    sweep_and_check(svc, kube_cluster, faults_ns, release, fault)
    assert fault.misclassified_errors == 0, fault.notes
