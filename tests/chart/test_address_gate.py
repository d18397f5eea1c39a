"""The pilot's address gate: rendered exactly when JupyterLab's URL is unknown before the install
(interactive, a LoadBalancer without a reserved IP, no Ingress), with a Role that reads one
Service, a token in the gate's init container only, and a script that builds the URL as the
orchestrator does and rewrites nothing but session_ip.

The gate script runs here as the chart ships it (loaded from files/, its functions called, or run
as a process); tests/cluster/test_address_gate.py runs it against a real API server.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from orchestrator import names
from orchestrator.job import definition_bytes
from orchestrator.session.services import external_jupyter_urls
from orchestrator.tls import make_session_tls
from tests.chart.conftest import NAMESPACE, PANDA_ID, RELEASE, Rendered, job_values, render, run_helm
from tests.conftest import CHART, VALUES_DIR

pytestmark = pytest.mark.chart

SCRIPT = CHART / "files" / "wait-for-address.py"
GOOGLE = VALUES_DIR / "GOOGLE_DASK.yaml"
GATE = names.address_gate_name(RELEASE)
LAB = names.jupyterlab_name(RELEASE)
# the volume types the restricted Pod Security Standard allows
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
GATE_KINDS = (names.SERVICE_ACCOUNT.name, names.ROLE.name, names.ROLE_BINDING.name)


def _render(helm: Path, mode: str = "interactive", **extra: Any) -> Rendered:
    rendered = render(helm, [job_values(mode, **extra)], [GOOGLE])
    for obj in rendered.objects:
        kubernetes_validate.validate(obj, "1.35.0", strict=True)
    return rendered


def _pilot(rendered: Rendered) -> dict[str, Any]:
    return rendered.named("Pod", names.pilot_name(RELEASE))["spec"]  # type: ignore[no-any-return]


def _gate_objects(rendered: Rendered) -> list[dict[str, Any]]:
    return [o for o in rendered.objects if o["kind"] in GATE_KINDS]


def test_google_dask_interactive_gets_the_gate(helm_bin: Path) -> None:
    """GOOGLE_DASK: a LoadBalancer whose address the cloud assigns, so the gate is on."""
    rendered = _render(helm_bin)
    account = rendered.named("ServiceAccount", GATE)
    assert account["automountServiceAccountToken"] is False
    role = rendered.named("Role", GATE)
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["services"], "resourceNames": [LAB], "verbs": ["get"]}
    ]
    rendered.named("Service", LAB)  # the one Service the Role names is this release's JupyterLab
    binding = rendered.named("RoleBinding", GATE)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": GATE}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": GATE, "namespace": NAMESPACE}]

    spec = _pilot(rendered)
    assert spec["serviceAccountName"] == GATE
    assert spec["automountServiceAccountToken"] is False
    inits = [c["name"] for c in spec["initContainers"]]
    assert inits == ["wait-for-scheduler", "wait-for-job-definition", "wait-for-address"]


def test_the_token_is_in_the_gate_container_only(helm_bin: Path) -> None:
    spec = _pilot(_render(helm_bin))
    (volume,) = [v for v in spec["volumes"] if "projected" in v]
    sources = volume["projected"]["sources"]
    (token,) = [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]
    assert token["path"] == "token" and 600 <= token["expirationSeconds"] <= 3600
    assert {"configMap", "downwardAPI", "serviceAccountToken"} == {k for s in sources for k in s}
    mounting = [
        c["name"]
        for c in spec["initContainers"] + spec["containers"]
        if any(m["name"] == volume["name"] for m in c.get("volumeMounts", []))
    ]
    assert mounting == ["wait-for-address"]
    (gate,) = [c for c in spec["initContainers"] if c["name"] == "wait-for-address"]
    mounts = {m["name"] + ":" + m["mountPath"]: m for m in gate["volumeMounts"]}
    run = mounts["shared:/home/pilot/run"]
    assert not run.get("readOnly") and run["subPath"].endswith("/pilot")  # it rewrites the definition
    definition_gate = next(c for c in spec["initContainers"] if c["name"] == "wait-for-job-definition")
    assert all(m.get("readOnly") for m in definition_gate["volumeMounts"])
    env = {e["name"]: e["value"] for e in gate["env"]}
    assert env["JUPYTER_SERVICE"] == LAB
    assert env["JOB_DEFINITION_SHA256"] == job_values("interactive")["job"]["definitionSha256"]


def test_the_pilot_pod_stays_restricted(helm_bin: Path) -> None:
    spec = _pilot(_render(helm_bin))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["initContainers"] + spec["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], container[
            "name"
        ]
        assert sc["runAsNonRoot"] is True and sc["seccompProfile"]["type"] == "RuntimeDefault", container[
            "name"
        ]
    for volume in spec["volumes"]:
        assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, volume


@pytest.mark.parametrize(
    ("mode", "jupyterlab"),
    [
        ("batch", {}),
        ("interactive", {"service": {"loadBalancerIP": "203.0.113.7"}}),
        ("interactive", {"ingress": {"enabled": True, "host": "lab.example.org", "path": f"/{RELEASE}/"}}),
        ("interactive", {"service": {"type": "ClusterIP"}}),
        ("interactive", {"addressGate": {"enabled": False}}),
    ],
    ids=["batch", "loadBalancerIP", "ingress", "clusterip", "switched-off"],
)
def test_no_gate_when_the_url_is_known_or_not_wanted(
    helm_bin: Path, mode: str, jupyterlab: dict[str, Any]
) -> None:
    rendered = _render(helm_bin, mode, jupyterlab=jupyterlab)
    assert _gate_objects(rendered) == []
    spec = _pilot(rendered)
    assert "serviceAccountName" not in spec
    assert [c["name"] for c in spec["initContainers"]] == ["wait-for-scheduler", "wait-for-job-definition"]
    assert not [v for v in spec["volumes"] if "projected" in v]
    assert GATE not in rendered.stdout and "serviceAccountToken" not in rendered.stdout


def test_forced_on_with_a_reserved_ip(helm_bin: Path) -> None:
    rendered = _render(
        helm_bin, jupyterlab={"service": {"loadBalancerIP": "203.0.113.7"}, "addressGate": {"enabled": True}}
    )
    assert len(_gate_objects(rendered)) == 3


def test_forced_on_with_an_ingress_is_refused_naming_the_field(helm_bin: Path) -> None:
    proc = run_helm(
        helm_bin,
        ["template", RELEASE, str(CHART), "--namespace", NAMESPACE],
        [
            job_values(
                "interactive",
                jupyterlab={
                    "ingress": {"enabled": True, "host": "lab.example.org", "path": f"/{RELEASE}/"},
                    "addressGate": {"enabled": True},
                },
            )
        ],
        [GOOGLE],
    )
    assert proc.returncode != 0
    assert "jupyterlab.addressGate.enabled" in proc.stderr


def test_the_api_server_egress_is_the_pilots_only(helm_bin: Path) -> None:
    endpoint = {"cidr": "172.16.0.2/32", "ports": [443]}
    rendered = _render(helm_bin, jupyterlab={"addressGate": {"apiServerEgress": [endpoint]}})
    policy = rendered.named("NetworkPolicy", GATE)
    assert policy["spec"]["podSelector"]["matchLabels"][names.COMPONENT_LABEL] == names.PILOT
    assert policy["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "172.16.0.2/32"}}], "ports": [{"port": 443, "protocol": "TCP"}]}
    ]
    with pytest.raises(KeyError):
        _render(helm_bin).named("NetworkPolicy", GATE)  # none without endpoints


# --- the script ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def script() -> dict[str, Any]:
    """The gate script's functions, loaded from the file the chart ships (main() not run)."""
    return runpy.run_path(str(SCRIPT), run_name="address_gate")


