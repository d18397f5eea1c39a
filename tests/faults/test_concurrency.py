"""Concurrent submits of one job: Harvester threads and separate processes (the CLI next to
Harvester, two Harvester instances) submitting the same PanDA job at the same moment. Exactly one
release is made, installed once; every submitter returns it; one of them says it created it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.service import SubmitResult
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import fast_timeouts, job, service, values_file
from tests.faults.flow import (
    check_one_release,
    describe,
    settings_for,
    start_submit_process,
    sweep_and_check,
    wait_running,
)
from tests.faults.ledger import FaultRecord

pytestmark = pytest.mark.faults

# Bounds how long a loser may wait on a hook another submitter owns.
INSTALL_TIMEOUT = 30.0


@pytest.mark.parametrize(("threads", "processes"), [(1, 1), (4, 4)], ids=["2-submitters", "8-submitters"])
def test_concurrent_submits_of_one_job(
    kube_cluster: KubeCluster,
    faults_ns: str,
    tmp_path: Path,
    fault: FaultRecord,
    threads: int,
    processes: int,
) -> None:
    total = threads + processes
    fault.fault = "concurrent submits of one job (threads and processes)"
    pandaid = 9500 + total
    release = f"dask-{pandaid}"
    doc = job(pandaid)
    extra = [values_file(tmp_path, "t", fast_timeouts(startup=60))]
    fault.sessions += 1
    go = tmp_path / "go"
    procs = [
        start_submit_process(
            tmp_path,
            f"p{i}",
            settings_for(kube_cluster, faults_ns, install_timeout=INSTALL_TIMEOUT),
            doc,
            extra,
            go_file=str(go),
        )
        for i in range(processes)
    ]
    for proc in procs:  # every process has imported everything and waits for the go file
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert json.loads(line) == {"ready": True}, line
    start = threading.Event()
    outcomes: list[Any] = []
    lock = threading.Lock()

    def submit() -> None:
        svc = service(kube_cluster, faults_ns, install_timeout=INSTALL_TIMEOUT)
        start.wait()
        try:
            result: Any = svc.submit(dict(doc), values_files=extra)
        except Exception as err:
            result = err
        with lock:
            outcomes.append(result)

    workers = [threading.Thread(target=submit, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    time.sleep(0.5)  # the threads' services are made and waiting too
    go.touch()
    start.set()
    fault.injected += 1
    for thread in workers:
        thread.join(timeout=300)
    answers: list[dict[str, Any]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        lines = [json.loads(x) for x in out.splitlines() if x.strip()]
        answers.append(lines[-1] if lines else {"ok": False, "error": "no output", "message": err[-500:]})

    results = [o for o in outcomes if isinstance(o, SubmitResult)]
    failures = [describe(o) for o in outcomes if not isinstance(o, SubmitResult)]
    failures += [f"{a.get('error')}: {a.get('message')}" for a in answers if not a.get("ok")]
    for failure in failures:
        fault.note(f"a submitter failed: {failure[:300]}")
    created = sum(r.created for r in results) + sum(bool(a.get("created")) for a in answers if a.get("ok"))
    returned = [r.release for r in results] + [a["release"] for a in answers if a.get("ok")]
    svc = service(kube_cluster, faults_ns)
    mine = [r for r in svc.helm.list_releases(faults_ns) if r.name == release]
    fault.duplicate_releases += max(0, len(mine) - 1) + sum(max(0, r.revision - 1) for r in mine)
    if created > 1:
        fault.duplicate_releases += created - 1
        fault.note(f"{created} submitters say they created the release")

    assert failures == []
    assert returned == [release] * total
    assert created == 1, f"{created} submitters say they created {release}"
    check_one_release(svc, faults_ns, release, fault)
    wait_running(svc, release, fault)
    sweep_and_check(svc, kube_cluster, faults_ns, release, fault)
