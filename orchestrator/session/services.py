"""The Services of a namespace -> the addresses a user outside the cluster opens. PURE.

Why: the JupyterLab URL the chart knows at render time (the pod annotation) is the Ingress URL,
a static LoadBalancer IP, or else the Service's in-cluster DNS name, which nobody outside the
cluster can open. A LoadBalancer without a static IP gets its external address later, in the
Service's ``status.loadBalancer.ingress`` (written by the cloud's controller). The monitor lists
the namespace's JupyterLab Services once per cycle (only when it observes an interactive
session) and these functions put that address into the states, from memory.

Interactive users reach the Dask dashboard through JupyterLab's server proxy (behind the same
password): ``dashboard_url`` becomes ``<jupyter_url>dask<path>``, the chart's named proxy entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from orchestrator.names import JUPYTERLAB_SERVICE_SELECTOR
from orchestrator.session.pods import get, is_mapping
from orchestrator.session.vocabulary import COMPONENT_LABEL, INSTANCE_LABEL, JUPYTERLAB, SessionState

__all__ = [
    "DASHBOARD_PROXY_NAME",
    "JUPYTERLAB_SERVICE_SELECTOR",
    "external_jupyter_urls",
    "is_in_cluster_url",
    "proxied_dashboard_url",
    "with_external_urls",
]


# The dashboard's path under JupyterLab's base URL: the chart's named jupyter-server-proxy entry
# (templates/_helpers.tpl, dps.jupyterlab.dashboardProxyName), which forwards to the session's
# scheduler dashboard. A name, not ``proxy/<host>:<port>``: jupyter_server's login redirect turns
# the first ':' of its target into '://', so that form ends in a 404 right after the login.
DASHBOARD_PROXY_NAME = "dask"


def is_in_cluster_url(url: str | None) -> bool:
    """True for a URL whose host is a cluster DNS name (``<svc>.<ns>.svc.<domain>``) or absent."""
    if not url:
        return True
    host = urlsplit(url).hostname or ""
    return ".svc." in f"{host}." or host.endswith(".svc")


def _service_url(service: Mapping[str, Any]) -> str | None:
    """``http(s)://<ingress ip or hostname>[:port]/`` of a LoadBalancer Service, None before it has one."""
    if get(service, "spec", "type") != "LoadBalancer":
        return None
    ingress = get(service, "status", "loadBalancer", "ingress")
    if not isinstance(ingress, list):
        return None
    address = None
    for entry in ingress:
        if is_mapping(entry):
            address = entry.get("hostname") or entry.get("ip")
            if isinstance(address, str) and address:
                break
            address = None
    if address is None:
        return None
    port = 80
    ports = get(service, "spec", "ports")
    if isinstance(ports, list):
        chosen = [p for p in ports if is_mapping(p) and p.get("name") in ("https", "http")] or [
            p for p in ports if is_mapping(p)
        ]
        if chosen and isinstance(chosen[0].get("port"), int):
            port = int(chosen[0]["port"])
            scheme = "https" if chosen[0].get("name") == "https" or port == 443 else "http"
        else:
            scheme = "http"
    else:
        scheme = "http"
    host = f"[{address}]" if ":" in address else address  # an IPv6 literal
    default = (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    return f"{scheme}://{host}/" if default else f"{scheme}://{host}:{port}/"


def external_jupyter_urls(services: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """{release: external JupyterLab URL} of every JupyterLab LoadBalancer Service with an address."""
    urls: dict[str, str] = {}
    for service in services:
        labels = get(service, "metadata", "labels")
        if not is_mapping(labels) or labels.get(COMPONENT_LABEL) != JUPYTERLAB:
            continue
        release = labels.get(INSTANCE_LABEL)
        if not isinstance(release, str) or not release or get(service, "metadata", "deletionTimestamp"):
            continue
        url = _service_url(service)
        if url is not None:
            urls[release] = url
    return urls


def _server_base(jupyter_url: str) -> str:
    """jupyter_server's base URL (ending in "/") from a JupyterLab URL: ``.../lab`` is the app's
    own page under it, not part of it."""
    base = jupyter_url.split("?", 1)[0].split("#", 1)[0]
    base = base.removesuffix("/")
    if base.endswith("/lab"):
        base = base.removesuffix("/lab")
    return f"{base}/"


def proxied_dashboard_url(jupyter_url: str, dashboard_url: str | None) -> str | None:
    """The scheduler's dashboard as JupyterLab's server proxy serves it (None without a dashboard).

    ``http://<scheduler-host>:8787/status`` -> ``<jupyter_url>dask/status``: the chart's JupyterLab
    serves its own session's dashboard only, under that name, after the JupyterLab login.
    """
    if not dashboard_url:
        return None
    base = _server_base(jupyter_url)
    if dashboard_url.startswith(f"{base}{DASHBOARD_PROXY_NAME}/"):
        return dashboard_url  # already behind this JupyterLab
    parts = urlsplit(dashboard_url)
    if not parts.hostname or not parts.port:
        return None
    return f"{base}{DASHBOARD_PROXY_NAME}{parts.path or '/status'}"


def with_external_urls(
    states: Mapping[str, SessionState], services: Iterable[Mapping[str, Any]] | None
) -> dict[str, SessionState]:
    """The states with the external JupyterLab URL (when known) and the proxied dashboard.

    Only interactive sessions change. The render-time URL (Ingress, static IP) is kept; an
    in-cluster one is replaced by the Service's external address once the Service has one.
    The dashboard is reported behind JupyterLab whatever JupyterLab's URL is, because that is
    the only way the chart lets a user reach it.
    """
    external = external_jupyter_urls(services or ())
    result: dict[str, SessionState] = {}
    for release, state in states.items():
        if state.jupyter_url is None and release not in external:
            result[release] = state
            continue
        if state.mode is not None and state.mode != "interactive":
            result[release] = state
            continue
        jupyter = state.jupyter_url
        if release in external and is_in_cluster_url(jupyter):
            jupyter = external[release]
        if jupyter is None:
            result[release] = state
            continue
        result[release] = replace(
            state, jupyter_url=jupyter, dashboard_url=proxied_dashboard_url(jupyter, state.dashboard_url)
        )
    return result
