"""doctor: the rights come from the shipped Role (which equals what the code and helm use), every
one is asked, and a claim that is not Bound is explained."""

from __future__ import annotations

import copy
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator import doctor, names
from orchestrator.doctor import Permission, check_claim, check_permissions, role_permissions, run_doctor
from orchestrator.errors import InputError
from orchestrator.kube import LEFTOVER_KINDS, Kind, KubeError
from orchestrator.netprobe import CHECK_NAME as NETWORK_POLICY_CHECK
from orchestrator.netprobe import (
    CLIENT_SCRIPT,
    DENIED_PORT,
    OPEN_PORT,
    SERVER_SCRIPT,
    NetworkPolicyProbe,
    parse_report,
)
from orchestrator.service import SessionService, Settings
from tests.conftest import ROOT
from tests.doubles import FakeHelm, FakeKube

# What the chart's kinds are, as the API names them.
KIND_RESOURCES = {kind.name: (kind.group, kind.plural) for kind in names.CHART_KINDS}
# helm creates (Helm 3) or applies server-side (Helm 4: a patch), reads, waits on (uninstall
# --wait, hooks) and deletes every kind of the chart.
HELM_VERBS = ("get", "list", "watch", "create", "patch", "delete")


def chart_kinds() -> set[str]:
    templates = ROOT / "charts" / "dask-panda-session" / "templates"
    found = set()
    for path in templates.rglob("*"):
        if path.is_file():
            found |= set(re.findall(r"^kind:\s*(\w+)", path.read_text(encoding="utf-8"), re.M))
    return found


def what_the_code_uses() -> set[Permission]:
    wanted: set[Permission] = set()
    for kind in chart_kinds():
        group, resource = KIND_RESOURCES[kind]  # a new kind in the chart: add it here and to the Role
        wanted |= {Permission(group, resource, verb) for verb in HELM_VERBS}
    # helm's release records change status (update); the per-job Secret is created by the code
    wanted |= {
        Permission("", "secrets", verb) for verb in ("get", "list", "watch", "create", "update", "delete")
    }
    wanted.add(Permission("", "events", "list"))  # pod events of a failing session; a claim's events
    for leftover in LEFTOVER_KINDS:  # the sweep lists and deletes every kind it knows
        group = "" if leftover.group_version == "v1" else leftover.group_version.split("/")[0]
        wanted |= {Permission(group, leftover.plural, "list"), Permission(group, leftover.plural, "delete")}
    wanted.add(Permission("", "serviceaccounts", "get", "default"))  # doctor: the namespace exists
    # doctor's NetworkPolicy probe: a policy and two pods, created, followed and deleted
    wanted |= {Permission("", "pods", verb) for verb in ("create", "get", "delete")}
    wanted |= {Permission("networking.k8s.io", "networkpolicies", verb) for verb in ("create", "delete")}
    return wanted


def test_the_role_grants_exactly_what_the_code_uses() -> None:
    granted = set(role_permissions())
    wanted = what_the_code_uses()
    assert not wanted - granted, f"missing from the Role: {sorted(wanted - granted)}"
    assert not granted - wanted, f"granted but unused: {sorted(granted - wanted)}"


def test_role_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be read"):
        role_permissions(tmp_path / "nope.yaml")
    bad = tmp_path / "two.yaml"
    bad.write_text("kind: ServiceAccount\n---\nkind: ConfigMap\n")
    with pytest.raises(InputError, match="exactly one Role"):
        role_permissions(bad)


def test_role_rules_expand_to_every_verb_and_name(tmp_path: Path) -> None:
    role = tmp_path / "role.yaml"
    role.write_text(
        "kind: Role\nrules:\n"
        "  - {apiGroups: ['', batch], resources: [a], verbs: [get, list]}\n"
        "  - {apiGroups: [''], resources: [b], resourceNames: [x, y], verbs: [get]}\n"
    )
    assert role_permissions(role) == [
        Permission("", "a", "get"),
        Permission("", "a", "list"),
        Permission("", "b", "get", "x"),
        Permission("", "b", "get", "y"),
        Permission("batch", "a", "get"),
        Permission("batch", "a", "list"),
    ]


def test_a_missing_verb_fails_its_check_and_names_it() -> None:
    kube = FakeKube()
    kube.denied.add(("list", "secrets", ""))
    checks = {c.name: c for c in check_permissions(kube, "ns", role_permissions())}
    assert checks["rights on secrets"].ok is False
    assert checks["rights on secrets"].detail.startswith("missing: list")
    assert all(c.ok for name, c in checks.items() if name != "rights on secrets")
    assert checks["rights on serviceaccounts/default"].ok is True


def svc(kube: FakeKube) -> SessionService:
    return SessionService(Settings(namespace="ns"), helm=FakeHelm(), kube=kube)


