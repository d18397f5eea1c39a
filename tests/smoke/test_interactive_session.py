"""An interactive session: JupyterLab as the chart renders it, with the password from the Secret.

Why: the original system put the Jupyter token on the command line and defaulted it to a
well-known value. Here the chart mounts the per-job Secret and sets JUPYTER_TOKEN_FILE; these
tests show that the rendered `jupyter lab` command really refuses requests without the password,
accepts the one from the Secret's file, and never shows it in argv, env or logs.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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
from tests.smoke.kubelet import Kubelet
from tests.smoke.payloads import TALK_SCRIPT, run_python

SECRET_KEY = "jupyter-password"


@dataclass
class InteractiveSession:
    kubelet: Kubelet
    release: str
    panda_id: str
    ports: Ports
    password: str = field(repr=False)  # never printed: not in repr, not in assertion messages
    job: JobRelease | None = field(default=None, repr=False)

    def name(self, suffix: str) -> str:
        return f"{self.release}-{suffix}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports.jupyterlab}{path}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def http_status(url: str, token: str | None = None) -> tuple[int, bytes]:
    """Status and body of a GET; redirects are returned, not followed (a login redirect is a refusal)."""
    request = urllib.request.Request(url)  # noqa: S310 - loopback only
    if token is not None:
        request.add_header("Authorization", f"token {token}")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def interactive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveSession]:
    if not (SMOKE_VENV / "bin" / "jupyter-lab").exists():
        pytest.fail(f"{SMOKE_VENV} is missing: run scripts/bootstrap.sh --smoke")
    panda_id = new_panda_id()
    release = f"dask-{panda_id}"
    password = secrets.token_urlsafe(24)
    ports = new_ports()
    job = job_release(tmp_path_factory, panda_id, "interactive", ports, password=password)
    assert job.secret[SECRET_KEY] == password
    documents = render(
        release,
        panda_id,
        ports,
        {"job.mode": "interactive", "workers.replicas": "1"},
        values_files=[job.values_file],
    )
    kubelet = make_kubelet(
        tmp_path_factory,
        SMOKE_VENV,
        documents,
        {job.secret_name: job.secret, "proxy-secret": {"x509up_u25606_prod": "not a real proxy"}},
    )
    session = InteractiveSession(kubelet, release, panda_id, ports, password, job)
    try:
        prepare = kubelet.run_to_completion(session.name("prepare"), timeout=60)
        assert prepare.phase == "Succeeded", prepare.error
        jupyter = kubelet.start(session.name("jupyterlab"))
        time.sleep(2)
        assert jupyter.phase == "Init:wait-for-scheduler", jupyter.phase
        kubelet.start(session.name("scheduler"))
        kubelet.start(session.name("worker-0"))
        kubelet.wait_for(lambda: jupyter.phase == "Running", 60, "JupyterLab's main container")
        kubelet.wait_for(lambda: _ready(session), 120, "JupyterLab to answer /api (its readiness probe)")
        yield session
    finally:
        kubelet.shutdown()


def _ready(session: InteractiveSession) -> bool:
    try:
        return http_status(session.url("/api"))[0] == 200
    except OSError:
        return False


def test_jupyterlab_refuses_requests_without_the_password(interactive: InteractiveSession) -> None:
    status, _ = http_status(interactive.url("/api/contents"))
    assert status in {401, 403}
    status, _ = http_status(interactive.url("/lab"))
    assert status in {302, 401, 403}  # a redirect to the login page


def test_jupyterlab_refuses_a_wrong_password(interactive: InteractiveSession) -> None:
    status, _ = http_status(interactive.url("/api/contents"), token=secrets.token_urlsafe(24))
    assert status in {401, 403}


def test_jupyterlab_accepts_the_password_from_the_secret_file(interactive: InteractiveSession) -> None:
    status, body = http_status(interactive.url("/api/contents"), token=interactive.password)
    assert status == 200
    listing = json.loads(body)
    # its root is the job's shared data directory (PANDA_WORKDIR): the pilot's directory and its
    # definition are out of the user's reach
    assert listing["type"] == "directory"
    names = {item["name"] for item in listing["content"]}
    assert "pandaJobData.out" not in names and "pilot" not in names
    status, _ = http_status(
        interactive.url("/api/contents/..%2Fpilot%2FpandaJobData.out"), token=interactive.password
    )
    assert status in {400, 403, 404}
    status, body = http_status(interactive.url("/lab"), token=interactive.password)
    assert status == 200
    assert b"JupyterLab" in body


def test_the_password_is_never_in_argv_env_or_logs(interactive: InteractiveSession) -> None:
    run = interactive.kubelet.pods[interactive.name("jupyterlab")].main
    assert run is not None
    proc = Path("/proc") / str(run.process.pid)
    cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
    environ = (proc / "environ").read_bytes().decode(errors="replace")
    assert "jupyter" in cmdline  # the process is the rendered `jupyter lab` after exec
    in_argv = interactive.password in cmdline
    in_env = interactive.password in environ
    in_logs = interactive.password in interactive.kubelet.all_logs()
    assert (in_argv, in_env, in_logs) == (False, False, False)
    assert "JUPYTER_TOKEN_FILE=" in environ


def test_talk_script_from_jupyterlab(interactive: InteractiveSession) -> None:
    """The user's script with JupyterLab's env, as a notebook cell would run it."""
    out = run_python(
        interactive.kubelet, interactive.name("jupyterlab"), "jupyterlab", TALK_SCRIPT, timeout=600
    )
    assert isinstance(out, dict)
    assert out["shape"] == [5000]
    assert out["finite"] is True
    assert abs(out["mean"] - 1.0) < 0.01
    assert out["small_matches_numpy"] is True
    assert out["workers"] == [interactive.name("worker-0")]
    assert out["client_dask"] == out["scheduler_dask"]


def test_interactive_definition_carries_the_session_addresses(interactive: InteractiveSession) -> None:
    claim_root = interactive.kubelet.claims
    (definition_file,) = list(claim_root.glob(f"*/{interactive.panda_id}-0/pilot/pandaJobData.out"))
    assert interactive.job is not None
    assert definition_file.read_bytes() == interactive.job.definition  # byte for byte the Secret's
    definition = json.loads(definition_file.read_text())[interactive.panda_id]
    scheduler = f"{interactive.name('scheduler')}.smoke.svc.cluster.local:{interactive.ports.scheduler}"
    assert definition["scheduler_ip"] == f"tls://{scheduler}"
    assert definition["session_ip"].startswith(f"http://{interactive.name('jupyterlab')}.smoke.svc")
    # the JupyterLab pod's annotation (rendered by the chart) and the definition (made in Python) agree
    annotation = interactive.kubelet.pod(interactive.name("jupyterlab"))["metadata"]["annotations"]
    assert definition["session_ip"] == annotation["dask-panda-session/jupyter-url"]
    assert "secrets" not in definition
    assert interactive.password not in definition_file.read_text()
    assert stat.S_IMODE(os.stat(definition_file.parent).st_mode) & 0o777 == 0o700
