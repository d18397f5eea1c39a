"""The orchestrator works with nothing but the namespaced Role it ships
(deploy/orchestrator-rbac.yaml), in a namespace set up as deploy/namespace.yaml says.

Every code path runs with the Role's own token (submit, observe, kill, sweep, gc, enforce,
doctor), so a verb missing from the Role fails here; a unit test keeps the Role from granting
more than the code uses. The namespace enforces the restricted Pod Security Standard, so even
with `create pods` the Role cannot start a privileged pod.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import kube as kube_mod
from orchestrator import names
from orchestrator.doctor import Check, check_claim
from orchestrator.kube import Kube
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import (
    CLAIM,
    fast_timeouts,
    job,
    labelled,
    pilot_exits,
    prepare_namespace,
    service,
    values_file,
)
from tests.conftest import ROOT, TOOLS_BIN

SA = "dask-panda-session-orchestrator"
DEPLOY = ROOT / "deploy"


def service_account_kubeconfig(cluster: KubeCluster, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the orchestrator's ServiceAccount (a bound token),
    made as deploy/README.md tells a site admin to make Harvester's."""
    token = cluster.kubectl_run("create", "token", SA, "-n", namespace, "--duration", "1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    current = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    server = next(c for c in admin["clusters"] if c["name"] == current["cluster"])["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": SA, "user": {"token": token}}],
        "contexts": [
            {"name": "orchestrator", "context": {"cluster": "local", "user": SA, "namespace": namespace}}
        ],
        "current-context": "orchestrator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def restrict(cluster: KubeCluster, namespace: str) -> None:
    """The Pod Security labels of deploy/namespace.yaml, on the test's namespace."""
    manifest = yaml.safe_load((DEPLOY / "namespace.yaml").read_text())
    labels = manifest["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    cluster.kubectl_run(
        "label", "--overwrite", "namespace", namespace, *(f"{k}={v}" for k, v in labels.items())
    )


def cli(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed CLI, as an operator runs it (no global option but the kubeconfig: the
    namespace comes from its context)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "DPS_HELM": str(TOOLS_BIN / "helm"),
            "HOME": str(kubeconfig.parent),
        },
    )


PRIVILEGED_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "root-shell"},
    "spec": {
        "hostPID": True,
        "containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}],
    },
}


@pytest.fixture
def orchestrator_kubeconfig(
    kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str], tmp_path: Path
) -> Path:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    restrict(kube_cluster, namespace)
    kube_cluster.kubectl_run("apply", "-n", namespace, "-f", str(DEPLOY / "orchestrator-rbac.yaml"))
    return service_account_kubeconfig(kube_cluster, namespace, tmp_path / "kubeconfig")


def test_the_namespace_refuses_a_privileged_pod(orchestrator_kubeconfig: Path, namespace: str) -> None:
    kube = Kube(kubeconfig=orchestrator_kubeconfig)
    assert kube.can_i(namespace, "create", "pods")
    with pytest.raises(kube_mod.KubeError, match="PodSecurity"):
        kube.create(kube_mod.POD, namespace, PRIVILEGED_POD)
    assert kube.get(kube_mod.POD, namespace, "root-shell") is None


def test_the_role_reaches_nothing_outside_its_namespace(
    orchestrator_kubeconfig: Path, namespace: str
) -> None:
    kube = Kube(kubeconfig=orchestrator_kubeconfig)
    assert not kube.can_i("default", "list", "pods")
    assert not kube.can_i(namespace, "create", "persistentvolumes")
    assert not kube.can_i(namespace, "create", "clusterroles", "rbac.authorization.k8s.io")
    assert not kube.can_i(namespace, "create", "clusterrolebindings", "rbac.authorization.k8s.io")
    assert not kube.can_i(namespace, "create", "configmaps")
    assert not kube.can_i(namespace, "escalate", "roles", "rbac.authorization.k8s.io")
    assert not kube.can_i(namespace, "bind", "roles", "rbac.authorization.k8s.io")


def test_the_role_can_grant_only_what_it_holds(orchestrator_kubeconfig: Path, namespace: str) -> None:
    """It creates Roles (the pilot's address gate: `get` on one Service), but the API server's
    escalation check refuses a Role with a right the orchestrator does not hold itself."""
    kube = Kube(kubeconfig=orchestrator_kubeconfig)
    assert kube.can_i(namespace, "create", "roles", "rbac.authorization.k8s.io")

    def role(name: str, resource: str, verb: str) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": [resource], "resourceNames": ["x"], "verbs": [verb]}],
        }

    kube.create(names.ROLE, namespace, role("reads-one-service", "services", "get"))
    with pytest.raises(kube_mod.KubeError, match="not currently held"):
        kube.create(names.ROLE, namespace, role("writes-configmaps", "configmaps", "update"))
    assert kube.get(names.ROLE, namespace, "writes-configmaps") is None
    assert kube.delete(names.ROLE, namespace, "reads-one-service")