def _service(ports: Any, ingress: Any, service_type: str = "LoadBalancer") -> dict[str, Any]:
    return {
        "metadata": {
            "name": LAB,
            "labels": {names.COMPONENT_LABEL: names.JUPYTERLAB, names.INSTANCE_LABEL: RELEASE},
        },
        "spec": {"type": service_type, "ports": ports},
        "status": {"loadBalancer": {"ingress": ingress}},
    }


SERVICES = [
    _service([{"name": "http", "port": 80}], [{"ip": "34.1.2.3"}]),
    _service([{"name": "http", "port": 8080}], [{"ip": "34.1.2.3"}]),
    _service([{"name": "https", "port": 443}], [{"hostname": "lab.elb.example.com"}]),
    _service([{"name": "https", "port": 8443}], [{"ip": "2001:db8::7"}]),
    _service([{"name": "web", "port": 443}], [{"ip": "34.1.2.3"}]),
    _service([{"name": "other", "port": 9000}, {"name": "http", "port": 81}], [{"ip": "34.1.2.3"}]),
    _service(
        [{"name": "http", "port": 80}], [{}, {"ip": ""}, {"hostname": "h.example.org", "ip": "1.2.3.4"}]
    ),
    _service([{"name": "http", "port": "80"}], [{"ip": "34.1.2.3"}]),
    _service(None, [{"ip": "34.1.2.3"}]),
    _service([], [{"ip": "34.1.2.3"}]),
    _service([{"name": "http", "port": 80}], []),
    _service([{"name": "http", "port": 80}], None),
    _service([{"name": "http", "port": 80}], [{"ip": "34.1.2.3"}], service_type="ClusterIP"),
]


@pytest.mark.parametrize("service", SERVICES, ids=range(len(SERVICES)))
def test_the_script_builds_the_orchestrators_url(script: dict[str, Any], service: dict[str, Any]) -> None:
    """The URL written for the pilot is the one `status` and Harvester report."""
    assert script["external_url"](service) == external_jupyter_urls([service]).get(RELEASE)


def _definition(tmp_path: Path, fields: dict[str, Any]) -> tuple[Path, str]:
    data = definition_bytes(int(PANDA_ID), fields)
    path = tmp_path / "pandaJobData.out"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


