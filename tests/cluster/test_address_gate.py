"""The pilot's address gate against the real API server, with the per-release ServiceAccount's own
token: an interactive session behind a LoadBalancer (the kwok stage
``scripts/cluster/stages/dps-service-loadbalancer.yaml`` plays the cloud and assigns the address)
is installed in a namespace that enforces the restricted Pod Security Standard; the gate script
the chart ships then runs as a local process (kwok runs no container) on a copy of the released
definition, reaching the API server as the pod would (a bound token from the TokenRequest API,
the cluster's CA, the namespace) and must write the URL ``status`` reports into session_ip. RBAC
must refuse it any other Service, and the sweep (and gc, for an orphan) must leave no
ServiceAccount, Role or RoleBinding behind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from orchestrator import names
from orchestrator.session import Phase
from tests.cluster.conftest import KubeCluster
from tests.cluster.sessions import fast_timeouts, job, labelled, prepare_namespace, service, values_file
from tests.conftest import CHART, ROOT

pytestmark = pytest.mark.cluster

SCRIPT = CHART / "files" / "wait-for-address.py"
PASSWORD = "a-Password-for-710"


@pytest.fixture
def queue_ns(kube_cluster: KubeCluster, namespace: str, shared_pv: Callable[..., str]) -> str:
    prepare_namespace(kube_cluster, namespace, shared_pv)
    manifest = yaml.safe_load((ROOT / "deploy" / "namespace.yaml").read_text(encoding="utf-8"))
    labels = manifest["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    kube_cluster.kubectl_run(
        "label", "--overwrite", "namespace", namespace, *(f"{k}={v}" for k, v in labels.items())
    )
    return namespace


def api_server(cluster: KubeCluster) -> tuple[str, bytes]:
    """The API server's URL and CA certificate (PEM), from the admin kubeconfig."""
    config = yaml.safe_load(cluster.kubeconfig.read_text(encoding="utf-8"))
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
    server = next(c for c in config["clusters"] if c["name"] == current["cluster"])["cluster"]
    if "certificate-authority-data" in server:
        ca = base64.b64decode(server["certificate-authority-data"])
    else:
        ca = (cluster.kubeconfig.parent / server["certificate-authority"]).read_bytes()
    return str(server["server"]), ca


def credentials(cluster: KubeCluster, namespace: str, account: str, directory: Path) -> Path:
    """What the pod's projected volume holds: a bound token of `account`, the CA, the namespace."""
    directory.mkdir(mode=0o700)
    token = cluster.kubectl_run(
        "create", "token", account, "-n", namespace, "--duration", "10m"
    ).stdout.strip()
    assert token.count(".") == 2, "not a JWT"
    _, ca = api_server(cluster)
    for name, data in (("token", token.encode()), ("ca.crt", ca), ("namespace", namespace.encode())):
        (directory / name).write_bytes(data)
    return directory


def run_gate(
    cluster: KubeCluster, creds: Path, run_dir: Path, sha256: str, service_name: str
) -> subprocess.CompletedProcess[str]:
    """The chart's gate script as a local process, as the init container runs it."""
    server, _ = api_server(cluster)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PILOT_RUN_DIR": str(run_dir),
        "JOB_DEFINITION_SHA256": sha256,
        "JUPYTER_SERVICE": service_name,
        "GATE_TIMEOUT_SECONDS": "60",
        "ADDRESS_GATE_POLL_SECONDS": "1",
        "ADDRESS_GATE_API": server,
        "ADDRESS_GATE_CREDENTIALS": str(creds),
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def gate_objects(cluster: KubeCluster, namespace: str, release: str) -> list[str]:
    return [
        n
        for n in labelled(cluster, namespace, release)
        if n.split("/")[0].lower().startswith(("serviceaccount", "role"))
    ]


def released_definition(cluster: KubeCluster, namespace: str, release: str) -> tuple[bytes, str]:
    """The definition the orchestrator released (the per-job Secret's pandaJobData.out) and the
    checksum the pilot pod's gates check it against."""
    secret = cluster.core.read_namespaced_secret(names.secret_name(release), namespace)
    data = base64.b64decode(secret.data["pandaJobData.out"])
    pod = cluster.core.read_namespaced_pod(names.pilot_name(release), namespace)
    (gate,) = [c for c in pod.spec.init_containers if c.name == "wait-for-address"]
    sha = next(e.value for e in gate.env if e.name == "JOB_DEFINITION_SHA256")
    assert hashlib.sha256(data).hexdigest() == sha
    return data, sha