def test_an_interactive_session_with_its_address_gate_with_the_role(
    kube_cluster: KubeCluster, orchestrator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    """A LoadBalancer whose address the cloud assigns: the release holds the pilot's address gate
    (a ServiceAccount, a Role on one Service, their binding), which the Role installs and sweeps."""
    svc = service(kube_cluster, namespace, kubeconfig=str(orchestrator_kubeconfig))
    exposure = {
        "jupyterlab": {"service": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["198.51.100.0/24"]}}
    }
    extra = [values_file(tmp_path, "lb", {**fast_timeouts(), **exposure})]
    release = svc.submit(
        job(905, mode="interactive", password="a-Password-for-905"), values_files=extra
    ).release
    gate = names.address_gate_name(release)
    assert {f"{kind}/{gate}" for kind in ("serviceaccount", "role.rbac.authorization.k8s.io")} <= set(
        labelled(kube_cluster, namespace, release)
    )
    swept = svc.sweep(release)
    assert swept.clean, swept
    assert labelled(kube_cluster, namespace, release) == []


def test_doctor_passes_with_the_role(orchestrator_kubeconfig: Path, namespace: str) -> None:
    # The local cluster's nodes are simulated: the probe cannot tell, and need not wait 90 s for it.
    doctor = cli(orchestrator_kubeconfig, "doctor", "--probe-timeout", "10", "-o", "json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    report = json.loads(doctor.stdout)
    assert report["namespace"] == namespace  # from the kubeconfig's context
    failed = [c for c in report["checks"] if c["ok"] is False]
    assert failed == []
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["shared claim"]["detail"] == "filestore-dask: Bound"
    assert "rights on secrets" in checks and "rights on jobs.batch" in checks


def test_every_code_path_works_with_the_role(
    kube_cluster: KubeCluster, orchestrator_kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    svc = service(kube_cluster, namespace, kubeconfig=str(orchestrator_kubeconfig))
    extra = [values_file(tmp_path, "t", {**fast_timeouts(), **pilot_exits(0, after=2)})]

    # submit, observe (with events), sweep
    first = svc.submit(job(900), values_files=extra)
    assert first.created
    assert not svc.submit(job(900), values_files=extra).created  # the lock path: a conflict, adopted
    kube_cluster.wait_for(
        "the session to finish", lambda: svc.observe([first.release])[first.release].final, timeout=60
    )
    assert svc.observe([first.release])[first.release].phase == "finished"
    swept = svc.sweep(first.release)
    assert swept.clean, swept
    assert labelled(kube_cluster, namespace, first.release) == []

    # kill: the quick path of Harvester's sweeper
    second = svc.submit(job(901), values_files=[values_file(tmp_path, "long", fast_timeouts())])
    assert second.created
    killed = svc.kill(second.release)
    assert killed.release_existed
    kube_cluster.wait_for(
        "the killed release's objects to go",
        lambda: labelled(kube_cluster, namespace, second.release) == [],
        timeout=60,
    )

    # enforce: a day later every session is past its lifetime and is ended
    third = svc.submit(job(902), values_files=[values_file(tmp_path, "long", fast_timeouts())])
    later = svc.server_now() + timedelta(days=2)
    ended = svc.enforce_deadlines(now=later)
    assert ended.failures == {}
    assert third.release in ended

    # gc: an orphan (a labelled object whose release is gone), confirmed and removed
    orphan = "dask-903"
    kube_cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": f"{orphan}-secret",
                "labels": {
                    "app.kubernetes.io/name": "dask-panda-session",
                    "app.kubernetes.io/instance": orphan,
                },
            },
        },
        namespace,
    )
    actions = svc.gc(now=svc.server_now() + timedelta(days=2))
    assert actions.failures == {}
    assert orphan in [a.release for a in actions]
    assert labelled(kube_cluster, namespace, orphan) == []

    # the CLI's own paths with the Role: status of an unknown session, delete, gc, enforce
    status = cli(orchestrator_kubeconfig, "status", "dask-904")
    assert status.returncode == 1 and f"not found in namespace {namespace}" in status.stderr
    for args in (["gc", "-o", "json"], ["enforce", "-o", "json"], ["status", "-o", "json"]):
        done = cli(orchestrator_kubeconfig, *args)
        assert done.returncode == 0, done.stdout + done.stderr


def test_doctor_explains_a_claim_whose_volume_is_taken(
    kube_cluster: KubeCluster, orchestrator_kubeconfig: Path, namespace: str
) -> None:
    """What a second namespace sees with a fixed volume name: its claim stays Pending, and doctor
    (with the Role, which cannot read volumes) says why from the claim's events."""
    taken = kube_cluster.core.read_namespaced_persistent_volume_claim(CLAIM, namespace).spec.volume_name
    kube_cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "second"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": taken,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        namespace,
    )
    kube = Kube(kubeconfig=orchestrator_kubeconfig)

    def explained() -> Check | None:
        check = check_claim(kube, namespace, "second")
        return check if "last event" in check.detail else None

    check = kube_cluster.wait_for("the claim's binding failure to be reported", explained, timeout=60)
    assert check.ok is False
    assert check.detail.startswith("second: Pending")
    assert "bound to a different claim" in check.detail
    assert "its own volume" in check.detail