def test_run_doctor_asks_every_right_of_the_role() -> None:
    kube = ProbeKube(server_now=datetime.now(UTC), node=REAL_NODE, report=ENFORCING)
    kube.put(
        "ns", "PersistentVolumeClaim", {"metadata": {"name": "filestore-dask"}, "status": {"phase": "Bound"}}
    )
    checks = run_doctor(svc(kube), "ns", netpol_probe=probe())
    assert all(c.ok for c in checks), checks
    asked = {Permission(r["group"], r["resource"], r["verb"], r.get("name", "")) for r in kube.reviews}
    assert asked == set(role_permissions())
    assert {r["namespace"] for r in kube.reviews} == {"ns"}
    names = [c.name for c in checks]
    assert names[:4] == ["helm", "cluster", "clock", "namespace"]
    assert "shared claim" in names and "proxy Secret" in names
    assert names[-1] == NETWORK_POLICY_CHECK and checks[-1].detail.startswith("enforced")


def test_an_unreachable_cluster_stops_after_one_check() -> None:
    kube = FakeKube(unavailable=True)
    checks = run_doctor(svc(kube), "ns")
    assert [c.name for c in checks] == ["helm", "cluster"]
    assert checks[-1].ok is False


def _pending(kube: FakeKube, volume: str | None = "filestore-dask") -> None:
    spec = {"volumeName": volume} if volume else {}
    kube.put(
        "ns",
        "PersistentVolumeClaim",
        {"metadata": {"name": "c"}, "spec": spec, "status": {"phase": "Pending"}},
    )


def test_a_claim_waiting_for_a_volume_bound_elsewhere_is_explained() -> None:
    kube = FakeKube()
    _pending(kube)
    kube.put(
        "",
        "PersistentVolume",
        {"metadata": {"name": "filestore-dask"}, "spec": {"claimRef": {"namespace": "other", "name": "c"}}},
    )
    check = check_claim(kube, "ns", "c")
    assert check.ok is False
    assert "belongs to the claim other/c" in check.detail
    assert "its own volume" in check.detail


def test_a_claim_explained_by_its_events_when_volumes_cannot_be_read() -> None:
    kube = FakeKube()
    _pending(kube)
    kube.denied.add(("get", "persistentvolumes", ""))
    event = {
        "metadata": {"name": "c.1"},
        "involvedObject": {"kind": "PersistentVolumeClaim", "name": "c"},
        "message": 'volume "filestore-dask" already bound to a different claim.',
        "lastTimestamp": "2026-11-28T10:00:00Z",
    }
    kube.put("ns", "Event", event)
    kube.put(
        "ns",
        "Event",
        {
            **event,
            "metadata": {"name": "x"},
            "involvedObject": {"kind": "Pod", "name": "c"},
            "message": "other",
        },
    )
    check = check_claim(kube, "ns", "c")
    assert check.ok is False
    assert "already bound to a different claim" in check.detail
    assert "its own volume" in check.detail


def test_a_claim_naming_a_missing_volume_and_a_missing_claim() -> None:
    kube = FakeKube()
    _pending(kube, volume="gone")
    assert "the volume gone it names does not exist" in check_claim(kube, "ns", "c").detail
    missing = check_claim(kube, "ns", "nope")
    assert missing.ok is False and "no such claim in namespace ns" in missing.detail


def test_clock_skew_threshold() -> None:
    kube = FakeKube(server_now=datetime.now(UTC))
    assert doctor.check_clock(svc(kube)).ok is True


# --- the NetworkPolicy probe --------------------------------------------------------------------

RUN_ID = "abc123"
REAL_NODE: dict[str, Any] = {"metadata": {"name": "node-1", "annotations": {}}}
KWOK_NODE: dict[str, Any] = {
    "metadata": {"name": "kwok-1", "annotations": {names.KWOK_NODE_ANNOTATION: "fake"}}
}


def ENFORCING(run_id: str) -> str:  # noqa: N802 - a constant-like report
    return f"probe={run_id} control=connected denied=timeout"


def IGNORING(run_id: str) -> str:  # noqa: N802
    return f"probe={run_id} control=connected denied=connected"


