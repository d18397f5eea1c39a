"""Helpers of the cluster tier for sessions: a namespace set up like a PanDA queue's, the
orchestrator's service pointed at the local cluster, and per-test values that choose kwok's
simulated behaviour through pod annotations."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from orchestrator.service import SessionService, Settings
from tests.cluster.conftest import KubeCluster
from tests.conftest import ROOT, TOOLS_BIN

CLAIM = "filestore-dask"
PROXY_SECRET = "proxy-secret"
EXAMPLE_JOB = ROOT / "tests" / "data" / "harvester-example-pandaJobData.json"
EXIT_CODE = "kwok.dask-panda-session/exit-code"
EXIT_AFTER = "kwok.dask-panda-session/exit-after"
IMAGE_PULL = "kwok.dask-panda-session/image-pull"


def prepare_namespace(cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str]) -> None:
    """What a site admin does once per namespace: the RWX claim bound to the share, the proxy."""
    pv = shared_pv(CLAIM)
    core = cluster.core
    core.create_namespaced_persistent_volume_claim(
        namespace,
        k8s.V1PersistentVolumeClaim(
            metadata=k8s.V1ObjectMeta(name=CLAIM),
            spec=k8s.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteMany"],
                storage_class_name="",
                volume_name=pv,
                resources=k8s.V1VolumeResourceRequirements(requests={"storage": "10Gi"}),
            ),
        ),
    )
    core.create_namespaced_secret(
        namespace,
        k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name=PROXY_SECRET), string_data={"x509up_u25606_prod": "test-proxy"}
        ),
    )
    cluster.wait_for(
        f"claim {CLAIM} bound",
        lambda: core.read_namespaced_persistent_volume_claim(CLAIM, namespace).status.phase == "Bound",
        timeout=60,
    )


def service(cluster: KubeCluster, namespace: str, helm: str = "helm", **settings: Any) -> SessionService:
    base: dict[str, Any] = {
        "namespace": namespace,
        "queue": "GOOGLE_DASK",
        "helm_executable": str(TOOLS_BIN / helm),
        "kubeconfig": str(cluster.kubeconfig),
        "install_timeout": 120.0,
        "uninstall_timeout": 60.0,
        "cleanup_timeout": 30.0,
        "verify_timeout": 60.0,
        # one host, one clock: the short test timeouts count without the production tolerance
        "clock_skew_tolerance": 0.0,
    }
    base.update(settings)
    return SessionService(Settings(**base))


def values_file(tmp_path: Path, name: str, values: Mapping[str, Any]) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(dict(values)))
    return str(path)


def pilot_exits(code: int, after: int = 2) -> dict[str, Any]:
    return {"pilot": {"podAnnotations": {EXIT_CODE: str(code), EXIT_AFTER: str(after)}}}


def jupyterlab_exits(after: int) -> dict[str, Any]:
    return {"jupyterlab": {"podAnnotations": {EXIT_CODE: "0", EXIT_AFTER: str(after)}}}


def fast_timeouts(startup: int = 10, lifetime: int = 600, lease: int = 300) -> dict[str, Any]:
    return {
        "timeouts": {
            "startupSeconds": startup,
            "lifetimeSeconds": lifetime,
            "leaseSeconds": lease,
            "schedulerIdleSeconds": 0,
            "hookSeconds": 60,
            "testSeconds": 60,
        }
    }


def job(
    pandaid: int, *, mode: str = "batch", workers: int = 2, password: str | None = None
) -> dict[str, Any]:
    """A job shaped like the shared example, with our identity, mode and worker count."""
    data = json.loads(EXAMPLE_JOB.read_text())
    params = copy.deepcopy(next(iter(data.values())))
    params["PandaID"] = pandaid
    params["daskMode"] = mode
    params["daskWorkers"] = workers
    if password is not None:
        params["secrets"] = {"jupyter": json.dumps({"username": "user", "password": password})}
    return {str(pandaid): params}


def labelled(cluster: KubeCluster, namespace: str, release: str) -> list[str]:
    """Every object of the namespace carrying the release's instance label."""
    return labelled_by(cluster, namespace, f"app.kubernetes.io/instance={release}")


def labelled_by(cluster: KubeCluster, namespace: str, selector: str) -> list[str]:
    """Every object of the namespace matching the label selector, over every listable namespaced
    kind the API serves (not just the kinds the orchestrator knows about)."""
    kinds = cluster.kubectl_run("api-resources", "--namespaced", "--verbs=list", "-o", "name").stdout.split()
    kinds = [k for k in kinds if k not in ("events", "events.events.k8s.io")]
    out = cluster.kubectl_run(
        "get", ",".join(kinds), "-n", namespace, "-l", selector, "-o", "name", "--ignore-not-found"
    ).stdout
    return [line for line in out.splitlines() if line.strip()]
