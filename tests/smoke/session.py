"""One interactive session run for real: the chart's JupyterLab, scheduler and workers as processes.

Why one module: the smoke tier's tests, the browser tier and `scripts/demo.sh` (through
`python -m tests.smoke`) all need the same thing, an interactive release rendered by helm from the
job's values (the orchestrator's own data path) and run by the kubelet stand-in with the per-job
Secret's password. Starting it in one place keeps the three from drifting apart.
"""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.smoke.conftest import (
    NAMESPACE,
    SMOKE_VENV,
    DirFactory,
    JobRelease,
    Ports,
    job_release,
    make_kubelet,
    new_panda_id,
    new_ports,
    render,
)
from tests.smoke.kubelet import Kubelet, KubeletError

SECRET_KEY = "jupyter-password"


@dataclass
class InteractiveSession:
    """A running interactive release; the password is kept out of repr and of every message."""

    kubelet: Kubelet
    release: str
    panda_id: str
    ports: Ports
    password: str = field(repr=False)  # never printed: not in repr, not in assertion messages
    job: JobRelease | None = field(default=None, repr=False)
    workers: int = 1
    # JupyterLab's phase while the scheduler was not started yet (its start gate must hold it)
    jupyter_phase_before_scheduler: str = ""

    def name(self, suffix: str) -> str:
        return f"{self.release}-{suffix}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports.jupyterlab}{path}"

    def dashboard_path(self, page: str = "status") -> str:
        """The scheduler's dashboard through JupyterLab's proxy (what the chart gives the user)."""
        host = f"{self.name('scheduler')}.{NAMESPACE}.svc.cluster.local"
        return f"/proxy/{host}:{self.ports.dashboard}/{page}"


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


def _ready(session: InteractiveSession) -> bool:
    try:
        return http_status(session.url("/api"))[0] == 200
    except OSError:
        return False


@contextmanager
def interactive_session(dirs: DirFactory, *, workers: int = 1) -> Iterator[InteractiveSession]:
    """Prepare hook, JupyterLab (held by its gate), scheduler and workers; all ended on exit.

    Yields once JupyterLab answers `/api` (its readiness probe). On exit every process the
    kubelet stand-in started gets SIGTERM, then SIGKILL, by process group.
    """
    if not (SMOKE_VENV / "bin" / "jupyter-lab").exists():
        raise KubeletError(f"{SMOKE_VENV} is missing: run scripts/bootstrap.sh --smoke")
    panda_id = new_panda_id()
    release = f"dask-{panda_id}"
    password = secrets.token_urlsafe(24)
    ports = new_ports()
    job = job_release(dirs, panda_id, "interactive", ports, password=password)
    documents = render(
        release,
        panda_id,
        ports,
        {"job.mode": "interactive", "workers.replicas": str(workers)},
        values_files=[job.values_file],
    )
    kubelet = make_kubelet(
        dirs,
        SMOKE_VENV,
        documents,
        {job.secret_name: job.secret, "proxy-secret": {"x509up_u25606_prod": "not a real proxy"}},
    )
    session = InteractiveSession(kubelet, release, panda_id, ports, password, job, workers)
    try:
        prepare = kubelet.run_to_completion(session.name("prepare"), timeout=60)
        if prepare.phase != "Succeeded":
            raise KubeletError(f"the prepare hook failed: {prepare.error}")
        jupyter = kubelet.start(session.name("jupyterlab"))
        time.sleep(2)
        session.jupyter_phase_before_scheduler = jupyter.phase
        kubelet.start(session.name("scheduler"))
        for index in range(workers):
            kubelet.start(session.name(f"worker-{index}"))
        kubelet.wait_for(lambda: jupyter.phase == "Running", 60, "JupyterLab's main container")
        kubelet.wait_for(lambda: _ready(session), 120, "JupyterLab to answer /api (its readiness probe)")
        yield session
    finally:
        kubelet.shutdown()
