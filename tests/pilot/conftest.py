"""The pilot tier: jobs built by the orchestrator, rendered by the chart, run by the real pilot.

Every case goes the production way: a PanDA job (the example definition, with no input or output
files so no storage is needed) -> ``orchestrator.job.parse_job`` -> ``orchestrator.values
.render_values`` (values without secrets, and the Secret's data) -> ``helm template`` -> the
smoke kubelet runs the prepare hook, the scheduler, one worker, JupyterLab (interactive) and the
pilot pod, whose main container is the pinned pilot (confined, see ``harness.py``).

Test-only values, all given to the chart as values (the rendered output is never edited):
free ports, ``pilot.pandaServer`` = the stub, ``pilot.configMap`` = the pilot configuration that
points queue and storage data at the stub, and ``pilot.extraEnv``: ``PILOT_NOKILL=1`` (the
confinement) and ``HARVESTER_WORKDIR`` (where the pilot copies the transformation from instead
of downloading it).
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.job import parse_job
from orchestrator.values import load_queue, render_values
from tests.conftest import CHART, ROOT, tool
from tests.pilot.harness import PILOT_SOURCE, PilotKubelet
from tests.pilot.stub_apiserver import StubApiServer
from tests.pilot.stub_panda import Replier, StubPanda
from tests.smoke.conftest import SMOKE_VENV, new_panda_id, new_ports
from tests.smoke.kubelet import helm_template

QUEUE = "GOOGLE_DASK"
NAMESPACE = "pilot"
PROXY_SECRET = "proxy-secret"
PROXY_KEY = "x509up_u25606_prod"  # values/GOOGLE_DASK.yaml pilot.proxy.key
CONFIG_MAP = "stub-pilot-config"
TRF_DIR = "/opt/trf"  # where the "image" carries the transformation (HARVESTER_WORKDIR)
TRF_NAME = "runGen-00-00-02"
# must start with a base URL the pilot accepts for user transformations
TRANSFORMATION = f"http://pandaserver.cern.ch:25085/trf/user/{TRF_NAME}"

# The payload of every case: what a user's batch job does with the session, reported to the stub.
TRF_SCRIPT = r'''#!/usr/bin/env python3
"""The tier's transformation: report the environment, run a dask computation, exit as told."""
import argparse, json, os, sys, time, urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("--report", required=True)
parser.add_argument("--pandaid", required=True)
parser.add_argument("--exit", type=int, default=0)
parser.add_argument("--sleep", type=float, default=0)
parser.add_argument("--dask", action="store_true")
args, _ = parser.parse_known_args()
record = {
    "pandaid": args.pandaid,
    "DASK_SCHEDULER_ADDRESS": os.environ.get("DASK_SCHEDULER_ADDRESS"),
    "DASK_SCHEDULER_IP": os.environ.get("DASK_SCHEDULER_IP"),
}
if args.dask:
    import dask.array as da
    from dask.distributed import Client
    with Client(os.environ["DASK_SCHEDULER_ADDRESS"], timeout=60) as client:
        client.wait_for_workers(1, timeout=60)
        record["workers"] = len(client.scheduler_info()["workers"])
        record["result"] = float(da.arange(1000, chunks=100).sum().compute())
