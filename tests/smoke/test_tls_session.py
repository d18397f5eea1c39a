"""A real scheduler rendered with the per-session TLS refuses every client without the session's
credentials and serves the session's own client.

Why here: NetworkPolicies are enforced only by some network plug-ins, so the dask comm itself must
keep another tenant out. The scheduler and one worker run from the chart's rendered pods; the
clients run as plain host processes of the pinned dask (they share the host's network, as an
attacker's pod on an unenforcing cluster would share the pod network), with no DASK_* settings.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.tls import CA_KEY, CERT_KEY, KEY_KEY, make_session_tls
from tests.smoke.conftest import (
    SMOKE_VENV,
    Ports,
    job_release,
    make_kubelet,
    new_panda_id,
    new_ports,
    render,
)
from tests.smoke.kubelet import Kubelet

pytestmark = pytest.mark.smoke

CLIENT = r"""
import json, sys
from distributed import Client
from distributed.security import Security
address, ca, cert, key = sys.argv[1:5]
security = None
if ca:
    security = Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)
try:
    with Client(address, security=security, timeout=10) as client:
        total = client.submit(sum, range(101)).result(timeout=60)
        workers = len(client.scheduler_info()["workers"])
    print(json.dumps({"ok": True, "total": total, "workers": workers}))
except Exception as err:  # the refusal is the expected outcome for strangers
    print(json.dumps({"ok": False, "error": f"{type(err).__name__}: {err}"[:300]}))
"""


@dataclass
class TLSSession:
    kubelet: Kubelet
    release: str
    ports: Ports
    files: dict[str, Path]  # the session's own PEM files, as the pods mount them
    stranger: dict[str, Path]  # another session's valid credentials


def write_pems(directory: Path, pems: dict[str, str]) -> dict[str, Path]:
    directory.mkdir(mode=0o700)
    out = {}
    for key, text in pems.items():
        path = directory / key
        path.touch(mode=0o600)
        path.write_text(text)
        out[key] = path
    return out


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSSession]:
    if not (SMOKE_VENV / "bin" / "dask").exists():
        pytest.fail(f"{SMOKE_VENV} is missing: run scripts/bootstrap.sh --smoke")
    panda_id = new_panda_id()
    release = f"dask-{panda_id}"
    ports = new_ports()
    job = job_release(tmp_path_factory, panda_id, "batch", ports)
    assert {CA_KEY, CERT_KEY, KEY_KEY} <= set(job.secret)
    documents = render(
        release,
        panda_id,
        ports,
        {"job.mode": "batch", "workers.replicas": "1"},
        values_files=[job.values_file],
    )
    secrets = {"proxy-secret": {"x509up_u25606_prod": "not a real proxy"}, job.secret_name: job.secret}
    kubelet = make_kubelet(tmp_path_factory, SMOKE_VENV, documents, secrets)
    base = tmp_path_factory.mktemp("tls")
    own = write_pems(base / "own", {k: job.secret[k] for k in (CA_KEY, CERT_KEY, KEY_KEY)})
    other = make_session_tls("dask-1", ["dask-1-scheduler"], valid_for=dt.timedelta(hours=1))
    stranger = write_pems(base / "stranger", {k: v.get() for k, v in other.secret_data().items()})
    try:
        kubelet.run_to_completion(f"{release}-prepare", timeout=60)
        worker = kubelet.start(f"{release}-worker-0")
        kubelet.start(f"{release}-scheduler")
        kubelet.wait_for(lambda: worker.phase == "Running", 120, "the worker's main container")
        yield TLSSession(kubelet, release, ports, own, stranger)
    finally:
        kubelet.shutdown()


def client(address: str, files: dict[str, Path] | None = None, ca_only: bool = False) -> dict[str, Any]:
    """Run a dask Client in a fresh process of the pinned dask, with no DASK_* configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    args = ["", "", ""]
    if files:
        args = [
            str(files[CA_KEY]),
            "" if ca_only else str(files[CERT_KEY]),
            "" if ca_only else str(files[KEY_KEY]),
        ]
    proc = subprocess.run(
        [str(SMOKE_VENV / "bin" / "python"), "-c", CLIENT, address, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stderr[-2000:]
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def test_the_sessions_own_client_computes(session: TLSSession) -> None:
    out = client(f"tls://127.0.0.1:{session.ports.scheduler}", session.files)
    assert out == {"ok": True, "total": 5050, "workers": 1}


def test_a_plain_tcp_client_is_refused(session: TLSSession) -> None:
    out = client(f"tcp://127.0.0.1:{session.ports.scheduler}")
    assert out["ok"] is False, out


def test_a_tls_client_with_another_sessions_certificate_is_refused(session: TLSSession) -> None:
    out = client(f"tls://127.0.0.1:{session.ports.scheduler}", session.stranger)
    assert out["ok"] is False, out


def first_bytes(session: TLSSession, *, with_certificate: bool) -> bytes:
    """Open a TLS connection that trusts the session's CA and read what the scheduler says first
    (an accepted dask peer gets the scheduler's handshake; a refused one an alert or EOF)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(session.files[CA_KEY]))
    context.check_hostname = False
    if with_certificate:
        context.load_cert_chain(str(session.files[CERT_KEY]), str(session.files[KEY_KEY]))
    with (
        socket.create_connection(("127.0.0.1", session.ports.scheduler), timeout=15) as raw,
        context.wrap_socket(raw) as tls,
    ):
        data = tls.recv(1024)  # TLS 1.3: a refusal arrives as an alert after the handshake
    if not data:
        raise ConnectionError("closed by the scheduler")
    return data


def test_a_tls_client_without_a_certificate_is_refused_by_the_scheduler(session: TLSSession) -> None:
    """Trusting the session's CA is not enough: the scheduler itself demands a client certificate
    (dask would not even try without one, so the handshake is made by hand)."""
    assert first_bytes(session, with_certificate=True)  # the control: the same path with the files
    with pytest.raises((ssl.SSLError, ConnectionError)):
        first_bytes(session, with_certificate=False)


def test_the_gates_and_the_dashboard_stay_plain(session: TLSSession) -> None:
    """The start gates' TCP connect works against the TLS listener; the dashboard answers HTTP."""
    socket.create_connection(("127.0.0.1", session.ports.scheduler), timeout=5).close()
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{session.ports.dashboard}/health", timeout=10) as response:
        assert response.read().decode().strip() == "ok"
