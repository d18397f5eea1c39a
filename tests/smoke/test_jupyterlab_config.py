"""files/jupyterlab-config.py run alone with the images' jupyter_server: what it writes, and that
it refuses to start a lab without a password.

Why: the script is the only place the password is read in JupyterLab's pod; a lab it configured
with an empty password would be open to anyone who reaches its Service. The full session tests
(test_interactive_session.py) show the server honours the file; these show the file itself.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CHART

pytestmark = pytest.mark.smoke

SCRIPT = CHART / "files" / "jupyterlab-config.py"
VERIFY = (
    "import json, sys\n"
    "from jupyter_server.auth import passwd_check\n"
    "hashed = json.load(open(sys.argv[1]))['PasswordIdentityProvider']['hashed_password']\n"
    "password = open(sys.argv[2]).read()\n"
    "print(json.dumps([passwd_check(hashed, password), passwd_check(hashed, password + 'x')]))\n"
)


def _write_config(venv: Path, tmp_path: Path, password: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    secret = tmp_path / "jupyter-password"
    secret.write_text(password)
    private = tmp_path / "private"
    private.mkdir(mode=0o700, exist_ok=True)
    config = private / "jupyter_server_config.json"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DPS_JUPYTER_PASSWORD_FILE": str(secret),
        "DPS_DASHBOARD_TARGET": "dask-1-scheduler.ns.svc.cluster.local:8787",
        "DPS_DASHBOARD_PROXY_NAME": "dask",
    }
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SCRIPT.read_text(), str(config), str(private / "forwarder.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc, config


def test_the_config_holds_a_hash_that_checks_the_password_only(smoke_venv: Path, tmp_path: Path) -> None:
    password = "correct horse battery staple"
    proc, config = _write_config(smoke_venv, tmp_path, password)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    assert password not in text
    assert password not in proc.stdout + proc.stderr
    settings = json.loads(text)
    assert settings["IdentityProvider"]["token"] == ""
    assert settings["PasswordIdentityProvider"]["hashed_password"].startswith("argon2:")
    assert settings["PasswordIdentityProvider"]["allow_password_change"] is False
    entry = settings["ServerProxy"]["servers"]["dask"]
    assert entry["command"][1:] == [
        str(tmp_path / "private" / "forwarder.py"),
        "{port}",
        "dask-1-scheduler.ns.svc.cluster.local:8787",
    ]
    assert settings["ServerProxy"]["host_allowlist"] == []
    checked = subprocess.run(
        [str(smoke_venv / "bin" / "python"), "-c", VERIFY, str(config), str(tmp_path / "jupyter-password")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(checked.stdout) == [True, False]  # the password, and only it


def test_a_second_start_rewrites_the_file(smoke_venv: Path, tmp_path: Path) -> None:
    """A restarted container writes a fresh hash over the old file (the home is an emptyDir that
    survives restarts)."""
    first, config = _write_config(smoke_venv, tmp_path, "first password")
    assert first.returncode == 0, first.stderr
    before = json.loads(config.read_text())["PasswordIdentityProvider"]["hashed_password"]
    second, again = _write_config(smoke_venv, tmp_path, "first password")
    assert second.returncode == 0, second.stderr
    assert again == config
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["PasswordIdentityProvider"]["hashed_password"] != before  # a new salt


def test_an_empty_password_file_is_refused(smoke_venv: Path, tmp_path: Path) -> None:
    proc, config = _write_config(smoke_venv, tmp_path, "")
    assert proc.returncode != 0
    assert "password file is empty" in proc.stderr
    assert not config.exists()
