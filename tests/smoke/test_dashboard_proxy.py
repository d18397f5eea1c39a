"""The session's Dask dashboard inside JupyterLab, behind the user's password.

Why: the dashboard's own URL is an in-cluster name nobody outside the cluster can open. The
chart starts JupyterLab with jupyter-server-proxy allowed to reach the session's scheduler only,
and preconfigures dask-labextension with that proxied URL. These tests run the rendered
JupyterLab, scheduler and worker commands as real processes and show that the proxied dashboard
is refused without the password, served with it (the scheduler's real bokeh page), and that no
other host can be reached through the proxy.
"""

from __future__ import annotations

import json

import pytest

from tests.smoke.session import InteractiveSession, http_status
from tests.smoke.test_interactive_session import interactive

__all__ = ["interactive"]  # the module-scoped session fixture, started once for this module

pytestmark = pytest.mark.smoke


def test_the_proxied_dashboard_is_refused_without_the_password(interactive: InteractiveSession) -> None:
    status, body = http_status(interactive.url(interactive.dashboard_path()))
    assert status in {302, 401, 403}
    assert b"Bokeh" not in body


def test_the_proxied_dashboard_is_refused_with_a_wrong_password(interactive: InteractiveSession) -> None:
    status, body = http_status(interactive.url(interactive.dashboard_path()), token="not-the-password")
    assert status in {302, 401, 403}
    assert b"Bokeh" not in body


def test_the_password_opens_the_schedulers_real_dashboard(interactive: InteractiveSession) -> None:
    status, body = http_status(interactive.url(interactive.dashboard_path()), token=interactive.password)
    assert status == 200
    assert b"Bokeh" in body  # the scheduler's bokeh page itself, through the proxy
    # the pane list dask-labextension reads from the same proxied server
    status, body = http_status(
        interactive.url(interactive.dashboard_path("individual-plots.json")), token=interactive.password
    )
    assert status == 200
    plots = json.loads(body)
    assert any("Task Stream" in name for name in plots)


def test_the_proxy_reaches_no_other_host(interactive: InteractiveSession) -> None:
    """Only the session's scheduler is allowed: not localhost (JupyterLab's own pod), not others."""
    for host in ("127.0.0.1", "localhost", f"{interactive.name('worker-0')}.smoke.svc.cluster.local"):
        status, _ = http_status(
            interactive.url(f"/proxy/{host}:{interactive.ports.dashboard}/status"), token=interactive.password
        )
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
    status, body = http_status(
        interactive.url("/lab/api/settings/dask-labextension:plugin"), token=interactive.password
    )
    assert status == 200
    assert json.loads(body)["settings"]["defaultURL"] == settings["defaultURL"]