request = urllib.request.Request(args.report, json.dumps(record).encode(), {"Content-Type": "application/json"})
urllib.request.urlopen(request, timeout=30).read()
time.sleep(args.sleep)
sys.exit(args.exit)
'''


def pilot_config(stub: StubPanda) -> str:
    """The pinned pilot's own default.cfg with queue and storage data pointed at the stub."""
    text = (PILOT_SOURCE / "pilot" / "util" / "default.cfg").read_text()
    urls = {
        "queuedata_url": f"{stub.url}/cache/schedconfig/{{pandaqueue}}.all.json",
        "queues_url": f"{stub.url}/cache/schedconfig/{{pandaqueue}}.json",
        "storages_url": f"{stub.url}/cache/ddmendpoints.json",
    }
    # a heartbeat every 10 s instead of 30 min, so that PanDA's command reaches a running payload
    text, count = re.subn(r"^heartbeat:.*$", "heartbeat: 10", text, flags=re.MULTILINE)
    assert count == 1, "heartbeat not found once in the pilot's default.cfg"
    for key, url in urls.items():
        text, count = re.subn(rf"^{key}:.*$", f"{key}: {url}", text, flags=re.MULTILINE)
        assert count == 1, f"{key} not found once in the pilot's default.cfg"
    return text


def self_signed_proxy(directory: Path) -> str:
    """A stand-in grid proxy: any certificate and key in one PEM file (never checked)."""
    key, cert = directory / "proxy.key", directory / "proxy.crt"
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
            "/CN=pilot-tier",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert.read_text() + key.read_text()


def job_definition(panda_id: str, mode: str, job_pars: str, password: str | None) -> dict[str, Any]:
    """The example job of the repository, without files, with the tier's transformation."""
    example = json.loads((ROOT / "examples" / f"{mode}-job.json").read_text())
    params = dict(next(iter(example.values())))
    no_files = dict.fromkeys(
        (
            "inFiles",
            "inFilePaths",
            "GUID",
            "fsize",
            "checksum",
            "scopeIn",
            "realDatasetsIn",
            "ddmEndPointIn",
            "prodDBlocks",
            "prodDBlockToken",
            "dispatchDblock",
            "dispatchDBlockToken",
            "outFiles",
            "logFile",
            "logGUID",
            "destinationDblock",
            "destinationDBlockToken",
            "dispatchDBlockTokenForOut",
            "ddmEndPointOut",
            "fileDestinationSE",
            "scopeOut",
            "scopeLog",
        ),
        "",
    )
    params.update(no_files)
    params.update(
        {
            "PandaID": int(panda_id),
            "transformation": TRANSFORMATION,
            "jobPars": job_pars,
            "prodSourceLabel": "user",
        }
    )
    job_secrets = {"dask": json.dumps({"mode": mode, "workers": 1})}
    if password is not None:
        job_secrets["password"] = password
    params["secrets"] = job_secrets
    return {panda_id: params}


@dataclass
class PilotCase:
    """One job through the real pilot: its session, and what the stub should answer."""

    name: str
    mode: str
    exit_code: int = 0
    dask: bool = True
    sleep: float = 0
    replier: Replier | None = None
    panda_id: str = field(default_factory=new_panda_id)
    worker_id: int = field(default_factory=lambda: 1000 + secrets.randbelow(100_000))
    password: str | None = field(default=None, repr=False)
    kubelet: PilotKubelet | None = None
    error: str = ""

    @property
    def release(self) -> str:
        return f"dask-{self.panda_id}"

    def name_of(self, suffix: str) -> str:
        return f"{self.release}-{suffix}"


class PilotRun:
    """Several cases at once (the pilot mostly waits), one stub for all."""

    def __init__(
        self, stub: StubPanda, workdir: Path, api: StubApiServer, harvester_id: str = "pilot-tier"
    ) -> None:
        self.stub = stub
        self.api = api
        self.workdir = workdir
        self.harvester_id = harvester_id
        self.proxy = self_signed_proxy(workdir)
        self.trf_dir = workdir / "trf"
        self.trf_dir.mkdir()
        (self.trf_dir / TRF_NAME).write_text(TRF_SCRIPT)
        (self.trf_dir / TRF_NAME).chmod(0o755)
        self.trf_dir.chmod(0o755)
        self.config = pilot_config(stub)

    def render(self, case: PilotCase) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
        """The release as the orchestrator and helm make it; returns (documents, Secrets' data)."""
        job_pars = f"--report {self.stub.url}/payload --pandaid {case.panda_id} --exit {case.exit_code}"
        if case.dask:
            job_pars += " --dask"
        if case.sleep:
            job_pars += f" --sleep {case.sleep}"
        if case.mode == "interactive":
            case.password = secrets.token_urlsafe(24)
        job = parse_job(
            job_definition(case.panda_id, case.mode, job_pars, case.password),
            queue_limits=load_queue(QUEUE).limits,
            harvester_worker_id=case.worker_id,
        )
        rendered = render_values(job, load_queue(QUEUE), namespace=NAMESPACE)
        ports = new_ports()
        test_values: dict[str, Any] = {
            "scheduler": {"port": ports.scheduler, "dashboardPort": ports.dashboard},
            "jupyterlab": {"port": ports.jupyterlab},
            "workers": {"dashboardPort": 0},
            "pilot": {
                "pandaServer": self.stub.url,
                "configMap": CONFIG_MAP,
                "extraEnv": [
                    {"name": "PILOT_NOKILL", "value": "1"},
                    {"name": "HARVESTER_WORKDIR", "value": TRF_DIR},
                ],
            },
        }
        values_file = self.workdir / f"{case.name}-values.yaml"
        values_file.write_text(yaml.safe_dump(dict(rendered.values)))
        test_file = self.workdir / f"{case.name}-test.yaml"
        test_file.write_text(yaml.safe_dump(test_values))
        documents = helm_template(
            tool("helm"), CHART, rendered.release, NAMESPACE, values_files=[values_file, test_file]
        )
        secret_data = {PROXY_SECRET: {PROXY_KEY: self.proxy}}
        if rendered.secret_name:
            secret_data[rendered.secret_name] = rendered.secret.reveal()
        return documents, secret_data

    def start(self, case: PilotCase) -> None:
        documents, secret_data = self.render(case)
        workdir = self.workdir / case.name
        workdir.mkdir()
        workdir.chmod(0o755)
        kubelet = PilotKubelet(
            documents,
            NAMESPACE,
            workdir,
            SMOKE_VENV,
            secrets=secret_data,
            config_maps={
                CONFIG_MAP: {"default.cfg": self.config},
                "kube-root-ca.crt": {"ca.crt": self.api.tls.ca_pem},
            },
            # the address gate's ServiceAccount (interactive GOOGLE_DASK: a LoadBalancer whose
            # address the cloud assigns), with the stub API server's token
            service_account_tokens={f"{case.release}-address-gate": self.api.token},
            api_server_env=self.api.kubelet_env(),
        )
        kubelet.extra_mounts[TRF_DIR] = self.trf_dir
        case.kubelet = kubelet
        if case.replier is not None:
            self.stub.repliers[case.panda_id] = case.replier
        prepare = kubelet.run_to_completion(case.name_of("prepare"), timeout=90)
        if prepare.phase != "Succeeded":
            raise AssertionError(
                f"{case.name}: prepare hook {prepare.phase} {prepare.error}\n{kubelet.log_tails()}"
            )
        kubelet.start(case.name_of("scheduler"))
        kubelet.start(case.name_of("worker-0"))
        if case.mode == "interactive":
            kubelet.start(case.name_of("jupyterlab"))
        kubelet.start(case.name_of("pilot"))

    def pilot_phase(self, case: PilotCase) -> str:
        assert case.kubelet is not None
        run = case.kubelet.pods.get(case.name_of("pilot"))
        return "Pending" if run is None else run.phase


TIER_SECONDS = 240  # all four at once; the pinned pilot waits 2 minutes after a failed payload


def kill_once_the_payload_ran(stub: StubPanda, panda_id: str) -> Replier:
    """PanDA's answer to the first update after the payload reported: kill the job."""

    def reply(update: dict[str, str]) -> str:
        return "tobekilled" if stub.payload_runs(panda_id) else "NULL"

    return reply


def has_metrics(stub: StubPanda, case: PilotCase) -> bool:
    return any("schedulerIP" in str(u.get("jobMetrics", "")) for u in stub.updates(case.panda_id))


def run_cases(run: PilotRun, cases: list[PilotCase], done: dict[str, Any], timeout: float) -> None:
    """Start every case in parallel; wait until each case's `done` predicate holds or time runs out."""
    threads = []
    for case in cases:

        def start(case: PilotCase = case) -> None:
            try:
                run.start(case)
            except Exception as exc:  # reported by the tests through case.error
                case.error = f"{type(exc).__name__}: {exc}"

        thread = threading.Thread(target=start, name=f"start-{case.name}", daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(180)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(case.error or done[case.name](case) for case in cases):
            return
        time.sleep(1)


def record(stub: StubPanda, cases: list[PilotCase]) -> None:
    """What the stub received, per case, for the record (.test-output/pilot-tier.json)."""
    out = ROOT / ".test-output"
    out.mkdir(exist_ok=True)
    keys = ("state", "transExitCode", "pilotErrorCode", "jobMetrics", "batchID", "schedulerID", "pilotID")
    data = {
        case.name: {
            "updateJob": [{k: u[k] for k in keys if k in u} for u in stub.updates(case.panda_id)],
            "payload_runs": len(stub.payload_runs(case.panda_id)),
            "error": case.error,
        }
        for case in cases
    }
    (out / "pilot-tier.json").write_text(json.dumps(data, indent=1))


@pytest.fixture(scope="session")
def pilot_source() -> Path:
    """The pinned pilot, unpacked as in the pilot image (scripts/bootstrap.sh --pilot)."""
    if not (PILOT_SOURCE / "pilot.py").is_file():
        pytest.fail(f"{PILOT_SOURCE} is missing: run scripts/bootstrap.sh --pilot")
    if not (SMOKE_VENV / "bin" / "dask").exists():
        pytest.fail(f"{SMOKE_VENV} is missing: run scripts/bootstrap.sh --smoke")
    return PILOT_SOURCE


@pytest.fixture(scope="session")
def stub() -> Iterator[StubPanda]:
    with StubPanda(QUEUE).running() as server:
        yield server


@pytest.fixture(scope="session")
def api_server() -> Iterator[StubApiServer]:
    with StubApiServer(NAMESPACE).running() as server:
        yield server


@pytest.fixture(scope="session")
def cases(
    pilot_source: Path, stub: StubPanda, api_server: StubApiServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, PilotCase]]:
    workdir = tmp_path_factory.mktemp("pilot")
    workdir.chmod(0o755)
    run = PilotRun(stub, workdir, api_server)
    all_cases = [
        PilotCase("finished", "batch", exit_code=0),
        PilotCase("exit3", "batch", exit_code=3, dask=False),
        PilotCase("killed", "batch", dask=False, sleep=600),
        PilotCase("interactive", "interactive", dask=False),
    ]
    killed = all_cases[2]
    killed.replier = kill_once_the_payload_ran(stub, killed.panda_id)
    ended = {"Succeeded", "Failed", "Stopped"}

    def pilot_ended(case: PilotCase) -> bool:
        return run.pilot_phase(case) in ended

    done = {
        "finished": pilot_ended,
        "exit3": pilot_ended,
        "killed": pilot_ended,
        "interactive": lambda case: has_metrics(stub, case) or pilot_ended(case),
    }
    try:
        run_cases(run, all_cases, done, TIER_SECONDS)
        record(stub, all_cases)
        yield {case.name: case for case in all_cases}
    finally:
        for case in all_cases:
            if case.kubelet is not None:
                case.kubelet.shutdown()
