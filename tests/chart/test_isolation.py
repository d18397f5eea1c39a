"""Tenant isolation across the render matrix (each queue file x batch/interactive x Helm 3/4):
every dask comm is TLS from the per-job Secret, no key material is rendered, every pod is under an
egress policy that never opens the cloud metadata server, and a LoadBalancer keeps client addresses.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from orchestrator.job import parse_job
from orchestrator.values import load_queue, render_values
from tests.chart.conftest import (
    MODES,
    NAMESPACE,
    PANDA_ID,
    QUEUE_FILES,
    RELEASE,
    Rendered,
    job_values,
    render,
)
from tests.chart.jobs import job_with_input_files
from tests.conftest import VALUES_DIR

pytestmark = pytest.mark.chart

METADATA = ipaddress.IPv4Network("169.254.169.254/32")
TLS_DIR = "/etc/dask-panda-session-tls"
# Containers that speak the dask comm (the gates only open a TCP connection).
DASK_CONTAINERS = {"scheduler", "worker", "pilot", "jupyterlab", "test"}
SESSION_COMPONENTS = {"scheduler", "worker", "pilot", "jupyterlab", "test"}


@pytest.fixture(
    scope="module", params=[(q, m) for q in QUEUE_FILES for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}"
)
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def rendered(helm_bin: Path, case: tuple[str, str]) -> Rendered:
    queue_file, mode = case
    return render(helm_bin, [job_values(mode)], [VALUES_DIR / queue_file])


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def component(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def session_pods(rendered: Rendered) -> list[dict[str, Any]]:
    return [p for p in rendered.of_kind("Pod") if component(p) in SESSION_COMPONENTS]


def test_every_dask_container_requires_tls_with_the_secrets_files(rendered: Rendered) -> None:
    pods = session_pods(rendered)
    assert {component(p) for p in pods} >= {"scheduler", "worker", "pilot", "test"}
    for pod in pods:
        name = pod["metadata"]["name"]
        (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "dask-tls"]
        assert volume["secret"]["secretName"] == f"{RELEASE}-secret", name
        assert {i["key"] for i in volume["secret"]["items"]} == {"tls-ca.pem", "tls-cert.pem", "tls-key.pem"}
        files = {f"{TLS_DIR}/{i['path']}" for i in volume["secret"]["items"]}
        for c in pod["spec"]["containers"]:
            if c["name"] not in DASK_CONTAINERS:
                continue
            (mount,) = [m for m in c["volumeMounts"] if m["name"] == "dask-tls"]
            assert mount["mountPath"] == TLS_DIR and mount["readOnly"] is True, name
            env = env_of(c)
            assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True", name
            if c["name"] != "scheduler":  # the scheduler listens; the others connect
                assert env["DASK_SCHEDULER_ADDRESS"].startswith("tls://"), name
            paths = {v for k, v in env.items() if k.startswith("DASK_DISTRIBUTED__COMM__TLS__")}
            assert len([k for k in env if k.startswith("DASK_DISTRIBUTED__COMM__TLS__")]) == 7, name
            assert paths == files, name
        assert (
            pod["metadata"]
            .get("annotations", {})
            .get("dask-panda-session/scheduler-address", "tls://")
            .startswith("tls://")
        ), name
    (scheduler,) = rendered.named("Pod", f"{RELEASE}-scheduler")["spec"]["containers"]
    assert "--protocol=tls" in scheduler["args"]
    # the dashboard stays plain HTTP, the readiness probe with it
    assert scheduler["readinessProbe"]["httpGet"]["port"] == "dashboard"


def test_gates_stay_a_plain_tcp_connect(rendered: Rendered) -> None:
    gates = [
        c
        for p in session_pods(rendered)
        for c in p["spec"].get("initContainers", [])
        if c["name"] == "wait-for-scheduler"
    ]
    assert gates
    for gate in gates:
        assert "socket.create_connection" in gate["args"][0]
        assert "dask-tls" not in str(gate.get("volumeMounts", []))


def test_no_key_material_in_any_manifest(helm_bin: Path, case: tuple[str, str]) -> None:
    """The orchestrator's own values for a job, rendered: none of the Secret's PEM text appears."""
    queue_file, mode = case
    queue = load_queue(VALUES_DIR / queue_file)
    params = {**job_with_input_files(1, pandaid=int(PANDA_ID)), "daskMode": mode}
    if mode == "interactive":
        params["secrets"] = {"password": "a-long-enough-password"}
    made = render_values(parse_job(params, queue_limits=queue.limits), queue, namespace=NAMESPACE)
    secret = made.secret.reveal()
    out = render(helm_bin, [dict(made.values)], [VALUES_DIR / queue_file]).stdout
    assert "-----BEGIN" not in out
    for key in ("tls-ca.pem", "tls-cert.pem", "tls-key.pem"):
        body = "".join(secret[key].splitlines()[1:-1])
        assert body[:40] not in out.replace("\n", ""), key


def ip_blocks(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        peer["ipBlock"]
        for rule in policy["spec"].get("egress", [])
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    ]


def selects(policy: dict[str, Any], pod: dict[str, Any]) -> bool:
    labels = pod["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in policy["spec"]["podSelector"]["matchLabels"].items())


def test_every_pod_is_under_an_egress_policy(rendered: Rendered) -> None:
    egress = [p for p in rendered.of_kind("NetworkPolicy") if "Egress" in p["spec"]["policyTypes"]]
    for pod in rendered.of_kind("Pod"):
        assert any(selects(p, pod) for p in egress), pod["metadata"]["name"]
    for job in rendered.of_kind("Job"):
        template = {"metadata": job["spec"]["template"]["metadata"]}
        assert any(selects(p, template) for p in egress), job["metadata"]["name"]


def test_egress_allows_own_release_and_dns_only_by_default(rendered: Rendered) -> None:
    policy = rendered.named("NetworkPolicy", f"{RELEASE}-egress")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == RELEASE
    rules = policy["spec"]["egress"]
    peers = rules[0]["to"][0]["podSelector"]["matchLabels"]
    assert peers == {"app.kubernetes.io/instance": RELEASE}
    assert "ports" not in rules[0]
    dns = rules[1]
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}


def test_no_egress_rule_reaches_the_metadata_server(rendered: Rendered) -> None:
    for policy in rendered.of_kind("NetworkPolicy"):
        for block in ip_blocks(policy):
            net = ipaddress.ip_network(block["cidr"])
            if not isinstance(net, ipaddress.IPv4Network) or not METADATA.subnet_of(net):
                continue
            excepted = [ipaddress.IPv4Network(e) for e in block.get("except", [])]
            assert any(METADATA.subnet_of(e) for e in excepted), (policy["metadata"]["name"], block)
            for e in excepted:
                assert e.subnet_of(net), (policy["metadata"]["name"], block)


def test_metadata_excepted_from_a_listed_broad_range(helm_bin: Path) -> None:
    egress = {
        "allowed": [{"cidr": "0.0.0.0/0", "ports": [443]}, {"cidr": "10.0.0.0/8"}],
        "pilot": [{"cidr": "169.254.0.0/16", "except": ["169.254.1.0/24"]}],
        "jupyterlab": [],
    }
    out = render(
        helm_bin, [job_values("batch", networkPolicy={"egress": egress})], [VALUES_DIR / "GOOGLE_DASK.yaml"]
    )
    blocks = {b["cidr"]: b for p in out.of_kind("NetworkPolicy") for b in ip_blocks(p)}
    assert blocks["0.0.0.0/0"]["except"] == ["169.254.169.254/32"]
    assert "except" not in blocks["10.0.0.0/8"]
    assert blocks["169.254.0.0/16"]["except"] == ["169.254.1.0/24", "169.254.169.254/32"]


def test_loadbalancer_jupyterlab_keeps_client_addresses(rendered: Rendered, case: tuple[str, str]) -> None:
    _, mode = case
    for service in rendered.of_kind("Service"):
        if service["spec"]["type"] == "LoadBalancer":
            assert service["spec"]["externalTrafficPolicy"] == "Local"
            assert mode == "interactive"


def test_tls_disabled_renders_plain_tcp_without_the_secrets_files(helm_bin: Path) -> None:
    out = render(
        helm_bin, [job_values("interactive", tls={"enabled": False})], [VALUES_DIR / "GOOGLE_DASK.yaml"]
    )
    assert "dask-tls" not in out.stdout
    assert "DASK_DISTRIBUTED__COMM__TLS" not in out.stdout
    for pod in session_pods(out):
        for c in pod["spec"]["containers"]:
            if "DASK_SCHEDULER_ADDRESS" in env_of(c):
                assert env_of(c)["DASK_SCHEDULER_ADDRESS"].startswith("tcp://")


def test_ingress_route_carries_the_release(helm_bin: Path) -> None:
    """Host or path may carry the release; either makes the route one session's own."""
    for ingress in (
        {"enabled": True, "host": f"{RELEASE}.example.org", "path": "/"},
        {"enabled": True, "host": "j.example.org", "path": f"/{RELEASE}/"},
    ):
        out = render(
            helm_bin,
            [job_values("interactive", jupyterlab={"ingress": ingress})],
            [VALUES_DIR / "GOOGLE_DASK.yaml"],
        )
        (route,) = out.of_kind("Ingress")
        rule = route["spec"]["rules"][0]
        assert RELEASE in rule["host"] + rule["http"]["paths"][0]["path"]
