"""The orchestrator works with nothing but the namespaced Role it ships (deploy/orchestrator-rbac.yaml)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from orchestrator.kube import Kube
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import (
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


def service_account_kubeconfig(cluster: KubeCluster, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the orchestrator's ServiceAccount (a bound token)."""
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


def test_namespaced_role_is_enough(
    kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str], tmp_path: Path
) -> None:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    kube_cluster.kubectl_run("apply", "-n", namespace, "-f", str(ROOT / "deploy" / "orchestrator-rbac.yaml"))
    kubeconfig = service_account_kubeconfig(kube_cluster, namespace, tmp_path / "kubeconfig")
    kube = Kube(kubeconfig=kubeconfig)
    assert kube.can_i(namespace, "create", "pods")
    assert kube.can_i(namespace, "create", "jobs", "batch")
    assert not kube.can_i("default", "list", "pods")  # nothing outside its namespace
    assert not kube.can_i(namespace, "create", "persistentvolumes")  # nothing cluster-wide

    doctor = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "dask-panda-session"),
            "--kubeconfig",
            str(kubeconfig),
            "--helm",
            str(TOOLS_BIN / "helm"),
            "--namespace",
            namespace,
            "doctor",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "NO" not in doctor.stdout
    assert "filestore-dask: Bound" in doctor.stdout

    svc = service(kube_cluster, namespace, kubeconfig=str(kubeconfig))
    extra = [values_file(tmp_path, "t", {**fast_timeouts(), **pilot_exits(0, after=2)})]
    result = svc.submit(job(900), values_files=extra)
    assert result.created
    kube_cluster.wait_for(
        "the session to finish", lambda: svc.observe([result.release])[result.release].final, timeout=60
    )
    assert svc.observe([result.release])[result.release].phase == "finished"
    swept = svc.sweep(result.release)
    assert swept.clean, swept
    assert labelled(kube_cluster, namespace, result.release) == []
