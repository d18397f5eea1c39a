"""A batch session of the queue GOOGLE_DASK, run for real from the chart's rendered pods.

The pre-install hook runs first (as Helm runs it), then the pods start in a hostile order on
purpose: workers and the pilot first (their start gates must hold them), then the scheduler (the
gates must let go); the pilot's job-definition gate must wait for the definition. Then the talk's
user script runs as the pilot's payload would, and the pre-delete hook removes the job directory.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.smoke.conftest import (
    SMOKE_VENV,
    JobRelease,
    Ports,
    job_release,
    make_kubelet,
    new_panda_id,
    new_ports,
    render,
)
from tests.smoke.kubelet import Kubelet, parse_quantity
from tests.smoke.payloads import TALK_SCRIPT, WORKERS_SCRIPT, run_python

WORKERS = 2  # the machine has 2 cores; the queue's workers have limits.cpu 1
GATE_HOLD_SECONDS = 4


@dataclass
class BatchSession:
    kubelet: Kubelet
    release: str
    panda_id: str
    ports: Ports
    claim_dir: Path
    job: JobRelease
    observed: dict[str, object] = field(default_factory=dict)

    def name(self, suffix: str) -> str:
        return f"{self.release}-{suffix}"


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchSession]:
    if not (SMOKE_VENV / "bin" / "dask").exists():
        pytest.fail(f"{SMOKE_VENV} is missing: run scripts/bootstrap.sh --smoke")
    panda_id = new_panda_id()
    release = f"dask-{panda_id}"
    ports = new_ports()
    job = job_release(tmp_path_factory, panda_id, "batch", ports)
    documents = render(
        release,
        panda_id,
        ports,
        {"job.mode": "batch", "workers.replicas": str(WORKERS)},
        values_files=[job.values_file],
    )
    # the grid proxy Secret Harvester keeps; a placeholder (the pilot itself is not run)
    secrets = {"proxy-secret": {"x509up_u25606_prod": "not a real proxy"}, job.secret_name: job.secret}
    kubelet = make_kubelet(tmp_path_factory, SMOKE_VENV, documents, secrets)
    claim = documents_claim(documents)
    session = BatchSession(kubelet, release, panda_id, ports, kubelet.claims / claim / job.job_dir, job)
    try:
        start_in_hostile_order(session)
        yield session
    finally:
        kubelet.shutdown()


def documents_claim(documents: list[dict[str, Any]]) -> str:
    for doc in documents:
        if doc.get("kind") == "Pod":
            for volume in doc["spec"].get("volumes", []):
                if "persistentVolumeClaim" in volume:
                    return str(volume["persistentVolumeClaim"]["claimName"])
    raise AssertionError("no pod mounts the shared claim")


def start_in_hostile_order(s: BatchSession) -> None:
    """Helm's order for the hook, the worst order for the pods.

    The pre-install hook runs first, as Helm runs it. The job definition it wrote into the pilot's
    directory is then moved aside (as if the shared volume did not show it yet) so the pilot's
    second gate has to wait.
    """
    k = s.kubelet
    prepare = k.run_to_completion(s.name("prepare"), timeout=60)
    s.observed["prepare"] = (prepare.phase, prepare.error)
    definition = s.claim_dir / "pilot" / "pandaJobData.out"
    aside = s.claim_dir.parent / f".{s.panda_id}.pandaJobData.out"
    definition.rename(aside)

    workers = [k.start(s.name(f"worker-{i}")) for i in range(WORKERS)]
    pilot = k.start(s.name("pilot"), main=False)  # the real pilot would call the PanDA server
    time.sleep(GATE_HOLD_SECONDS)
    s.observed["before_scheduler"] = {run.name: run.phase for run in [*workers, pilot]}
    s.observed["mains_before_scheduler"] = [run.name for run in [*workers, pilot] if run.main is not None]

    k.start(s.name("scheduler"))
    k.wait_for(lambda: all(w.phase == "Running" for w in workers), 120, "the workers' main containers")
    k.wait_for(lambda: pilot.phase == "Init:wait-for-job-definition", 60, "the pilot's second gate")
    time.sleep(2)
    s.observed["pilot_without_definition"] = pilot.phase
    s.observed["gate_logs"] = {
        run.name: run.container("wait-for-scheduler").log.read_text()  # type: ignore[union-attr]
        for run in [*workers, pilot]
    }

    aside.rename(definition)
    k.wait_for(lambda: pilot.phase in {"InitDone", "Failed"}, 30, "the pilot's gates")
    s.observed["pilot_after_definition"] = pilot.phase


def test_gates_hold_workers_and_pilot_while_no_scheduler_listens(batch: BatchSession) -> None:
    phases = batch.observed["before_scheduler"]
    assert phases == {
        **{batch.name(f"worker-{i}"): "Init:wait-for-scheduler" for i in range(WORKERS)},
        batch.name("pilot"): "Init:wait-for-scheduler",
    }
    assert batch.observed["mains_before_scheduler"] == []


def test_gates_let_go_once_the_scheduler_listens(batch: BatchSession) -> None:
    logs = batch.observed["gate_logs"]
    assert isinstance(logs, dict)
    address = f"{batch.name('scheduler')}.smoke.svc.cluster.local:{batch.ports.scheduler}"
    for pod, log in logs.items():
        assert f"scheduler {address} accepts connections" in log, pod
    for i in range(WORKERS):
        run = batch.kubelet.pods[batch.name(f"worker-{i}")]
        assert run.phase == "Running", run.error


def test_pilot_waits_for_the_job_definition_of_the_prepare_hook(batch: BatchSession) -> None:
    assert batch.observed["prepare"] == ("Succeeded", "")
    assert batch.observed["pilot_without_definition"] == "Init:wait-for-job-definition"
    assert batch.observed["pilot_after_definition"] == "InitDone"
    # byte for byte what the orchestrator put into the Secret, in the pilot's own directory
    raw = (batch.claim_dir / "pilot" / "pandaJobData.out").read_bytes()
    assert raw == batch.job.definition
    definition = json.loads(raw)
    assert list(definition) == [batch.panda_id]
    # batch mode: no scheduler_ip in the definition (the pilot would run the payload twice)
    assert "scheduler_ip" not in definition[batch.panda_id]


def test_workers_register_with_their_limits(batch: BatchSession) -> None:
    workers = run_python(batch.kubelet, batch.name("pilot"), "pilot", WORKERS_SCRIPT, str(WORKERS))
    memory = int(parse_quantity("1536Mi"))  # values/GOOGLE_DASK.yaml workers.resources.limits.memory
    assert workers == [
        {"name": batch.name(f"worker-{i}"), "nthreads": 1, "memory_limit": memory} for i in range(WORKERS)
    ]


def test_talk_script_as_the_pilot_payload(batch: BatchSession) -> None:
    """The user's script with the pilot container's env: Client(os.environ["DASK_SCHEDULER_ADDRESS"])."""
    out = run_python(batch.kubelet, batch.name("pilot"), "pilot", TALK_SCRIPT, timeout=600)
    assert isinstance(out, dict)
    assert out["shape"] == [5000]
    assert out["finite"] is True
    assert abs(out["mean"] - 1.0) < 0.01  # mean of (u + v) for uniform u, v
    assert 0.9 < out["min"] <= out["max"] < 1.1
    assert out["small_matches_numpy"] is True
    assert out["small_shape"] == [500]
    assert out["workers"] == [batch.name(f"worker-{i}") for i in range(WORKERS)]
    assert out["client_dask"] == out["scheduler_dask"]
    assert out["worker_dask"] == [out["scheduler_dask"]]


def test_dashboard_health_answers(batch: BatchSession) -> None:
    url = f"http://127.0.0.1:{batch.ports.dashboard}/health"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.read().decode().strip() == "ok"


def test_helm_test_pod_passes(batch: BatchSession) -> None:
    """The chart's own `helm test` pod, run against the live session."""
    run = batch.kubelet.run_to_completion(batch.name("test"), timeout=300)
    log = run.main.log.read_text() if run.main else ""
    assert run.phase == "Succeeded", f"{run.error}\n{log}"
    assert f"{WORKERS} workers answered" in log