def test_the_gate_writes_the_external_url_with_its_own_token_only(
    kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path
) -> None:
    svc = service(kube_cluster, queue_ns, gc_grace_seconds=0.0)
    exposure = {
        "jupyterlab": {
            "service": {"type": "LoadBalancer", "port": 8888, "loadBalancerSourceRanges": ["198.51.100.0/24"]}
        }
    }
    extra = [values_file(tmp_path, "lb", {**fast_timeouts(startup=60), **exposure})]
    release = svc.submit(job(710, mode="interactive", password=PASSWORD), values_files=extra).release
    try:
        account = names.address_gate_name(release)
        pod = kube_cluster.core.read_namespaced_pod(names.pilot_name(release), queue_ns)
        assert pod.spec.service_account_name == account  # admitted under the restricted standard
        assert pod.spec.automount_service_account_token is False
        assert sorted(gate_objects(kube_cluster, queue_ns, release)) == [
            f"role.rbac.authorization.k8s.io/{account}",
            f"rolebinding.rbac.authorization.k8s.io/{account}",
            f"serviceaccount/{account}",
        ]

        deadline = time.monotonic() + 90
        state = svc.observe([release])[release]
        while time.monotonic() < deadline and not (state.jupyter_url and "192.0.2." in state.jupyter_url):
            time.sleep(1.0)
            state = svc.observe([release])[release]
        assert state.phase is Phase.RUNNING and state.jupyter_url, (state.phase, state.reason)
        assert "192.0.2." in state.jupyter_url

        data, sha = released_definition(kube_cluster, queue_ns, release)
        released = json.loads(data)
        assert released[str(710)]["session_ip"].startswith(f"http://{names.jupyterlab_name(release)}.")
        run_dir = tmp_path / "run"
        run_dir.mkdir(mode=0o700)
        (run_dir / "pandaJobData.out").write_bytes(data)
        creds = credentials(kube_cluster, queue_ns, account, tmp_path / "creds")

        # another release's Service, and another Service of this release: refused by RBAC
        for other in (names.jupyterlab_name("dask-999"), names.scheduler_name(release)):
            refused = run_gate(kube_cluster, creds, run_dir, sha, other)
            assert refused.returncode == 1, refused.stderr
            assert "HTTP 403" in refused.stderr and other in refused.stderr, refused.stderr
            assert (run_dir / "pandaJobData.out").read_bytes() == data

        done = run_gate(kube_cluster, creds, run_dir, sha, names.jupyterlab_name(release))
        assert done.returncode == 0, done.stderr
        rewritten = json.loads((run_dir / "pandaJobData.out").read_bytes())
        assert rewritten[str(710)]["session_ip"] == state.jupyter_url  # what status and Harvester report
        assert rewritten[str(710)]["scheduler_ip"] == released[str(710)]["scheduler_ip"]
        assert {k: v for k, v in rewritten[str(710)].items() if k != "session_ip"} == {
            k: v for k, v in released[str(710)].items() if k != "session_ip"
        }
        token = (creds / "token").read_text()
        assert token not in done.stdout + done.stderr + refused.stderr
        assert PASSWORD not in done.stdout + done.stderr
    finally:
        svc.sweep(release)
    assert labelled(kube_cluster, queue_ns, release) == []  # the gate's objects too


def test_gc_removes_an_orphaned_gate(kube_cluster: KubeCluster, queue_ns: str, tmp_path: Path) -> None:
    """A release whose record is gone (helm's own Secrets deleted) leaves its gate objects as
    orphans: gc finds them by their labels and removes them with the rest."""
    svc = service(kube_cluster, queue_ns, gc_grace_seconds=0.0)
    exposure = {
        "jupyterlab": {"service": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["198.51.100.0/24"]}}
    }
    extra = [values_file(tmp_path, "lb", {**fast_timeouts(startup=60), **exposure})]
    release = svc.submit(job(711, mode="interactive", password=PASSWORD), values_files=extra).release
    try:
        assert len(gate_objects(kube_cluster, queue_ns, release)) == 3
        kube_cluster.kubectl_run("delete", "secret", "-n", queue_ns, "-l", f"owner=helm,name={release}")
        assert svc.helm.release(release, queue_ns) is None
        done = svc.gc()
        assert release in [a.release for a in done], done
        kube_cluster.wait_for(
            "orphans gone", lambda: labelled(kube_cluster, queue_ns, release) == [], timeout=60
        )
    finally:
        if labelled(kube_cluster, queue_ns, release):
            svc.sweep(release)