@dataclass
class ProbeKube(FakeKube):
    """FakeKube that schedules the probe's pods on `node` and lets the client report `report`
    (None: the pods are never scheduled, or the client never finishes)."""

    node: dict[str, Any] | None = None
    report: Callable[[str], str] | None = None
    server_phase: str = "Running"
    nodes_forbidden: bool = False
    failing_deletes: set[str] = field(default_factory=set)
    created: list[dict[str, Any]] = field(default_factory=list)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        parts = path.strip("/").split("/")
        if method == "GET" and parts[:3] == ["api", "v1", "nodes"]:
            self._count()
            if self.nodes_forbidden:
                raise KubeError(f"GET {path}: 403 Forbidden: nodes is forbidden")
            return (
                copy.deepcopy(self.node) if self.node and self.node["metadata"]["name"] == parts[3] else None
            )
        return super().request(method, path, **kw)

    def create(self, kind: Kind, namespace: str, body: Any) -> dict[str, Any]:
        obj = super().create(kind, namespace, body)
        self.created.append(copy.deepcopy(obj))
        if kind.name != "Pod" or self.node is None:
            return obj
        obj["spec"]["nodeName"] = self.node["metadata"]["name"]
        if obj["metadata"]["labels"][names.COMPONENT_LABEL].endswith("-server"):
            obj["status"] = {"phase": self.server_phase, "podIP": "10.0.0.7"}
        elif self.report is not None:
            env = {e["name"]: e["value"] for e in obj["spec"]["containers"][0]["env"]}
            terminated = {"exitCode": 0, "message": self.report(env["PROBE_ID"])}
            obj["status"] = {
                "phase": "Succeeded",
                "containerStatuses": [{"state": {"terminated": terminated}}],
            }
        else:
            obj["status"] = {"phase": "Running", "podIP": "10.0.0.8"}
        return obj

    def delete(self, kind: Kind, namespace: str, name: str, *, uid: str | None = None) -> bool:
        if name in self.failing_deletes:
            raise KubeError(f"DELETE {name}: 403 Forbidden")
        return super().delete(kind, namespace, name, uid=uid)

    def probe_objects(self) -> list[tuple[str, str]]:
        return [
            key
            for key, obj in self.objects.get("ns", {}).items()
            if names.PROBE_LABEL in obj.get("metadata", {}).get("labels", {})
        ]


def probe(**kw: Any) -> NetworkPolicyProbe:
    return NetworkPolicyProbe(sleep=lambda _: None, new_id=lambda: RUN_ID, timeout=5, **kw)


def test_an_enforcing_cluster_is_reported_and_nothing_is_left() -> None:
    kube = ProbeKube(node=REAL_NODE, report=ENFORCING)
    result = probe().run(kube, "ns")
    assert result.enforced is True, result
    assert kube.probe_objects() == []
    assert sorted(k for k, _, _ in kube.deleted) == ["NetworkPolicy", "Pod", "Pod"]
    policy, server, client = kube.created
    assert policy["kind"] == "NetworkPolicy"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": OPEN_PORT}]}]
    selected = policy["spec"]["podSelector"]["matchLabels"]
    assert selected.items() <= server["metadata"]["labels"].items()
    assert not selected.items() <= client["metadata"]["labels"].items()
    client_env = {e["name"]: e["value"] for e in client["spec"]["containers"][0]["env"]}
    assert client_env["SERVER_IP"] == "10.0.0.7"
    assert client_env["DENIED_PORT"] == str(DENIED_PORT)


def test_probe_pods_are_restricted_labelled_and_bounded() -> None:
    kube = ProbeKube(node=REAL_NODE, report=ENFORCING)
    probe(image="registry.example.org/python:3", image_pull_secrets=["pull"]).run(kube, "ns")
    pods = [o for o in kube.created if o["kind"] == "Pod"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["metadata"]["labels"][names.PROBE_LABEL] == RUN_ID
        assert pod["metadata"]["name"].startswith(f"{names.PROBE_NAME_PREFIX}-{RUN_ID}-")
        spec = pod["spec"]
        assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] > 0
        assert spec["automountServiceAccountToken"] is False
        assert spec["imagePullSecrets"] == [{"name": "pull"}]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = spec["containers"]
        assert container["image"] == "registry.example.org/python:3"
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["limits"]


def test_a_cluster_that_ignores_policies_is_warned_about_loudly() -> None:
    kube = ProbeKube(node=REAL_NODE, report=IGNORING)
    check = doctor.check_network_policies(kube, "ns", probe())
    assert check.ok is None  # a warning
    assert check.detail.startswith("NOT ENFORCED")
    assert "Multi-user queues require" in check.detail
    assert kube.probe_objects() == []


def test_simulated_nodes_cannot_tell_and_start_no_client() -> None:
    kube = ProbeKube(node=KWOK_NODE, report=ENFORCING)  # even a report would not be trusted
    result = probe().run(kube, "ns")
    assert result.enforced is None
    assert "cannot tell" in result.detail and "simulated node kwok-1" in result.detail
    assert [o["kind"] for o in kube.created] == ["NetworkPolicy", "Pod"]
    assert kube.probe_objects() == []


@pytest.mark.parametrize("node", [None, REAL_NODE], ids=["never-scheduled", "never-finishes"])
def test_pods_that_do_not_run_in_time_cannot_tell(node: dict[str, Any] | None) -> None:
    kube = ProbeKube(node=node, report=None)
    result = probe().run(kube, "ns")
    assert result.enforced is None
    assert "cannot tell" in result.detail and "within 5 s" in result.detail
    assert kube.probe_objects() == []


