"""doctor: the rights come from the shipped Role (which equals what the code and helm use), every
one is asked, and a claim that is not Bound is explained."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator import doctor
from orchestrator.doctor import Permission, check_claim, check_permissions, role_permissions, run_doctor
from orchestrator.errors import InputError
from orchestrator.kube import LEFTOVER_KINDS
from orchestrator.service import SessionService, Settings
from tests.conftest import ROOT
from tests.unit.fakes import FakeHelm, FakeKube

# What the chart's kinds are, as the API names them.
KIND_RESOURCES = {
    "Pod": ("", "pods"),
    "Service": ("", "services"),
    "Secret": ("", "secrets"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "Job": ("batch", "jobs"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "Ingress": ("networking.k8s.io", "ingresses"),
}
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
    for kind in LEFTOVER_KINDS:  # the sweep lists and deletes every kind it knows
        group = "" if kind.group_version == "v1" else kind.group_version.split("/")[0]
        wanted |= {Permission(group, kind.plural, "list"), Permission(group, kind.plural, "delete")}
    wanted.add(Permission("", "serviceaccounts", "get", "default"))  # doctor: the namespace exists
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
    checks = {c.name: c for c in check_permissions(kube, "ns", role_permissions())}  # type: ignore[arg-type]
    assert checks["rights on secrets"].ok is False
    assert checks["rights on secrets"].detail.startswith("missing: list")
    assert all(c.ok for name, c in checks.items() if name != "rights on secrets")
    assert checks["rights on serviceaccounts/default"].ok is True


def svc(kube: FakeKube) -> SessionService:
    return SessionService(Settings(namespace="ns"), helm=FakeHelm(), kube=kube)  # type: ignore[arg-type]


def test_run_doctor_asks_every_right_of_the_role() -> None:
    kube = FakeKube(server_now=datetime.now(UTC))
    kube.put(
        "ns", "PersistentVolumeClaim", {"metadata": {"name": "filestore-dask"}, "status": {"phase": "Bound"}}
    )
    checks = run_doctor(svc(kube), "ns")
    assert all(c.ok for c in checks), checks
    asked = {Permission(r["group"], r["resource"], r["verb"], r.get("name", "")) for r in kube.reviews}
    assert asked == set(role_permissions())
    assert {r["namespace"] for r in kube.reviews} == {"ns"}
    names = [c.name for c in checks]
    assert names[:4] == ["helm", "cluster", "clock", "namespace"]
    assert "shared claim" in names and "proxy Secret" in names


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
    check = check_claim(kube, "ns", "c")  # type: ignore[arg-type]
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
    check = check_claim(kube, "ns", "c")  # type: ignore[arg-type]
    assert check.ok is False
    assert "already bound to a different claim" in check.detail
    assert "its own volume" in check.detail


def test_a_claim_naming_a_missing_volume_and_a_missing_claim() -> None:
    kube = FakeKube()
    _pending(kube, volume="gone")
    assert "the volume gone it names does not exist" in check_claim(kube, "ns", "c").detail  # type: ignore[arg-type]
    missing = check_claim(kube, "ns", "nope")  # type: ignore[arg-type]
    assert missing.ok is False and "no such claim in namespace ns" in missing.detail


def test_clock_skew_threshold() -> None:
    kube = FakeKube(server_now=datetime.now(UTC))
    assert doctor.check_clock(svc(kube)).ok is True
