"""Harvester's own agent drives the three plugins on the local cluster, PanDA being a stub.

One agent (sqlite, short loops), the queue GOOGLE_DASK configured as docs/harvester.md tells a site
admin, plus the site's values file for the local cluster (kwok: the pilot "exits 0" after a few
seconds, JupyterLab runs until it is ended). PanDA hands out a batch job and an interactive job
built from the repository's examples; the interactive one is then killed by PanDA
(``tobekilled``). Finally the 60-minute clean-up rule is back-dated in sqlite and the Sweeper must
remove everything. Assertions are on the stub's records and on the cluster, never on logs (except
that no log line may hold the password).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import KubeCluster, create_namespace, create_shared_pv, delete_pvs
from tests.cluster.sessions import EXIT_AFTER, EXIT_CODE, labelled_by, prepare_namespace
from tests.conftest import ROOT, TOOLS_BIN
from tests.harvester.agent import HARVESTER_VENV, HarvesterAgent, queue_config
from tests.harvester.stub_api import StubPandaAPI

pytestmark = pytest.mark.harvester

LABEL = "app.kubernetes.io/name=dask-panda-session"
SCENARIO_SECONDS = 240


def example_job(mode: str, panda_id: int, password: str | None) -> dict[str, Any]:
    """The repository's example job as PanDA's acquire_jobs hands it out."""
    example = json.loads((ROOT / "examples" / f"{mode}-job.json").read_text())
    job = dict(next(iter(example.values())))
    job["PandaID"] = panda_id
    # acquire_jobs sends numbers as JSON numbers (the example, a pilot-side dump, has "NULL")
    job["coreCount"] = 1
    job_secrets = dict(job.get("secrets") or {})
    job_secrets["dask"] = json.dumps({"mode": mode, "workers": 1})
    if password is not None:
        job_secrets["password"] = password
    job["secrets"] = job_secrets
    return job


def self_signed(directory: Path) -> tuple[Path, Path]:
    key, cert = directory / "harvester.key", directory / "harvester.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=harvester-tier",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class Scenario:
    """What happened, recorded for the tests below."""

    stub: StubPandaAPI
    agent: HarvesterAgent
    namespace: str
    batch_id: int
    interactive_id: int
    password: str = field(repr=False)
    workers: dict[int, dict[str, Any]] = field(default_factory=dict)  # PandaID -> work_table row
    left_after_kill: list[str] = field(default_factory=list)
    left_after_cleanup: list[str] = field(default_factory=list)
    rows_after_cleanup: list[dict[str, Any]] = field(default_factory=list)
    releases_after_cleanup: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    error: str = ""


def worker_of(stub: StubPandaAPI, panda_id: int) -> int | None:
    for worker in stub.worker_updates():
        if panda_id in (worker.get("pandaid_list") or []):
            return int(worker["workerID"])
    return None


def helm_releases(cluster: KubeCluster, namespace: str) -> str:
    result = subprocess.run(
        [
            str(TOOLS_BIN / "helm"),
            "list",
            "-a",
            "-q",
            "-n",
            namespace,
            "--kubeconfig",
            str(cluster.kubeconfig),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


@pytest.fixture(scope="module")
def scenario(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    if not (HARVESTER_VENV / "bin" / "python").exists():
        pytest.fail(f"{HARVESTER_VENV} is missing: run scripts/bootstrap.sh --harvester")
    home = tmp_path_factory.mktemp("harvester")
    namespace = create_namespace(kube_cluster, f"harvester-tier-{secrets.token_hex(3)}")
    pvs: list[str] = []

    def shared_pv(claim_name: str) -> str:
        pvs.append(create_shared_pv(kube_cluster, namespace, claim_name))
        return pvs[-1]

    prepare_namespace(kube_cluster, namespace, shared_pv)
    site_values = home / "GOOGLE_DASK-site.yaml"
    site_values.write_text(
        yaml.safe_dump(
            {
                "pilot": {"podAnnotations": {EXIT_CODE: "0", EXIT_AFTER: "15"}},
                "jupyterlab": {"podAnnotations": {EXIT_CODE: "0", EXIT_AFTER: "3600"}},
                "timeouts": {"startupSeconds": 120, "hookSeconds": 60},
            }
        )
    )
    site = {
        "namespace": namespace,
        "kubeconfig": str(kube_cluster.kubeconfig),
        "helmExecutable": str(TOOLS_BIN / "helm"),
        "requestConnectTimeout": 5,
        "requestReadTimeout": 30,
    }
    cert, key = self_signed(home)
    stub = StubPandaAPI()
    password = secrets.token_urlsafe(24)
    base = 7_000_000_000 + secrets.randbelow(10**9)
    s = Scenario(stub, None, namespace, base + 1, base + 2, password)  # type: ignore[arg-type]
    with stub.running():
        agent = HarvesterAgent(
            home, stub.url, queue_config(site, home / "workdirs", [str(site_values)]), cert, key
        )
        s.agent = agent
        started = time.monotonic()
        try:
            run_scenario(s, kube_cluster, started)
        except AssertionError as exc:
            s.error = str(exc)
        finally:
            agent.stop()
        record(s)
        try:
            yield s
        finally:
            for release in helm_releases(kube_cluster, namespace).split():
                subprocess.run(
                    [
                        str(TOOLS_BIN / "helm"),
                        "uninstall",
                        release,
                        "-n",
                        namespace,
                        "--no-hooks",
                        "--kubeconfig",
                        str(kube_cluster.kubeconfig),
                    ],
                    capture_output=True,
                    check=False,
                )
            kube_cluster.delete_namespace(namespace)
            delete_pvs(kube_cluster, pvs)


def run_scenario(s: Scenario, cluster: KubeCluster, started: float) -> None:
    agent, stub = s.agent, s.stub
    agent.start()
    s.stub.feed(example_job("batch", s.batch_id, None))
    s.stub.feed(example_job("interactive", s.interactive_id, s.password))

    agent.wait_for(
        lambda: len(stub.calls("pilot/acquire_jobs")) > 0, 90, "the JobFetcher to ask PanDA for jobs"
    )
    agent.wait_for(
        lambda: worker_of(stub, s.batch_id) is not None and worker_of(stub, s.interactive_id) is not None,
        120,
        "a worker per job reported to PanDA",
    )
    s.timings["submitted"] = time.monotonic() - started

    def states(panda_id: int) -> list[str]:
        worker = worker_of(stub, panda_id)
        return [] if worker is None else stub.worker_states().get(worker, [])

    agent.wait_for(lambda: "finished" in states(s.batch_id), SCENARIO_SECONDS, "the batch worker to finish")
    agent.wait_for(lambda: "running" in states(s.interactive_id), 60, "the interactive worker to run")
    s.timings["batch_finished"] = time.monotonic() - started

    stub.job_command[s.interactive_id] = "tobekilled"
    release = f"dask-{s.interactive_id}"
    agent.wait_for(
        lambda: release not in helm_releases(cluster, s.namespace).split(), 120, "the killed release to go"
    )
    agent.wait_for(
        lambda: states(s.interactive_id)[-1:] in (["cancelled"], ["failed"], ["finished"]),
        60,
        "the killed worker's final state reported",
    )
    s.timings["killed"] = time.monotonic() - started
    instance = f"app.kubernetes.io/instance={release}"
    deadline = time.monotonic() + 60  # the kill deletes leftovers without waiting for them to go
    while (left := labelled_by(cluster, s.namespace, instance)) and time.monotonic() < deadline:
        time.sleep(2)
    s.left_after_kill = left
    s.workers = {
        panda_id: row
        for row in agent.workers()
        for panda_id in (s.batch_id, s.interactive_id)
        if row["batchID"] == f"dask-{panda_id}"
    }

    # clean-up: Harvester waits 60 minutes after a worker's last change; move that back in time
    agent.wait_for(
        lambda: agent.back_date_final_workers() >= 2 or not agent.workers(), 60, "two final workers"
    )
    # Harvester's other threads may still touch a final worker (its last report to PanDA sets
    # modificationTime again): keep the rows back-dated until the Sweeper has taken them.
    agent.wait_for(
        lambda: agent.back_date_final_workers() >= 0 and not agent.workers(),
        120,
        "the Sweeper to delete the workers' rows",
    )
    s.timings["cleaned"] = time.monotonic() - started
    s.rows_after_cleanup = agent.workers()
    s.left_after_cleanup = labelled_by(cluster, s.namespace, LABEL)
    s.releases_after_cleanup = helm_releases(cluster, s.namespace)


def record(s: Scenario) -> None:
    """What the stub received, per job, for the record (.test-output/harvester-tier.json)."""
    out = ROOT / ".test-output"
    out.mkdir(exist_ok=True)
    workers = {str(pid): worker_of(s.stub, pid) for pid in (s.batch_id, s.interactive_id)}
    data = {
        "update_workers": {
            kind: s.stub.worker_states().get(worker or -1, [])
            for kind, worker in zip(("batch", "interactive"), workers.values(), strict=True)
        },
        "update_jobs_bulk": [
            [(j.get("job_id"), j.get("job_status")) for j in c.data.get("job_list", [])]
            for c in s.stub.calls("pilot/update_jobs_bulk")
        ],
        "endpoints": sorted({c.endpoint for c in s.stub.calls_}),
        "seconds": s.timings,
        "error": s.error,
    }
    (out / "harvester-tier.json").write_text(json.dumps(data, indent=1, default=str))


def summary(s: Scenario) -> str:
    return (
        json.dumps(
            {"error": s.error, "states": s.stub.worker_states(), "timings": s.timings, "workers": s.workers},
            default=str,
        )
        + "\n"
        + s.agent.log_tail(3000)
    )


def test_the_scenario_ran(scenario: Scenario) -> None:
    assert not scenario.error, summary(scenario)


def test_one_submit_and_one_release_per_job(scenario: Scenario) -> None:
    for panda_id in (scenario.batch_id, scenario.interactive_id):
        ids = {
            int(w["workerID"])
            for w in scenario.stub.worker_updates()
            if panda_id in (w.get("pandaid_list") or [])
        }
        assert len(ids) == 1, (panda_id, ids, summary(scenario))
        batch_ids = {w.get("batchID") for w in scenario.stub.worker_updates() if int(w["workerID"]) in ids}
        assert batch_ids - {None, ""} == {f"dask-{panda_id}"}, batch_ids


def test_worker_states_follow_the_sessions(scenario: Scenario) -> None:
    states = scenario.stub.worker_states()
    batch = states[worker_of(scenario.stub, scenario.batch_id) or -1]
    interactive = states[worker_of(scenario.stub, scenario.interactive_id) or -1]
    assert batch[-1] == "finished" and set(batch) <= {"submitted", "running", "finished"}, batch
    assert "running" in interactive and interactive[-1] in ("cancelled", "failed", "finished"), interactive


def test_panda_tobekilled_ends_the_release(scenario: Scenario) -> None:
    assert not scenario.error, summary(scenario)
    assert scenario.left_after_kill == []
    # PanDA's command reached Harvester through the job updates, and the job was given up
    assert scenario.stub.job_status.get(scenario.interactive_id) == "failed"


def test_cleanup_removes_rows_and_everything_labelled(scenario: Scenario) -> None:
    assert not scenario.error, summary(scenario)
    assert scenario.rows_after_cleanup == []
    assert scenario.left_after_cleanup == []
    assert scenario.releases_after_cleanup == ""


def test_the_password_reaches_neither_panda_nor_harvesters_logs(scenario: Scenario) -> None:
    secret = scenario.password.encode()
    assert secret not in scenario.stub.everything_received()
    assert scenario.password not in scenario.agent.log_text()
