"""doctor's NetworkPolicy probe on the local cluster: its nodes are simulated (kwok), so the probe
must say plainly that it cannot tell (never "enforced"), its pods must pass the restricted Pod
Security Standard, and it must leave no pod and no policy behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import names
from orchestrator.netprobe import CHECK_NAME
from tests.cluster.conftest import KubeCluster, wait_for
from tests.cluster.test_rbac import restrict

pytestmark = pytest.mark.cluster


def probe_leftovers(cluster: KubeCluster, namespace: str) -> list[str]:
    found = cluster.kubectl_json("get", "pods,networkpolicies", "-n", namespace, "-l", names.PROBE_LABEL)
    return [f"{o['kind']} {o['metadata']['name']}" for o in found["items"]]


def test_doctor_cannot_tell_on_simulated_nodes_and_cleans_up(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    restrict(kube_cluster, namespace)  # the probe's pods must be admitted as `restricted`
    doctor = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "--kubeconfig",
            str(kube_cluster.kubeconfig),
            "--namespace",
            namespace,
            "doctor",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=kube_cluster.env,
        cwd=Path(__file__).parents[2],
    )
    report = json.loads(doctor.stdout)
    checks = {c["check"]: c for c in report["checks"]}
    probe = checks[CHECK_NAME]
    assert probe["ok"] is None, probe  # a warning, never "enforced"
    assert "cannot tell" in probe["detail"] and "simulated node" in probe["detail"], probe
    assert f"{names.KWOK_NODE_ANNOTATION}=fake" in probe["detail"]
    wait_for(
        "the probe's pods and policy to be gone",
        lambda: not probe_leftovers(kube_cluster, namespace),
        timeout=60,
    )