def test_unreadable_nodes_and_silent_pods_are_never_enforced() -> None:
    """A namespaced Role cannot read nodes: on kwok the client then never reports."""
    kube = ProbeKube(node=KWOK_NODE, report=None, nodes_forbidden=True)
    result = probe().run(kube, "ns")
    assert result.enforced is None and "did not finish" in result.detail


@pytest.mark.parametrize(
    "message",
    [
        "",
        "probe=ffffff control=connected denied=timeout",  # another run's report
        "probe=abc123 control=timeout denied=untried",  # the control port never answered
    ],
)
def test_no_report_of_this_run_or_a_failed_control_cannot_tell(message: str) -> None:
    kube = ProbeKube(node=REAL_NODE, report=lambda _: message)
    result = probe().run(kube, "ns")
    assert result.enforced is None and "cannot tell" in result.detail


def test_a_server_that_ends_early_cannot_tell() -> None:
    kube = ProbeKube(node=REAL_NODE, report=ENFORCING, server_phase="Failed")
    result = probe().run(kube, "ns")
    assert result.enforced is None and "ended (Failed)" in result.detail


def test_objects_that_cannot_be_deleted_are_named() -> None:
    kube = ProbeKube(
        node=REAL_NODE, report=ENFORCING, failing_deletes={f"{names.PROBE_NAME_PREFIX}-{RUN_ID}"}
    )
    result = probe().run(kube, "ns")
    assert result.enforced is True
    assert f"could not delete the probe's NetworkPolicy {names.PROBE_NAME_PREFIX}-{RUN_ID}" in result.detail
    assert kube.probe_objects() == [("NetworkPolicy", f"{names.PROBE_NAME_PREFIX}-{RUN_ID}")]


def test_a_failing_create_still_removes_what_was_made() -> None:
    kube = ProbeKube(node=REAL_NODE, report=ENFORCING)
    original = kube.create

    def create(kind: Kind, namespace: str, body: Any) -> dict[str, Any]:
        if kind.name == "Pod":
            raise KubeError("POST pods: 403 Forbidden")
        return original(kind, namespace, body)

    kube.create = create  # type: ignore[method-assign]
    check = doctor._guard(NETWORK_POLICY_CHECK, lambda: doctor.check_network_policies(kube, "ns", probe()))
    assert check[0].ok is False and "403" in check[0].detail
    assert kube.probe_objects() == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("denied_listens", "enforced"), [(True, False), (False, True)])
def test_the_probe_scripts_really_connect(tmp_path: Path, denied_listens: bool, enforced: bool) -> None:
    """The pods' own scripts, run as local processes: with no policy in between the denied port
    answers (NOT enforced); a port that refuses stands for a rejecting policy (enforced)."""
    open_port, denied_port = _free_port(), _free_port()
    env = {**os.environ, "OPEN_PORT": str(open_port), "DENIED_PORT": str(denied_port)}
    server = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT], env=env, stdout=subprocess.DEVNULL)
    try:
        report = tmp_path / "report"
        client_env = {
            **env,
            "SERVER_IP": "127.0.0.1",
            "DENIED_PORT": str(denied_port if denied_listens else _free_port()),
            "CONTROL_SECONDS": "30",
            "PROBE_ID": RUN_ID,
            "REPORT_PATH": str(report),
        }
        subprocess.run(
            [sys.executable, "-c", CLIENT_SCRIPT],
            env=client_env,
            timeout=120,
            check=True,
            capture_output=True,
        )
    finally:
        server.kill()
        server.wait()
    result = parse_report(report.read_text(), RUN_ID)
    assert result is not None and result.enforced is enforced, report.read_text()


def test_the_probe_image_can_be_named_and_the_queues_pull_secrets_are_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(doctor.PROBE_IMAGE_ENV, "mirror.example.org/python:3.13-alpine")
    values = tmp_path / "pull.yaml"
    values.write_text("imagePullSecrets: [regcred]\n")
    kube = ProbeKube(server_now=datetime.now(UTC), node=REAL_NODE, report=ENFORCING)
    service = SessionService(Settings(namespace="ns"), helm=FakeHelm(), kube=kube, sleep=lambda _: None)
    checks = run_doctor(service, "ns", values_files=[str(values)])
    assert checks[-1].name == NETWORK_POLICY_CHECK and checks[-1].ok is True
    pods = [o for o in kube.created if o["kind"] == "Pod"]
    assert {c["image"] for p in pods for c in p["spec"]["containers"]} == {
        "mirror.example.org/python:3.13-alpine"
    }
    assert all(p["spec"]["imagePullSecrets"] == [{"name": "regcred"}] for p in pods)
