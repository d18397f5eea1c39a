"""JupyterLab serving HTTPS itself (`jupyterlab.tls.secretName`), for queues with a LoadBalancer
and no Ingress.

Why: the password travels in the login form; on a public LoadBalancer it must not go over plain
HTTP. The chart mounts the site's certificate Secret and starts JupyterLab with its cert flags.
These tests run that rendered command as a real process with a throwaway certificate (made the
way the orchestrator makes the session's certificates) and show that the login works over
HTTPS, that a client which does not trust the certificate is refused, that plain HTTP on the
same port gets no lab, and that the proxied dashboard works over HTTPS too.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from orchestrator.tls import make_session_tls
from tests.smoke.session import InteractiveSession, http_status, interactive_session

pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def https_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveSession]:
    """An interactive session whose JupyterLab serves TLS from a site certificate for localhost."""
    site = make_session_tls("site", ["localhost"], valid_for=dt.timedelta(hours=1))
    trusting = ssl.create_default_context(cadata=site.ca_pem)
    secret = {"tls.crt": site.cert_pem, "tls.key": site.key_pem.get()}
    with interactive_session(tmp_path_factory, workers=1, tls_secret=secret, tls_client=trusting) as session:
        yield session


def test_the_login_works_over_https(https_lab: InteractiveSession) -> None:
    assert https_lab.url("/lab").startswith("https://")
    assert not https_lab.login("not-the-password").accepted
    login = https_lab.login(https_lab.password)
    assert login.accepted
    status, _ = https_lab.get("/api/contents", login)
    assert status == 200
    status, body = https_lab.get(https_lab.dashboard_path(), login)
    assert status == 200
    assert b"Bokeh" in body  # the dashboard's forwarder behind the HTTPS lab


def test_a_client_that_does_not_trust_the_certificate_is_refused(https_lab: InteractiveSession) -> None:
    with pytest.raises(urllib.error.URLError) as refused:
        http_status(https_lab.url("/api"), context=ssl.create_default_context())
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)


def test_plain_http_is_refused(https_lab: InteractiveSession) -> None:
    """The same port spoken to in plain HTTP: the connection ends without a page (no redirect,
    no login form that a browser would fill in over plain HTTP)."""
    assert https_lab.get("/login")[0] == 200  # the same port and path over HTTPS: the login page
    request = urllib.request.Request(https_lab.url("/login", scheme="http"))  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:  # an HTTP answer, if any, must be an error page
        status, body = error.code, error.read()
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError):
        return  # the connection ended without an HTTP answer
    assert status >= 400
    assert b"password_input" not in body
