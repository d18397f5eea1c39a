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
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.smoke.payloads import TALK_SCRIPT, run_python
from tests.smoke.session import SECRET_KEY, InteractiveSession, http_status, interactive_session

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
