"""An interactive session: JupyterLab as the chart renders it, with the password from the Secret.

Why: the original system put the Jupyter token on the command line and defaulted it to a
well-known value. Here the chart mounts the per-job Secret; JupyterLab's start script hashes the
password from that file into a private config file and turns the token off. These tests show
that the rendered `jupyter lab` command really refuses requests without the password or with a
wrong one, accepts the one from the Secret's file through its login form, never accepts it as a
token, and never shows it in argv, env, logs, the lab's page or the login page.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.smoke.payloads import TALK_SCRIPT, run_python
from tests.smoke.session import SECRET_KEY, InteractiveSession, interactive_session

pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def interactive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveSession]:
    with interactive_session(tmp_path_factory, workers=1) as session:
        assert session.job is not None
        assert session.job.secret[SECRET_KEY] == session.password
        yield session


def test_jupyterlab_waits_for_the_scheduler(interactive: InteractiveSession) -> None:
    """Started before the scheduler, JupyterLab stays in its start gate until the scheduler runs."""
    assert interactive.jupyter_phase_before_scheduler == "Init:wait-for-scheduler"


def test_jupyterlab_refuses_requests_without_the_password(interactive: InteractiveSession) -> None:
    status, _ = interactive.get("/api/contents")
    assert status in {401, 403}
    status, _ = interactive.get("/lab")
    assert status in {302, 401, 403}  # a redirect to the login page


def test_jupyterlab_refuses_a_wrong_password(interactive: InteractiveSession) -> None:
    login = interactive.login(secrets.token_urlsafe(24))
    assert not login.accepted
    status, _ = interactive.get("/api/contents", login)
    assert status in {401, 403}


def test_the_password_is_no_token(interactive: InteractiveSession) -> None:
    """The token is off: the password in an Authorization header or a ?token= opens nothing."""
    for path, headers in (
        ("/api/contents", {"Authorization": f"token {interactive.password}"}),
        (f"/api/contents?token={interactive.password}", {}),
    ):
        request = urllib.request.Request(interactive.url(path), headers=headers)  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        assert status in {401, 403}


def test_the_login_page_has_no_token_hint(interactive: InteractiveSession) -> None:
    status, body = interactive.get("/login")
    assert status == 200
    page = body.decode()
    assert 'id="password_input"' in page
    assert "Password or token" not in page
    assert "Token authentication is enabled" not in page


def test_jupyterlab_accepts_the_password_from_the_secret_file(interactive: InteractiveSession) -> None:
    login = interactive.login(interactive.password)
    assert login.accepted
    assert login.location == "/lab"
    status, body = interactive.get("/api/contents", login)
    assert status == 200
    listing = json.loads(body)
    # its root is the job's shared data directory (PANDA_WORKDIR): the pilot's directory and its
    # definition are out of the user's reach
    assert listing["type"] == "directory"
    names = {item["name"] for item in listing["content"]}
    assert "pandaJobData.out" not in names and "pilot" not in names
    status, _ = interactive.get("/api/contents/..%2Fpilot%2FpandaJobData.out", login)
    assert status in {400, 403, 404}
    status, body = interactive.get("/lab", login)
    assert status == 200
    assert b"JupyterLab" in body
    # the lab's page embeds the server's token for its client: there is none, and no password
    assert interactive.password.encode() not in body
    assert b'"token": ""' in body


def _session_processes(session: InteractiveSession) -> dict[int, tuple[bytes, bytes]]:
    """{pid: (cmdline, environ)} of every process of the session's pods (HOSTNAME names the pod)."""
    marker = f"HOSTNAME={session.release}-".encode()
    found: dict[int, tuple[bytes, bytes]] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            environ = (proc / "environ").read_bytes()
            if any(item.startswith(marker) for item in environ.split(b"\0")):
                found[int(proc.name)] = ((proc / "cmdline").read_bytes(), environ)
        except OSError:
            continue
    return found


def test_the_password_is_never_in_argv_env_or_logs(interactive: InteractiveSession) -> None:
    # the dashboard's forwarder runs too (started by the first dashboard request after a login)
    login = interactive.login(interactive.password)
    assert interactive.get(interactive.dashboard_path(), login)[0] == 200
    run = interactive.kubelet.pods[interactive.name("jupyterlab")].main
    assert run is not None
    processes = _session_processes(interactive)
    assert run.process.pid in processes
    lab_cmdline = processes[run.process.pid][0].decode(errors="replace")
    assert "jupyter" in lab_cmdline  # the process is the rendered `jupyter lab` after exec
    assert any(b"dashboard-forwarder.py" in cmdline for cmdline, _ in processes.values())
    secret = interactive.password.encode()
    in_argv = any(secret in cmdline for cmdline, _ in processes.values())
    in_env = any(secret in environ for _, environ in processes.values())
    in_logs = interactive.password in interactive.kubelet.all_logs()
    assert (in_argv, in_env, in_logs) == (False, False, False)
    environ = processes[run.process.pid][1].decode(errors="replace")
    assert "JUPYTER_TOKEN" not in environ
    assert "DPS_JUPYTER_PASSWORD_FILE=" in environ


def test_only_a_hash_of_the_password_is_kept_in_a_private_file(interactive: InteractiveSession) -> None:
    (config,) = list(interactive.kubelet.workdir.glob("**/volumes/home/.dask-panda-session/jupyter_server_config.json"))
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(config.parent).st_mode) == 0o700
    settings = json.loads(config.read_text())
    hashed = settings["PasswordIdentityProvider"]["hashed_password"]
    assert hashed.startswith("argon2:")  # the image has argon2-cffi (a jupyter_server dependency)
    assert interactive.password not in config.read_text()
    assert settings["IdentityProvider"]["token"] == ""


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
