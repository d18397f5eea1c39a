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
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.smoke.conftest import SMOKE_VENV, Ports, make_kubelet, new_panda_id, new_ports, render
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
    secret_name = f"{release}-session"
    password = secrets.token_urlsafe(24)
    ports = new_ports()
    documents = render(
        release,
        panda_id,
        ports,
        {"job.mode": "interactive", "workers.replicas": "1", "secrets.existingSecret": secret_name},
    )
    kubelet = make_kubelet(
        tmp_path_factory,
        SMOKE_VENV,
        documents,
        {secret_name: {SECRET_KEY: password}, "proxy-secret": {"x509up_u25606_prod": "not a real proxy"}},
    )
    session = InteractiveSession(kubelet, release, panda_id, ports, password)
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
    # its root is the job's directory on the shared volume (PANDA_WORKDIR), holding the definition
    assert listing["type"] == "directory"
    assert "pandaJobData.out" in {item["name"] for item in listing["content"]}
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
    (definition_file,) = list(claim_root.glob(f"*/{interactive.panda_id}/pandaJobData.out"))
    definition = json.loads(definition_file.read_text())[interactive.panda_id]
    scheduler = f"{interactive.name('scheduler')}.smoke.svc.cluster.local:{interactive.ports.scheduler}"
    assert definition["scheduler_ip"] == f"tcp://{scheduler}"
    assert definition["session_ip"].startswith(f"http://{interactive.name('jupyterlab')}.smoke.svc")
    assert os.stat(definition_file).st_size < 4096


def test_chart_created_secret_debugging_aid(tmp_path_factory: pytest.TempPathFactory) -> None:
    """secrets.create=true (manual installs only): the rendered Secret's password opens JupyterLab.

    The password goes to helm in a values file, never on its command line.
    """
    panda_id = new_panda_id()
    release = f"dask-{panda_id}"
    password = secrets.token_urlsafe(24)
    values_dir = tmp_path_factory.mktemp("secret-values")
    values_file = values_dir / "secret.yaml"
    values_file.touch(mode=0o600)
    values_file.write_text(json.dumps({"secrets": {"create": True, "jupyterPassword": password}}))
    ports = new_ports()
    documents = render(
        release,
        panda_id,
        ports,
        {"job.mode": "interactive", "workers.replicas": "1"},
        values_files=[values_file],
    )
    kubelet = make_kubelet(
        tmp_path_factory, SMOKE_VENV, documents, {"proxy-secret": {"x509up_u25606_prod": "not a real proxy"}}
    )
    session = InteractiveSession(kubelet, release, panda_id, ports, password)
    try:
        assert kubelet.run_to_completion(session.name("prepare"), timeout=60).phase == "Succeeded"
        kubelet.start(session.name("scheduler"))
        jupyter = kubelet.start(session.name("jupyterlab"))
        kubelet.wait_for(lambda: jupyter.phase == "Running", 60, "JupyterLab's main container")
        kubelet.wait_for(lambda: _ready(session), 120, "JupyterLab to answer /api")
        without, _ = http_status(session.url("/api/contents"))
        assert without in {401, 403}
        # the status is taken out first: a failing assert must not print the call's arguments
        with_password, _ = http_status(session.url("/api/contents"), token=password)
        assert with_password == 200
        leaked = password in kubelet.all_logs()
        assert not leaked
    finally:
        kubelet.shutdown()
