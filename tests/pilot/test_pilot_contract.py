"""The pilot's contract as the chart renders it: push mode, the job-page IDs, no /cvmfs needed.

The model is what Harvester's own Kubernetes pilots get (docs/harvester.md, "The pilot
contract"): without ``--harvester-submit-mode PUSH`` and ``HARVESTER_ID`` / ``HARVESTER_WORKER_ID``
the pilot is not in Harvester mode and, if its job file is late, pulls ANY job of the queue from
PanDA; without ``K8S_JOB_ID``, ``PANDA_JSID`` and ``GTAG`` the PanDA job page shows no batch ID,
scheduler ID or pilot-log link; a pilot newer than the pinned one stops at start without /cvmfs
unless ``NO_CVMFS_OK=1``. The last test checks what the real pilot then sends to PanDA.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pilot.conftest import NAMESPACE, PilotCase, PilotRun
from tests.pilot.stub_apiserver import StubApiServer
from tests.pilot.stub_panda import StubPanda
from tests.smoke.kubelet import container_argv, resolve_env

pytestmark = pytest.mark.pilot


@dataclass(frozen=True)
class RenderedPilot:
    case: PilotCase
    argv: list[str]
    env: dict[str, str]


@pytest.fixture(scope="module", params=["batch", "interactive"])
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pilot_source: Path
) -> Iterator[RenderedPilot]:
    """The pilot container's argv and env, resolved from `helm template` as a kubelet would."""
    stub = StubPanda("GOOGLE_DASK")  # never started: only its URL is rendered
    try:
        workdir = tmp_path_factory.mktemp("contract")
        run = PilotRun(stub, workdir, StubApiServer(NAMESPACE))  # never started either
        case = PilotCase(f"contract-{request.param}", str(request.param))
        documents, secret_data = run.render(case)
        pod = next(
            d for d in documents if d.get("kind") == "Pod" and d["metadata"]["name"] == case.name_of("pilot")
        )
        container = pod["spec"]["containers"][0]
        env = resolve_env(pod, container, NAMESPACE, secret_data, base={})
        yield RenderedPilot(case, container_argv(container, env), env)
    finally:
        stub.server.server_close()


def option(argv: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in argv."""
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def test_pilot_runs_in_harvester_push_mode(rendered: RenderedPilot) -> None:
    assert option(rendered.argv, "--harvester-submit-mode") == "PUSH", rendered.argv
    assert "HARVESTER_ID" in rendered.env, sorted(rendered.env)
    assert rendered.env.get("HARVESTER_WORKER_ID") == str(rendered.case.worker_id), sorted(rendered.env)


def test_job_page_ids_are_given(rendered: RenderedPilot) -> None:
    env = rendered.env
    assert env.get("K8S_JOB_ID") == rendered.case.release, (
        "K8S_JOB_ID must be Harvester's batchID (the release)"
    )
    assert "HARVESTER_ID" in env and env.get("PANDA_JSID") == f"harvester-{env['HARVESTER_ID']}", sorted(env)
    assert env.get("GTAG"), "GTAG (the pilot log link) is missing"


def test_pilot_runs_under_the_wrapper(rendered: RenderedPilot, repo_root: Path) -> None:
    """The container's exit code must follow the job: the pilot itself exits 0 after a failed payload."""
    wrapper = (repo_root / "charts" / "dask-panda-session" / "files" / "pilot-wrapper.sh").read_text()
    assert rendered.argv[:2] == ["sh", "-c"], rendered.argv[:2]
    assert rendered.argv[2] == wrapper, "the wrapper text was changed on its way into the container"
    # rendered only: the pilot runs nowhere but through tests/pilot/harness.py (PILOT_NOKILL=1 in its
    # own PID namespace)
    assert rendered.argv[3:6] == ["pilot-wrapper", "python3", "/opt/pilot3/pilot.py"], rendered.argv[3:6]
    assert "--cleanup" not in rendered.argv, "the wrapper gives --cleanup itself (it cleans up after reading)"


def test_pilot_does_not_need_cvmfs(rendered: RenderedPilot) -> None:
    assert rendered.env.get("NO_CVMFS_OK") == "1", sorted(rendered.env)


def test_batch_job_has_no_scheduler_ip_in_its_definition_but_in_the_env(rendered: RenderedPilot) -> None:
    """Already true: the pilot would run a batch payload twice with scheduler_ip in the definition."""
    address = f"tls://{rendered.case.release}-scheduler.{NAMESPACE}.svc.cluster.local:"
    assert rendered.env["DASK_SCHEDULER_IP"].startswith(address)
    assert rendered.env["DASK_SCHEDULER_ADDRESS"].startswith(address)


def test_panda_receives_the_ids_from_the_real_pilot(cases: dict[str, PilotCase], stub: StubPanda) -> None:
    case = cases["finished"]
    updates = stub.updates(case.panda_id)
    assert updates, case.error
    for update in updates:
        assert update.get("batchID") == case.release, update.get("batchID")
        assert str(update.get("schedulerID", "")).startswith("harvester-"), update.get("schedulerID")
        assert "|Kubernetes|" in str(update.get("pilotID")), update.get("pilotID")
        assert not str(update.get("pilotID")).startswith("unknown|"), update.get("pilotID")


def test_pilot_source_is_the_pinned_version(pilot_source: Path, repo_root: Path) -> None:
    versions = dict(
        line.split("=", 1)
        for line in (repo_root / "images" / "versions.env").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    )
    assert (pilot_source / "PILOTVERSION").read_text().strip() == versions["PANDA_PILOT_VERSION"]
