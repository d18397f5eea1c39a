"""One interactive session run for real: the chart's JupyterLab, scheduler and workers as processes.

Why one module: the smoke tier's tests, the browser tier and `scripts/demo.sh` (through
`python -m tests.smoke`) all need the same thing, an interactive release rendered by helm from the
job's values (the orchestrator's own data path) and run by the kubelet stand-in with the per-job
Secret's password. Starting it in one place keeps the three from drifting apart.
"""

from __future__ import annotations

import http.cookiejar
import secrets
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from orchestrator.session.services import DASHBOARD_PROXY_NAME
from tests.smoke.conftest import (
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
TLS_SECRET = "site-jupyterlab-tls"  # the site's certificate Secret (jupyterlab.tls.secretName)


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
    # With jupyterlab.tls: a client context that trusts the lab's certificate (https URLs)
    tls: ssl.SSLContext | None = field(default=None, repr=False)

    def name(self, suffix: str) -> str:
        return f"{self.release}-{suffix}"

    def url(self, path: str, scheme: str | None = None) -> str:
        """The lab's URL on this host: https when it serves TLS (or the scheme asked for)."""
        # with TLS, the certificate's name (an address would need an IP subject alternative name)
        host = "localhost" if self.tls else "127.0.0.1"
        return f"{scheme or ('https' if self.tls else 'http')}://{host}:{self.ports.jupyterlab}{path}"

    def dashboard_path(self, page: str = "status") -> str:
        """The scheduler's dashboard through JupyterLab's proxy (what the chart gives the user)."""
        return f"/{DASHBOARD_PROXY_NAME}/{page}"

    def get(self, path: str, login: Login | None = None) -> tuple[int, bytes]:
        """Status and body of a GET on the lab, as a visitor or as a logged-in user."""
        return http_status(self.url(path), login.cookies if login else None, self.tls)

    def login(self, password: str, next_path: str = "/lab") -> Login:
        """Log in through JupyterLab's login form, as a browser does: the _xsrf cookie, then a POST."""
        jar = http.cookiejar.CookieJar()
        opener = _opener(jar, self.tls)
        with opener.open(self.url("/login"), timeout=10) as response:
            response.read()
        xsrf = next((cookie.value for cookie in jar if cookie.name == "_xsrf"), "")
        form = urllib.parse.urlencode({"_xsrf": xsrf or "", "password": password}).encode()
        target = self.url(f"/login?{urllib.parse.urlencode({'next': next_path})}")
        try:
            with opener.open(target, data=form, timeout=30) as response:
                status, location = response.status, ""
                response.read()
        except urllib.error.HTTPError as error:  # the redirect after a good login, not followed
            status, location = error.code, error.headers.get("Location", "")
            error.read()
        logged_in = any(cookie.name.startswith("username-") for cookie in jar)
        landed = urllib.parse.urlsplit(location).path
        return Login(status == 302 and logged_in and landed != "/login", jar, landed, xsrf or "")


@dataclass(frozen=True)
class Login:
    """The outcome of one login form: accepted or not, the cookies, where the server sent the user."""

    accepted: bool
    cookies: http.cookiejar.CookieJar = field(repr=False)
    location: str  # the path of the redirect after the POST ("" when none)
    xsrf: str = field(default="", repr=False)  # the form's _xsrf value, for API writes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _opener(
    cookies: http.cookiejar.CookieJar | None, context: ssl.SSLContext | None
) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect(), urllib.request.HTTPSHandler(context=context)]
    if cookies is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(cookies))
    return urllib.request.build_opener(*handlers)


def http_status(
    url: str, cookies: http.cookiejar.CookieJar | None = None, context: ssl.SSLContext | None = None
) -> tuple[int, bytes]:
    """Status and body of a GET; redirects are returned, not followed (a login redirect is a refusal)."""
    request = urllib.request.Request(url)  # noqa: S310 - loopback only
    try:
        with _opener(cookies, context).open(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _ready(session: InteractiveSession) -> bool:
    try:
        return session.get("/api")[0] == 200
    except OSError:
        return False


@contextmanager
def interactive_session(
    dirs: DirFactory,
    *,
    workers: int = 1,
    tls_secret: Mapping[str, str] | None = None,
    tls_client: ssl.SSLContext | None = None,
) -> Iterator[InteractiveSession]:
    """Prepare hook, JupyterLab (held by its gate), scheduler and workers; all ended on exit.

    With tls_secret (`tls.crt`, `tls.key`), JupyterLab serves HTTPS from it as the chart's
    `jupyterlab.tls.secretName` makes it; tls_client is then the context that trusts it.
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
    values = {"job.mode": "interactive", "workers.replicas": str(workers)}
    secrets_data = {job.secret_name: job.secret, "proxy-secret": {"x509up_u25606_prod": "not a real proxy"}}
    if tls_secret is not None:
        values["jupyterlab.tls.secretName"] = TLS_SECRET
        secrets_data[TLS_SECRET] = dict(tls_secret)
    documents = render(release, panda_id, ports, values, values_files=[job.values_file])
    kubelet = make_kubelet(dirs, SMOKE_VENV, documents, secrets_data)
    session = InteractiveSession(kubelet, release, panda_id, ports, password, job, workers, tls=tls_client)
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
