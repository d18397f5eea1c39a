"""HTTPS for JupyterLab: at the Ingress (a certificate Secret or a cert-manager issuer), or served
by JupyterLab itself from a site certificate where a LoadBalancer has no Ingress.

Why: the login carries the user's password. Each way is rendered with both Helm majors, validated
strictly against Kubernetes, and the URL the pods announce is checked against what the
orchestrator computes (`session_addresses`) and reads back from the Service (`services.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from orchestrator.session.services import external_jupyter_urls
from orchestrator.values import deep_merge, session_addresses
from tests.chart.conftest import NAMESPACE, RELEASE, Rendered, job_values, render, run_helm
from tests.conftest import CHART, VALUES_DIR

HOST = f"{RELEASE}.sessions.example.org"
LB_IP = "203.0.113.10"
SITE_CERT = "jupyter-site-cert"
CERT_DIR = "/etc/dask-panda-session-jupyter-tls"


def _jupyterlab(**jupyterlab: Any) -> dict[str, Any]:
    return {"jupyterlab": jupyterlab}


INGRESS = {"enabled": True, "host": HOST, "path": "/"}
LOADBALANCER = {
    "type": "LoadBalancer",
    "port": 443,
    "loadBalancerIP": LB_IP,
    "loadBalancerSourceRanges": ["192.0.2.0/24"],
}


def _render(helm: Path, extra: dict[str, Any]) -> tuple[Rendered, dict[str, Any]]:
    """The interactive render of values/example.yaml with `extra`, and the effective values."""
    per_job = job_values("interactive")
    rendered = render(helm, [per_job, extra], [VALUES_DIR / "example.yaml"])
    effective: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    for layer in (yaml.safe_load((VALUES_DIR / "example.yaml").read_text(encoding="utf-8")), per_job, extra):
        effective = deep_merge(effective, layer)
    for obj in rendered.objects:
        kubernetes_validate.validate(obj, "1.35.0", strict=True)
    return rendered, effective


def _lab(rendered: Rendered) -> dict[str, Any]:
    pod = rendered.named("Pod", f"{RELEASE}-jupyterlab")
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "jupyterlab"]
    return {"pod": pod, "container": container}


def _announced_url(rendered: Rendered, effective: dict[str, Any]) -> str:
    """The URL the pods announce, which must be what the orchestrator computes from the values."""
    url = _lab(rendered)["pod"]["metadata"]["annotations"]["dask-panda-session/jupyter-url"]
    assert session_addresses(effective, RELEASE, NAMESPACE)["session_ip"] == url
    return str(url)


def test_ingress_with_a_certificate_secret(helm_bin: Path) -> None:
    rendered, effective = _render(helm_bin, _jupyterlab(ingress={**INGRESS, "tlsSecretName": "wildcard-tls"}))
    (ingress,) = rendered.of_kind("Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": [HOST], "secretName": "wildcard-tls"}]
    assert not any(k.startswith("cert-manager.io/") for k in ingress["metadata"].get("annotations") or {})
    assert _announced_url(rendered, effective) == f"https://{HOST}/"
    # TLS ends at the Ingress: the backend stays plain HTTP inside the cluster
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] == {"name": "http"}
    assert not any("certfile" in a for a in _lab(rendered)["container"]["args"])


@pytest.mark.parametrize(
    ("kind", "annotation"),
    [("clusterIssuer", "cert-manager.io/cluster-issuer"), ("issuer", "cert-manager.io/issuer")],
)
def test_ingress_with_a_cert_manager_issuer(helm_bin: Path, kind: str, annotation: str) -> None:
    ingress_values = {**INGRESS, "certManager": {kind: "letsencrypt"}, "annotations": {"site/owner": "panda"}}
    rendered, effective = _render(helm_bin, _jupyterlab(ingress=ingress_values))
    (ingress,) = rendered.of_kind("Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations[annotation] == "letsencrypt"
    assert annotations["site/owner"] == "panda"  # the queue's own annotations stay
    assert len([k for k in annotations if k.startswith("cert-manager.io/")]) == 1
    # cert-manager issues into the Secret the Ingress names: one per release by default
    assert ingress["spec"]["tls"] == [{"hosts": [HOST], "secretName": f"{RELEASE}-jupyterlab-tls"}]
    assert _announced_url(rendered, effective) == f"https://{HOST}/"


def test_ingress_without_tls_stays_http(helm_bin: Path) -> None:
    rendered, effective = _render(helm_bin, _jupyterlab(ingress=INGRESS))
    (ingress,) = rendered.of_kind("Ingress")
    assert "tls" not in ingress["spec"]
    assert _announced_url(rendered, effective) == f"http://{HOST}/"


def test_loadbalancer_served_by_jupyterlab_with_a_site_certificate(helm_bin: Path) -> None:
    rendered, effective = _render(helm_bin, _jupyterlab(service=LOADBALANCER, tls={"secretName": SITE_CERT}))
    lab = _lab(rendered)
    container, spec = lab["container"], lab["pod"]["spec"]
    assert f"--ServerApp.certfile={CERT_DIR}/tls.crt" in container["args"]
    assert f"--ServerApp.keyfile={CERT_DIR}/tls.key" in container["args"]
    (volume,) = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == SITE_CERT]
    assert volume["secret"]["items"] == [
        {"key": "tls.crt", "path": "tls.crt"},
        {"key": "tls.key", "path": "tls.key"},
    ]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": CERT_DIR, "readOnly": True}
    assert container["ports"] == [{"name": "https", "containerPort": 8888}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/api", "port": "https", "scheme": "HTTPS"}
    service = rendered.named("Service", f"{RELEASE}-jupyterlab")
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https"}]
    assert _announced_url(rendered, effective) == f"https://{LB_IP}:443/"
    # what the monitor reads back once the cloud assigns the address: https, default port dropped
    service["status"] = {"loadBalancer": {"ingress": [{"ip": LB_IP}]}}
    assert external_jupyter_urls([service]) == {RELEASE: f"https://{LB_IP}/"}


def test_loadbalancer_without_a_certificate_stays_http(helm_bin: Path) -> None:
    rendered, effective = _render(helm_bin, _jupyterlab(service=LOADBALANCER))
    container = _lab(rendered)["container"]
    assert not any("certfile" in a or "keyfile" in a for a in container["args"])
    assert "scheme" not in container["readinessProbe"]["httpGet"]
    assert _announced_url(rendered, effective) == f"http://{LB_IP}:443/"


@pytest.mark.parametrize(
    ("jupyterlab", "message"),
    [
        (
            {"ingress": {**INGRESS, "certManager": {"issuer": "a", "clusterIssuer": "b"}}},
            "name either issuer or clusterIssuer, not both",
        ),
        (
            {"ingress": INGRESS, "tls": {"secretName": SITE_CERT}},
            "jupyterlab.tls.secretName: with an Ingress, TLS ends at the Ingress",
        ),
        (
            {"service": LOADBALANCER, "ingress": {"enabled": False, "tlsSecretName": "wildcard-tls"}},
            "take effect only with jupyterlab.ingress.enabled",
        ),
    ],
    ids=["two-issuers", "ingress-and-own-tls", "ingress-tls-without-ingress"],
)
def test_contradictory_tls_values_are_refused(
    helm_bin: Path, jupyterlab: dict[str, Any], message: str
) -> None:
    proc = run_helm(
        helm_bin,
        ["template", RELEASE, str(CHART), "--namespace", NAMESPACE],
        [job_values("interactive"), {"jupyterlab": jupyterlab}],
        [VALUES_DIR / "example.yaml"],
    )
    assert proc.returncode != 0
    assert message in proc.stderr


def test_example_values_show_both_ways() -> None:
    """values/example.yaml documents both: JupyterLab's own TLS and the Ingress's (with cert-manager)."""
    text = (VALUES_DIR / "example.yaml").read_text(encoding="utf-8")
    example = yaml.safe_load(text)["jupyterlab"]
    assert example["tls"] == {"secretName": ""}
    assert example["ingress"]["certManager"] == {"issuer": "", "clusterIssuer": ""}
    assert "tls: {secretName: jupyter-site-cert}" in text
    assert "certManager: {clusterIssuer: letsencrypt}" in text
