"""The JupyterLab Services of a namespace -> the external JupyterLab URL and the proxied dashboard.

Pure functions, so the Service objects are plain API JSON as a LIST returns them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from orchestrator.session import (
    JUPYTERLAB_SERVICE_SELECTOR,
    Phase,
    SessionState,
    external_jupyter_urls,
    is_in_cluster_url,
    proxied_dashboard_url,
    with_external_urls,
)

pytestmark = pytest.mark.unit

IN_CLUSTER = "http://dask-7-jupyterlab.ns.svc.cluster.local:8888/"
DASHBOARD = "http://dask-7-scheduler.ns.svc.cluster.local:8787/status"


def service(
    release: str,
    *,
    ip: str | None = None,
    hostname: str | None = None,
    kind: str = "LoadBalancer",
    port: int = 8888,
    port_name: str = "http",
    component: str = "jupyterlab",
) -> dict[str, Any]:
    ingress = [{k: v for k, v in (("ip", ip), ("hostname", hostname)) if v}] if (ip or hostname) else None
    return {
        "metadata": {
            "name": f"{release}-{component}",
            "labels": {
                "app.kubernetes.io/name": "dask-panda-session",
                "app.kubernetes.io/instance": release,
                "app.kubernetes.io/component": component,
            },
        },
        "spec": {"type": kind, "ports": [{"name": port_name, "port": port}]},
        "status": {"loadBalancer": {"ingress": ingress} if ingress else {}},
    }


def state(release: str = "dask-7", mode: str = "interactive", jupyter: str | None = IN_CLUSTER) -> SessionState:
    return SessionState(
        release=release,
        namespace="ns",
        phase=Phase.RUNNING,
        mode=mode,
        dashboard_url=DASHBOARD,
        jupyter_url=jupyter if mode == "interactive" else None,
    )


def test_the_selector_names_only_jupyterlab_services() -> None:
    assert "app.kubernetes.io/component=jupyterlab" in JUPYTERLAB_SERVICE_SELECTOR.split(",")
    assert "app.kubernetes.io/name=dask-panda-session" in JUPYTERLAB_SERVICE_SELECTOR.split(",")


@pytest.mark.parametrize(
    ("svc", "url"),
    [
        (service("dask-7", ip="192.0.2.7"), "http://192.0.2.7:8888/"),
        (service("dask-7", hostname="lb-1.example.org", port=80), "http://lb-1.example.org/"),
        (service("dask-7", ip="203.0.113.5", port=443, port_name="https"), "https://203.0.113.5/"),
        (service("dask-7", ip="2001:db8::7"), "http://[2001:db8::7]:8888/"),
    ],
)
def test_a_loadbalancer_with_an_ingress_address_gives_its_url(svc: dict[str, Any], url: str) -> None:
    assert external_jupyter_urls([svc]) == {"dask-7": url}


@pytest.mark.parametrize(
    "svc",
    [
        service("dask-7"),  # no address yet: the cloud's controller has not answered
        service("dask-7", ip="10.0.0.7", kind="ClusterIP"),
        service("dask-7", ip="192.0.2.7", component="scheduler"),
        {"metadata": {"labels": None}, "spec": None},  # odd objects are skipped, never raised on
    ],
)
def test_no_url_without_an_external_address_of_a_jupyterlab_loadbalancer(svc: dict[str, Any]) -> None:
    assert external_jupyter_urls([svc]) == {}


def test_a_service_being_deleted_gives_no_url() -> None:
    svc = service("dask-7", ip="192.0.2.7")
    svc["metadata"]["deletionTimestamp"] = "2026-11-28T10:00:00Z"
    assert external_jupyter_urls([svc]) == {}


def test_in_cluster_urls_are_told_from_external_ones() -> None:
    assert is_in_cluster_url(IN_CLUSTER)
    assert is_in_cluster_url(None)
    assert not is_in_cluster_url("https://dask.example.org/jupyter/dask-7/")
    assert not is_in_cluster_url("http://192.0.2.7:8888/")


def test_the_external_address_replaces_the_in_cluster_url_and_the_dashboard_goes_behind_it() -> None:
    states = {"dask-7": state(), "dask-8": state("dask-8", mode="batch")}
    out = with_external_urls(states, [service("dask-7", ip="192.0.2.7"), service("dask-8", ip="192.0.2.8")])
    assert out["dask-7"].jupyter_url == "http://192.0.2.7:8888/"
    assert out["dask-7"].dashboard_url == "http://192.0.2.7:8888/dask/status"
    assert out["dask-8"] == states["dask-8"]  # batch: no JupyterLab, the dashboard stays in-cluster


def test_a_render_time_external_url_is_kept() -> None:
    ingress = "https://dask.example.org/jupyter/dask-7/"
    out = with_external_urls({"dask-7": state(jupyter=ingress)}, [service("dask-7", ip="192.0.2.7")])
    assert out["dask-7"].jupyter_url == ingress
    assert out["dask-7"].dashboard_url == "https://dask.example.org/jupyter/dask-7/dask/status"


def test_before_the_address_exists_the_in_cluster_url_stays_and_the_dashboard_is_still_proxied() -> None:
    out = with_external_urls({"dask-7": state()}, [service("dask-7")])
    assert out["dask-7"].jupyter_url == IN_CLUSTER
    assert out["dask-7"].dashboard_url == f"{IN_CLUSTER}dask/status"


def test_proxying_twice_changes_nothing() -> None:
    once = proxied_dashboard_url("http://192.0.2.7:8888/", DASHBOARD)
    assert once is not None
    assert proxied_dashboard_url("http://192.0.2.7:8888/", once) == once
    assert proxied_dashboard_url("http://192.0.2.7:8888/lab", DASHBOARD) == once  # /lab is the app's page
    assert proxied_dashboard_url("http://192.0.2.7:8888/", None) is None


def test_the_dashboard_address_has_no_colon_for_the_login_redirect_to_mangle() -> None:
    """jupyter_server's login redirect turns the first ':' of its target into '://': the path
    the orchestrator reports (and a logged-out user is sent back to) must hold none."""
    url = proxied_dashboard_url("https://dask.example.org/jupyter/dask-7/", DASHBOARD)
    assert url is not None
    path = urlsplit(url).path
    assert path == "/jupyter/dask-7/dask/status"
    assert ":" not in path
    assert proxied_dashboard_url("http://192.0.2.7:8888/", "http://h:8787/individual-plots.json") == (
        "http://192.0.2.7:8888/dask/individual-plots.json"
    )
