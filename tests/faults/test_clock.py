"""The orchestrator's host clock ten minutes ahead of the cluster's. Deadlines (startup timeout,
lifetime, lease) are measured on the cluster's clock, so a service whose clock is skewed reports
exactly what a service with the right clock reports, and ends nothing early.

Two sessions: one healthy (lifetime 8 min: ten minutes of skew would put it past its lifetime),
one whose only worker cannot be scheduled, still inside its startup timeout (2 min: the skew
would put it past).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.service import SessionService, utcnow
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import fast_timeouts, job, service, values_file
from tests.faults.flow import check_one_release, count_bad, retry_submit, sweep_and_check, wait_running
from tests.faults.ledger import FaultRecord

pytestmark = pytest.mark.faults

SKEW = timedelta(minutes=10)


def test_observe_with_the_clock_ten_minutes_ahead(
    kube_cluster: KubeCluster, faults_ns: str, tmp_path: Path, fault: FaultRecord
) -> None:
    fault.fault = "observe with the orchestrator's clock ten minutes ahead"
    svc = service(kube_cluster, faults_ns)
    healthy = values_file(tmp_path, "healthy", fast_timeouts(startup=120, lifetime=480, lease=480))
    stuck = values_file(
        tmp_path,
        "stuck",
        {
            **fast_timeouts(startup=120, lifetime=480, lease=480),
            "workers": {"nodeSelector": {"dask-panda-session/unschedulable": "true"}},
        },
    )
    a = retry_submit(svc, job(9601, workers=1), [healthy], fault).release
    b = retry_submit(svc, job(9602, workers=1), [stuck], fault).release
    fault.sessions += 2
    wait_running(svc, a, fault)
    time.sleep(2.0)  # b's worker has been found unschedulable by the real scheduler

    skewed = SessionService(svc.settings, clock=lambda: utcnow() + SKEW)
    fault.injected += 1
    pairs = []
    for _ in range(3):
        right = svc.observe([a, b])
        ahead = skewed.observe([a, b])
        pairs.append((right, ahead))
        count_bad(fault, [*right.values(), *ahead.values()], "observe, right and skewed clock")
        time.sleep(1.0)
    ended = {r: why for r, why in skewed.enforce_deadlines().items() if r in (a, b)}
    for release, why in ended.items():
        fault.false_verdict(release, "killed", why, "ended by the deadline enforcement on the skewed clock")
    differ = [
        (r, right[r].phase, right[r].reason, ahead[r].phase, ahead[r].reason)
        for right, ahead in pairs
        for r in (a, b)
        if (right[r].phase, right[r].reason) != (ahead[r].phase, ahead[r].reason)
    ]
    for d in differ[:4]:
        fault.note(f"{d[0]}: right clock {d[1]}/{d[2]}, skewed {d[3]}/{d[4]}")

    assert differ == []
    assert ended == {}
    final_right = pairs[-1][0]
    assert final_right[a].phase == "running", final_right[a]
    assert final_right[b].phase in ("starting", "running"), final_right[b]
    assert final_right[b].reason == "Unschedulable", final_right[b]
    for release in (a, b):
        check_one_release(svc, faults_ns, release, fault)
        sweep_and_check(svc, kube_cluster, faults_ns, release, fault)