FIELDS: dict[str, Any] = {
    "PandaID": int(PANDA_ID),
    "jobName": "user.ä.\U0001f600",
    "maxCpuCount": 12345678901234567890,
    "scheduler_ip": "tls://dask-1-scheduler.ns.svc.cluster.local:8786",
    "session_ip": "http://dask-1-jupyterlab.ns.svc.cluster.local:80/",
}


def test_the_rewrite_changes_session_ip_only(script: dict[str, Any], tmp_path: Path) -> None:
    path, sha = _definition(tmp_path, FIELDS)
    script["rewrite_definition"](str(tmp_path), sha, "http://34.1.2.3/")
    assert path.read_bytes() == definition_bytes(int(PANDA_ID), {**FIELDS, "session_ip": "http://34.1.2.3/"})
    assert sorted(os.listdir(tmp_path)) == ["pandaJobData.out"]  # no temporary file left
    assert (path.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda p, s: (p.write_bytes(p.read_bytes() + b" "), s), "sha256"),
        (lambda p, s: (p.rename(p.with_name("real")), p.symlink_to("real"), s), "Too many levels|symbolic"),
    ],
    ids=["changed", "symlink"],
)
def test_the_rewrite_refuses_anything_but_the_released_file(
    script: dict[str, Any], tmp_path: Path, prepare: Callable[[Path, str], Any], message: str
) -> None:
    path, sha = _definition(tmp_path, FIELDS)
    prepare(path, sha)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.is_symlink()}
    with pytest.raises((script["Refused"], OSError), match=message):
        script["rewrite_definition"](str(tmp_path), sha, "http://34.1.2.3/")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.is_symlink()} == before


def test_a_batch_definition_is_never_given_addresses(script: dict[str, Any], tmp_path: Path) -> None:
    batch = {k: v for k, v in FIELDS.items() if k not in ("scheduler_ip", "session_ip")}
    path, sha = _definition(tmp_path, batch)
    with pytest.raises(script["Refused"], match="no session_ip"):
        script["rewrite_definition"](str(tmp_path), sha, "http://34.1.2.3/")
    assert json.loads(path.read_bytes())[PANDA_ID] == batch


def run_script(credentials: Path, run_dir: Path, *, returncode: int = 1, **env: str) -> str:
    """The script as a process against an address where no API server answers; its one stderr line."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={
            "PATH": os.environ.get("PATH", ""),
            "PILOT_RUN_DIR": str(run_dir),
            "JOB_DEFINITION_SHA256": "0" * 64,
            "JUPYTER_SERVICE": LAB,
            "GATE_TIMEOUT_SECONDS": "1",
            "ADDRESS_GATE_POLL_SECONDS": "0.2",
            "ADDRESS_GATE_UNREACHABLE_SECONDS": "600",
            "ADDRESS_GATE_API": "https://127.0.0.1:9",
            "ADDRESS_GATE_CREDENTIALS": str(credentials),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == returncode, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("address gate: "), proc.stderr
    return lines[0]


def test_without_an_address_the_pilot_starts_on_the_released_definition(tmp_path: Path) -> None:
    """No address within the timeout (here: no API server answers): the gate says why in one
    line and exits 0, leaving the released definition as it was, so the session goes on."""
    ca = make_session_tls("gate", ["localhost"], valid_for=dt.timedelta(hours=1)).ca_pem
    for name, text in (("token", "t"), ("namespace", NAMESPACE), ("ca.crt", ca)):
        (tmp_path / name).write_text(text)
    released = b'{"1": {"session_ip": "http://lab.ns.svc.cluster.local/"}}'
    (tmp_path / "pandaJobData.out").write_bytes(released)
    line = run_script(tmp_path, tmp_path, returncode=0)
    assert f"JupyterLab's Service {LAB}" in line and "gave up after 1 s" in line
    assert "the pilot starts with the released session_ip" in line
    assert (tmp_path / "pandaJobData.out").read_bytes() == released
    # an API server that never answers ends the wait early (the cloud's address may take the
    # whole gateSeconds; an unreachable control plane will not come back by waiting)
    line = run_script(
        tmp_path, tmp_path, returncode=0, GATE_TIMEOUT_SECONDS="3600", ADDRESS_GATE_UNREACHABLE_SECONDS="1"
    )
    assert "did not answer" in line and "jupyterlab.addressGate.apiServerEgress" in line
    assert (tmp_path / "pandaJobData.out").read_bytes() == released


def test_missing_credentials_are_named(tmp_path: Path) -> None:
    assert f"{tmp_path / 'none' / 'ca.crt'}" in run_script(tmp_path / "none", tmp_path)
    (tmp_path / "ca.crt").write_text(
        make_session_tls("g", ["localhost"], valid_for=dt.timedelta(hours=1)).ca_pem
    )
    assert f"cannot read {tmp_path / 'namespace'}" in run_script(tmp_path, tmp_path)