def test_containers_run_as_the_pods_identity(batch: BatchSession) -> None:
    """runAsUser / runAsGroup / fsGroup of the rendered pod are what the processes really get."""
    if os.geteuid() != 0:
        pytest.skip("only a root test run can switch to the pod's uid (CI runs as root)")
    pod = batch.kubelet.pod(batch.name("worker-0"))
    context = pod["spec"]["securityContext"]
    code = "import json, os; print(json.dumps([os.getuid(), os.getgid(), sorted(os.getgroups())]))"
    identity = run_python(batch.kubelet, batch.name("worker-0"), "worker", code)
    assert identity == [
        context["runAsUser"],
        context["runAsGroup"],
        sorted({context["runAsGroup"], context["fsGroup"]}),
    ]
    scheduler = batch.kubelet.pods[batch.name("scheduler")].main
    assert scheduler is not None
    status = (Path("/proc") / str(scheduler.process.pid) / "status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1] == str(context["runAsUser"])


def test_zz_cleanup_hook_removes_the_job_directory(batch: BatchSession) -> None:
    """Last in this module: the pre-delete hook removes the job's directory on the shared volume."""
    assert batch.claim_dir.is_dir()
    run = batch.kubelet.run_to_completion(batch.name("cleanup"), timeout=60)
    assert run.phase == "Succeeded", run.error
    assert not batch.claim_dir.exists()
    assert batch.claim_dir.parent.is_dir()  # the share itself stays
