"""The session's Dask dashboard inside JupyterLab, behind the user's password.

Why: the dashboard's own URL is an in-cluster name nobody outside the cluster can open. The
chart gives JupyterLab a named jupyter-server-proxy entry, `<base>dask/`, served by a loopback
forwarder to the session's scheduler, closes the proxy's `/proxy/<host>:<port>/` form, and
preconfigures dask-labextension with the named URL. These tests run the rendered JupyterLab,
scheduler and worker commands as real processes and show that the proxied dashboard is refused
without the password, served with it (the scheduler's real bokeh page), that a login started from
the dashboard's address leads back to it (the address holds no ':' for the login redirect to
mangle), and that no other host can be reached through the proxy.
"""

from __future__ import annotations

import json
import secrets

import pytest

from tests.smoke.session import InteractiveSession
from tests.smoke.test_interactive_session import interactive

__all__ = ["interactive"]  # the module-scoped session fixture, started once for this module

pytestmark = pytest.mark.smoke


def test_the_proxied_dashboard_is_refused_without_the_password(interactive: InteractiveSession) -> None:
    status, body = interactive.get(interactive.dashboard_path())
    assert status in {302, 401, 403}
    assert b"Bokeh" not in body


def test_the_proxied_dashboard_is_refused_with_a_wrong_password(interactive: InteractiveSession) -> None:
    login = interactive.login(secrets.token_urlsafe(24), next_path=interactive.dashboard_path())
    assert not login.accepted
    status, body = interactive.get(interactive.dashboard_path(), login)
    assert status in {302, 401, 403}
    assert b"Bokeh" not in body


def test_the_password_opens_the_schedulers_real_dashboard(interactive: InteractiveSession) -> None:
    login = interactive.login(interactive.password)
    status, body = interactive.get(interactive.dashboard_path(), login)
    assert status == 200
    assert b"Bokeh" in body  # the scheduler's bokeh page itself, through the proxy
    # the pane list dask-labextension reads from the same proxied server
    status, body = interactive.get(interactive.dashboard_path("individual-plots.json"), login)
    assert status == 200
    plots = json.loads(body)
    assert any("Task Stream" in name for name in plots)


def test_the_login_leads_on_to_the_dashboard_it_was_asked_for(interactive: InteractiveSession) -> None:
    """Logged out, the dashboard's address sends the user to the login with `next` set to it;
    after the login the server sends them back to that very address (not a mangled one)."""
    status, _ = interactive.get(interactive.dashboard_path())
    assert status == 302
    login = interactive.login(interactive.password, next_path=interactive.dashboard_path())
    assert login.accepted
    assert login.location == interactive.dashboard_path()
    assert interactive.get(login.location, login)[0] == 200


def test_the_proxy_reaches_no_other_host(interactive: InteractiveSession) -> None:
    """The `/proxy/<host>:<port>/` form reaches no host, not even the session's scheduler (the
    named entry is the way to it), localhost or a worker. (jupyter-server-proxy's `/proxy/<port>/`
    form, the pod's own loopback ports behind the login, is its fixed behaviour.)"""
    login = interactive.login(interactive.password)
    scheduler = f"{interactive.name('scheduler')}.smoke.svc.cluster.local"
    for host in (scheduler, "127.0.0.1", "localhost", f"{interactive.name('worker-0')}.smoke.svc.cluster.local"):
        status, _ = interactive.get(f"/proxy/{host}:{interactive.ports.dashboard}/status", login)
        assert status == 403, host


def test_dask_labextension_starts_with_the_proxied_dashboard(interactive: InteractiveSession) -> None:
    found = list(
        interactive.kubelet.workdir.glob(
            "**/volumes/home/.jupyter/lab/user-settings/dask-labextension/plugin.jupyterlab-settings"
        )
    )
    assert len(found) == 1, found
    settings = json.loads(found[0].read_text())
    assert settings["defaultURL"] == interactive.dashboard_path().removesuffix("/status")
    login = interactive.login(interactive.password)
    status, body = interactive.get("/lab/api/settings/dask-labextension:plugin", login)
    assert status == 200
    assert json.loads(body)["settings"]["defaultURL"] == settings["defaultURL"]
